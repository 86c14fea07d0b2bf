/**
 * `deltaship checkout IMAGE DIR`: write an image's root filesystem into a directory.
 *
 * @module
 */
import { checkout } from "../../ops/checkout.ts";
import { defineCommand } from "../command.ts";
import { formatBytes, plural } from "../format.ts";

export const checkoutCommand = defineCommand({
  name: "checkout",
  summary: "Write an image's root filesystem into a directory",
  usage: "IMAGE DIR",
  description: `
Writes the merged root filesystem of IMAGE (layers in order, whiteouts applied)
into DIR, which is created, and must be empty unless --force. Hardlinks stay
hardlinks, symlinks stay symlinks; modes and mtimes are set, and ownership,
extended attributes and device nodes when running as root (what could not be
applied is counted on stderr; without root, owners are recorded in
user.rootlesscontainers xattrs, as umoci --rootless does). Nothing is ever written outside DIR: symlinks in
the image are never followed out of it. If the checkout fails, DIR is removed
(or emptied again).

--force writes over a non-empty DIR: directories are merged, anything else in
the way of an image path (a symlink included) is replaced.

--hardlink links files to the repository's objects instead of copying them:
fast and takes no space, but for reading only. The files share the objects'
inodes (their mode, owner and times are the objects'), and writing to one would
corrupt the repository. DIR must be on the repository's filesystem.`,
  examples: [
    "deltaship checkout app ./rootfs  # DIR is created, and must be empty",
    "deltaship checkout app ./rootfs --force  # write over what is there",
    "deltaship checkout app ./rootfs --hardlink  # link files to the repository's objects: fast, read-only use",
  ],
  operands: ["image", "dir"],
  options: [
    { name: "force", type: "boolean", help: "write into a non-empty DIR, replacing what is in the way" },
    { name: "hardlink", type: "boolean", help: "hard-link files to repository objects (read-only use)" },
  ],
  args: { min: 2, max: 2 },
  async run(ctx, [image, dir], values) {
    const repo = await ctx.repo();
    using _lock = await repo.lock(false);
    const record = await repo.resolveImage(image);
    const result = await checkout(repo, record, dir, {
      cleanups: ctx.cleanups,
      force: values.force === true,
      hardlink: values.hardlink === true,
      progress: ctx.progress(),
    });
    ctx.endProgress();
    for (const note of result.notes) await ctx.note(`note: ${note}`);
    if (ctx.json) return void await ctx.printJson(result);
    await ctx.print(
      `Checked out ${image} into ${dir}: ${plural(result.files, "file")} (${formatBytes(result.bytes)}), ${
        result.directories === 1 ? "1 directory" : `${result.directories} directories`
      }, ${plural(result.symlinks, "symlink")}, ${plural(result.hardlinks, "hardlink")}${
        result.devices ? `, ${plural(result.devices, "device node")}` : ""
      }`,
    );
  },
});
