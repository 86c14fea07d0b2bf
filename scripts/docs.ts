/**
 * `deno task docs`: writes the command reference, `docs/cli.md` and the man
 * page `docs/deltaship.1`, from the command definitions (src/cli/reference.ts
 * renders them; tests/reference_docs_test.ts fails when they are out of date).
 *
 * @module
 */
import { COMMANDS } from "../src/cli/main.ts";
import { GLOBAL_OPTIONS } from "../src/cli/context.ts";
import { manPage, referenceMarkdown, type ReferenceSource } from "../src/cli/reference.ts";
import { VERSION } from "../src/version.ts";

/** The reference's inputs: every command and the global options, at this version. */
export const SOURCE: ReferenceSource = { commands: COMMANDS, globals: GLOBAL_OPTIONS, version: VERSION };

/** The generated files, by path from the repository root, with their content. */
export function referenceFiles(): Record<string, string> {
  return { "docs/cli.md": referenceMarkdown(SOURCE), "docs/deltaship.1": manPage(SOURCE) };
}

if (import.meta.main) {
  const root = new URL("../", import.meta.url).pathname;
  for (const [path, text] of Object.entries(referenceFiles())) {
    await Deno.writeTextFile(`${root}${path}`, text);
    console.log(`wrote ${path}`);
  }
}
