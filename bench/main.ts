/**
 * `deno task bench`: runs the benchmark cases, each as separate deltaship
 * processes, beside floors and peers measured in the same run, and writes a
 * table, bench/results.json and bench/report.md.
 *
 *   deno task bench [--runs N] [--warmup N] [--case NAME]... [--check] [--bin PATH] [--out DIR] [--help]
 */
import { V8_FLAGS } from "../scripts/compile.ts";
import { CASES } from "./cases.ts";
import type { BenchCase, BenchEnv, Measured } from "./harness.ts";
import { countReads, measureAll, type ReadCount, type Sample, summarize, type Summary } from "./measure.ts";

interface Side {
  label: string;
  wall: Summary;
  rssMiB: Summary;
  cpu: Summary;
}

/** The outcome of one case. */
export interface CaseResult {
  name: string;
  description: string;
  runs: number;
  deltaship: Side;
  throughputMBs?: number;
  bytesLabel?: string;
  floor?: Side;
  peer?: Side;
  floorRatio?: number;
  peerRatio?: number;
  /** The README figure shown beside the peer, and deltaship's median over it. */
  reference?: BenchCase["reference"];
  referenceRatio?: number;
  /** Read system calls of one run under strace (see `countReads`), and data reads per MB of `bytes`. */
  reads?: ReadCount & { perMB?: number };
  extra?: Record<string, number>;
  targets?: BenchCase["targets"];
  missed: string[];
  skipped?: string;
}

function parse(args: string[]) {
  const opts = { runs: 5, warmup: 1, cases: [] as string[], check: false, bin: "", out: "", help: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = () => {
      if (i + 1 >= args.length) throw new Error(`${a} needs a value`);
      return args[++i];
    };
    if (a === "--runs") opts.runs = Number(value());
    else if (a === "--warmup") opts.warmup = Number(value());
    else if (a === "--case") opts.cases.push(value());
    else if (a === "--check") opts.check = true;
    else if (a === "--bin") opts.bin = value();
    else if (a === "--out") opts.out = value();
    else if (a === "--help" || a === "-h") opts.help = true;
    else throw new Error(`unknown option ${a}`);
  }
  if (!(opts.runs >= 1)) throw new Error("--runs must be at least 1");
  return opts;
}

function have(tool: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((d) => {
    try {
      return Deno.statSync(`${d}/${tool}`).isFile;
    } catch {
      return false;
    }
  });
}

/**
 * Writes back what the setup (and the run before) left dirty, so that a
 * measured command does not pay for another's writeback: a case's setup pulls
 * an image of a hundred megabytes, whose flush otherwise lands in the run.
 */
async function settle(): Promise<void> {
  await new Deno.Command("sync").output().catch(() => {});
}

async function sample(side: Measured, env: BenchEnv, scratch: string): Promise<Sample> {
  await side.setup?.(env, scratch);
  await settle();
  return await measureAll(side.commands(env, scratch));
}

function side(label: string, samples: Sample[]): Side {
  return {
    label,
    wall: summarize(samples.map((s) => s.wall)),
    rssMiB: summarize(samples.map((s) => s.rssMiB)),
    cpu: summarize(samples.map((s) => s.cpu)),
  };
}

