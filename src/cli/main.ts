/**
 * The command-line entry: global options, dispatch to a command, and the rule
 * for failures (one line on stderr, exit 1; 2 for usage errors; a stack trace
 * only with DELTASHIP_DEBUG=1).
 *
 * @module
 */
import { DeltashipError, UsageError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { describeOsError } from "../util/os_error.ts";
import { userPaths } from "../util/owned_temp.ts";
import { displayLine, ellipsize, escapeControl } from "../util/text.ts";
import { formatOptions, parseArgs } from "./args.ts";
import { checkArity, type Command, commandHelp } from "./command.ts";
import { type CliIO, Context, GLOBAL_OPTIONS } from "./context.ts";
import { applyDeltaCommand } from "./commands/apply_delta.ts";
import { checkoutCommand } from "./commands/checkout.ts";
import { completionsCommand } from "./commands/completions.ts";
import { computeIdCommand, createImageCommand, dumpCommand } from "./commands/composefs.ts";
import { createDeltaCommand } from "./commands/create_delta.ts";
import { exportCommand } from "./commands/export.ts";
import { fsckCommand } from "./commands/fsck.ts";
import { gcCommand } from "./commands/gc.ts";
import { imagesCommand } from "./commands/images.ts";
import { inspectCommand } from "./commands/inspect.ts";
import { layerCommand } from "./commands/layer.ts";
import { loginCommand, logoutCommand } from "./commands/login.ts";
import { mountCommand, umountCommand } from "./commands/mount.ts";
import { pullCommand } from "./commands/pull.ts";
import { pushCommand } from "./commands/push.ts";
import { rmCommand, tagCommand, untagCommand } from "./commands/tags.ts";
import { upgradeCommand } from "./commands/upgrade.ts";

/** Every command, in the order `--help` lists them. */
export const COMMANDS: Command[] = [
  pullCommand,
  pushCommand,
  applyDeltaCommand,
  imagesCommand,
  inspectCommand,
  tagCommand,
  untagCommand,
  rmCommand,
  layerCommand,
  exportCommand,
  checkoutCommand,
  computeIdCommand,
  createImageCommand,
  dumpCommand,
  mountCommand,
  umountCommand,
  gcCommand,
  fsckCommand,
  upgradeCommand,
  createDeltaCommand,
  loginCommand,
  logoutCommand,
  completionsCommand(() => COMMANDS),
];

const encoder = new TextEncoder();

function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "deltaship: keep OCI images in a local content-addressed repository and update them with oci-delta artifacts",
    "",
    "Usage: deltaship [global options] <command> [arguments]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    "Global options:",
    formatOptions(GLOBAL_OPTIONS),
    "      --version  print the version",
    "",
    "Images are named by tag or by @sha256:<hex> (manifest digest).",
    "Run 'deltaship <command> --help' for a command's arguments and options.",
    "",
  ].join("\n");
}

/** Runs the CLI with `args`; returns the exit status. */
export async function main(args: string[], io: CliIO): Promise<number> {
  const debug = io.env.DELTASHIP_DEBUG === "1";
  let ctx: Context | undefined;
  try {
    const globalOptions = [...GLOBAL_OPTIONS, { name: "version", type: "boolean" as const, help: "" }];
    const top = parseArgs(args, globalOptions, true);
    if (top.values.version) {
      await io.stdout.write(encoder.encode(`deltaship ${VERSION}\n`));
      return 0;
    }
    const [name, ...rest] = top.positionals;
    if (name === undefined || name === "help") {
      const topic = COMMANDS.find((c) => c.name === rest[0]);
      await io.stdout.write(encoder.encode(topic ? commandHelp(topic, GLOBAL_OPTIONS) : mainHelp()));
      return name === undefined && !top.values.help ? 2 : 0;
    }
    const cmd = COMMANDS.find((c) => c.name === name);
    if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(name)} (see deltaship --help)`);
    const parsed = parseArgs(rest, [...cmd.options, ...GLOBAL_OPTIONS]);
    const values = { ...top.values, ...parsed.values };
    if (values.help) {
      await io.stdout.write(encoder.encode(commandHelp(cmd, GLOBAL_OPTIONS)));
      return 0;
    }
    checkArity(cmd, parsed.positionals);
    ctx = new Context(io, values);
    const outcome = await Promise.race([cmd.run(ctx, parsed.positionals, values), interrupted(io.interrupt)]);
    if (outcome === INTERRUPTED) {
      ctx.endProgress();
      await ctx.cleanups.run();
      await io.stderr.write(encoder.encode("deltaship: interrupted; partial output removed\n")).catch(() => {});
      return 130;
    }
    return outcome ?? 0;
  } catch (err) {
    ctx?.endProgress();
    return await report(err, io, debug, ctx?.json ?? jsonRequested(args));
  } finally {
    await ctx?.close();
  }
}

const INTERRUPTED = Symbol("interrupted");

/** Resolves when `signal` aborts (never, without one). */
function interrupted(signal: AbortSignal | undefined): Promise<typeof INTERRUPTED> {
  return new Promise((resolve) => {
    if (signal?.aborted) resolve(INTERRUPTED);
    signal?.addEventListener("abort", () => resolve(INTERRUPTED), { once: true });
  });
}

/** True when `--json` is among the options of `args` (before any `--`): for failures before the options are parsed. */
function jsonRequested(args: string[]): boolean {
  const end = args.indexOf("--");
  return (end < 0 ? args : args.slice(0, end)).includes("--json");
}

/**
 * The `kind` of a failure in JSON: our error's class without "Error", in
 * kebab case (`NotFoundError` → `not-found`, `UsageError` → `usage`).
 */
export function errorKind(err: DeltashipError): string {
  return err.name.replace(/Error$/, "").replace(/([a-z0-9])([A-Z])/g, "$1-$2").toLowerCase() || "error";
}

/**
 * Prints the one line a failure gets: our own errors as they are, known
 * operating-system conditions (no space, name too long, ...) described, and
 * anything else as an internal error. The line is made safe for a terminal:
 * controls escaped, long words and the line itself shortened. With `--json`,
 * stdout gets `{"error": {"message", "kind"}}` as well (the exit status is the same).
 */
async function report(err: unknown, io: CliIO, debug: boolean, json: boolean): Promise<number> {
  if (err instanceof Deno.errors.BrokenPipe) return 1;
  let message: string;
  let kind: string;
  let status = 1;
  const os = describeOsError(err);
  if (err instanceof DeltashipError) {
    message = userPaths(err.message);
    kind = errorKind(err);
    status = err.exitCode;
  } else if (os !== undefined) {
    message = userPaths(os);
    kind = "os";
  } else {
    const msg = err instanceof Error ? err.message : String(err);
    message = `internal error: ${
      ellipsize(userPaths(msg), 200)
    } (run with DELTASHIP_DEBUG=1 for details, and please report it)`;
    kind = "internal";
  }
  if (json) {
    // As Context.printJson: DEL and C1 controls, which JSON.stringify leaves raw, escaped too.
    const text = JSON.stringify({ error: { message, kind } }, null, 2).replace(
      /[\x7f-\x9f]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
    await io.stdout.write(encoder.encode(text + "\n")).catch(() => {});
  }
  await io.stderr.write(encoder.encode(displayLine(`deltaship: ${message}`) + "\n")).catch(() => {});
  if (debug && err instanceof Error && err.stack) {
    await io.stderr.write(encoder.encode(escapeControl(err.stack, { newlines: true }) + "\n")).catch(() => {});
  }
  return status;
}
