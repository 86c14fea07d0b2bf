/**
 * What every command runs with: global options resolved against the
 * environment, the output streams, and the repository (opened on first use).
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { Repository } from "../repo/repository.ts";
import type { SyncMode } from "../repo/durability.ts";
import type { ComposefsUpgrade } from "../repo/composefs_upgrade.ts";
import { openForWriting, type UpgradeSummary } from "../repo/upgrade.ts";
import { Cleanups } from "../util/cleanups.ts";
import { envSetting, parseSetting, type SettingRange } from "../util/settings.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import { escapeControl } from "../util/text.ts";
import type { OptionSpec, ValuesOf } from "./args.ts";
import {
  PlainProgress,
  PROGRESS_MODES,
  type ProgressDisplay,
  progressKind,
  type ProgressMode,
  TerminalProgress,
} from "./progress.ts";
import { formatBytes, plural } from "./format.ts";

/** An output stream of the CLI. */
export interface Output {
  write(bytes: Uint8Array): Promise<void>;
  /** True when a person is probably watching (a TTY). */
  isTerminal: boolean;
  /** The terminal's width in columns, when it is one and says. */
  columns?: number;
}

/** The process's surroundings, injectable so tests can run the CLI in-process. */
export interface CliIO {
  stdout: Output;
  stderr: Output;
  env: Record<string, string | undefined>;
  /** Standard input, for commands that read it (login --password-stdin). */
  stdin?: ReadableStream<Uint8Array>;
  /** Aborted when the process is asked to stop (SIGINT, SIGTERM). */
  interrupt?: AbortSignal;
}

/** The global options, accepted before or after the command name. */
export const GLOBAL_OPTIONS = [
  {
    name: "repo",
    type: "string",
    arg: "DIR",
    path: "dir",
    help: "repository (default $DELTASHIP_REPO, else $XDG_DATA_HOME/deltaship, else ~/.local/share/deltaship)",
  },
  {
    name: "jobs",
    short: "j",
    type: "string",
    arg: "N",
    help: "layers processed at once (default $DELTASHIP_JOBS, else CPU count)",
  },
  { name: "json", type: "boolean", help: "machine-readable output" },
  { name: "quiet", short: "q", type: "boolean", help: "print only results (no progress)" },
  {
    name: "progress",
    type: "string",
    arg: "WHEN",
    choices: PROGRESS_MODES,
    help: "auto (live on a terminal, plain when $CI is set), always (live), plain (a line per event) or never",
  },
  { name: "help", short: "h", type: "boolean", help: "show help" },
] as const satisfies readonly OptionSpec[];

/** The values of the global options. */
export type GlobalValues = ValuesOf<typeof GLOBAL_OPTIONS>;

const encoder = new TextEncoder();

/** Resolves the repository directory from the options and environment. */
export function defaultRepoPath(values: GlobalValues, env: Record<string, string | undefined>): string {
  if (typeof values.repo === "string" && values.repo !== "") return values.repo;
  if (env.DELTASHIP_REPO) return env.DELTASHIP_REPO;
  if (env.XDG_DATA_HOME) return `${env.XDG_DATA_HOME}/deltaship`;
  if (env.HOME) return `${env.HOME}/.local/share/deltaship`;
  throw new UsageError("no repository: pass --repo DIR or set DELTASHIP_REPO");
}

/** `-j/--jobs` and `DELTASHIP_JOBS`: layers processed at once. */
const JOBS_RANGE: SettingRange = { min: 1, max: 1024 };

/** How a command uses the repository. */
export interface RepoUse {
  /**
   * The command writes to it: a version-1 repository is upgraded first (a
   * command that only reads is refused one, with what to run).
   */
  write?: boolean;
  /** Whether a note on stderr reports the upgrade, if one ran (default true). */
  reportUpgrade?: boolean;
  /**
   * The command makes the repository when there is none (pull, apply-delta,
   * create-delta). Every other command fails with "no repository at DIR"
   * instead, so that a mistyped --repo creates nothing.
   */
  create?: boolean;
}

/** The one-line summary of an upgrade. */
export function describeUpgrade(u: UpgradeSummary): string {
  const dropped = u.dropped.length
    ? `; ${plural(u.dropped.length, "damaged layer")} dropped (deltaship fsck names the images that need ${
      u.dropped.length === 1 ? "it" : "them"
    })`
    : "";
  return `Upgraded the repository to format version 2 in ${u.seconds.toFixed(1)} s: ` +
    `${plural(u.layers, "layer record")} rewritten, ${plural(u.objects, "object")} (${formatBytes(u.bytes)}) ` +
    `renamed by fs-verity digest${u.verity ? ", fs-verity enabled on each" : ""}${dropped}`;
}

/** The one-line summary of the composefs images made again by the current rules (repo/composefs_upgrade.ts). */
export function describeComposefsUpgrade(u: ComposefsUpgrade): string {
  const failed = u.failed
    ? `; ${plural(u.failed, "image")} whose layers could not be read kept (see deltaship fsck)`
    : "";
  return `Made the composefs images of ${plural(u.images, "image")} by the current rules in ${
    u.seconds.toFixed(1)
  } s: ` +
    `${u.rebuilt} changed${failed}`;
}

