/**
 * `deltaship layer DIFF_ID`: write a stored layer's exact uncompressed tar to stdout.
 *
 * @module
 */
import { DigestMismatchError, UsageError } from "../../errors.ts";
import { layerTarChunks } from "../../repo/layer_reader.ts";
import { asDiffId, Hasher, parseDigest } from "../../util/digest.ts";
import { defineCommand } from "../command.ts";

export const layerCommand = defineCommand({
  name: "layer",
  summary: "Write a layer's uncompressed tar to stdout",
  usage: "DIFF_ID",
  description: `
Rebuilds the layer with this diff_id (sha256:<hex>) from the repository and
writes its uncompressed tar, byte for byte, to stdout. The tar is hashed as it
is written: if the repository is damaged and it does not hash to DIFF_ID, the
command fails naming the layer (what was written is not the layer).`,
  examples: [
    "deltaship layer sha256:<diff_id> > layer.tar  # the exact uncompressed layer tar",
  ],
  operands: ["word"],
  options: [],
  args: { min: 1, max: 1 },
  async run(ctx, [arg]) {
    const { algorithm } = parseDigest(arg, "DIFF_ID");
    const diffId = asDiffId(arg);
    if (ctx.io.stdout.isTerminal) throw new UsageError("layer: stdout is a terminal; redirect it to a file or a pipe");
    const repo = await ctx.repo();
    using _lock = await repo.lock(false);
    await repo.layerInfo(diffId);
    const hasher = new Hasher(algorithm);
    for await (const chunk of layerTarChunks(repo, diffId)) {
      hasher.update(chunk);
      await ctx.io.stdout.write(chunk);
    }
    const actual = hasher.digest();
    if (actual !== diffId) {
      throw new DigestMismatchError(
        `layer ${diffId} rebuilt from the repository is damaged; what was written is not the layer (run deltaship fsck)`,
        diffId,
        actual,
      );
    }
  },
});
