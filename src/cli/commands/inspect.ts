/**
 * `deltaship inspect IMAGE`: show an image, or its raw manifest or config.
 *
 * @module
 */
import { UnsupportedError, UsageError } from "../../errors.ts";
import { isDeltaManifest, parseDeltaArtifact } from "../../delta/artifact.ts";
import { parseImageConfig, parseManifest } from "../../oci/documents.ts";
import { hostPlatform } from "../../oci/platform.ts";
import { TARDIFF_MEDIA_TYPE } from "../../tardiff/format.ts";
import { openSource } from "../../transport/reference.ts";
import { resolveManifest } from "../../transport/source.ts";
import { defineCommand } from "../command.ts";
import { SOURCE_OPTIONS, sourceOpenOptions } from "../transport_options.ts";

export const inspectCommand = defineCommand({
  name: "inspect",
  summary: "Show an image, or its manifest or config bytes",
  usage: "IMAGE | DELTA",
  description: `
IMAGE is a tag or @sha256:<hex> (a manifest digest, or a unique prefix of one).
With --manifest or --config, writes that document's raw bytes exactly as stored
(on a terminal, with control characters escaped);
otherwise a JSON summary: digests, tags, platform and layers.

DELTA is an oci-delta artifact as oci:DIR[:REF], oci-archive:FILE[:REF] or
docker://...: a JSON summary of what it ships (target, source, layers) and
whether it embeds a signature (check it with pull or apply-delta --verify-key);
--manifest writes the delta manifest's bytes.`,
  examples: [
    "deltaship inspect app  # JSON summary: digests, tags, platform, layers",
    "deltaship inspect app --manifest  # the manifest bytes exactly as stored",
    "deltaship inspect @sha256:4f3c --config",
    'deltaship inspect oci-archive:app-v1-v2.delta.tar  # a delta: target, source, shipped layers, "signed"',
  ],
  operands: ["source"],
  options: [
    { name: "manifest", type: "boolean", help: "write the raw manifest" },
    { name: "config", type: "boolean", help: "write the raw config" },
    ...SOURCE_OPTIONS,
  ],
  args: { min: 1, max: 1 },
  async run(ctx, args, values) {
    if (values.manifest && values.config) throw new UsageError("inspect: give --manifest or --config, not both");
    if (/^(oci|oci-archive):|^docker:\/\//.test(args[0])) {
      const source = await openSource(args[0], sourceOpenOptions(values, ctx.io.env));
      try {
        const resolved = await resolveManifest(source, hostPlatform());
        if (!isDeltaManifest(resolved.manifest)) {
          throw new UnsupportedError(
            `${source.description} (${resolved.digest}) is not an oci-delta artifact; to inspect an image, pull it first`,
          );
        }
        if (values.config) throw new UsageError("inspect: a delta has no config of its own; give --manifest");
        if (values.manifest) {
          if (ctx.io.stdout.isTerminal) return void await ctx.print(new TextDecoder().decode(resolved.bytes));
          return void await ctx.io.stdout.write(resolved.bytes);
        }
        const delta = parseDeltaArtifact(resolved.manifest, resolved.digest, `delta ${source.description}`);
        return void await ctx.printJson({
          delta: delta.digest,
          target: delta.target,
          source: delta.source,
          sourceConfig: delta.sourceConfig,
          layers: [...delta.layers].map(([to, d]) => ({
            to,
            shipped: d.mediaType === TARDIFF_MEDIA_TYPE ? "tar-diff" : "original",
            mediaType: d.mediaType,
            digest: d.digest,
            size: d.size,
          })),
          signed: delta.signatures.length > 0,
          signatures: delta.signatures.map((d) => d.digest),
        });
      } finally {
        await source.close();
      }
    }
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
