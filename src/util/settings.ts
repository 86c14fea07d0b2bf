/**
 * Numeric settings, from options and environment variables alike: one parser,
 * one range per setting, one line refusing anything outside it. A number from
 * outside that reaches a timer, an allocation or a thread count unchecked fails
 * far from where it was given (a Node `TimeoutOverflowWarning` and an instant
 * timeout, "Array buffer allocation failed"); here it fails at once, naming the
 * setting and its range.
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";

/**
 * How a setting's values are written: `count` (a plain decimal integer),
 * `bytes` (a size: decimal bytes, or with `KiB`, `MiB`, `GiB` or `TiB`, a
 * fraction allowed: `1.5GiB`), `MiB` (a whole number of MiB, returned as
 * given), `ms` (a whole number of milliseconds).
 */
export type SettingUnit = "count" | "bytes" | "MiB" | "ms";

/** The values a setting takes: `min` to `max` inclusive, in its unit (bytes for a size). */
export interface SettingRange {
  min: number;
  max: number;
  /** Default `count`. */
  unit?: SettingUnit;
}

const SIZE_UNITS: Record<string, number> = { "": 1, B: 1, KiB: 2 ** 10, MiB: 2 ** 20, GiB: 2 ** 30, TiB: 2 ** 40 };

/** A byte count as the range text shows it: `1 byte`, `1 KiB`, `64 GiB`, `1500 bytes`. */
function sizeText(n: number): string {
  for (const unit of ["TiB", "GiB", "MiB", "KiB"]) {
    if (n >= SIZE_UNITS[unit] && n % SIZE_UNITS[unit] === 0) return `${n / SIZE_UNITS[unit]} ${unit}`;
  }
  return n === 1 ? "1 byte" : `${n} bytes`;
}

/** What a setting must be, as its refusal and docs/cli.md say it: `an integer from 0 to 19`. */
export function describeRange(range: SettingRange): string {
  const { min, max } = range;
  switch (range.unit ?? "count") {
    case "bytes":
      return `a size in bytes or with KiB, MiB, GiB or TiB, from ${sizeText(min)} to ${sizeText(max)}`;
    case "MiB":
      return `a whole number of MiB from ${min} to ${max}`;
    case "ms":
      return `a whole number of milliseconds from ${min} to ${max}`;
    default:
      return `an integer from ${min} to ${max}`;
  }
}

/**
 * The value of setting `name` (an option such as `--jobs`, or an environment
 * variable) written as `text`, which must be in `range`: decimal digits only
 * (no sign, exponent, hex or spaces around), and for a size an optional unit.
 * Anything else is an InvalidArgumentError (exit status 2) naming the setting
 * and its range.
 */
export function parseSetting(name: string, text: string, range: SettingRange): number {
  let n = NaN;
  if ((range.unit ?? "count") === "bytes") {
    const m = /^([0-9]+(?:\.[0-9]+)?) ?([A-Za-z]*)$/.exec(text);
    const scale = m ? SIZE_UNITS[m[2]] : undefined;
    if (m && scale) n = Math.floor(Number(m[1]) * scale);
  } else if (/^[0-9]+$/.test(text)) {
    n = Number(text);
  }
  if (!Number.isSafeInteger(n) || n < range.min || n > range.max) {
    throw new InvalidArgumentError(`${name} must be ${describeRange(range)}, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** Setting `name` from the environment `env`: `fallback` when it is unset or empty. */
export function envSetting<T extends number | undefined>(
  env: Record<string, string | undefined>,
  name: string,
  range: SettingRange,
  fallback: T,
): number | T {
  const text = env[name];
  return text === undefined || text === "" ? fallback : parseSetting(name, text, range);
}
