/**
 * `deltaship layer DIFF_ID`: write a stored layer's exact uncompressed tar to stdout.
 *
 * @module
 */
import { UsageError } from "../../errors.ts";
import { layerTarChunks } from "../../repo/layer_reader.ts";
import { parseDigest } from "../../util/digest.ts";
import type { Command } from "../command.ts";

export const layerCommand: Command = {
  name: "layer",
  summary: "Write a layer's uncompressed tar to stdout",
  usage: "DIFF_ID",
  description: `
Rebuilds the layer with this diff_id (sha256:<hex>) from the repository and
writes its uncompressed tar, byte for byte, to stdout.`,
  options: [],
  args: { min: 1, max: 1 },
  async run(ctx, [diffId]) {
    parseDigest(diffId, "DIFF_ID");
    if (ctx.io.stdout.isTerminal) throw new UsageError("layer: stdout is a terminal; redirect it to a file or a pipe");
    const repo = await ctx.repo();
    using _lock = await repo.lock(false);
    await repo.layerInfo(diffId);
    for await (const chunk of layerTarChunks(repo, diffId)) await ctx.io.stdout.write(chunk);
  },
};
