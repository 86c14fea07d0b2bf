/**
 * The shape of a CLI command, and its help text.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { formatOptions, type OptionSpec, type Values, type ValuesOf } from "./args.ts";
import type { Context } from "./context.ts";

/**
 * What a positional argument is: an image reference with a transport (`oci:`, `oci-archive:`, `docker://`) to
 * read or to write, an image in the repository, a file, a directory, another word (a name, a registry), or one
 * of a few words (listed).
 */
export type Operand = "source" | "destination" | "image" | "file" | "dir" | "word" | readonly string[];

/** A command as it is declared: its options `S`, and a `run` that gets their values typed. */
export interface CommandSpec<S extends readonly OptionSpec[]> {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Arguments after the name, e.g. `SOURCE [NAME]`. */
  usage: string;
  /** Paragraphs for `--help`. */
  description: string;
  /** Command lines that show it in use, each optionally ending in `# comment` (the reference's examples). */
  examples?: readonly string[];
  /** What each positional argument is, in order (completions offer matching words). */
  operands?: readonly Operand[];
  options: S;
  /** How many positional arguments it takes. */
  args: { min: number; max: number };
  /** Runs the command; returns the exit status (default 0). */
  run(ctx: Context, args: string[], values: ValuesOf<S>): Promise<number | void>;
}

/** A deltaship command, as the dispatcher runs it (values as the parser produced them for its options). */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  description: string;
  examples?: readonly string[];
  operands?: readonly Operand[];
  options: readonly OptionSpec[];
  args: { min: number; max: number };
  run(ctx: Context, args: string[], values: Values): Promise<number | void>;
}

/**
 * Declares a command. The option list's literal types give `run` typed values;
 * the parser (which knows only the list) produces exactly those keys and types,
 * which makes this the one place where its untyped values are taken as typed.
 */
export function defineCommand<const S extends readonly OptionSpec[]>(spec: CommandSpec<S>): Command {
  return spec as unknown as Command;
}

/** The `--help` text of a command. */
export function commandHelp(cmd: Command, globals: readonly OptionSpec[]): string {
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
