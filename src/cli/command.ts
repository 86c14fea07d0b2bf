/**
 * The shape of a CLI command, and its help text.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { formatOptions, type OptionSpec, type Values } from "./args.ts";
import type { Context } from "./context.ts";

/** A deltaship command. */
export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Arguments after the name, e.g. `SOURCE [NAME]`. */
  usage: string;
  /** Paragraphs for `--help`. */
  description: string;
  options: OptionSpec[];
  /** How many positional arguments it takes. */
  args: { min: number; max: number };
  /** Runs the command; returns the exit status (default 0). */
  run(ctx: Context, args: string[], values: Values): Promise<number | void>;
}

/** The `--help` text of a command. */
export function commandHelp(cmd: Command, globals: OptionSpec[]): string {
  return [
    `Usage: deltaship [global options] ${cmd.name} ${cmd.usage}`.trimEnd(),
    "",
    cmd.summary,
    "",
    cmd.description.trim(),
    ...(cmd.options.length ? ["", "Options:", formatOptions(cmd.options)] : []),
    "",
    "Global options:",
    formatOptions(globals),
    "",
  ].join("\n");
}

/** Checks the number of positional arguments. */
export function checkArity(cmd: Command, args: string[]): void {
  if (args.length < cmd.args.min || args.length > cmd.args.max) {
    throw new UsageError(
      `${cmd.name}: expected ${cmd.usage || "no arguments"}, got ${args.length} argument${
        args.length === 1 ? "" : "s"
      }` +
        ` (see deltaship ${cmd.name} --help)`,
    );
  }
}
