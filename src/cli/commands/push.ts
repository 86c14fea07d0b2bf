/**
 * `deltaship push SOURCE docker://REGISTRY/REPO[:TAG]`: put an image from the
 * repository, or what a layout reference names, into a registry.
 *
 * @module
 */
import { UnsupportedError, UsageError } from "../../errors.ts";
import { pushFromSource, type PushResult, pushStoredImage } from "../../ops/push.ts";
import type { ReferrerRecord } from "../../transport/docker/target.ts";
import { openSource, openTarget, parseDestination, parseReference, REPO_PREFIX } from "../../transport/reference.ts";
import { COMPRESSION_OPTIONS, compressionOptions } from "../compression_options.ts";
import { defineCommand } from "../command.ts";
import { formatBytes, plural } from "../format.ts";
import { TARGET_OPTIONS, targetOpenOptions } from "../transport_options.ts";

/** The result in a line: what went where, and how the blobs got there. */
function summary(what: string, r: PushResult): string {
  const count = (o: string) => r.blobs.filter((b) => b.outcome === o).length;
  return `Pushed ${what} to ${r.destination}${r.tag ? `:${r.tag}` : ""} (${plural(r.blobs.length, "blob")}: ${
    count("uploaded")
  } uploaded, ${count("exists")} already there, ${count("mounted")} mounted; ${formatBytes(r.bytesUploaded)} sent)`;
}

/** What push says about a pushed manifest's subject. */
const REFERRER_LINES: Record<ReferrerRecord, string> = {
  "referrers-api": "listed by the registry's referrers API",
  "fallback-tag": "added to the subject's fallback index (the registry has no referrers API)",
  "fallback-tag-present": "already in the subject's fallback index (the registry has no referrers API)",
};

export const pushCommand = defineCommand({
  name: "push",
  summary: "Push an image (or a layout's image, index or artifact) to a registry",
  usage: "SOURCE docker://REGISTRY/REPO[:TAG]",
  description: `
SOURCE is an image in the repository (NAME, @sha256:<hex>, or repo:NAME), or
oci:DIR[:REF] / oci-archive:FILE[:REF].

An image from the repository is written as export writes it: each layer rebuilt
from the repository, checked against its diff_id and compressed
(--compression, on all cores) as it uploads; the config byte for byte (the
image ID is unchanged); a new OCI manifest. What a layout reference names is
copied byte for byte: an image, an index with every image under it, or any
artifact (a delta included).

Blobs the registry has are skipped (HEAD); with --mount-from REPO a blob is
mounted from that repository of the same registry when it is there; others are
uploaded in chunks that resume after a dropped connection. Manifests go last.
A manifest with a subject (a delta) is kept discoverable: by the registry's
referrers API, else in the image index tagged sha256-<subject hex>.

TAG defaults to SOURCE's tag (NAME, or the layout entry's); without one the
manifest is pushed by digest only. Credentials as for pull.`,
  examples: [
    "deltaship push app docker://registry.example/team/app:v2  # an image from the repository",
    "deltaship push oci:./build:v2 docker://registry.example/team/app  # a layout's image, index or artifact, byte for byte",
    "deltaship push oci-archive:app-v1-v2.delta.tar docker://registry.example/team/app:v1-to-v2",
  ],
  operands: ["source", "destination"],
  options: [
    ...COMPRESSION_OPTIONS,
    {
      name: "mount-from",
      type: "string",
      multiple: true,
      arg: "REPO",
      help: "another repository of the same registry to mount blobs from (repeatable)",
    },
    ...TARGET_OPTIONS,
  ],
  args: { min: 2, max: 2 },
  async run(ctx, [sourceArg, destArg], values) {
    if (!destArg.startsWith("docker://")) {
      // A layout is written by export; a registry reference without its transport is the usual slip.
      const hint = /^(oci|oci-archive):/.test(destArg)
        ? "; to write a layout use export"
        : destArg.includes("/")
        ? ` (did you mean docker://${destArg}?)`
        : "";
      throw new UsageError(
        `push: the destination must be docker://REGISTRY/REPO[:TAG], got ${JSON.stringify(destArg)}${hint}`,
      );
    }
    const dest = parseDestination(destArg, { what: "destination", registry: true });
    if (dest.transport !== "docker") throw new UsageError(`push: the destination must be docker://REGISTRY/REPO[:TAG]`);
    if (sourceArg.startsWith("docker://")) {
      throw new UnsupportedError(
        `push: ${sourceArg} is in a registry already; pull it, then push it from the repository`,
      );
    }
    const { compression, level } = compressionOptions(values);
    const openOptions = targetOpenOptions(values, ctx.io.env);
    const layout = /^(oci|oci-archive):/.test(sourceArg) ? parseReference(sourceArg) : undefined;
    const target = await openTarget(dest, openOptions);
    try {
      const options = {
        compression,
        level,
        jobs: ctx.jobs,
        maxUploads: openOptions.maxUploads,
        mountFrom: values["mount-from"],
        progress: ctx.progress(),
      };
      let result: PushResult;
      if (layout) {
        const source = await openSource(layout);
        try {
          result = await pushFromSource(source, target, { ...options, tag: target.tag });
        } finally {
          await source.close();
        }
      } else {
        const image = sourceArg.startsWith(REPO_PREFIX) ? sourceArg.slice(REPO_PREFIX.length) : sourceArg;
        const repo = await ctx.repo();
        using _lock = await repo.lock(false);
        const record = await repo.resolveImage(image);
        const tag = target.tag ?? (image.startsWith("@") ? undefined : image);
        result = await pushStoredImage(repo, record, target, { ...options, tag });
      }
      ctx.endProgress();
      if (ctx.json) return void await ctx.printJson(result);
      await ctx.print(summary(sourceArg, result));
      await ctx.print(`manifest ${result.manifest}${result.config ? `\nconfig   ${result.config}` : ""}`);
      if (result.referrer) await ctx.print(`referrer: ${REFERRER_LINES[result.referrer]}`);
      if (!result.tag) await ctx.note(`pushed by digest only: ${result.destination}@${result.manifest}`);
    } finally {
      await target.close();
    }
  },
});
