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
    return await report(err, io, debug);
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

/**
 * Prints the one line a failure gets: our own errors as they are, known
 * operating-system conditions (no space, name too long, ...) described, and
 * anything else as an internal error. The line is made safe for a terminal:
 * controls escaped, long words and the line itself shortened.
 */
async function report(err: unknown, io: CliIO, debug: boolean): Promise<number> {
  if (err instanceof Deno.errors.BrokenPipe) return 1;
  let message: string;
  let status = 1;
  const os = describeOsError(err);
  if (err instanceof DeltashipError) {
    message = err.message;
    status = err.exitCode;
  } else if (os !== undefined) {
    message = os;
  } else {
    const msg = err instanceof Error ? err.message : String(err);
    message = `internal error: ${ellipsize(msg, 200)} (run with DELTASHIP_DEBUG=1 for details, and please report it)`;
  }
  await io.stderr.write(encoder.encode(displayLine(`deltaship: ${message}`) + "\n")).catch(() => {});
  if (debug && err instanceof Error && err.stack) {
    await io.stderr.write(encoder.encode(escapeControl(err.stack, { newlines: true }) + "\n")).catch(() => {});
  }
  return status;
}
