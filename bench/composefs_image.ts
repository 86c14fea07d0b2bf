/**
 * Making an image's composefs image, for the bench case `composefs-image`: opens
 * the repository, builds the composefs image of IMAGE from its stored layers
 * once, in this fresh process (the merged tree from the layer records, the
 * small files read, the EROFS image and its fs-verity digest), checks that its
 * digest is the one the pull stored, and writes the build time to OUT as JSON.
 *
 *   deno run --allow-all bench/composefs_image.ts REPO IMAGE OUT
 *
 * @module
 */
import { composefsImage } from "../src/repo/composefs_image.ts";
import { Repository } from "../src/repo/repository.ts";

const [root, name, out] = Deno.args;
if (!out) throw new Error("usage: composefs_image.ts REPO IMAGE OUT");
const repo = await Repository.open(root, { create: false });
try {
  const record = await repo.resolveImage(name);
  const start = performance.now();
  const image = await composefsImage(repo, record.layers.map((l) => l.diffId));
  const ms = performance.now() - start;
  if (record.composefs !== undefined && record.composefs !== image.id) {
    throw new Error(`composefs image ${image.id} is not the one the pull stored (${record.composefs})`);
  }
  await Deno.writeTextFile(out, JSON.stringify({ ms, bytes: image.bytes.length, id: image.id }) + "\n");
} finally {
  await repo.close();
}
