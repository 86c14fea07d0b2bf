/**
 * `deltaship inspect IMAGE`: show an image, or its raw manifest or config.
 *
 * @module
 */
import { UsageError } from "../../errors.ts";
import { parseImageConfig, parseManifest } from "../../oci/documents.ts";
import { defineCommand } from "../command.ts";

export const inspectCommand = defineCommand({
  name: "inspect",
  summary: "Show an image, or its manifest or config bytes",
  usage: "IMAGE",
  description: `
IMAGE is a tag or @sha256:<hex> (a manifest digest, or a unique prefix of one).
With --manifest or --config, writes that document's raw bytes exactly as stored
(on a terminal, with control characters escaped);
otherwise a JSON summary: digests, tags, platform and layers.`,
  options: [
    { name: "manifest", type: "boolean", help: "write the raw manifest" },
    { name: "config", type: "boolean", help: "write the raw config" },
  ],
  args: { min: 1, max: 1 },
  async run(ctx, args, values) {
    if (values.manifest && values.config) throw new UsageError("inspect: give --manifest or --config, not both");
    const repo = await ctx.repo();
    using _lock = await repo.lock(false);
    const image = await repo.resolveImage(args[0]);
    if (values.manifest || values.config) {
      const bytes = await repo.readBlob(values.manifest ? image.manifest : image.config);
      // Exact bytes for a pipe or file; on a terminal, a hostile document must not drive it.
      if (ctx.io.stdout.isTerminal) return void await ctx.print(new TextDecoder().decode(bytes));
      return void await ctx.io.stdout.write(bytes);
    }
    const manifest = parseManifest(await repo.readBlob(image.manifest), `manifest ${image.manifest}`);
    const config = parseImageConfig(await repo.readBlob(image.config), `config ${image.config}`);
    const tags = (await repo.tags.list()).filter((t) => t.manifest === image.manifest).map((t) => t.name);
    await ctx.printJson({
      manifest: image.manifest,
      config: image.config,
      mediaType: image.mediaType,
      tags,
      platform: { os: config.os, architecture: config.architecture },
      created: image.created,
      size: image.layers.reduce((a, l) => a + l.tarSize, 0),
      layers: manifest.layers.map((l, i) => ({
        mediaType: l.mediaType,
        digest: l.digest,
        size: l.size,
        diffId: image.layers[i].diffId,
        tarSize: image.layers[i].tarSize,
      })),
    });
  },
});
