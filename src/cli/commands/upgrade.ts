/**
 * `deltaship upgrade`: upgrade the repository's format in place.
 *
 * @module
 */
import { FORMAT_VERSION } from "../../repo/format.ts";
import { defineCommand } from "../command.ts";
import { describeComposefsUpgrade, describeUpgrade } from "../context.ts";

export const upgradeCommand = defineCommand({
  name: "upgrade",
  summary: "Upgrade the repository to the current format",
  usage: "",
  description: `
Upgrades a repository of format version 1 (objects named by SHA-256) in place
to version ${FORMAT_VERSION}: every object is read, checked against its old name and renamed by
its fs-verity digest, and every layer record rewritten with the new names, so
that objects/ is a composefs object store. Any command that writes to a
version-1 repository does the same first; commands that only read it ask for
this one. An upgrade that is interrupted is resumed by the next. Takes the
repository lock exclusively, as gc does. Does nothing to a repository that is
current already.

Images whose composefs images were made by older tree rules (see docs/design.md,
"composefs images") get them made again by the current ones, and their records
name the new ones; any command that writes does this first too.`,
  examples: [
    "deltaship upgrade  # a repository of format version 1, upgraded in place to version 2",
  ],
  operands: [],
  options: [],
  args: { min: 0, max: 0 },
  async run(ctx) {
    await ctx.repo({ write: true, reportUpgrade: false });
    const upgraded = ctx.upgraded;
    const composefs = ctx.composefsUpgraded;
    if (ctx.json) {
      return void await ctx.printJson({
        version: FORMAT_VERSION,
        upgraded: upgraded ?? null,
        composefs: composefs ?? null,
      });
    }
    await ctx.print(
      upgraded ? describeUpgrade(upgraded) : `The repository is at format version ${FORMAT_VERSION} already`,
    );
    if (composefs && composefs.rebuilt + composefs.failed > 0) await ctx.print(describeComposefsUpgrade(composefs));
  },
});
