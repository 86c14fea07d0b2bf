/**
 * The composefs commands that read: `compute-id IMAGE` (the image's composefs
 * id), `create-image IMAGE OUT` and `create-image --from-dump DUMPFILE OUT` (an
 * EROFS composefs image in a file), and `dump IMAGE` (the image's tree as a
 * composefs dumpfile). The tree is packed and the image streamed: what they hold
 * is the tree, not the image.
 *
 * @module
 */
import { formatDumpLine, readDumpfile } from "../../composefs/dumpfile.ts";
import { erofsChunks, imageDump } from "../../composefs/erofs_writer.ts";
import { FsVerityHasher } from "../../composefs/fsverity.ts";
import type { PackedTree } from "../../composefs/packed_tree.ts";
import { DumpTreeBuilder } from "../../composefs/tree_dump.ts";
import { type ComposefsOptions, composefsTree, writerOptions } from "../../repo/composefs_image.ts";
import { toHex } from "../../util/digest.ts";
import { writeAll } from "../../util/fs.ts";
import { siblingTemp } from "../../util/owned_temp.ts";
import { defineCommand } from "../command.ts";
import { EROFS_VERSION_OPTION, erofsVersion, xattrFiltering, XATTRS_OPTION } from "../composefs_options.ts";
import type { Context } from "../context.ts";
import { formatBytes } from "../format.ts";
import { MEMORY_LIMIT_OPTION, memoryLimit } from "../transport_options.ts";

const COMPOSEFS_MEMORY_LIMIT_OPTION = {
  ...MEMORY_LIMIT_OPTION,
  help: "fail, rather than grow past SIZE, when the image's tree and tables would (default $DELTASHIP_MEMORY_LIMIT, " +
    "else no limit)",
} as const;

/** The composefs tree of the image argument `image`, read under the shared lock (a progress line meanwhile). */
async function imageTree(ctx: Context, image: string, options: ComposefsOptions): Promise<PackedTree> {
  const repo = await ctx.repo();
  using _lock = await repo.lock(false);
  const record = await repo.resolveImage(image);
  const progress = ctx.progress();
  progress.start(record.manifest, `composefs tree of ${image}`, 0);
  const tree = await composefsTree(repo, record.layers.map((l) => l.diffId), options);
  progress.finish(record.manifest, "built");
  ctx.endProgress();
  return tree;
}

export const computeIdCommand = defineCommand({
  name: "compute-id",
  summary: "Print an image's composefs id",
  usage: "IMAGE",
  description: `
Builds the composefs image of IMAGE (its merged tree, by composefs-rs's rules:
see docs/design.md) and prints its fs-verity digest in hex: the id
'cfsctl --hash sha256 oci compute-id' gives the image, and the digest
'deltaship mount' and the kernel know it by. --xattrs keep-user-xattrs keeps
user.* xattrs too, as cfsctl's option of that name.`,
  examples: [
    "deltaship compute-id app  # the image's composefs id (hex), as cfsctl oci compute-id",
  ],
  operands: ["image"],
  options: [EROFS_VERSION_OPTION, XATTRS_OPTION, COMPOSEFS_MEMORY_LIMIT_OPTION],
  args: { min: 1, max: 1 },
  async run(ctx, [image], values) {
    const version = erofsVersion("compute-id", values["erofs-version"]);
    const xattrs = xattrFiltering("compute-id", values.xattrs);
    const limit = memoryLimit(values, ctx.io.env);
    const tree = await imageTree(ctx, image, { xattrs, memoryLimit: limit });
    const hasher = new FsVerityHasher();
    for (const chunk of erofsChunks(tree, writerOptions({ version, memoryLimit: limit }))) hasher.update(chunk);
    const id = toHex(hasher.digest());
    if (ctx.json) return void await ctx.printJson({ id, erofsVersion: version, xattrs });
    await ctx.print(id);
  },
});