async function runCase(c: BenchCase, env: BenchEnv, runs: number, warmup: number): Promise<CaseResult> {
  const scratch = `${env.cache}/work/${c.name}`;
  const result: CaseResult = {
    name: c.name,
    description: c.description,
    runs,
    missed: [],
    targets: c.targets,
  } as unknown as CaseResult;
  const missingTools = (c.tools ?? []).filter((t) => !have(t));
  if (missingTools.length) return { ...result, skipped: `needs ${missingTools.join(", ")}` };
  try {
    await c.prepare?.(env);
    await sampleCase(c, env, runs, warmup, scratch, result);
    await readsOf(c, env, scratch, result);
  } finally {
    await c.finish?.();
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
  return result;
}

async function sampleCase(
  c: BenchCase,
  env: BenchEnv,
  runs: number,
  warmup: number,
  scratch: string,
  result: CaseResult,
): Promise<void> {
  const mine: Sample[] = [];
  const floor: Sample[] = [];
  const peer: Sample[] = [];
  const peerOk = c.peer && (c.peer.tools ?? []).every(have);
  const floorOk = c.floor && (c.floor.tools ?? []).every(have);
  for (let i = 0; i < warmup + runs; i++) {
    await c.setup(env, scratch);
    await settle();
    const s = await measureAll(c.run(env, scratch));
    await c.verify?.(env, scratch);
    if (i === warmup) result.extra = await c.extra?.(env, scratch);
    const f = floorOk ? await sample(c.floor!, env, scratch) : undefined;
    const p = peerOk ? await sample(c.peer!, env, scratch) : undefined;
    if (i < warmup) continue;
    mine.push(s);
    if (f) floor.push(f);
    if (p) peer.push(p);
  }
  result.deltaship = side("deltaship", mine);
  if (floor.length) result.floor = side(c.floor!.label, floor);
  if (peer.length) result.peer = side(c.peer!.label, peer);
  else if (c.peer) result.peer = undefined;
  const bytes = await c.bytes?.(env);
  if (bytes) {
    result.throughputMBs = bytes.count / 1e6 / result.deltaship.wall.median;
    result.bytesLabel = bytes.label;
  }
  if (result.floor) result.floorRatio = result.deltaship.wall.median / result.floor.wall.median;
  if (result.peer) result.peerRatio = result.deltaship.wall.median / result.peer.wall.median;
  if (c.reference) {
    result.reference = c.reference;
    result.referenceRatio = result.deltaship.wall.median / c.reference.seconds;
  }
  const t = c.targets ?? {};
  const d = result.deltaship;
  if (t.wallSeconds !== undefined && d.wall.median > t.wallSeconds) {
    result.missed.push(`wall ${d.wall.median.toFixed(2)} s > ${t.wallSeconds} s`);
  }
  if (t.rssMiB !== undefined && d.rssMiB.median > t.rssMiB) {
    result.missed.push(`memory ${d.rssMiB.median.toFixed(0)} MiB > ${t.rssMiB} MiB`);
  }
  if (t.peerRatio !== undefined) {
    if (result.peerRatio === undefined) result.missed.push(`peer ${c.peer?.label} not measured`);
    else if (result.peerRatio > t.peerRatio) {
      result.missed.push(`${result.peerRatio.toFixed(2)}x the peer > ${t.peerRatio}x`);
    }
  }
  if (t.floorRatio !== undefined && result.floorRatio !== undefined && result.floorRatio > t.floorRatio) {
    result.missed.push(`${result.floorRatio.toFixed(2)}x the floor > ${t.floorRatio}x`);
  }
  if (t.referenceRatio !== undefined && result.referenceRatio! > t.referenceRatio) {
    result.missed.push(
      `${result.referenceRatio!.toFixed(2)}x the reference (${c.reference!.label}) > ${t.referenceRatio}x`,
    );
  }
  for (const [key, max] of Object.entries(t.extra ?? {})) {
    const value = result.extra?.[key];
    if (value === undefined) result.missed.push(`${key} not measured`);
    else if (value > max) result.missed.push(`${key} ${value} > ${max}`);
  }
}

/**
 * One more run of a case that counts reads (`countReads`), under strace when it
 * is installed; checks the reads-per-MB target.
 */
async function readsOf(c: BenchCase, env: BenchEnv, scratch: string, result: CaseResult): Promise<void> {
  if (!c.countReads) return;
  const target = c.targets?.readsPerMB;
  if (!have("strace")) {
    if (target !== undefined) result.missed.push("read calls not counted (needs strace)");
    return;
  }
  await c.setup(env, scratch);
  const reads: CaseResult["reads"] = await countReads(c.run(env, scratch));
  await c.verify?.(env, scratch);
  const bytes = await c.bytes?.(env);
  if (bytes) reads.perMB = reads.data / (bytes.count / 1e6);
  result.reads = reads;
  if (target !== undefined && (reads.perMB === undefined || reads.perMB >= target)) {
    result.missed.push(`${reads.perMB?.toFixed(1)} read calls per MB ${result.bytesLabel ?? ""} >= ${target}`);
  }
}

/** Applies the targets that compare a case with another of the same run (see `RelativeTarget`). */
export function checkRelative(results: CaseResult[]): void {
  for (const r of results) {
    if (r.skipped) continue;
    for (const t of r.targets?.relative ?? []) {
      const o = results.find((x) => x.name === t.case && !x.skipped);
      if (!o) {
        r.missed.push(`needs case ${t.case} in the same run`);
        continue;
      }
      const above = r.deltaship.rssMiB.median - o.deltaship.rssMiB.median;
      if (t.rssMiBAbove !== undefined && above > t.rssMiBAbove) {
        r.missed.push(`memory ${above.toFixed(0)} MiB above ${t.case} > ${t.rssMiBAbove} MiB`);
      }
      if (t.secondsPerByteRatio !== undefined) {
        if (!r.throughputMBs || !o.throughputMBs) r.missed.push(`throughput of ${r.name} or ${t.case} not measured`);
        else if (o.throughputMBs / r.throughputMBs > t.secondsPerByteRatio) {
          const ratio = (o.throughputMBs / r.throughputMBs).toFixed(2);
          r.missed.push(`time per byte ${ratio}x ${t.case}'s > ${t.secondsPerByteRatio}x`);
        }
      }
    }
  }
}

const f2 = (n: number) => n.toFixed(2);
const f0 = (n: number) => n.toFixed(0);

/** The results as a Markdown table. */
export function table(results: CaseResult[]): string {
  const rows = [
    "| case | deltaship median (min–max) s | peak MiB | CPU s | read calls (per MB) | throughput | floor s | × floor " +
    "| peer s | × peer | targets |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const r of results) {
    if (r.skipped) {
      rows.push(`| ${r.name} | skipped: ${r.skipped} | | | | | | | | | |`);
      continue;
    }
    const d = r.deltaship;
    rows.push(
      [
        r.name,
        `${f2(d.wall.median)} (${f2(d.wall.min)}–${f2(d.wall.max)})`,
        f0(d.rssMiB.median),
        f2(d.cpu.median),
        r.reads
          ? `${r.reads.data}${r.reads.perMB !== undefined ? ` (${r.reads.perMB.toFixed(1)})` : ""}, all ${r.reads.all}`
          : "",
        r.throughputMBs ? `${f0(r.throughputMBs)} MB/s ${r.bytesLabel}` : "",
        r.floor ? `${f2(r.floor.wall.median)} (${r.floor.label})` : "",
        r.floorRatio ? f2(r.floorRatio) : "",
        [
          r.peer ? `${f2(r.peer.wall.median)}, ${f0(r.peer.rssMiB.median)} MiB (${r.peer.label})` : "",
          r.reference
            ? `README: ${f2(r.reference.seconds)}${
              r.reference.mib ? `, ${f0(r.reference.mib)} MiB` : ""
            } (${r.reference.label})`
            : "",
        ].filter((x) => x).join("; "),
        [r.peerRatio ? f2(r.peerRatio) : "", r.referenceRatio ? `${f2(r.referenceRatio)} of README` : ""]
          .filter((x) => x).join("; "),
        r.targets ? (r.missed.length ? `MISSED: ${r.missed.join("; ")}` : "met") : "",
      ].join(" | ").replace(/^/, "| ").replace(/$/, " |"),
    );
    if (r.extra) {
      rows.push(
        `| ↳ ${r.name} | ${Object.entries(r.extra).map(([k, v]) => `${k}: ${v}`).join(", ")} | | | | | | | | | |`,
      );
    }
  }
  return rows.join("\n");
}

async function machine(): Promise<Record<string, string | number>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown";
  return {
    cpu: model,
    cores: navigator.hardwareConcurrency,
    shaNi: / sha_ni /.test(cpuinfo) ? "yes" : "no",
    deno: Deno.version.deno,
    os: `${Deno.build.os}/${Deno.build.arch}`,
  };
}

