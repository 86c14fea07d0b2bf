/**
 * `deltaship completions SHELL`: prints the shell completion script made from
 * the command definitions.
 *
 * @module
 */
import { UsageError } from "../../errors.ts";
import { type Command, defineCommand } from "../command.ts";
import { completionScript, type Shell, SHELLS } from "../completion_scripts.ts";
import { GLOBAL_OPTIONS } from "../context.ts";

/** The command, completing `commands()` (every command, itself included: the list is read when it runs). */
export function completionsCommand(commands: () => readonly Command[]): Command {
  return defineCommand({
    name: "completions",
    summary: "Print a shell completion script (bash, zsh or fish)",
    usage: "SHELL",
    description: `
Prints the completion script for SHELL (bash, zsh or fish): command names,
options, the values of options that take one of a few words, files and
directories where a value or an argument is a path, and the transports where
an argument is an image reference.`,
    examples: [
      "source <(deltaship completions bash)  # in ~/.bashrc",
      'deltaship completions zsh > "${fpath[1]}/_deltaship"',
      "deltaship completions fish > ~/.config/fish/completions/deltaship.fish",
    ],
    operands: [SHELLS],
    options: [],
    args: { min: 1, max: 1 },
    async run(ctx, [shell]) {
      if (!(SHELLS as readonly string[]).includes(shell)) {
        throw new UsageError(`completions: SHELL must be bash, zsh or fish, got ${JSON.stringify(shell)}`);
      }
      await ctx.print(completionScript(shell as Shell, { commands: commands(), globals: GLOBAL_OPTIONS }));
    },
  });
}