export const createImageCommand = defineCommand({
  name: "create-image",
  summary: "Write an image's composefs EROFS image to a file",
  usage: "IMAGE OUT | --from-dump DUMPFILE OUT",
  description: `
Writes the composefs EROFS image of IMAGE to OUT (replaced if it exists): the
metadata of the image's merged tree, its files' contents named by the objects in
the repository's objects/ directory, byte for byte what C mkcomposefs writes for
the same tree.

With --from-dump, the tree is read from DUMPFILE, a composefs dumpfile
(composefs-dump(5)), as 'mkcomposefs --from-file' does; no repository is used
(and --xattrs does not apply: the dumpfile's xattrs are the tree's).`,
  examples: [
    "deltaship create-image app app.cfs  # its composefs EROFS image, in a file",
    "deltaship create-image --from-dump x.dump x.cfs  # from a composefs dumpfile, as mkcomposefs --from-file",
  ],
  operands: ["image", "file"],
  options: [
    EROFS_VERSION_OPTION,
    XATTRS_OPTION,
    COMPOSEFS_MEMORY_LIMIT_OPTION,
    { name: "from-dump", type: "boolean", help: "read the tree from a composefs dumpfile (the first argument)" },
  ],
  args: { min: 2, max: 2 },
  async run(ctx, [input, out], values) {
    const version = erofsVersion("create-image", values["erofs-version"]);
    const xattrs = xattrFiltering("create-image", values.xattrs);
    const limit = memoryLimit(values, ctx.io.env);
    let tree;
    if (values["from-dump"]) {
      const builder = new DumpTreeBuilder(writerOptions({ memoryLimit: limit }));
      using file = await Deno.open(input);
      for await (const e of readDumpfile(file.readable)) builder.add(e);
      tree = builder.finish();
    } else {
      tree = await imageTree(ctx, input, { xattrs, memoryLimit: limit });
    }
    const { bytes, id } = await writeReplacing(out, erofsChunks(tree, writerOptions({ version, memoryLimit: limit })));
    if (ctx.json) return void await ctx.printJson({ out, bytes, id, erofsVersion: version });
    await ctx.print(`Wrote ${out} (${formatBytes(bytes)}, composefs format ${version}): id ${id}`);
  },
});

/**
 * Writes `chunks` to `path` through a temporary file beside it, renamed over:
 * never a partial OUT. Returns the bytes written and their fs-verity digest (hex).
 */
async function writeReplacing(path: string, chunks: Iterable<Uint8Array>): Promise<{ bytes: number; id: string }> {
  const tmp = siblingTemp(path);
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
  try {
    const hasher = new FsVerityHasher();
    try {
      for (const chunk of chunks) {
        hasher.update(chunk);
        await writeAll(file, chunk);
      }
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
    return { bytes: hasher.size, id: toHex(hasher.digest()) };
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

export const dumpCommand = defineCommand({
  name: "dump",
  summary: "Print an image's tree as a composefs dumpfile",
  usage: "IMAGE",
  description: `
Prints the tree of IMAGE's composefs image as a composefs dumpfile
(composefs-dump(5)): one line per path, what 'composefs-info dump' prints for
the image 'deltaship create-image' writes. 'deltaship create-image --from-dump'
turns it back into the same image.`,
  examples: [
    "deltaship dump app  # its tree as a composefs dumpfile (composefs-dump(5))",
  ],
  operands: ["image"],
  options: [XATTRS_OPTION, COMPOSEFS_MEMORY_LIMIT_OPTION],
  args: { min: 1, max: 1 },
  async run(ctx, [image], values) {
    const xattrs = xattrFiltering("dump", values.xattrs);
    const limit = memoryLimit(values, ctx.io.env);
    const tree = await imageTree(ctx, image, { xattrs, memoryLimit: limit });
    const enc = new TextEncoder();
    let text = "";
    for (const e of imageDump(tree, writerOptions({ memoryLimit: limit }))) {
      text += formatDumpLine(e) + "\n";
      if (text.length >= 1 << 16) {
        await ctx.io.stdout.write(enc.encode(text));
        text = "";
      }
    }
    if (text) await ctx.io.stdout.write(enc.encode(text));
  },
});
