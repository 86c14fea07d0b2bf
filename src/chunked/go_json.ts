/**
 * JSON text as containers/storage writes it (Go's `encoding/json`, and
 * json-iterator configured compatibly): strings with `<`, `>`, `&`, U+2028 and
 * U+2029 escaped and each byte of invalid UTF-8 replaced by U+FFFD, `[]byte`
 * as standard base64, times as RFC 3339 with nanoseconds. Readers do not need
 * the same bytes, but a TOC that is what containers/storage would write for the
 * same layer (up to the zstd frames themselves) is the least surprising one.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { UnsupportedError } from "../errors.ts";

const HEX = "0123456789abcdef";
const utf8 = new TextEncoder();

/** Escapes one code point below 0x80 as Go does, or returns undefined when it stands as it is. */
function escapeAscii(c: number): string | undefined {
  switch (c) {
    case 0x22:
      return '\\"';
    case 0x5c:
      return "\\\\";
    case 0x0a:
      return "\\n";
    case 0x0d:
      return "\\r";
    case 0x09:
      return "\\t";
    case 0x3c:
    case 0x3e:
    case 0x26:
      return `\\u00${HEX[c >> 4]}${HEX[c & 15]}`;
  }
  return c < 0x20 ? `\\u00${HEX[c >> 4]}${HEX[c & 15]}` : undefined;
}

/** Needs no escaping at all: printable ASCII other than `"`, `\`, `<`, `>`, `&`. */
const PLAIN = /^[\x20\x21\x23-\x25\x27-\x3b\x3d\x3f-\x5b\x5d-\x7e]*$/;

/** A JSON string literal of `s` (a JavaScript string: always valid Unicode, lone surrogates aside). */
export function goString(s: string): string {
  if (PLAIN.test(s)) return `"${s}"`;
  return goBytesString(utf8.encode(s));
}

/**
 * A JSON string literal of raw bytes, as Go writes a `string` holding them:
 * valid UTF-8 as it is (escaped where Go escapes), every byte that does not
 * start a valid sequence (overlong, surrogate, past U+10FFFF, cut short) as
 * `\ufffd`.
 */
export function goBytesString(b: Uint8Array): string {
  let out = '"';
  let run = 0; // start of the current stretch of bytes that stand as they are
  const flush = (end: number) => {
    if (end > run) out += Buffer.from(b.buffer, b.byteOffset + run, end - run).toString("utf8");
  };
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    if (c < 0x80) {
      const e = escapeAscii(c);
      if (e !== undefined) {
        flush(i);
        out += e;
        run = i + 1;
      }
      i++;
      continue;
    }
    const n = validSequence(b, i);
    if (n === 0) {
      flush(i);
      out += "\\ufffd";
      i++;
      run = i;
      continue;
    }
    if (n === 3 && b[i] === 0xe2 && b[i + 1] === 0x80 && (b[i + 2] === 0xa8 || b[i + 2] === 0xa9)) {
      flush(i);
      out += b[i + 2] === 0xa8 ? "\\u2028" : "\\u2029";
      run = i + 3;
    }
    i += n;
  }
  flush(b.length);
  return out + '"';
}

/** Length of the valid UTF-8 sequence starting at `i` (a byte >= 0x80), or 0 (Go's `utf8.DecodeRune` rules). */
function validSequence(b: Uint8Array, i: number): number {
  const c = b[i];
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** True when `b` is valid UTF-8 (Go's `utf8.Valid`). */
export function isValidUtf8(b: Uint8Array): boolean {
  for (let i = 0; i < b.length;) {
    if (b[i] < 0x80) {
      i++;
      continue;
    }
    const n = validSequence(b, i);
    if (n === 0) return false;
    i += n;
  }
  return true;
}

/** Bytes as a JSON string of their standard base64 (Go's `[]byte`). */
export function goBase64(b: Uint8Array): string {
  return `"${Buffer.from(b.buffer, b.byteOffset, b.length).toString("base64")}"`;
}

/** A point in time as seconds since the epoch and nanoseconds (0 to 999,999,999). */
export interface GoTime {
  seconds: number;
  nanos: number;
}

/**
 * A time as Go's `time.Time.MarshalJSON` writes it, in UTC: RFC 3339 with the
 * fraction's trailing zeros dropped. Go refuses years outside 0 to 9999, and so
 * does this (`what` names the time in the error).
 */
export function goTime(t: GoTime, what: string): string {
  const date = new Date(t.seconds * 1000);
  const year = date.getUTCFullYear();
  if (!Number.isFinite(date.getTime()) || year < 0 || year > 9999) {
    throw new UnsupportedError(`${what} is outside the years 0 to 9999, which a zstd:chunked TOC cannot hold`);
  }
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ for these years
  const fraction = t.nanos === 0 ? "" : `.${String(t.nanos).padStart(9, "0").replace(/0+$/, "")}`;
  return `"${iso.slice(0, 19)}${fraction}Z"`;
}
