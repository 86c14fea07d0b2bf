/**
 * Live progress on a terminal: one line per unit of work (bytes done of total,
 * rate), redrawn in place at most ten times a second on stderr.
 *
 * @module
 */
import type { ProgressSink } from "../util/progress.ts";
import { escapeControl } from "../util/text.ts";
import { formatBytes } from "./format.ts";

interface Unit {
  label: string;
  total: number;
  done: number;
  started: number;
  note?: string;
}

const encoder = new TextEncoder();

/** Renders progress lines with ANSI cursor movement. */
export class TerminalProgress implements ProgressSink {
  #units = new Map<string, Unit>();
  #drawn = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #started = performance.now();

  constructor(readonly write: (bytes: Uint8Array) => void, readonly columns = 100) {}

  start(id: string, label: string, total: number): void {
    this.#units.set(id, { label, total, done: 0, started: performance.now() });
    this.#schedule();
  }

  advance(id: string, bytes: number): void {
    const u = this.#units.get(id);
    if (u) u.done += bytes;
    this.#schedule();
  }

  finish(id: string, note = "done"): void {
    const u = this.#units.get(id);
    if (u) u.note = note;
    this.#schedule();
  }

  /** Draws the final state and a summary line, and stops redrawing. */
  end(summary?: string): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#units.size === 0 && !summary) return;
    this.#draw();
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
    const amount = u.total ? `${formatBytes(u.done)} / ${formatBytes(u.total)}` : formatBytes(u.done);
    const state = escapeControl(u.note ?? `${formatBytes(u.done / secs)}/s`);
    const text = `${escapeControl(u.label).padEnd(12)} ${escapeControl(id.slice(0, 19))}  ${
      amount.padEnd(22)
    } ${state}`;
    return text.slice(0, this.columns - 1);
  }

  #draw(): void {
    const lines = [...this.#units].map(([id, u]) => this.#line(u, id));
    let out = this.#drawn > 0 ? `\x1b[${this.#drawn}A` : "";
    for (const l of lines) out += `\r\x1b[2K${l}\n`;
    this.#drawn = lines.length;
    this.write(encoder.encode(out));
  }

  /** Seconds since the display was created. */
  get elapsed(): number {
    return (performance.now() - this.#started) / 1000;
  }
}
