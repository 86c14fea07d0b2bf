/**
 * Five processes at once on one repository (pull, rm, tag, gc, export, each in a
 * loop): every operation either succeeds or fails with an expected "not found"
 * (an image another loop just removed), nothing is left dangling, and fsck is
 * clean at the end. Guards the names lock (tag/rm/pull commits), the repository
 * lock (gc), and the temporary-directory protocol (every process sweeps tmp/
 * when it opens the repository). The code before the names lock failed it
 * within 30 s (tag "c" named a manifest that was not stored).
 *
 * Driven by counts, not by the clock: the loops run until every kind has
 * completed STRESS_OPS operations (default 6, at most 100), one of them at
 * least succeeding, so a slow machine takes longer and a fast one less (24 s
 * with the 2 cores loaded 4 times over). A wall bound of 5 minutes only ends a
 * run that does not get there (a lock held for ever, a machine far too slow):
 * a failure then only when not even 2 operations of each kind, one
 * succeeding, have completed, and it says so.
 */
import assert from "node:assert/strict";
import { type CliResult, deltashipProcess, tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";

const OPS = Math.max(1, Math.min(100, Math.trunc(Number(Deno.env.get("STRESS_OPS") ?? 6)) || 6));
/** Operations of each kind a run cut short by the wall bound must still have completed, and succeeded. */
const MINIMUM = { completed: 2, ok: 1 };
const WALL_MS = 5 * 60_000;
/** Failures a loop may meet because another loop removed what it names. */
const EXPECTED = /no image tagged|is not in the repository|no tag "/;

type Kind = "pull" | "rm" | "tag" | "gc" | "export";
/** Operations of one kind that succeeded, and that met an expected "not found". */
type Count = { ok: number; expected: number };

Deno.test({
  name: `stress: pull, rm, tag, gc and export in parallel until each has completed ${OPS}; fsck clean`,
  async fn() {
    await using tmp = await tempDir();
    const repo = `${tmp.path}/repo`;
    const layout = `${tmp.path}/l`;
    const names = ["a", "b", "c"];
    for (const n of names) {
      await writeImage(layout, { tag: n, layers: [{ tar: sampleTar(`base`) }, { tar: sampleTar(`top-${n}`) }] });
    }
    const first = await deltashipProcess(["--repo", repo, "pull", `oci:${layout}:a`, "a"]);
    assert.equal(first.code, 0, first.stderr);

    const pick = () => names[Math.floor(Math.random() * names.length)];
    const kinds: Record<Kind, () => string[]> = {
      pull: () => {
        const n = pick();
        return ["pull", `oci:${layout}:${n}`, n];
      },
      rm: () => ["rm", pick()],
      tag: () => ["tag", pick(), `copy-${pick()}`],
      gc: () => ["gc"],
      export: () => ["export", pick(), `oci-archive:${tmp.path}/out-${crypto.randomUUID()}.tar`],
    };
    const order = Object.keys(kinds) as Kind[];
    const counts = Object.fromEntries(order.map((k) => [k, { ok: 0, expected: 0 }])) as Record<Kind, Count>;
    const unexpected: string[] = [];
    const reached = (least: { completed: number; ok: number }) =>
      Object.values(counts).every((c) => c.ok + c.expected >= least.completed && c.ok >= least.ok);
    const started = Date.now();
    const stop = () => reached({ completed: OPS, ok: 1 }) || unexpected.length > 0 || Date.now() - started > WALL_MS;
    const loop = async (kind: Kind) => {
      for (let i = 1; !stop(); i++) {
        const argv = ["--repo", repo, ...kinds[kind]()];
        const r: CliResult = await deltashipProcess(argv);
        if (r.code === 0) counts[kind].ok++;
        else if (r.code === 1 && EXPECTED.test(r.stderr) && r.stderr.trim().split("\n").length === 1) {
          counts[kind].expected++;
        } else unexpected.push(`${kind} #${i} (${argv.slice(2).join(" ")}): exit ${r.code}: ${r.stderr.trim()}`);
      }
    };
    await Promise.all(order.map(loop));
    const seconds = Math.round((Date.now() - started) / 1000);
    assert.deepEqual(unexpected, [], `${unexpected.length} unexpected failures`);
    if (!reached({ completed: OPS, ok: 1 })) {
      assert.ok(
        reached(MINIMUM),
        `after ${seconds} s (the wall bound), not even ${MINIMUM.completed} operations of each kind, ` +
          `${MINIMUM.ok} succeeding, had completed (a lock held for ever, or a machine far too slow): ` +
          JSON.stringify(counts),
      );
      console.log(`stress: cut short by the wall bound after ${seconds} s, short of ${OPS} operations of each kind`);
    }
    const fsck = await deltashipProcess(["--repo", repo, "fsck"]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    const gc = await deltashipProcess(["--repo", repo, "gc"]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], [], "tmp/ not empty after the last process");
    console.log(
      `stress: ${seconds} s, operations that succeeded / met an expected "not found": ${JSON.stringify(counts)}`,
    );
  },
});
