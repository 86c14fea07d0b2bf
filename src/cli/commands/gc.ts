/**
 * `deltaship gc [--dry-run]`: remove what no tag reaches.
 *
 * @module
 */
import { gc } from "../../repo/gc.ts";
import { escapeControl } from "../../util/text.ts";
import { defineCommand } from "../command.ts";
import { malformedTagWarning } from "./images.ts";
import { formatBytes, plural } from "../format.ts";

export const gcCommand = defineCommand({
  name: "gc",
  summary: "Remove images, layers and objects no tag reaches",
  usage: "",
  description: `
Tags are the roots, and so are mounted images (until deltaship umount): an
image no tag names is removed with its record (name it with 'deltaship tag' to
keep it), and so are the manifests, configs, layers and
file objects that no remaining image uses, and temporary files left by killed
processes. Prints what was freed (count and bytes).

What gc cannot read it keeps, and names: while an image record that a tag names
is damaged, no manifest, config, layer or object is removed (run fsck, then rm
the image and pull it again); a damaged layer record keeps every object; a
symbolic link, directory or other non-file where a file belongs is left in place.

gc takes the repository lock exclusively: it waits for pulls and other
commands in flight to finish, and they wait for it.`,
  examples: [
    "deltaship gc --dry-run  # what would go, and how many bytes",
    "deltaship gc  # remove it",
  ],
  operands: [],
  options: [{ name: "dry-run", short: "n", type: "boolean", help: "show what would be removed; remove nothing" }],
  args: { min: 0, max: 0 },
  async run(ctx, _args, values) {
    const dryRun = values["dry-run"] === true;
    const repo = await ctx.repo({ write: !dryRun });
    using _lock = await repo.lock(true);
    const result = await gc(repo, { dryRun });
    for (const m of result.malformedTags) await ctx.note(malformedTagWarning(m));
    for (const p of result.problems) await ctx.note(escapeControl(`warning: ${p.path} ${p.problem}`)); // one line
    if (ctx.json) return void await ctx.printJson(result);
    const r = result.removed;
    const what = [
      plural(r.images, "image"),
      `${r.blobs} manifests and configs`,
      plural(r.layers, "layer"),
      plural(r.objects, "object"),
      r.tempDirs === 1 ? "1 temporary directory" : `${r.tempDirs} temporary directories`,
    ].join(", ");
    await ctx.print(
      `${result.dryRun ? "Would remove" : "Removed"} ${what}: ${formatBytes(result.bytes)} ${
        result.dryRun ? "to free" : "freed"
      } (${plural(result.kept, "image")} kept)`,
    );
  },
});
