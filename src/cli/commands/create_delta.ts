/**
 * `deltaship create-delta OLD NEW OUT`: make an oci-delta artifact that turns
 * image OLD into image NEW.
 *
 * @module
 */
import { InvalidArgumentError, UsageError } from "../../errors.ts";
import { isOciTag } from "../../oci/tag_name.ts";
import { hostPlatform, parsePlatform } from "../../oci/platform.ts";
import { createDelta, type CreateDeltaResult } from "../../ops/create_delta.ts";
import { deltaTag } from "../../delta/annotations.ts";
import type { LayoutDest } from "../../oci/layout_writer.ts";
import { RegistryArtifactSink } from "../../ops/push.ts";
import type { DockerTarget } from "../../transport/docker/target.ts";
import { parseDockerReference } from "../../transport/docker/reference.ts";
import {
  type ImageReference,
  openTarget,
  parseDestination,
  parseReference,
  type RegistryOptions,
} from "../../transport/reference.ts";
import type { ProgressSink } from "../../util/progress.ts";
import {
  DEFAULT_MAX_BSDIFF_SIZE,
  DEFAULT_MAX_ZSTD_DIFF_SIZE,
  DEFAULT_TARDIFF_LEVEL,
  DEFAULT_ZSTD_DIFF_LEVEL,
  type EncodeOptions,
} from "../../tardiff/encode.ts";
import { DEFAULT_IGNORED_PREFIXES } from "../../tardiff/source_catalog.ts";
import { parseSetting } from "../../util/settings.ts";
import { defineCommand } from "../command.ts";
import { formatBytes, plural, shortDigest, table } from "../format.ts";
import { encodePlan } from "../../ops/memory_plan.ts";
import {
  MAX_LAYER_SIZE_OPTION,
  MAX_UPLOADS_OPTION,
  maxLayerSize,
  MEMORY_LIMIT_OPTION,
  memoryLimit,
  SOURCE_OPTIONS,
  sourceOpenOptions,
  targetOpenOptions,
} from "../transport_options.ts";

/** A zstd level (1 to 19). */
function level(v: string | undefined, option = "--zstd-level", fallback = DEFAULT_TARDIFF_LEVEL): number {
  return v === undefined ? fallback : parseSetting(option, v, { min: 1, max: 19 });
}

/** A size in MiB (a whole number from 0 to `max`), in bytes. */
function mebibytes(option: string, v: string | undefined, fallback: number, max = 1 << 20): number {
  return v === undefined ? fallback : parseSetting(option, v, { min: 0, max, unit: "MiB" }) * 2 ** 20;
}

/** `options` with the credentials of `--src-creds` or `--dest-creds` (`option`), when given, instead of `--creds`. */
function withCreds<T extends RegistryOptions>(options: T, creds: string | undefined, option: string): T {
  return creds === undefined ? options : { ...options, creds, credsOption: option };
}

/** The binary-diff settings of create-delta's options, as oci-delta takes them. */
function diffOptions(values: {
  "binary-diff"?: string;
  "zstd-diff-level"?: string;
  "zstd-diff-window"?: string;
  "max-zstd-diff-size"?: string;
  "max-bsdiff-size"?: string;
}): Omit<EncodeOptions, "level" | "progress"> {
  const binaryDiff = values["binary-diff"] ?? "bsdiff";
  if (binaryDiff !== "bsdiff" && binaryDiff !== "zstd" && binaryDiff !== "auto") {
    throw new UsageError(`--binary-diff must be bsdiff, zstd or auto, got ${JSON.stringify(binaryDiff)}`);
  }
  const window = mebibytes("--zstd-diff-window", values["zstd-diff-window"], 0, 512);
  if (window !== 0 && (window & (window - 1)) !== 0) {
    throw new UsageError(`--zstd-diff-window must be a power of two (MiB), got ${values["zstd-diff-window"]}`);
  }
  return {
    binaryDiff,
    zstdLevel: level(values["zstd-diff-level"], "--zstd-diff-level", DEFAULT_ZSTD_DIFF_LEVEL),
    zstdWindowLog: window === 0 ? undefined : Math.log2(window),
    maxZstdSize: mebibytes("--max-zstd-diff-size", values["max-zstd-diff-size"], DEFAULT_MAX_ZSTD_DIFF_SIZE),
    maxBsdiffSize: mebibytes("--max-bsdiff-size", values["max-bsdiff-size"], DEFAULT_MAX_BSDIFF_SIZE),
  };
}

