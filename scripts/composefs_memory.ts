/**
 * What a composefs image of many entries costs in memory: builds a one-layer
 * image of DIRS directories × FILES empty files and the dumpfile of the same
 * tree (tests/helpers/many_entries.ts, cached), then runs, each in a fresh
 * process under `/usr/bin/time -f %M`, the commands that build such an image:
 * `pull` (which stores it), `compute-id`, `dump`, `fsck` and
 * `create-image --from-dump`, and prints each one's peak resident memory, CPU
 * time (user + system: the wall time of a shared machine says little) and wall
 * time. Extra arguments go to `pull` (e.g. `--memory-limit 64MiB -j1`);
 * `DELTASHIP_MAIN` names another checkout's `main.ts` to measure (for A/B runs).
 *
 *     deno run --allow-all scripts/composefs_memory.ts DIRS FILES [PULL OPTIONS...]
 *
 * docs/design.md ("What a million entries cost") has the figures.
 *
 * @module
 */
import { writeManyEntriesDumpfile, writeManyEntriesImage } from "../tests/helpers/many_entries.ts";

const [dirs, files] = Deno.args.slice(0, 2).map(Number);
if (!(dirs > 0 && files >= 0)) throw new Error("usage: composefs_memory.ts DIRS FILES [PULL OPTIONS...]");
const pullOptions = Deno.args.slice(2);
const main = Deno.env.get("DELTASHIP_MAIN") ?? new URL("../main.ts", import.meta.url).pathname;
const scratch = await Deno.makeTempDir({ prefix: "deltaship-composefs-memory-" });

/** Runs deltaship with `args` under /usr/bin/time: peak RSS (KiB), CPU and wall seconds, exit code. */
async function measure(
  args: string[],
): Promise<{ kib: number; cpu: number; seconds: number; code: number; err: string }> {
  const start = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: [
      "-f",
      "%M %U %S",
      "deno",
      "run",
      "-A",
      "--v8-flags=--max-semi-space-size=1",
      main,
      "--repo",
      `${scratch}/repo`,
      "-q",
      ...args,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr).trim().split("\n");
  const [kib, user, system] = err.at(-1)!.split(" ").map(Number);
  return {
    kib,
    cpu: user + system,
    seconds: (performance.now() - start) / 1000,
    code: out.code,
    err: err.slice(0, -1).join(" "),
  };
}

try {
  const shape = { dirs, files };
  await writeManyEntriesImage(`${scratch}/layout`, "many", shape);
  await writeManyEntriesDumpfile(`${scratch}/many.dump`, shape);
  const runs: [string, string[]][] = [
    ["pull", ["pull", ...pullOptions, `oci:${scratch}/layout:many`, "many"]],
    ["compute-id", ["compute-id", "many"]],
    ["dump", ["dump", "many"]],
    ["fsck", ["fsck"]],
    ["create-image --from-dump", ["create-image", "--from-dump", `${scratch}/many.dump`, `${scratch}/out.img`]],
  ];
  console.log(`${dirs} × ${files} files: ${dirs * (files + 1)} entries`);
  for (const [name, args] of runs) {
    const r = await measure(args);
    const status = r.code === 0 ? "" : ` (exit ${r.code}: ${r.err})`;
    console.log(
      `${name.padEnd(26)} ${(r.kib / 1024).toFixed(0).padStart(6)} MiB ${r.cpu.toFixed(1).padStart(6)} s CPU ` +
        `${r.seconds.toFixed(1).padStart(6)} s wall${status}`,
    );
  }
} finally {
  await Deno.remove(scratch, { recursive: true });
}
