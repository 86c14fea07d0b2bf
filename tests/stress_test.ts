/**
 * Five processes at once on one repository (pull, rm, tag, gc, export, each in a
 * loop) for a bounded time: every operation either succeeds or fails with an
 * expected "not found" (an image another loop just removed), nothing is left
 * dangling, and fsck is clean at the end. Guards the names lock (tag/rm/pull
 * commits), the repository lock (gc), and the temporary-directory protocol
 * (every process sweeps tmp/ when it opens the repository).
 *
 * STRESS_SECONDS sets the duration (default 20, at most 60). Today's code before the names lock failed it within 30 s (tag "c" names a manifest that is not stored).
 */
import assert from "node:assert/strict";
import { type CliResult, deltashipProcess, tempDir } from "./helpers/cli.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";

const SECONDS = Math.min(60, Number(Deno.env.get("STRESS_SECONDS") ?? 20));
/** Failures a loop may meet because another loop removed what it names. */
const EXPECTED = /no image tagged|is not in the repository|no tag "/;

Deno.test({
  name: `stress: pull, rm, tag, gc and export in parallel for ${SECONDS} s; fsck clean`,
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

    const deadline = Date.now() + SECONDS * 1000;
    const counts = { ok: 0, expected: 0 };
    const unexpected: string[] = [];
    const pick = () => names[Math.floor(Math.random() * names.length)];
    const loop = async (what: string, args: () => string[]) => {
      let i = 0;
      while (Date.now() < deadline) {
        const argv = ["--repo", repo, ...args()];
        const r: CliResult = await deltashipProcess(argv);
        i++;
        if (r.code === 0) counts.ok++;
        else if (r.code === 1 && EXPECTED.test(r.stderr) && r.stderr.trim().split("\n").length === 1) {
          counts.expected++;
        } else unexpected.push(`${what} #${i} (${argv.slice(2).join(" ")}): exit ${r.code}: ${r.stderr.trim()}`);
      }
    };
    await Promise.all([
      loop("pull", () => {
        const n = pick();
        return ["pull", `oci:${layout}:${n}`, n];
      }),
      loop("rm", () => ["rm", pick()]),
      loop("tag", () => ["tag", pick(), `copy-${pick()}`]),
      loop("gc", () => ["gc"]),
      loop("export", () => ["export", pick(), `oci-archive:${tmp.path}/out-${crypto.randomUUID()}.tar`]),
    ]);
    assert.deepEqual(unexpected, [], `${unexpected.length} unexpected failures`);
    assert.ok(counts.ok > 20, `too few operations succeeded: ${JSON.stringify(counts)}`);
    const fsck = await deltashipProcess(["--repo", repo, "fsck"]);
    assert.equal(fsck.code, 0, fsck.stdout + fsck.stderr);
    const gc = await deltashipProcess(["--repo", repo, "gc"]);
    assert.equal(gc.code, 0, gc.stderr);
    assert.deepEqual([...Deno.readDirSync(`${repo}/tmp`)], [], "tmp/ not empty after the last process");
    console.log(`stress: ${counts.ok} operations succeeded, ${counts.expected} met an expected "not found"`);
  },
});