/** Global settings and services for one CLI invocation. */
export class Context {
  readonly repoPath: string;
  readonly jobs: number;
  readonly json: boolean;
  readonly quiet: boolean;
  /** How progress is shown on stderr (`--progress`): live rows, a line per event, or not at all. */
  readonly progressKind: "live" | "plain" | "none";
  /** How commits are made durable (`DELTASHIP_SYNC`; default syncfs where available). */
  readonly sync: SyncMode | undefined;
  #repo: Repository | undefined;
  #progress: ProgressDisplay | undefined;
  /** What the upgrade of the repository did, when opening it ran one. */
  upgraded: UpgradeSummary | undefined;
  /** What making its composefs images by the current rules did, when opening it did that. */
  composefsUpgraded: ComposefsUpgrade | undefined;
  /** Undo actions for partial output, run if the command is interrupted. */
  readonly cleanups = new Cleanups();

  constructor(readonly io: CliIO, values: GlobalValues) {
    this.repoPath = defaultRepoPath(values, io.env);
    const jobs = typeof values.jobs === "string"
      ? parseSetting("--jobs", values.jobs, JOBS_RANGE)
      : envSetting(io.env, "DELTASHIP_JOBS", JOBS_RANGE, undefined);
    this.jobs = jobs ?? Math.min(JOBS_RANGE.max, navigator.hardwareConcurrency || 1);
    this.json = values.json === true;
    this.quiet = values.quiet === true;
    const mode = values.progress ?? "auto";
    if (!(PROGRESS_MODES as readonly string[]).includes(mode)) {
      throw new UsageError(`--progress must be auto, always, plain or never, got ${JSON.stringify(mode)}`);
    }
    const sync = io.env.DELTASHIP_SYNC;
    if (sync !== undefined && sync !== "" && sync !== "syncfs" && sync !== "fsync") {
      throw new UsageError(`DELTASHIP_SYNC must be syncfs or fsync, got ${JSON.stringify(sync)}`);
    }
    this.sync = sync === "syncfs" || sync === "fsync" ? sync : undefined;
    this.progressKind = progressKind(mode as ProgressMode, io.stderr.isTerminal, io.env, this.quiet || this.json);
  }

  /**
   * The repository, opened on first use (created only for `use.create`). A command that writes
   * says so (`use.write`): a version-1 repository is then upgraded in place,
   * with a progress line and a one-line note.
   */
  async repo(use: RepoUse = {}): Promise<Repository> {
    if (this.#repo) return this.#repo;
    const create = use.create === true;
    if (!use.write) return this.#repo = await Repository.open(this.repoPath, { sync: this.sync, create });
    const { repo, upgraded, composefs } = await openForWriting(this.repoPath, {
      sync: this.sync,
      create,
      progress: this.progress(),
    });
    this.#repo = repo;
    if (upgraded) {
      this.upgraded = upgraded;
      this.endProgress();
      if (use.reportUpgrade !== false) await this.note(describeUpgrade(upgraded));
    }
    if (composefs && composefs.rebuilt + composefs.failed > 0) {
      this.composefsUpgraded = composefs;
      this.endProgress();
      if (use.reportUpgrade !== false) await this.note(describeComposefsUpgrade(composefs));
    }
    return repo;
  }

  /** Releases the repository's temporary files. */
  async close(): Promise<void> {
    this.#progress?.end();
    await this.#repo?.close();
  }

  /** A progress sink: live rows, a line per event, or silence (see {@link progressKind}). */
  progress(): ProgressSink {
    if (this.progressKind === "none") return silentProgress;
    const write = (b: Uint8Array) => void this.io.stderr.write(b).catch(() => {});
    this.#progress ??= this.progressKind === "plain"
      ? new PlainProgress(write)
      : new TerminalProgress(write, this.io.stderr.columns);
    return this.#progress;
  }

  /** Ends the live display, if any. */
  endProgress(): void {
    this.#progress?.end();
    this.#progress = undefined;
  }

  /**
   * Writes text (a newline is added) to stdout. Control characters other than
   * newlines are escaped (`\xNN`): output often carries untrusted values
   * (media types, paths, registry messages) that must not drive the terminal.
   */
  async print(text: string): Promise<void> {
    const safe = escapeControl(text, { newlines: true });
    await this.io.stdout.write(encoder.encode(safe.endsWith("\n") ? safe : safe + "\n"));
  }

  /**
   * Writes a value as JSON to stdout. JSON.stringify escapes C0 controls
   * itself; DEL and C1 controls, which it leaves raw, are written as `\u00NN`
   * so the output is still valid JSON and safe on a terminal.
   */
  async printJson(value: unknown): Promise<void> {
    const json = JSON.stringify(value, null, 2).replace(
      /[\x7f-\x9f]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
    await this.io.stdout.write(encoder.encode(json + "\n"));
  }

  /**
   * Writes a note (one line of text, controls escaped as in {@link print}) to
   * stderr unless quiet; while progress is shown, through the display, so that
   * the note stays above its rows.
   */
  async note(text: string): Promise<void> {
    if (this.quiet) return;
    const line = escapeControl(text, { newlines: true });
    if (this.#progress) return this.#progress.log(line);
    await this.io.stderr.write(encoder.encode(line + "\n"));
  }
}
