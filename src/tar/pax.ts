/**
 * PAX extended headers: the records of an `x` or `g` header, and the numeric
 * values deltaship reads from them, parsed as strictly as Go's archive/tar.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { decodeName, isZeroBlock, latin1, quote } from "./header.ts";

const DIGITS = /^[0-9]+$/;
const PAX_TIME = /^-?[0-9]+(\.[0-9]+)?$/;
/** PAX keys whose values are strings of a header field, where a NUL cannot be. */
const PAX_STRINGS = new Set(["path", "linkpath", "uname", "gname"]);

/**
 * Parses PAX extended-header records (`"%d %s=%s\n"`), values kept as bytes. The
 * length is strictly decimal and must cover the record exactly; keys are
 * non-empty and NUL-free, as are the values of string fields. Trailing NUL
 * padding (which some writers leave) is allowed.
 */
export function parsePax(data: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let off = 0;
  const bad = (detail: string): never => {
    throw new FormatError(`PAX record at byte ${off}: ${detail}`);
  };
  while (off < data.length) {
    if (data[off] === 0) {
      if (!isZeroBlock(data.subarray(off))) bad("data after NUL padding");
      break;
    }
    const space = data.subarray(off, Math.min(data.length, off + 21)).indexOf(0x20);
    if (space < 0) bad("no length");
    const lenText = latin1.decode(data.subarray(off, off + space));
    if (!DIGITS.test(lenText) || lenText.length > 15) bad(`length ${quote(lenText)} is not a decimal number`);
    const len = Number(lenText);
    // The shortest record after the length and space is "k=\n".
    if (len < space + 4 || off + len > data.length) bad(`length ${len} does not fit the record`);
    if (data[off + len - 1] !== 0x0a) bad("no newline at its end");
    const rec = data.subarray(off + space + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) bad("no '='");
    if (eq === 0) bad("empty key");
    const keyBytes = rec.subarray(0, eq);
    if (keyBytes.includes(0)) bad("NUL in its key");
    const key = decodeName(keyBytes);
    const value = rec.subarray(eq + 1);
    if (PAX_STRINGS.has(key) && value.includes(0)) bad(`NUL in the value of ${key}`);
    out.set(key, value);
    off += len;
  }
  return out;
}

/**
 * A PAX decimal count (`size`, `uid`, `gid`): digits only (no sign, spaces, hex,
 * exponent or fraction), a safe integer. An empty value keeps the header's field.
 */
export function paxCount(pax: Map<string, Uint8Array>, key: string): number | undefined {
  const v = pax.get(key);
  if (v === undefined || v.length === 0) return undefined;
  const s = latin1.decode(v);
  if (!DIGITS.test(s)) throw new FormatError(`PAX ${key} ${quote(s)} is not a decimal number`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new FormatError(`PAX ${key} ${s} is out of range`);
  return n;
}

/** A PAX time (`mtime`, `atime`, `ctime`): `-?digits(.digits)?` seconds since the epoch. */
export function paxTime(pax: Map<string, Uint8Array>, key: string): number | undefined {
  const v = pax.get(key);
  if (v === undefined || v.length === 0) return undefined;
  const s = latin1.decode(v);
  if (!PAX_TIME.test(s)) throw new FormatError(`PAX ${key} ${quote(s)} is not a time in seconds`);
  const seconds = Number(s.split(".")[0]);
  if (!Number.isSafeInteger(seconds)) throw new FormatError(`PAX ${key} ${s} is out of range`);
  return Number(s);
}

/**
 * A PAX time with a fraction, exactly (a double cannot hold nanoseconds of
 * today's times): whole seconds rounded down and nanoseconds, digits past the
 * ninth dropped, as Go's archive/tar reads it. Undefined without a fraction.
 */
export function paxTimeExact(pax: Map<string, Uint8Array>, key: string): { sec: number; nsec: number } | undefined {
  if (paxTime(pax, key) === undefined) return undefined; // checks the value
  const s = latin1.decode(pax.get(key)!);
  const dot = s.indexOf(".");
  if (dot < 0) return undefined;
  const whole = Number(s.slice(0, dot));
  const nsec = Number(s.slice(dot + 1, dot + 10).padEnd(9, "0"));
  if (!s.startsWith("-") || nsec === 0) return { sec: whole, nsec };
  return { sec: whole - 1, nsec: 1_000_000_000 - nsec };
}
