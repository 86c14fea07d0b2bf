/**
 * Byte ranges of a registry blob (RFC 9110 14): the ranges wanted are merged
 * where they lie closer than a gap (one range costs a part header and, past a
 * few, a request: fetching a few hundred bytes between two ranges is cheaper),
 * sent at most {@link RangePolicy.perRequest} to a request, and the answer read
 * as it comes: a `multipart/byteranges` body (parsed here, bounded: the parts,
 * their headers, the boundary), or a single range (a server that answers one
 * range per request, such as one that serves only the first). Whatever part of
 * the wanted bytes an answer lacks is asked for again; a connection that drops
 * is resumed from the first byte not yet passed on. A 200 (the server ignores
 * `Range`) is {@link RangeUnsupportedError}: the caller fetches the whole blob.
 *
 * Pieces go out in ascending offset order, exactly the bytes asked for
 * (the merged gaps are dropped here).
 *
 * @module
 */
import { TransportError } from "../../errors.ts";
import { type Fetched, isRetryable } from "./client.ts";
import { failureText } from "./sanitize.ts";
import { envSetting } from "../../util/settings.ts";
import { concat } from "../../util/streams.ts";

/** A stretch of a blob: `length` bytes from `offset`. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** Bytes of a blob at `offset`. */
export interface RangePiece {
  offset: number;
  bytes: Uint8Array;
}

/** How ranges are requested. */
export interface RangePolicy {
  /** Ranges closer than this are fetched as one (the bytes between them dropped). */
  gap: number;
  /** Most ranges in one request. */
  perRequest: number;
}

/**
 * The default policy, measured with bench/partial_gap.ts (docs/pull.md): a
 * gap of 1 KiB (containers/storage's too) merges ranges whose gap costs less
 * than their part header; 128 ranges keep the Range header near 3 KiB, under
 * the 8 KiB line limit of common front ends.
 */
export const DEFAULT_RANGE_POLICY: RangePolicy = { gap: 1024, perRequest: 128 };

/**
 * The policy from the environment: `DELTASHIP_RANGE_GAP` (bytes, 0 to 16 MiB)
 * and `DELTASHIP_RANGES_PER_REQUEST` (1 to 1000), else the defaults.
 */
export function rangePolicySetting(env: Record<string, string | undefined>): RangePolicy {
  return {
    gap: envSetting(env, "DELTASHIP_RANGE_GAP", { min: 0, max: 16 << 20, unit: "bytes" }, DEFAULT_RANGE_POLICY.gap),
    perRequest: envSetting(
      env,
      "DELTASHIP_RANGES_PER_REQUEST",
      { min: 1, max: 1000 },
      DEFAULT_RANGE_POLICY.perRequest,
    ),
  };
}

/** What fetching ranges did, for reports and tests. */
export interface RangeStats {
  /** Requests sent (resumptions included). */
  requests: number;
  /** Body bytes received: the ranges, the merged gaps and multipart framing. */
  bytes: number;
  /** The server answered a multi-range request with a single range. */
  oneRangeAnswers: number;
}

/** The server answered a Range request with the whole blob (200): it does not do ranges. */
export class RangeUnsupportedError extends TransportError {
  override name = "RangeUnsupportedError";
}

/** Answers that may mean "too many ranges": asked again with half as many. */
export const TOO_MANY_RANGES = [400, 413, 416, 431];

/** Limits on a multipart answer. */
const LIMITS = {
  /** A boundary (RFC 2046 says at most 70). */
  boundary: 200,
  /** One part's header lines, in all; and the preamble before the first part. */
  partHeaders: 8 * 1024,
  preamble: 8 * 1024,
  /** Answers in a row that bring no wanted byte before the fetch is given up. */
  barren: 4,
};

/** Merges sorted ranges that lie within `gap` bytes of each other (touching ones always). */
export function coalesceRanges(ranges: readonly ByteRange[], gap: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && r.offset - (last.offset + last.length) <= gap) {
      last.length = Math.max(last.length, r.offset + r.length - last.offset);
    } else {
      out.push({ ...r });
    }
  }
  return out;
}

/** Body bytes the ranges cost once merged under `policy` (framing aside). */
export function rangeBytes(ranges: readonly ByteRange[], policy: RangePolicy = DEFAULT_RANGE_POLICY): number {
  return coalesceRanges(ranges, policy.gap).reduce((n, r) => n + r.length, 0);
}

/** What {@link fetchRanges} needs of the registry. */
export interface RangeSource {
  /** The blob in messages. */
  what: string;
  /** The blob's size (from its descriptor). */
  size: number;
  /** GETs the blob with this `Range` header value (`bytes=0-9,20-29`); 206 and 200 come back, and {@link TOO_MANY_RANGES}. */
  open(range: string): Promise<Fetched>;
  /** Tries for a request that brings nothing (connection failures). */
  attempts: number;
}

/**
 * The bytes of `wanted` (sorted, apart, inside the blob) as pieces in order.
 * Throws {@link RangeUnsupportedError} when the server sends the whole blob.
 */
