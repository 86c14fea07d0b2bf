/**
 * `deltaship fsck [IMAGE]`: verify the repository (or one image) end to end.
 *
 * @module
 */
import { fsck } from "../../repo/fsck.ts";
import { escapeControl } from "../../util/text.ts";
import { defineCommand } from "../command.ts";

export const fsckCommand = defineCommand({
  name: "fsck",
  summary: "Verify every object, layer, manifest, config and reference",
  usage: "[IMAGE]",
  description: `
Re-hashes every object, rebuilds every layer and checks it against its diff_id,
re-hashes manifests and configs, and follows every reference (tag, image,
layer, object). With IMAGE, checks only what that image needs. Exits 1 and
lists the problems when anything is wrong.`,
  examples: [
    "deltaship fsck  # everything",
    "deltaship fsck app  # what one image needs",
  ],
  operands: ["image"],
  options: [],
  args: { min: 0, max: 1 },
  async run(ctx, [image]) {
    const repo = await ctx.repo();
    using _lock = await repo.lock(false);
    // By manifest digest: a damaged record is one of the problems fsck reports, not an error.
    const manifest = image === undefined ? undefined : await repo.resolveManifest(image);
    const report = await fsck(repo, manifest);
    const ok = report.problems.length === 0;
    if (ctx.json) {
      await ctx.printJson({ ok, ...report });
    } else {
      for (const p of report.problems) await ctx.print(escapeControl(`${p.subject}: ${p.message}`)); // one line each
      const c = report.checked;
      const summary =
        `${c.images} images, ${c.layers} layers, ${c.objects} objects, ${c.blobs} manifests and configs checked`;
      await ctx.print(ok ? `ok: ${summary}` : `${report.problems.length} problems found; ${summary}`);
    }
    return ok ? 0 : 1;
  },
});
