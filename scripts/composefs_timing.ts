/**
 * How long making a composefs image takes: pulls an image (default: the bench
 * corpus new image, `bench/.cache/corpus/new`) into a scratch repository, then
 * builds its composefs image from the stored layers a few times and prints each
 * time (the merged rootfs from the layer records, the composefs tree with the
 * small files read, the EROFS image and its fs-verity digest), and the pull's own
 * time, which includes making and storing the image once.
 *
 *     deno run --allow-all scripts/composefs_timing.ts [OCI_LAYOUT TAG] [RUNS]
 *
 * The bench case `composefs-image` measures one build in a fresh process
 * (`bench/composefs_image.ts`); this script shows the warm builds beside it.
 *
 * @module
 */
import type { CliIO } from "../src/cli/context.ts";
import { main } from "../src/cli/main.ts";
import { composefsImage } from "../src/repo/composefs_image.ts";
import { Repository } from "../src/repo/repository.ts";

const layout = Deno.args[0] ?? new URL("../bench/.cache/corpus/new", import.meta.url).pathname;
const tag = Deno.args[1] ?? "new";
const runs = Number(Deno.args[2] ?? 5);
const scratch = await Deno.makeTempDir({ prefix: "deltaship-composefs-timing-" });
const quiet = { isTerminal: false, write: () => Promise.resolve() };
try {
  const t0 = performance.now();
  const io: CliIO = { stdout: quiet, stderr: quiet, env: {} };
  const code = await main(["--repo", `${scratch}/repo`, "-q", "pull", `oci:${layout}:${tag}`, "image"], io);
  if (code !== 0) throw new Error(`pull of oci:${layout}:${tag} failed (${code})`);
  console.log(`pull (with the composefs image): ${(performance.now() - t0).toFixed(0)} ms`);
  const repo = await Repository.open(`${scratch}/repo`, { create: false });
  const record = await repo.resolveImage("image");
  const diffIds = record.layers.map((l) => l.diffId);
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const image = await composefsImage(repo, diffIds);
    console.log(
      `composefs image: ${(performance.now() - start).toFixed(0)} ms (${image.bytes.length} bytes, id ${image.id})`,
    );
  }
  await repo.close();
} finally {
  await Deno.remove(scratch, { recursive: true });
}
console.log(`load average: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
