/**
 * `deltaship apply-delta DELTA DEST`: rebuild an image from an oci-delta and the
 * repository's source image, and write it to an OCI layout or archive.
 *
 * @module
 */
import { applyDeltaToLayout } from "../../ops/apply_delta.ts";
import { hostPlatform, parsePlatform } from "../../oci/platform.ts";
import { checkOciTag } from "../../oci/tag_name.ts";
import { openSource, parseDestination } from "../../transport/reference.ts";
import { defineCommand } from "../command.ts";
import { readVerifyKey, VERIFY_KEY_OPTION } from "../signature_options.ts";
import { COMPRESSION_OPTIONS, compressionOptions } from "../compression_options.ts";
import { formatBytes, plural } from "../format.ts";
import { memoryPlan } from "../../ops/memory_plan.ts";
import {
  MAX_LAYER_SIZE_OPTION,
  maxLayerSize,
  MEMORY_LIMIT_OPTION,
  memoryLimit,
  SOURCE_OPTIONS,
  sourceOpenOptions,
} from "../transport_options.ts";

export const applyDeltaCommand = defineCommand({
  name: "apply-delta",
  summary: "Apply an oci-delta and write the rebuilt image to a layout or archive",
  usage: "DELTA DEST",
  description: `
DELTA is oci:DIR[:REF], oci-archive:FILE[:REF] or docker://... naming an
oci-delta artifact, or docker://... naming an image a delta is published for
(found among its referrers, as pull finds it; one must start from an image the
repository holds); DEST is oci:DIR[:TAG] or oci-archive:FILE[:TAG]. The delta
is applied against its source image, which must be in the repository (pull it
first): changed layers are rebuilt from their tar-diffs and checked against
their diff_ids. The rebuilt image is then written to DEST as export writes
images: layers compressed with --compression (gzip by default), a new manifest
naming them, the config byte for byte (same image ID).

The rebuilt image also stays in the repository (tagged --name, else the
delta's tag) unless --no-keep is given; nothing is written to DEST unless
everything succeeded.

With --verify-key KEY.pub the delta must embed a cosign signature of its
target that verifies with that ECDSA P-256 public key (PEM), checked before
anything is fetched or stored.`,
  examples: [
    "deltaship apply-delta oci:./app-update oci-archive:app-v2.tar:v2",
    "deltaship apply-delta docker://registry.example.com/app:v1-to-v2 oci:/var/lib/images:app --compression zstd",
  ],
  operands: ["source", "destination"],
  options: [
    ...COMPRESSION_OPTIONS,
    { name: "name", type: "string", arg: "NAME", help: "tag for the rebuilt image in the repository" },
    { name: "no-keep", type: "boolean", help: "do not keep the rebuilt image in the repository" },
    { name: "platform", type: "string", arg: "OS/ARCH[/VARIANT]", help: "platform to pick if DELTA is an index" },
    VERIFY_KEY_OPTION,
    MAX_LAYER_SIZE_OPTION,
    MEMORY_LIMIT_OPTION,
    ...SOURCE_OPTIONS,
  ],
  args: { min: 2, max: 2 },
  async run(ctx, [deltaArg, destArg], values) {
    const dest = parseDestination(destArg);
    const { compression, level } = compressionOptions(values);
    const name = values.name;
    if (name !== undefined) checkOciTag(name);
    const openOptions = sourceOpenOptions(values, ctx.io.env);
    const layerLimit = maxLayerSize(values, ctx.io.env);
    const memory = memoryPlan(memoryLimit(values, ctx.io.env), ctx.jobs);
    const platform = values.platform ? parsePlatform(values.platform) : hostPlatform();
    const verifyKey = await readVerifyKey(values["verify-key"]);
    const repo = await ctx.repo({ write: true, create: true });
    using _lock = await repo.lock(false);
    const source = await openSource(deltaArg, openOptions);
    try {
      const keep = values["no-keep"] !== true;
      const result = await applyDeltaToLayout(repo, source, dest, {
        platform,
        jobs: memory.jobs,
        sourceMemory: memory.sourceMemory,
        memoryLimit: memory.limit,
        name: name ?? source.tag,
        keep,
        maxLayerSize: layerLimit,
        compression,
        level,
        progress: ctx.progress(),
        cleanups: ctx.cleanups,
        verifyKey,
      });
      ctx.endProgress();
      const { pulled, exported } = result;
      if (ctx.json) {
        return void await ctx.printJson({
          destination: exported.destination,
          tag: exported.tag,
          manifest: exported.manifest,
          config: exported.config,
          targetManifest: pulled.manifest,
          kept: result.kept,
          keptAs: result.kept ? pulled.name : undefined,
          bytesFetched: pulled.bytesFetched,
          delta: pulled.delta,
          layers: exported.layers,
        });
      }
      const rebuilt = pulled.alreadyPresent
        ? "already in the repository"
        : `${plural(pulled.delta?.layersRebuilt ?? 0, "layer")} rebuilt, ${
          formatBytes(pulled.bytesFetched)
        } of delta read`;
      await ctx.print(
        `Applied ${source.description} (${rebuilt}) and wrote ${exported.destination}${
          exported.tag ? `:${exported.tag}` : ""
        } (${compression}, ${formatBytes(exported.size)})`,
      );
      await ctx.print(`manifest ${exported.manifest}\nconfig   ${exported.config}`);
      await ctx.print(
        result.kept
          ? `target ${pulled.manifest} kept in the repository${pulled.name ? ` as ${pulled.name}` : ""}`
          : `target ${pulled.manifest} not kept (--no-keep)`,
      );
    } finally {
      await source.close();
    }
  },
});
