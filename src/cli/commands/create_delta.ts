/**
 * `deltaship create-delta OLD NEW OUT`: make an oci-delta artifact that turns
 * image OLD into image NEW.
 *
 * @module
 */
import { UsageError } from "../../errors.ts";
import { hostPlatform, parsePlatform } from "../../oci/platform.ts";
import { createDelta, type CreateDeltaResult } from "../../ops/create_delta.ts";
import { parseDestination, parseReference } from "../../transport/reference.ts";
import { DEFAULT_TARDIFF_LEVEL } from "../../tardiff/encode.ts";
import { DEFAULT_IGNORED_PREFIXES } from "../../tardiff/source_catalog.ts";
import { defineCommand } from "../command.ts";
import { formatBytes, plural, shortDigest, table } from "../format.ts";
import { MAX_LAYER_SIZE_OPTION, maxLayerSize, SOURCE_OPTIONS, sourceOpenOptions } from "../transport_options.ts";

function level(v: string | undefined): number {
  if (v === undefined) return DEFAULT_TARDIFF_LEVEL;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 19) {
    throw new UsageError(`--zstd-level must be an integer from 1 to 19, got ${JSON.stringify(v)}`);
  }
  return n;
}

function statsText(r: CreateDeltaResult): string {
  const s = r.stats;
  const rows = r.layers.map((l) => [
    String(l.index + 1),
    shortDigest(l.diffId),
    l.shipped,
    formatBytes(l.originalSize),
    l.tarDiffSize === undefined ? "-" : formatBytes(l.tarDiffSize),
    l.shipped === "reused" ? "-" : formatBytes(l.size),
  ]);
  return [
    `old image: ${plural(s.oldLayers, "layer")}; new image: ${plural(s.newLayers, "layer")}`,
    `layers reused: ${s.layersReused}; layers diffed: ${s.layersDiffed} (${
      s.layersDiffed - s.layersOriginal
    } as tar-diff, ${s.layersOriginal} as original blob)`,
    `tar-diff: ${formatBytes(s.tarDiffBytes)} (${s.tarDiffBytes} bytes); changed layers shipped: ${
      formatBytes(s.layerBytes)
    } vs original ${formatBytes(s.originalBytes)} (${s.originalBytes} bytes)`,
    `saved: ${formatBytes(s.savedBytes)} (${s.savedBytes} bytes, ${s.savedPercent}%)`,
    `delta: ${formatBytes(s.deltaBytes)} in all; new image layers: ${formatBytes(s.newImageBytes)}`,
    "",
    table(["LAYER", "DIFF_ID", "SHIPPED", "ORIGINAL", "TAR-DIFF", "DELTA"], rows),
  ].join("\n");
}

export const createDeltaCommand = defineCommand({
  name: "create-delta",
  summary: "Create an oci-delta artifact from an old image to a new one",
  usage: "OLD NEW OUT",
  description: `
OLD and NEW are oci:DIR[:REF], oci-archive:FILE[:REF], docker://REFERENCE, or an
image already in the repository: repo:NAME or repo:@sha256:<hex>. Images given
by transport are pulled into the repository first (untagged; layers it already
holds are not fetched again): the repository is where create-delta reads the old
image's merged filesystem and the new image's layer tars from.

OUT is oci:DIR[:TAG] or oci-archive:FILE[:TAG] (an argument without a prefix is
an oci-archive file). A new directory or archive appears complete or not at all;
an existing layout gets the delta added to its index.

Layers of NEW whose diff_id OLD has are reused (the client already holds them).
Every other layer is encoded as a tar-diff against OLD's merged root filesystem
(files under --ignore-source-prefix are not used as sources) and shipped as that
tar-diff, or as its original compressed blob when that is no larger. For a NEW
given as repo:, whose compressed blobs the repository does not keep, changed
layers always ship as tar-diffs. NEW's manifest and config are embedded byte for
byte, so applying the delta yields exactly NEW.

Layers are encoded in parallel, --jobs at a time. Memory per job is bounded by
the largest pair of files diffed, not by the layer size: about 6 times the
larger file for sources up to 32 MiB (full suffix array), about 4 times above
(every 4th suffix sorted); files over 512 MiB are sent whole.`,
  options: [
    { name: "stats", short: "s", type: "boolean", help: "show layer counts, sizes and bytes saved" },
    {
      name: "ignore-source-prefix",
      type: "string",
      multiple: true,
      arg: "P",
      help: `do not use source files under path prefix P (repeatable; default ${
        DEFAULT_IGNORED_PREFIXES.join(", ")
      }; "" uses every file)`,
    },
    {
      name: "zstd-level",
      type: "string",
      arg: "N",
      help: `zstd level of the tar-diffs, 1 (fast) to 19 (small); default ${DEFAULT_TARDIFF_LEVEL}`,
    },
    { name: "platform", type: "string", arg: "OS/ARCH[/VARIANT]", help: "platform to pick from an index" },
    MAX_LAYER_SIZE_OPTION,
    ...SOURCE_OPTIONS,
  ],
  args: { min: 3, max: 3 },
  async run(ctx, [oldSpec, newSpec, outSpec], values) {
    const platform = values.platform ? parsePlatform(values.platform) : hostPlatform();
    const ignored = values["ignore-source-prefix"] ?? [...DEFAULT_IGNORED_PREFIXES];
    const zstdLevel = level(values["zstd-level"]);
    const openOptions = sourceOpenOptions(values, ctx.io.env);
    const layerLimit = maxLayerSize(values, ctx.io.env);
    const oldRef = parseReference(oldSpec, { repo: true });
    const newRef = parseReference(newSpec, { repo: true });
    const out = parseDestination(outSpec, { what: "output", bareIsArchive: true, unsupportedRegistry: "a delta" });
    const repo = await ctx.repo({ write: true });
    using _lock = await repo.lock(false);
    const result = await createDelta(repo, oldRef, newRef, out, {
      platform,
      jobs: ctx.jobs,
      maxLayerSize: layerLimit,
      level: zstdLevel,
      ignoredPrefixes: ignored,
      openOptions,
      progress: ctx.progress(),
      onPull: (spec) => ctx.note(`pulling ${spec} into the repository`),
      cleanups: ctx.cleanups,
    });
    ctx.endProgress();
    if (ctx.json) return void await ctx.printJson(result);
    const s = result.stats;
    await ctx.print(
      `Created delta ${result.output} (${formatBytes(s.deltaBytes)}; ${plural(s.layersReused, "layer")} reused, ${
        s.layersDiffed - s.layersOriginal
      } as tar-diff, ${s.layersOriginal} as original blob)`,
    );
    await ctx.print(`manifest ${result.manifest}\ntarget   ${result.target}\nsource   ${result.source}`);
    if (values.stats) await ctx.print(statsText(result));
  },
});
