/**
 * Making untrusted text safe and short enough to print on a terminal: control
 * characters escaped (so a registry's error body or a manifest's media type
 * cannot set the window title or clear the screen), and over-long paths and
 * lines shortened in the middle (so a 5,000-character symlink target does not
 * fill the screen).
 *
 * @module
 */

/** C0 controls, DEL and C1 controls: the characters a terminal may act on. */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f]/g;
/** The same, newline excepted. */
// deno-lint-ignore no-control-regex
const CONTROL_BUT_NEWLINE = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/g;

/** Options of {@link escapeControl}. */
export interface EscapeOptions {
  /** Keep `\n` as it is (for text the caller means to span lines). Default: escape it too. */
  newlines?: boolean;
}

/**
 * Replaces every C0 control character (U+0000-U+001F), DEL (U+007F) and C1
 * control (U+0080-U+009F) in `text` by `\xNN` (two lowercase hex digits), so it
 * can be printed without the terminal acting on it. Everything else is kept.
 */
export function escapeControl(text: string, options: EscapeOptions = {}): string {
  return text.replace(
    options.newlines ? CONTROL_BUT_NEWLINE : CONTROL,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/**
 * Escapes raw bytes for display: printable ASCII kept, everything else (and
 * `\`) as `\xNN`. For showing the start of a file that should have been text.
 */
export function escapeBytes(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`;
  }
  return out;
}

/** The characters of `s` as display units: an escape `\xNN` counts as one, so it is never cut in two. */
function units(s: string): string[] {
  return s.match(/\\x[0-9a-f]{2}|[\s\S]/gu) ?? [];
}

/**
 * `text` with its middle replaced by `…` when it is longer than `max`
 * characters: the first and last parts kept (an escape `\xNN` is never split).
 */
export function ellipsize(text: string, max: number): string {
  const u = units(text);
  if (u.length <= max) return text;
  const keep = Math.max(max - 1, 2);
  const head = Math.ceil(keep / 2);
  return u.slice(0, head).join("") + "…" + u.slice(u.length - (keep - head)).join("");
}

/** Longest word (a path, a string) an error line keeps whole. */
const MAX_WORD = 121;
/** Longest error line: room for our longest messages (four digests and two paths), not for a flood. */
const MAX_LINE = 800;

/**
 * Makes one line of untrusted text fit for a terminal: newlines turned into
 * spaces, other controls escaped, every word longer than {@link MAX_WORD} characters
 * shortened in the middle (keeping its first and last 60), and the whole line
 * capped at {@link MAX_LINE} characters.
 */
export function displayLine(text: string): string {
  const short = escapeControl(text.replaceAll("\n", " ")).replace(/\S{122,}/g, (word) => ellipsize(word, MAX_WORD));
  return ellipsize(short, MAX_LINE);
}
