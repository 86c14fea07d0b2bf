/**
 * How progress is shown on stderr: live on a terminal (one row per unit of
 * work, redrawn in place at most ten times a second), or plain for logs (one
 * line per event, no cursor movement).
 *
 * The live display owns the rows it drew last and nothing else: it moves the
 * cursor up over exactly those rows, and any other line written while it is
 * active (a note, a warning) goes through {@link ProgressDisplay.log}, which
 * puts the line above the rows and draws them again below it. Rows keep the
 * order their units were first announced or started in.
 *
 * @module
 */
import type { ProgressSink } from "../util/progress.ts";
import { escapeControl } from "../util/text.ts";
import { formatBytes } from "./format.ts";

/** How `--progress` shows progress. */
export type ProgressMode = "auto" | "always" | "plain" | "never";

/** The values `--progress` takes. */
export const PROGRESS_MODES: readonly ProgressMode[] = ["auto", "always", "plain", "never"];

/** A progress display: a sink that can also print a line of its own and be ended. */
export interface ProgressDisplay extends ProgressSink {
  /** Writes `line` (already escaped) without disturbing the display. */
  log(line: string): void;
  /** Draws the final state and a summary line, and stops redrawing. */
  end(summary?: string): void;
}

/**
 * The display `mode` gives on a stderr that is or is not a terminal: live,
 * plain or none. `auto` is live on a terminal, plain when stderr is not one but
 * `CI` is set (a CI log), else none; quiet and JSON output turn `auto` off.
 */
export function progressKind(
  mode: ProgressMode,
  stderrIsTerminal: boolean,
  env: Record<string, string | undefined>,
  quiet: boolean,
): "live" | "plain" | "none" {
  if (mode === "always") return "live";
  if (mode === "plain") return "plain";
  if (mode === "never" || quiet) return "none";
  if (stderrIsTerminal) return "live";
  const ci = env.CI;
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false" ? "plain" : "none";
}

interface Unit {
  label: string;
  total: number;
  done: number;
  started: number;
  /** Not started yet (announced by `queue`). */
  waiting: boolean;
  note?: string;
}

const encoder = new TextEncoder();

/** The amount column of a unit: `done / total`, or `done` when the total is unknown. */
function amount(u: Unit): string {
  return u.total ? `${formatBytes(u.done)} / ${formatBytes(u.total)}` : formatBytes(u.done);
}

/** Renders progress rows with ANSI cursor movement (for a terminal `columns` wide). */
export class TerminalProgress implements ProgressDisplay {
  #units = new Map<string, Unit>();
  #drawn = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #started = performance.now();

  constructor(readonly write: (bytes: Uint8Array) => void, readonly columns = 100) {}

  queue(id: string, label: string, total: number): void {
    if (this.#units.has(id)) return;
    this.#units.set(id, { label, total, done: 0, started: performance.now(), waiting: true });
    this.#schedule();
  }

  start(id: string, label: string, total: number): void {
    // Map.set on a known id keeps its place: a queued unit starts in its row.
    this.#units.set(id, { label, total, done: 0, started: performance.now(), waiting: false });
    this.#schedule();
  }

  advance(id: string, bytes: number): void {
    const u = this.#units.get(id);
    if (u) u.done += bytes;
    this.#schedule();
  }

  finish(id: string, note = "done"): void {
    const u = this.#units.get(id);
    if (u) {
      u.note = note;
      u.waiting = false;
    }
    this.#schedule();
  }

  log(line: string): void {
    // Clear the rows, write the line where they began, and draw them again under it.
    this.write(encoder.encode(`${this.#up()}\r\x1b[J${line}\n`));
    this.#drawn = 0;
    this.#draw();
  }

  end(summary?: string): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#units.size === 0 && !summary) return;
    this.#draw();
    this.#units.clear();
    this.#drawn = 0;
    if (summary) this.write(encoder.encode(`${escapeControl(summary)}\n`));
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.#draw();
    }, 100);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  #line(u: Unit, id: string): string {
    const secs = Math.max(0.001, (performance.now() - u.started) / 1000);
    const state = escapeControl(u.note ?? (u.waiting ? "waiting" : `${formatBytes(u.done / secs)}/s`));
    const text = `${escapeControl(u.label).padEnd(12)} ${escapeControl(id.slice(0, 19))}  ${
      amount(u).padEnd(22)
    } ${state}`;
    // Shorter than the terminal, so no row wraps and moving up over #drawn rows reaches the first.
    return text.slice(0, Math.max(1, this.columns - 1));
  }

  /** The sequence moving the cursor to the start of the first row drawn (none when nothing is). */
  #up(): string {
    return this.#drawn > 0 ? `\x1b[${this.#drawn}A` : "";
  }

  #draw(): void {
    if (this.#units.size === 0 && this.#drawn === 0) return;
    const lines = [...this.#units].map(([id, u]) => this.#line(u, id));
    let out = this.#up();
    for (const l of lines) out += `\r\x1b[2K${l}\n`;
    this.#drawn = lines.length;
    this.write(encoder.encode(out));
  }

  /** Seconds since the display was created. */
  get elapsed(): number {
    return (performance.now() - this.#started) / 1000;
  }
}

/**
 * Progress for logs: a line when a unit starts and one when it finishes (with
 * its bytes and time), nothing in between, no control sequences.
 */
export class PlainProgress implements ProgressDisplay {
  #units = new Map<string, Unit>();

  constructor(readonly write: (bytes: Uint8Array) => void) {}

  start(id: string, label: string, total: number): void {
    const u: Unit = { label, total, done: 0, started: performance.now(), waiting: false };
    this.#units.set(id, u);
    this.#emit(u, id, total ? `started (${formatBytes(total)})` : "started");
  }

  advance(id: string, bytes: number): void {
    const u = this.#units.get(id);
    if (u) u.done += bytes;
  }

  finish(id: string, note = "done"): void {
    const u = this.#units.get(id);
    if (!u) return;
    this.#units.delete(id);
    const secs = (performance.now() - u.started) / 1000;
    this.#emit(u, id, `${note}: ${amount(u)} in ${secs.toFixed(1)} s`);
  }

  log(line: string): void {
    this.write(encoder.encode(`${line}\n`));
  }

  end(summary?: string): void {
    this.#units.clear();
    if (summary) this.write(encoder.encode(`${escapeControl(summary)}\n`));
  }

  #emit(u: Unit, id: string, what: string): void {
    this.write(encoder.encode(`${escapeControl(u.label)} ${escapeControl(id.slice(0, 19))}: ${escapeControl(what)}\n`));
  }
}