/** The machine's load averages (1, 5 and 15 minutes), as /proc/loadavg gives them ("unknown" elsewhere). */
async function loadAverage(): Promise<string> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  return text ? text.split(" ").slice(0, 3).join(", ") : "unknown";
}

async function ensureCorpus(env: BenchEnv): Promise<void> {
  try {
    await Deno.stat(`${env.corpus}/new/index.json`);
    return;
  } catch { /* build it */ }
  console.error(`building the real-world corpus in ${env.corpus} (needs npm and python3) ...`);
  const out = await new Deno.Command("bash", {
    args: [`${env.shared}/make-corpus.sh`, env.corpus],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("make-corpus.sh failed");
}

const HELP = `deno task bench [--runs N] [--warmup N] [--case NAME]... [--check] [--bin PATH] [--out DIR]

Runs the benchmark cases (default: all but smoke), each beside its floor and peer, and writes
bench/results.json and bench/report.md (or into --out DIR). --check exits 1 when a target is missed.
Corpora are built on first use into bench/.cache: corpus/ (../shared/bench/make-corpus.sh) and
far-corpus/ (../shared/bench/far/make-far-corpus.sh); DELTASHIP_SHARED_BENCH names another shared folder.
Delta cases also count read system calls in one more run under strace (data files and sockets, and all).

Cases:
`;

async function ensureFarCorpus(env: BenchEnv): Promise<void> {
  try {
    await Deno.stat(`${env.far}/new/index.json`);
    return;
  } catch { /* build it */ }
  console.error(`building the far corpus in ${env.far} (needs npm and python3) ...`);
  const out = await new Deno.Command("bash", {
    args: [`${env.shared}/far/make-far-corpus.sh`, env.far],
    env: { MKOCI: `${env.shared}/mkoci.py` },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("make-far-corpus.sh failed");
}

/** Runs the suite with command-line `args`; returns the exit status. */
export async function bench(args: string[]): Promise<number> {
  const opts = parse(args);
  if (opts.help) {
    console.log(HELP + CASES.map((c) => `  ${c.name.padEnd(24)} ${c.description}`).join("\n"));
    return 0;
  }
  const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const cache = `${root}/bench/.cache`;
  const env: BenchEnv = {
    root,
    cache,
    corpus: `${cache}/corpus`,
    far: `${cache}/far-corpus`,
    shared: Deno.env.get("DELTASHIP_SHARED_BENCH") ?? `${root}/../shared/bench`,
    // As the executable runs: with the V8 flags it is compiled with.
    deltaship: opts.bin
      ? [opts.bin]
      : [Deno.execPath(), "run", "--allow-all", "--quiet", `--v8-flags=${V8_FLAGS.join(",")}`, `${root}/main.ts`],
  };
  for (const c of opts.cases) if (!CASES.some((k) => k.name === c)) throw new Error(`no case ${c}`);
  const selected = opts.cases.length
    ? CASES.filter((c) => opts.cases.includes(c.name))
    : CASES.filter((c) => c.name !== "smoke");
  if (!have("time") && !(await Deno.stat("/usr/bin/time").catch(() => null))) {
    throw new Error("bench needs GNU time (/usr/bin/time; Debian package 'time')");
  }
  if (selected.some((c) => c.corpus)) await ensureCorpus(env);
  if (selected.some((c) => c.far)) await ensureFarCorpus(env);
  const loadBefore = await loadAverage();
  const results: CaseResult[] = [];
  for (const c of selected) {
    console.error(`case ${c.name}: ${c.description}`);
    results.push(await runCase(c, env, opts.runs, opts.warmup));
  }
  checkRelative(results);
  const text = table(results);
  console.log(text);
  const out = opts.out || `${root}/bench`;
  await Deno.mkdir(out, { recursive: true });
  const info: Record<string, string | number> = { ...(await machine()), loadBefore, loadAfter: await loadAverage() };
  await Deno.writeTextFile(
    `${out}/results.json`,
    JSON.stringify({ date: new Date().toISOString(), machine: info, runs: opts.runs, results }, null, 2) + "\n",
  );
  await Deno.writeTextFile(
    `${out}/report.md`,
    [
      "# deltaship benchmark report",
      "",
      `Run ${new Date().toISOString().slice(0, 10)} on ${info.cpu}, ${info.cores} cores (SHA-NI: ${info.shaNi}), ` +
      `Deno ${info.deno}, ${info.os}; ${opts.runs} runs per case after ${opts.warmup} warm-up. ` +
      "Times are wall-clock seconds, memory is peak RSS. Floors and peers were measured in the same run; " +
      "compare the ratios, not the absolute seconds. " +
      `Load average (1, 5, 15 min) before the run ${info.loadBefore}, after it ${info.loadAfter}.`,
      "",
      text,
      "",
    ].join("\n"),
  );
  const missed = results.filter((r) => r.missed.length);
  if (opts.check && missed.length) {
    console.error(`targets missed: ${missed.map((r) => r.name).join(", ")}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await bench(Deno.args));
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    Deno.exit(2);
  }
}
