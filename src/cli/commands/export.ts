/**
 * `deltaship export IMAGE DEST`: write an image from the repository to an OCI
 * layout or archive.
 *
 * @module
 */
import { parseDestination } from "../../transport/reference.ts";
import { exportImage } from "../../ops/export.ts";
import { COMPRESSION_OPTIONS, compressionOptions } from "../compression_options.ts";
import { defineCommand } from "../command.ts";
import { formatBytes, plural } from "../format.ts";

export const exportCommand = defineCommand({
  name: "export",
  summary: "Write an image to an OCI layout or archive",
  usage: "IMAGE DEST",
  description: `
DEST is oci:DIR[:TAG] or oci-archive:FILE[:TAG]. A directory layout is created
or added to (other tags are kept, an entry with the same TAG is replaced); an
archive is written whole and replaces FILE. TAG defaults to IMAGE when IMAGE
is a tag. Nothing is written unless the export completes.

Layers are rebuilt from the repository (each checked against its diff_id) and
compressed with --compression; the manifest is a new OCI manifest naming the
new layer blobs; the config is written byte for byte, so the image ID (config
digest) is unchanged. Docker schema 2 images are written as OCI images.

--compression zstd:chunked writes each file's content in zstd frames of its
own, with a table of contents, as containers/storage does: the blob is still
plain zstd to every reader, and clients that know the format can fetch only
the files they lack. Layers that format cannot hold (PAX global headers,
sparse files, the same path twice) are refused, naming the entry.`,
  examples: [
    "deltaship export app oci:./layout  # add to a layout (created if needed), tagged app",
    "deltaship export app oci-archive:app.tar:v2 --compression zstd",
    "deltaship export @sha256:4f3c oci:./layout:v1 --compression none",
    "deltaship export app oci:./layout:v2 --compression zstd:chunked",
  ],
  operands: ["image", "destination"],
  options: COMPRESSION_OPTIONS,
  args: { min: 2, max: 2 },
  async run(ctx, [image, destArg], values) {
    const dest = parseDestination(destArg);
    const { compression, level } = compressionOptions(values);
    const repo = await ctx.repo();
    using _lock = await repo.lock(false);
    const record = await repo.resolveImage(image);
    const tag = dest.tag ?? (image.startsWith("@") ? undefined : image);
    const result = await exportImage(repo, record, { ...dest, tag }, {
      compression,
      level,
      jobs: ctx.jobs,
      progress: ctx.progress(),
      cleanups: ctx.cleanups,
    });
    ctx.endProgress();
    if (ctx.json) return void await ctx.printJson(result);
    await ctx.print(
      `Exported ${image} to ${result.destination}${result.tag ? `:${result.tag}` : ""} (${
        plural(result.layers.length, "layer")
      }, ${compression}, ${formatBytes(result.size)})`,
    );
    await ctx.print(`manifest ${result.manifest}\nconfig   ${result.config}`);
  },
});
