/**
 * Command-line parsing from declarative option lists: long options (`--name
 * value`, `--name=value`), short ones (`-j 4`, `-j4`, `-q`), repeatable options,
 * and `--` to end options.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** One option a command accepts. */
export interface OptionSpec {
  /** Long name without dashes; also the key in the parsed values. */
  readonly name: string;
  short?: string;
  /** `boolean` options take no value. */
  type: "boolean" | "string";
  /** May be given more than once (values collected in order). */
  multiple?: boolean;
  /** Placeholder for the value in help, e.g. `DIR`; `a|b|c` lists the words the value may be. */
  arg?: string;
  /** The words the value may be, when `arg` does not list them (`--verity MODE`): completions offer them. */
  choices?: readonly string[];
  /** The value is a path to a file or a directory: completions offer those. */
  path?: "file" | "dir";
  /** One short description: what the option does, and its default. */
  help: string;
}

/** The words an option's value may be: its `choices`, else the words of an `arg` written `a|b|c`; none for a free value. */
export function optionChoices(o: OptionSpec): readonly string[] | undefined {
  if (o.choices) return o.choices;
  if (o.arg && /^[a-z0-9:-]+(\|[a-z0-9:-]+)+$/.test(o.arg)) return o.arg.split("|");
  return undefined;
}

/** Parsed option values by long name (untyped: what the parser produces). */
export type Values = Record<string, string | boolean | string[] | undefined>;

/** The value one option parses to: a flag, a string, or the strings of a repeatable option. */
export type ValueOf<O extends OptionSpec> = O extends { type: "boolean" } ? boolean
  : O extends { multiple: true } ? string[]
  : string;

/**
 * The parsed values of the options `S`, typed: each option's value by its long
 * name, absent when not given. Declare option lists `as const` (or through
 * `defineCommand`) so the names and types are known.
 */
export type ValuesOf<S extends readonly OptionSpec[]> = { [O in S[number] as O["name"]]?: ValueOf<O> };

/** The outcome of parsing. */
export interface Parsed {
  values: Values;
  positionals: string[];
}

/**
 * Parses `argv` against `options`. With `stopAtPositional`, parsing stops at the
 * first positional (which, with everything after it, is returned in
 * `positionals`): how global options are split from a command.
 */
export function parseArgs(argv: string[], options: readonly OptionSpec[], stopAtPositional = false): Parsed {
  const values: Values = {};
  const positionals: string[] = [];
  const byLong = new Map(options.map((o) => [o.name, o]));
  const byShort = new Map(options.filter((o) => o.short).map((o) => [o.short!, o]));
  const set = (o: OptionSpec, v: string | boolean) => {
    if (o.multiple) values[o.name] = [...((values[o.name] as string[] | undefined) ?? []), v as string];
    else values[o.name] = v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const o = byLong.get(name);
      if (!o) throw new UsageError(`unknown option --${name}`);
      if (o.type === "boolean") {
        if (eq >= 0) throw new UsageError(`option --${name} takes no value`);
        set(o, true);
      } else if (eq >= 0) {
        set(o, a.slice(eq + 1));
      } else {
        if (i + 1 >= argv.length) throw new UsageError(`option --${name} needs a value (${o.arg ?? "VALUE"})`);
        set(o, argv[++i]);
      }
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const o = byShort.get(a[j]);
        if (!o) throw new UsageError(`unknown option -${a[j]}`);
        if (o.type === "boolean") {
          set(o, true);
          continue;
        }
        const rest = a.slice(j + 1);
        if (rest) set(o, rest);
        else if (i + 1 < argv.length) set(o, argv[++i]);
        else throw new UsageError(`option -${a[j]} needs a value (${o.arg ?? "VALUE"})`);
        break;
      }
      continue;
    }
    if (stopAtPositional) {
      positionals.push(...argv.slice(i));
      break;
    }
    positionals.push(a);
  }
  return { values, positionals };
}

/** An option as written in help and the reference: `-j, --jobs N`, `--json`. */
export function optionLabel(o: OptionSpec): string {
  const value = o.type === "string" ? ` ${o.arg ?? "VALUE"}` : "";
  return `${o.short ? `-${o.short}, ` : ""}--${o.name}${value}`;
}

/** Formats option help lines for `--help`. */
export function formatOptions(options: readonly OptionSpec[]): string {
  const rows = options.map((o) => [`${o.short ? "" : "    "}${optionLabel(o)}`, o.help] as const);
  const width = Math.max(0, ...rows.map((r) => r[0].length));
  return rows.map(([f, h]) => `  ${f.padEnd(width)}  ${h}`).join("\n");
}
