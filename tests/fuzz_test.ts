/**
 * Seeded, bounded fuzzing of the parsers: the tar splitter, the oci-archive
 * indexer, the layer-record reader, the tar-diff reader, the JSON document
 * readers (manifests, indexes, configs), the referrers-listing reader and the
 * zstd:chunked TOC reader. Every case must succeed or fail with a
 * DeltashipError, within a time bound, and the run must not grow memory.
 * `FUZZ_SEED` and `FUZZ_CASES` (cases per target) override the defaults,
 * `FUZZ_TARGET` runs one target only; a failure names the seed, target and case to replay.
 */
import assert from "node:assert/strict";
import { tempDir } from "./helpers/cli.ts";
import { Prober, ProbeTimeout } from "./helpers/probe.ts";

const DEFAULT_SEED = 0x5eed_2026;
const seed = Number(Deno.env.get("FUZZ_SEED") ?? DEFAULT_SEED) >>> 0;
const perTarget = Number(Deno.env.get("FUZZ_CASES") ?? 0);
const only = Deno.env.get("FUZZ_TARGET");

/** Cases per target by default: the cheap in-memory parsers get more. */
const CASES: Record<string, number> = {
  splitter: 1500,
  archive: 600,
  record: 700,
  tardiff: 1200,
  listing: 3000,
  document: 1500,
  toc: 800,
};
/** Longest a single case may take (generous: the machine is shared). */
const CASE_MS = 2000;
/**
 * Most the fuzz worker's memory (JavaScript heap plus external buffers) may grow
 * over the run. Its own, not the process's rss: `deno test --parallel` runs every
 * test module in one process, so rss moves with whatever else is running.
 */
const MAX_GROWTH = 200 << 20;

/** Builds the targets' valid inputs in the worker. */
async function setUp(prober: Prober, dir: string): Promise<number> {
  const setup = await prober.run({ kind: "fuzz-setup", dir }, 60_000);
  assert.ok(setup.ok, `fuzz setup failed: ${!setup.ok && setup.stack}`);
  return setup.memory;
}

Deno.test(`fuzz: parsers succeed or fail typed, in bounded time and memory (seed ${seed})`, async () => {
  console.log(`fuzz seed ${seed} (replay with FUZZ_SEED=${seed})`);
  await using tmp = await tempDir("deltaship-fuzz-");
  const prober = new Prober();
  try {
    const baseline = await setUp(prober, tmp.path);
    let peak = baseline;
    const rssBefore = Deno.memoryUsage().rss;
    const started = performance.now();
    for (const [target, defaultCases] of Object.entries(CASES)) {
      if (only && target !== only) continue;
      const cases = perTarget > 0 ? perTarget : defaultCases;
      const outcomes = new Map<string, number>();
      const t0 = performance.now();
      let slowest = 0;
      for (let index = 0; index < cases; index++) {
        const where = `seed ${seed}, target ${target}, case ${index}`;
        const c0 = performance.now();
        let r;
        try {
          r = await prober.run({ kind: "fuzz", target, seed, index }, CASE_MS);
        } catch (e) {
          if (!(e instanceof ProbeTimeout)) throw e;
          // Once more in a fresh worker, so that a stall of this shared machine is not taken for a loop.
          console.log(`  ${where}: no result within ${CASE_MS} ms; retrying in a fresh worker`);
          await setUp(prober, tmp.path);
          try {
            r = await prober.run({ kind: "fuzz", target, seed, index }, CASE_MS);
          } catch (e) {
            if (e instanceof ProbeTimeout) assert.fail(`${where}: no result within ${CASE_MS} ms, twice (a loop?)`);
            throw e;
          }
        }
        slowest = Math.max(slowest, performance.now() - c0);
        if (!r.ok && !r.typed) assert.fail(`${where}: untyped ${r.name}: ${r.message}\n${r.stack}`);
        const outcome = r.ok ? "ok" : r.name;
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        peak = Math.max(peak, r.memory);
      }
      const ms = Math.round(performance.now() - t0);
      const counts = [...outcomes].map(([k, v]) => `${k} ${v}`).join(", ");
      const rss = (Deno.memoryUsage().rss / 2 ** 20).toFixed(0);
      console.log(
        `  ${target}: ${cases} cases in ${ms} ms (slowest ${slowest.toFixed(0)} ms, rss ${rss} MiB): ${counts}`,
      );
    }
    const growth = peak - baseline;
    const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
    console.log(
      `  total ${Math.round(performance.now() - started)} ms; worker memory peaked ${mib(growth)} above its ` +
        `baseline; process rss ${mib(Deno.memoryUsage().rss - rssBefore)} up`,
    );
    assert.ok(growth < MAX_GROWTH, `the fuzz worker's memory grew by ${mib(growth)} over the run (seed ${seed})`);
  } finally {
    prober.close();
  }
});