export async function* fetchRanges(
  source: RangeSource,
  wanted: readonly ByteRange[],
  policy: RangePolicy = DEFAULT_RANGE_POLICY,
  stats?: RangeStats,
): AsyncGenerator<RangePiece> {
  for (let i = 0; i < wanted.length; i++) {
    const r = wanted[i];
    const prevEnd = i > 0 ? wanted[i - 1].offset + wanted[i - 1].length : 0;
    if (
      !Number.isSafeInteger(r.offset) || !Number.isSafeInteger(r.length) || r.length <= 0 || r.offset < prevEnd ||
      r.offset + r.length > source.size
    ) {
      throw new RangeError(`${source.what}: ranges must be sorted, apart and inside the blob`);
    }
  }
  // `todo` is the wanted bytes not passed on yet, from `cursor` in `todo[0]`.
  let todo = wanted.map((r) => ({ ...r }));
  let perRequest = Math.max(1, policy.perRequest);
  let barren = 0;
  let failures = 0;
  while (todo.length > 0) {
    const spans = coalesceRanges(todo, policy.gap).slice(0, perRequest);
    const header = `bytes=${spans.map((s) => `${s.offset}-${s.offset + s.length - 1}`).join(",")}`;
    const before = remaining(todo);
    let f: Fetched | undefined;
    try {
      f = await source.open(header);
      if (stats) stats.requests++;
      if (f.status === 200) {
        f.cancel();
        throw new RangeUnsupportedError(
          `${source.what}: the registry does not serve byte ranges (200 to a Range request)`,
        );
      }
      if (f.status !== 206) {
        f.cancel();
        if (TOO_MANY_RANGES.includes(f.status) && spans.length > 1) {
          // A request line or header too long for it: fewer ranges a request (as containers/storage does).
          perRequest = Math.max(1, spans.length >> 1);
          continue;
        }
        throw new TransportError(`${source.what}: HTTP ${f.status} to a Range request`);
      }
      const body = new BodyReader(f, stats);
      const parts = partsOf(f, body, spans.length, source);
      let count = 0;
      for await (const part of parts) {
        count++;
        for await (const piece of take(todo, part, source.what)) yield piece;
        todo = todo.filter((r) => r.length > 0);
      }
      if (spans.length > 1 && count === 1) {
        if (stats) stats.oneRangeAnswers++;
        perRequest = 1; // it answers one range a request: ask for one at a time
      }
      failures = 0;
    } catch (e) {
      f?.cancel();
      if (!isRetryable(e)) throw e;
      if (++failures >= source.attempts) {
        throw new TransportError(`${source.what}: range download failed: ${failureText(e)}`);
      }
      continue;
    }
    if (remaining(todo) === before) {
      if (++barren >= LIMITS.barren) {
        throw new TransportError(`${source.what}: the registry's answers to Range requests miss the bytes asked for`);
      }
    } else {
      barren = 0;
    }
  }
}

function remaining(todo: readonly ByteRange[]): number {
  return todo.reduce((n, r) => n + r.length, 0);
}

/** One part of an answer: its place in the blob and a reader of exactly its bytes. */
interface Part {
  offset: number;
  length: number;
  body: BodyReader;
}

/**
 * Passes on the bytes of `part` that `todo` wants next (in order), shrinking
 * `todo` as it goes; bytes before the first one wanted, or past a hole (wanted
 * bytes the part lacks), are read and dropped: what is missing is asked for again.
 */
async function* take(todo: ByteRange[], part: Part, what: string): AsyncGenerator<RangePiece> {
  let at = part.offset;
  const end = part.offset + part.length;
  for (const chunk of part.body.exactly(part.length, what)) {
    let bytes = await chunk;
    while (bytes.length > 0) {
      const r = todo.find((t) => t.length > 0);
      if (!r || at > r.offset) {
        // nothing more wanted, or a hole before `at`: the rest is asked for again
        at += bytes.length;
        break;
      }
      if (at < r.offset) {
        const skip = Math.min(r.offset - at, bytes.length);
        at += skip;
        bytes = bytes.subarray(skip);
        continue;
      }
      const n = Math.min(bytes.length, r.length);
      yield { offset: at, bytes: bytes.subarray(0, n) };
      r.offset += n;
      r.length -= n;
      at += n;
      bytes = bytes.subarray(n);
    }
  }
  if (at !== end) throw new TransportError(`${what}: a range part ended early`);
}

