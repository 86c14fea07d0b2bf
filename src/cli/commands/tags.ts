/**
 * `deltaship tag`, `untag` and `rm`: naming and removing images.
 *
 * @module
 */
import { NotFoundError } from "../../errors.ts";
import { checkOciTag } from "../../oci/tag_name.ts";
import { mountedAt } from "../../repo/mount_roots.ts";
import { defineCommand } from "../command.ts";

export const tagCommand = defineCommand({
  name: "tag",
  summary: "Give an image another name",
  usage: "IMAGE NAME",
  description: `
Points tag NAME at IMAGE (a tag or @sha256:<hex>), replacing what NAME named before.`,
  examples: [
    "deltaship tag app app:stable  # another name for the same image",
  ],
  operands: ["image", "word"],
  options: [],
  args: { min: 2, max: 2 },
  async run(ctx, [image, name]) {
    checkOciTag(name);
    const repo = await ctx.repo({ write: true });
    using _lock = await repo.lock(false);
    const record = await repo.resolveImage(image);
    await repo.tagImage(name, record.manifest);
    if (ctx.json) return void await ctx.printJson({ name, manifest: record.manifest });
    await ctx.print(`${name} -> ${record.manifest}`);
  },
});

export const untagCommand = defineCommand({
  name: "untag",
  summary: "Remove a name (the image stays until gc)",
  usage: "NAME",
  description: `
Removes tag NAME, whatever its file holds (a damaged tag, which images, gc and
fsck warn about, is removed the same way). The image itself stays in the
repository, reachable by @sha256:<hex>, until it is removed with rm or
collected by gc.`,
  examples: [
    "deltaship untag app:stable  # remove a name",
  ],
  operands: ["image"],
  options: [],
  args: { min: 1, max: 1 },
  async run(ctx, [name]) {
    const repo = await ctx.repo({ write: true });
    using _lock = await repo.lock(false);
    const removed = await repo.untag(name);
    if (!removed) throw new NotFoundError(`no tag ${JSON.stringify(name)} in the repository`);
    const manifest = removed.manifest;
    if (ctx.json) return void await ctx.printJson({ removed: name, manifest });
    await ctx.print(`Untagged ${name}`);
  },
});

export const rmCommand = defineCommand({
  name: "rm",
  summary: "Remove an image and its tags",
  usage: "IMAGE",
  description: `
Removes IMAGE (a tag or @sha256:<hex>) and every tag naming it, whatever its
record holds (a damaged record, which images, gc and fsck name, is removed the
same way). Its layers and objects stay until gc reclaims what no image uses.`,
  examples: [
    "deltaship rm app  # remove the image and all its names",
  ],
  operands: ["image"],
  options: [],
  args: { min: 1, max: 1 },
  async run(ctx, [image]) {
    const repo = await ctx.repo({ write: true });
    using _lock = await repo.lock(false);
    const manifest = await repo.resolveManifest(image); // its record is not read: a damaged one can be removed
    const tags = await repo.removeImage(manifest);
    const mounted = await mountedAt(repo, manifest);
    if (ctx.json) return void await ctx.printJson({ removed: manifest, tags, mounted });
    await ctx.print(`Removed @${manifest}${tags.length ? ` (${tags.join(", ")})` : ""}`);
    if (mounted.length) {
      await ctx.note(
        `it is mounted at ${mounted.join(", ")}: what it holds stays in the repository until it is unmounted ` +
          `(deltaship umount ${mounted[0]}), and the next gc after that removes it`,
      );
    }
  },
});
