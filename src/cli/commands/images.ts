/**
 * `deltaship images`: list the repository's images.
 *
 * @module
 */
import type { DamagedImageRecord } from "../../repo/image_record.ts";
import type { MalformedTag } from "../../repo/tag_store.ts";
import { escapeControl } from "../../util/text.ts";
import { defineCommand } from "../command.ts";
import { formatBytes, shortDigest, table } from "../format.ts";

export const imagesCommand = defineCommand({
  name: "images",
  summary: "List images in the repository",
  usage: "",
  description: `
One row per tag (untagged images show <none>): name, manifest digest, config
digest, uncompressed size and layer count.`,
  examples: [
    "deltaship images  # NAME, MANIFEST, CONFIG, SIZE (uncompressed), LAYERS",
  ],
  operands: [],
  options: [],
  args: { min: 0, max: 0 },
  async run(ctx) {
    const repo = await ctx.repo();
    using _lock = await repo.lock(false);
    const { images, damaged } = await repo.scanImages();
    const { tags, malformed } = await repo.tags.scan();
    for (const m of malformed) await ctx.note(malformedTagWarning(m));
    for (const d of damaged) await ctx.note(damagedRecordWarning(d));
    const namesOf = (m: string) => tags.filter((t) => t.manifest === m).map((t) => t.name);
    const rows = images.map((i) => ({
      tags: namesOf(i.manifest),
      manifest: i.manifest,
      config: i.config,
      size: i.layers.reduce((a, l) => a + l.tarSize, 0),
      layers: i.layers.length,
      created: i.created,
    }));
    if (ctx.json) return void await ctx.printJson(rows);
    const lines: string[][] = [];
    for (const r of rows) {
      for (const name of r.tags.length ? r.tags : ["<none>"]) {
        lines.push([name, shortDigest(r.manifest), shortDigest(r.config), formatBytes(r.size), String(r.layers)]);
      }
    }
    lines.sort((a, b) => a[0].localeCompare(b[0]));
    await ctx.print(table(["NAME", "MANIFEST", "CONFIG", "SIZE", "LAYERS"], lines));
  },
});

/** The warning printed for an image record that cannot be used, with how to remove it: one line, escaped. */
export function damagedRecordWarning(d: DamagedImageRecord): string {
  return escapeControl(
    `warning: skipping image record ${d.path}: it ${d.problem}` +
      (d.manifest ? `; remove it with: deltaship rm @${d.manifest}` : "; see deltaship fsck"),
  );
}

/** The warning printed for a tag file that cannot be used, with how to remove it. */
export function malformedTagWarning(m: MalformedTag): string {
  return `warning: skipping tag file tags/${m.file}: ${m.problem}; remove it with: deltaship untag ${m.name ?? m.file}`;
}
