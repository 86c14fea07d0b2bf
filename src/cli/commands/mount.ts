/**
 * `deltaship mount IMAGE DIR`: an image mounted in place, composefs-style;
 * `deltaship umount DIR` undoes it.
 *
 * @module
 */
import { UsageError } from "../../errors.ts";
import { mountImage, unmountImage, type VerityMode } from "../../ops/mount.ts";
import { defineCommand } from "../command.ts";
import { xattrFiltering, XATTRS_OPTION } from "../composefs_options.ts";

const MODES: readonly VerityMode[] = ["require", "auto", "off"];

export const mountCommand = defineCommand({
  name: "mount",
  summary: "Mount an image read-only in place (composefs: EROFS + overlayfs)",
  usage: "IMAGE DIR",
  description: `
Mounts IMAGE read-only at DIR, an empty directory, without copying anything:
the image's composefs EROFS image (its metadata) is mounted, detached and never
visible, and overlayfs is mounted at DIR with it as the lower layer and the
repository's objects/ directory as a data-only layer (metacopy=on,
redirect_dir=on): each file's bytes are read from the object that holds them,
and shared in the page cache by every image that has them. Needs root and a
kernel with erofs and overlayfs (6.5 or later for data-only layers).

--verity require makes the kernel check every object's fs-verity digest against
the one the image names (verity=require), and is refused when the repository's
objects have no fs-verity (its filesystem has none); auto (the default) requires
it when they have it; off never asks. --xattrs keep-user-xattrs mounts the image
whose tree keeps user.* xattrs too (made for the mount; the stored image keeps
security.capability only, as cfsctl does by default).

'deltaship umount DIR' unmounts it. While it is mounted, the repository holds
a root for it (mounts/): gc keeps everything the mount reads, even once rm has
removed the image's names.`,
  examples: [
    "sudo deltaship mount app /mnt/app  # mounted read-only in place: nothing copied",
  ],
  operands: ["image", "dir"],
  options: [
    {
      name: "verity",
      type: "string",
      arg: "MODE",
      choices: ["require", "auto", "off"],
      help: "require, auto (default) or off: fs-verity checks of objects",
    },
    XATTRS_OPTION,
  ],
  args: { min: 2, max: 2 },
  async run(ctx, [image, dir], values) {
    const mode = (values.verity ?? "auto") as VerityMode;
    const xattrs = xattrFiltering("mount", values.xattrs);
    if (!MODES.includes(mode)) {
      throw new UsageError(`mount: --verity must be require, auto or off, not ${JSON.stringify(values.verity)}`);
    }
    const repo = await ctx.repo();
    using _lock = await repo.lock(false);
    const record = await repo.resolveImage(image);
    const result = await mountImage(repo, record, dir, mode, xattrs);
    if (ctx.json) return void await ctx.printJson({ ...result, manifest: record.manifest });
    await ctx.print(
      `Mounted ${image} at ${dir} (composefs id ${result.id}, ${
        result.verity ? "fs-verity required" : "no fs-verity"
      })`,
    );
  },
});

export const umountCommand = defineCommand({
  name: "umount",
  summary: "Unmount an image mounted with deltaship mount",
  usage: "DIR",
  description: `
Unmounts the image mounted at DIR by 'deltaship mount' (the overlay; its EROFS
mount, never attached anywhere, goes with it) and removes its root from the
repository, so gc may collect what only it kept. Needs root. Refuses any mount
deltaship mount did not make; fails, leaving it mounted, while a process still
uses it (busy).`,
  examples: [
    "sudo deltaship umount /mnt/app",
  ],
  operands: ["dir"],
  options: [],
  args: { min: 1, max: 1 },
  async run(ctx, [dir]) {
    const result = await unmountImage(ctx.repoPath, dir);
    if (ctx.json) return void await ctx.printJson(result);
    await ctx.print(`Unmounted ${dir}`);
  },
});