/** The diff settings with no file diffed at `max` bytes or more (a `--memory-limit`'s cap; undefined: as they are). */
function capDiffSizes(diff: ReturnType<typeof diffOptions>, max: number | undefined): ReturnType<typeof diffOptions> {
  if (max === undefined) return diff;
  const cap = (n: number | undefined) => (n === undefined || n === 0 ? max : Math.min(n, max));
  return { ...diff, maxBsdiffSize: cap(diff.maxBsdiffSize), maxZstdSize: cap(diff.maxZstdSize) };
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

/** The tag an image reference names, if any (never a digest). */
function tagOf(ref: ImageReference): string | undefined {
  switch (ref.transport) {
    case "repo":
      return ref.image.startsWith("@") ? undefined : ref.image;
    case "oci":
    case "oci-archive":
      return ref.ref !== undefined && !/^(sha256|sha512):/.test(ref.ref) ? ref.ref : undefined;
    case "docker": {
      const colon = ref.reference.lastIndexOf(":");
      return colon > ref.reference.lastIndexOf("/") && !ref.reference.includes("@")
        ? parseDockerReference(ref.reference).tag
        : undefined;
    }
  }
}

/**
 * OLD or NEW as given: a transport reference, `repo:NAME`, or, as every other
 * command takes images in the repository, a bare NAME or `@sha256:<hex>`.
 */
function inputReference(spec: string, what: string): ImageReference {
  if (/^(oci|oci-archive|repo):|^docker:\/\//.test(spec)) return parseReference(spec, { repo: true });
  if (spec.startsWith("@") || isOciTag(spec)) return { text: spec, transport: "repo", image: spec };
  throw new InvalidArgumentError(
    `invalid ${what} ${JSON.stringify(spec)}: expected an image in the repository (NAME or @sha256:<hex>), ` +
      `oci:DIR[:REF], oci-archive:FILE[:REF] or docker://REGISTRY/REPO[:TAG]${
        spec.includes("/") && !spec.includes(":/") ? ` (did you mean docker://${spec}?)` : ""
      }`,
  );
}

/**
 * The registry destination of a delta: tagged as OUT says, else `OLD-to-NEW`
 * after the images' tags; blobs may be mounted from OLD's and NEW's
 * repositories when they are in the same registry.
 */
function publishSink(
  target: DockerTarget,
  oldRef: ImageReference,
  newRef: ImageReference,
  progress: ProgressSink,
): RegistryArtifactSink {
  const [from, to] = [tagOf(oldRef), tagOf(newRef)];
  const joined = from !== undefined && to !== undefined ? deltaTag(from, to) : undefined;
  const tag = target.tag ?? (joined !== undefined && joined.length <= 128 ? joined : undefined);
  const mountFrom = [oldRef, newRef].flatMap((r) => {
    if (r.transport !== "docker") return [];
    const ref = parseDockerReference(r.reference);
    return ref.domain === target.registry && ref.repository !== target.repository ? [ref.repository] : [];
  });
  return new RegistryArtifactSink(target, { mountFrom, progress, tag });
}

export const createDeltaCommand = defineCommand({
  name: "create-delta",
  summary: "Create an oci-delta artifact from an old image to a new one",
  usage: "OLD NEW OUT",
  description: `
OLD and NEW are oci:DIR[:REF], oci-archive:FILE[:REF], docker://REFERENCE, or an
image already in the repository: NAME or @sha256:<hex> (also as repo:NAME). Images given
by transport are pulled into the repository first (untagged; layers it already
holds are not fetched again): the repository is where create-delta reads the old
image's merged filesystem and the new image's layer tars from.

OUT is oci:DIR[:TAG] or oci-archive:FILE[:TAG] (an argument without a prefix is
an oci-archive file). A new directory or archive appears complete or not at all;
an existing layout gets the delta added to its index. OUT may be
docker://REGISTRY/REPO[:TAG]: the delta is pushed there (TAG defaults to
OLDTAG-to-NEWTAG when both images are named by tags) and kept discoverable as a
referrer of NEW (the referrers API, else the sha256-<hex> fallback tag), so that
pull docker://REGISTRY/REPO:NEWTAG finds it. Publish it in NEW's repository.

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
(every 4th suffix sorted); files over 512 MiB are sent whole.

--binary-diff says how a changed file is diffed against its source, as in
oci-delta: bsdiff (the default: smallest, slowest), zstd (a zstd frame made
with the whole old file as dictionary, as zstd --patch-from does: several times
faster, somewhat larger), or auto (both tried per file, the smaller kept).
zstd and auto write tar-diff version 2 (tardf2), which needs a reader that
knows it (oci-delta 0.6, composefs-rs, deltaship). Files at least
--max-zstd-diff-size MiB (default 128) are not zstd-diffed, nor files at least
--max-bsdiff-size MiB (default 192) bsdiffed (0: no limit but 512 MiB); with
zstd they go out whole, with auto by the other method when it fits.
--memory-limit SIZE (or $DELTASHIP_MEMORY_LIMIT) encodes one layer at a time
and diffs no file whose pair would not fit in SIZE (about six times the file):
those go out whole, so the delta is larger but the same image.
--zstd-diff-window caps the frames' window (MiB, a power of two up to 512;
default: one that holds both files); --zstd-diff-level (1-19, default 3)
trades time for size.

--signature embeds a cosign signature of NEW (a signature artifact in an OCI
layout or archive, as cosign and oci-delta write them; a bare path is an
oci-archive), so that clients can check it with --verify-key; it must sign
NEW's manifest digest.`,
  examples: [
    "deltaship create-delta oci:./v1:app oci:./v2:app oci-archive:app-v1-v2.delta.tar -s",
    "deltaship create-delta repo:app-v1 docker://registry.example/app:v2 oci:./deltas:v1-to-v2",
    "deltaship create-delta repo:@sha256:4f3c… repo:app oci:./deltas -j 2 --json",
    "deltaship create-delta docker://registry.example/app:v1 docker://registry.example/app:v2 docker://registry.example/app",
  ],
  operands: ["source", "source", "destination"],
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
    {
      name: "binary-diff",
      type: "string",
      arg: "bsdiff|zstd|auto",
      help: "how changed files are diffed (default bsdiff)",
    },
    { name: "zstd-diff-level", type: "string", arg: "N", help: "zstd level of zstd diffs, 1 to 19 (default 3)" },
    {
      name: "zstd-diff-window",
      type: "string",
      arg: "MiB",
      help: "window of zstd diffs, a power of two up to 512 (default: both files)",
    },
    {
      name: "max-zstd-diff-size",
      type: "string",
      arg: "MiB",
      help: "largest file zstd-diffed, exclusive (default 128)",
    },
    { name: "max-bsdiff-size", type: "string", arg: "MiB", help: "largest file bsdiffed, exclusive (default 192)" },
    {
      name: "signature",
      type: "string",
      multiple: true,
      arg: "REF",
      help: "embed this cosign signature artifact of NEW (oci:DIR[:REF] or oci-archive:FILE[:REF]; repeatable)",
    },
    { name: "platform", type: "string", arg: "OS/ARCH[/VARIANT]", help: "platform to pick from an index" },
    MAX_LAYER_SIZE_OPTION,
    MEMORY_LIMIT_OPTION,
    ...SOURCE_OPTIONS,
    {
      name: "src-creds",
      type: "string",
      arg: "USER:PASS",
      help: "credentials for OLD and NEW in a registry (default: --creds, else the auth files)",
    },
    {
      name: "dest-creds",
      type: "string",
      arg: "USER:PASS",
      help: "credentials for OUT in a registry (default: --creds, else the auth files)",
    },
    MAX_UPLOADS_OPTION,
  ],
  args: { min: 3, max: 3 },
  async run(ctx, [oldSpec, newSpec, outSpec], values) {
    const platform = values.platform ? parsePlatform(values.platform) : hostPlatform();
    const ignored = values["ignore-source-prefix"] ?? [...DEFAULT_IGNORED_PREFIXES];
    const zstdLevel = level(values["zstd-level"]);
    const memory = encodePlan(memoryLimit(values, ctx.io.env), ctx.jobs);
    const diff = capDiffSizes(diffOptions(values), memory.maxDiffSize);
    const signatures = (values.signature ?? []).map((s) =>
      parseReference(/^(oci|oci-archive):/.test(s) ? s : `oci-archive:${s}`)
    );
    const openOptions = withCreds(sourceOpenOptions(values, ctx.io.env), values["src-creds"], "--src-creds");
    const layerLimit = maxLayerSize(values, ctx.io.env);
    const oldRef = inputReference(oldSpec, "OLD");
    const newRef = inputReference(newSpec, "NEW");
    const dest = parseDestination(outSpec, { what: "output", bareIsArchive: true, registry: true });
    const repo = await ctx.repo({ write: true, create: true });
    using _lock = await repo.lock(false);
    const target = dest.transport === "docker"
      ? await openTarget(dest, withCreds(targetOpenOptions(values, ctx.io.env), values["dest-creds"], "--dest-creds"))
      : undefined;
    await target?.check(); // a registry that cannot take the delta fails before any work
    const sink = target ? publishSink(target, oldRef, newRef, ctx.progress()) : undefined;
    const out = sink ?? dest as LayoutDest;
    const result = await createDelta(repo, oldRef, newRef, out, {
      platform,
      requirePlatform: values.platform !== undefined,
      jobs: memory.jobs,
      maxLayerSize: layerLimit,
      level: zstdLevel,
      diff,
      signatures,
      ignoredPrefixes: ignored,
      openOptions,
      progress: ctx.progress(),
      onPull: (spec) => ctx.note(`pulling ${spec} into the repository`),
      cleanups: ctx.cleanups,
    }).finally(() => target?.close());
    ctx.endProgress();
    const published = sink?.result;
    if (ctx.json) return void await ctx.printJson(published ? { ...result, published } : result);
    const s = result.stats;
    await ctx.print(
      `Created delta ${result.output} (${formatBytes(s.deltaBytes)}; ${plural(s.layersReused, "layer")} reused, ${
        s.layersDiffed - s.layersOriginal
      } as tar-diff, ${s.layersOriginal} as original blob)`,
    );
    await ctx.print(`manifest ${result.manifest}\ntarget   ${result.target}\nsource   ${result.source}`);
    if (published) {
      await ctx.print(
        `pushed ${published.destination}${published.tag ? `:${published.tag}` : `@${published.manifest}`}; ${
          published.referrer === "referrers-api"
            ? "listed by the registry's referrers API"
            : published.referrer === "fallback-tag"
            ? "added to the target's fallback referrers index"
            : "already in the target's fallback referrers index"
        }`,
      );
    }
    if (values.stats) await ctx.print(statsText(result));
  },
});