/** The parts of a 206 answer: one (Content-Range) or several (multipart/byteranges). */
async function* partsOf(f: Fetched, body: BodyReader, asked: number, source: RangeSource): AsyncGenerator<Part> {
  const type = f.headers.get("content-type") ?? "";
  const m = /^\s*multipart\/byteranges\s*;(.*)$/i.exec(type);
  if (!m) {
    const range = contentRange(f.headers.get("content-range"), source);
    yield { ...range, body };
    return;
  }
  const b = /(?:^|;)\s*boundary\s*=\s*(?:"([^"]{1,200})"|([^;\s]{1,200}))/i.exec(m[1]);
  const boundary = b?.[1] ?? b?.[2];
  if (!boundary || boundary.length > LIMITS.boundary) {
    throw new TransportError(`${source.what}: a multipart/byteranges answer without a usable boundary`);
  }
  const delimiter = new TextEncoder().encode(`--${boundary}`);
  // The preamble, up to the first delimiter.
  await body.skipPast(delimiter, LIMITS.preamble, source.what);
  for (let n = 0;; n++) {
    // After a delimiter: "--" ends the body, else the rest of the line, then the part's headers.
    const after = await body.line(LIMITS.partHeaders, source.what);
    if (after.startsWith("--")) return;
    if (after.trim() !== "") throw new TransportError(`${source.what}: a malformed multipart delimiter line`);
    if (n >= asked) throw new TransportError(`${source.what}: more parts than the ${asked} ranges asked for`);
    let headerBytes = 0;
    let range: { offset: number; length: number } | undefined;
    for (;;) {
      const line = await body.line(LIMITS.partHeaders - headerBytes, source.what);
      headerBytes += line.length + 2;
      if (line === "") break;
      const h = /^content-range\s*:\s*(.*)$/i.exec(line);
      if (h) range = contentRange(h[1], source);
    }
    if (!range) throw new TransportError(`${source.what}: a multipart part without Content-Range`);
    yield { ...range, body };
    // The part's bytes were read by its consumer: CRLF and the delimiter follow.
    const tail = await body.line(LIMITS.partHeaders, source.what);
    if (tail !== "") throw new TransportError(`${source.what}: a multipart part longer than its Content-Range`);
    await body.expect(delimiter, source.what);
  }
}

function contentRange(value: string | null, source: RangeSource): { offset: number; length: number } {
  const m = /^\s*bytes\s+(\d{1,15})-(\d{1,15})\/(\d{1,15}|\*)\s*$/i.exec(value ?? "");
  const first = Number(m?.[1]);
  const last = Number(m?.[2]);
  if (!m || last < first || last >= source.size || (m[3] !== "*" && Number(m[3]) !== source.size)) {
    throw new TransportError(
      `${source.what}: a range answer with Content-Range ${JSON.stringify((value ?? "").slice(0, 80))}`,
    );
  }
  return { offset: first, length: last - first + 1 };
}

/** A response body read in pieces, lines or exact lengths, counting what arrives. */
class BodyReader {
  #buf: Uint8Array = new Uint8Array(0);

  constructor(readonly f: Fetched, readonly stats?: RangeStats) {}

  async #more(what: string): Promise<void> {
    const r = await this.f.read();
    if (r.done) throw new TransportError(`${what}: the range answer ended early`);
    if (this.stats) this.stats.bytes += r.value.length;
    this.#buf = this.#buf.length === 0 ? r.value : concat([this.#buf, r.value]);
  }

  /** A line ending in CRLF (or LF), without it; at most `max` bytes. */
  async line(max: number, what: string): Promise<string> {
    for (;;) {
      const nl = this.#buf.indexOf(0x0a);
      if (nl > max) throw new TransportError(`${what}: a multipart header line over the limit`);
      if (nl >= 0) {
        const end = nl > 0 && this.#buf[nl - 1] === 0x0d ? nl - 1 : nl;
        const text = latin1.decode(this.#buf.subarray(0, end));
        this.#buf = this.#buf.subarray(nl + 1);
        return text;
      }
      if (this.#buf.length > max) throw new TransportError(`${what}: a multipart header line over the limit`);
      await this.#more(what);
    }
  }

  /** Reads up to and past `delimiter`, which must come within `max` bytes. */
  async skipPast(delimiter: Uint8Array, max: number, what: string): Promise<void> {
    for (;;) {
      const at = indexOf(this.#buf, delimiter);
      if (at >= 0) {
        this.#buf = this.#buf.subarray(at + delimiter.length);
        return;
      }
      if (this.#buf.length > max + delimiter.length) {
        throw new TransportError(`${what}: no multipart boundary where one was due`);
      }
      await this.#more(what);
    }
  }

  /** Reads `bytes`, which must come next. */
  async expect(bytes: Uint8Array, what: string): Promise<void> {
    while (this.#buf.length < bytes.length) await this.#more(what);
    if (!bytes.every((b, i) => this.#buf[i] === b)) {
      throw new TransportError(`${what}: a multipart part not followed by its boundary`);
    }
    this.#buf = this.#buf.subarray(bytes.length);
  }

  /** Exactly `n` bytes, as promises of pieces (each awaited before the next is asked for). */
  *exactly(n: number, what: string): Generator<Promise<Uint8Array>> {
    let left = n;
    while (left > 0) {
      const next = (async () => {
        if (this.#buf.length === 0) await this.#more(what);
        const k = Math.min(left, this.#buf.length);
        const out = this.#buf.subarray(0, k);
        this.#buf = this.#buf.subarray(k);
        left -= k;
        return out;
      })();
      yield next;
    }
  }
}

const latin1 = new TextDecoder("latin1");

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
