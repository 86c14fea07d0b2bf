/**
 * The rebuild half of a partial pull (partial_layers.ts plans it): the
 * planned frames fetched into the repository's temporary area, the layer's
 * tar made from them and from what the repository holds (through the
 * tar-split, or frame by frame without one), and stored through
 * `storeLayerTar` against the layer's diff_id.
 *
 * @module
 */
import { DeltashipError, DigestMismatchError, FormatError } from "../errors.ts";
import { type FileFetch, type PartialContents, partialTar } from "../chunked/partial_tar.ts";
import { readTarSplit } from "../chunked/tar_split.ts";
import type { TocEntry } from "../chunked/toc_reader.ts";
import { decompressor } from "../compression/stages.ts";
import type { ContentChunk, ContentObject } from "../repo/content_index.ts";
import { objectChunks, openObject, readObject } from "../repo/layer_reader.ts";
import { type LayerLimits, storeLayerTar } from "../repo/layer_writer.ts";
import type { Repository } from "../repo/repository.ts";
import type { RangeStats } from "../transport/docker/byte_ranges.ts";
import type { ImageSource } from "../transport/source.ts";
import { type Digest, Hasher } from "../util/digest.ts";
import { writeAll } from "../util/fs.ts";
import type { OnBytes } from "../util/progress.ts";
import type { PartialLayer } from "./partial_layers.ts";

/** What a partial pull of one layer fetched. */
export interface PartialOutcome {
  /** Body bytes received for the frames. */
  frameBytes: number;
  requests: number;
}

/**
 * Pulls one planned layer: its frames fetched into the temporary area, the
 * layer rebuilt from them, the tar-split and the reused objects, and stored
 * under its diff_id. `onBytes` counts bytes received.
 */
export async function pullPartialLayer(
  repo: Repository,
  source: ImageSource,
  p: PartialLayer,
  limits: LayerLimits,
  onBytes?: OnBytes,
): Promise<PartialOutcome> {
  const { desc, diffId } = p.layer;
  const what = `layer ${desc.digest}`;
  const stats: RangeStats = { requests: 0, bytes: 0, oneRangeAnswers: 0 };
  const path = repo.tempPath();
  const file = await Deno.open(path, { read: true, write: true, createNew: true });
  try {
    let received = 0;
    for await (const piece of source.blobRanges!(desc, p.plan.spans, stats)) {
      await file.seek(piece.offset, Deno.SeekMode.Start);
      await writeAll(file, piece.bytes);
      const n = stats.bytes - received;
      received = stats.bytes;
      if (n > 0) onBytes?.(n);
    }
    const fetched = new Map<Digest, FileFetch>(p.plan.fetch.map((f) => [f.entry.digest!, f]));
    const ahead = new ReadAhead(repo, p);
    const contents: PartialContents = {
      content: (e) => {
        const o = p.objects.get(e.digest!);
        if (o && o.size === e.size) return ahead.read(e, o);
        const from = fetched.get(e.digest!);
        if (!from) throw new FormatError(`${what}: no content planned for ${JSON.stringify(e.path.slice(0, 200))}`);
        return fileContent(repo, file, from, p.chunks, e, what);
      },
    };
    if (p.tarSplit) {
      const items = readTarSplit(p.tarSplit.bytes, p.tarSplit, what);
      await storeLayerTar(repo, partialTar(p.toc, items, contents, what), diffId, `${what} (partial)`, limits);
    } else {
      // The old writers' quirk (docs/design.md): their streams may lack the tar's last zero blocks.
      const tar = streamTar(repo, file, p, ahead, what);
      await storeLayerTar(repo, tar, diffId, `${what} (partial)`, { ...limits, missingZeros: () => MISSING_ZEROS });
    }
    return { frameBytes: stats.bytes, requests: stats.requests };
  } finally {
    file.close();
    await Deno.remove(path).catch(() => {});
  }
}

/** Small objects read ahead of the rebuild: at most this many at once. */
const READ_AHEAD = 32;
/** Objects up to this size are read ahead whole; larger ones stream when their turn comes. */
const READ_AHEAD_SIZE = 256 * 1024;

/**
 * Reads the small reused objects of a layer ahead of the rebuild, in the
 * order the tar wants them (the TOC's), a few at once: the rebuild of a layer
 * of many small files otherwise waits on one open and read after another.
 */
class ReadAhead {
  /** The small reused contents, in tar order. */
  readonly #order: { entry: TocEntry; object: ContentObject }[] = [];
  readonly #pending = new Map<TocEntry, Promise<Uint8Array>>();
  #next = 0;

  constructor(readonly repo: Repository, p: PartialLayer) {
    for (const e of p.toc.entries) {
      const o = e.digest ? p.objects.get(e.digest) : undefined;
      if (e.type === "reg" && o && o.size === e.size && o.size <= READ_AHEAD_SIZE) {
        this.#order.push({ entry: e, object: o });
      }
    }
  }

  /** The content of `e`, held in object `o`. */
  async *read(e: TocEntry, o: ContentObject): AsyncGenerator<Uint8Array> {
    if (o.size > READ_AHEAD_SIZE) {
      yield* objectChunks(this.repo, o.hex, o.size);
      return;
    }
    this.#fill();
    const pending = this.#pending.get(e);
    this.#pending.delete(e);
    yield await (pending ?? readObject(this.repo, o.hex, new Uint8Array(o.size)));
    this.#fill();
  }

  #fill(): void {
    while (this.#pending.size < READ_AHEAD && this.#next < this.#order.length) {
      const { entry, object } = this.#order[this.#next++];
      const p = readObject(this.repo, object.hex, new Uint8Array(object.size));
      p.catch(() => {}); // reported when its turn comes
      this.#pending.set(entry, p);
    }
  }
}

/** Pieces read at once from the fetched frames. */
const READ = 256 * 1024;

/**
 * The content of `e` from the frames of `from` (the same content, planned
 * once): holes made, chunks read from objects, the rest decompressed from the
 * fetched frames in `file`; checked against the TOC's SHA-256 (a digest that
 * lies fails here, naming the file).
 */
async function* fileContent(
  repo: Repository,
  file: Deno.FsFile,
  from: FileFetch,
  chunks: Map<Digest, ContentChunk>,
  e: TocEntry,
  what: string,
): AsyncGenerator<Uint8Array> {
  const name = JSON.stringify(e.path.slice(0, 200));
  const hasher = new Hasher();
  let n = 0;
  const frames = from.entry.frames!;
  const pass = function* (piece: Uint8Array) {
    n += piece.length;
    if (n > e.size) throw new FormatError(`${what}: ${name}: frames give more than its ${e.size} bytes`);
    hasher.update(piece);
    yield piece;
  };
  for (let i = 0; i < frames.length;) {
    const kind = from.frames[i];
    let j = i + 1;
    while (j < frames.length && from.frames[j] === kind) j++;
    const run = frames.slice(i, j);
    const size = run.reduce((a, f) => a + f.size, 0);
    const before = n;
    if (kind === "zeros") {
      for (const piece of zeros(size)) yield* pass(piece);
    } else if (kind === "chunk") {
      for (const f of run) {
        const c = chunks.get(f.digest)!;
        for await (const piece of objectRange(repo, c, what)) yield* pass(piece);
      }
    } else {
      const start = run[0].offset;
      const length = run[run.length - 1].end - start;
      try {
        const stream = ReadableStream.from(fileRegion(file, start, length, what)).pipeThrough(decompressor("zstd"));
        for await (const piece of stream) yield* pass(piece);
      } catch (err) {
        if (err instanceof DeltashipError) throw err;
        throw new FormatError(`${what}: ${name}: bad frames (${(err as Error).message})`);
      }
    }
    if (n - before !== size) {
      throw new FormatError(`${what}: ${name}: frames ${i}-${j - 1} give ${n - before} bytes, not ${size}`);
    }
    i = j;
  }
  const actual = hasher.digest();
  if (n !== e.size || actual !== e.digest) {
    throw new DigestMismatchError(`${what}: content of ${name} (TOC)`, e.digest!, actual);
  }
}

/** Most zero bytes a layer of an old writer (no tar-split) may lack at its end, as layer_import.ts allows. */
const MISSING_ZEROS = 10240;

/**
 * The tar of a layer without tar-split: its content's frames in order
 * (`p.stream`), fetched ones decompressed from `file`, files and chunks at
 * hand read from their objects, holes made. Only the diff_id checks it.
 */
async function* streamTar(
  repo: Repository,
  file: Deno.FsFile,
  p: PartialLayer,
  ahead: ReadAhead,
  what: string,
): AsyncGenerator<Uint8Array> {
  for (const piece of p.stream!) {
    if (piece.kind === "fetch") {
      try {
        const region = ReadableStream.from(fileRegion(file, piece.offset, piece.length, what));
        yield* region.pipeThrough(decompressor("zstd"));
      } catch (err) {
        if (err instanceof DeltashipError) throw err;
        throw new FormatError(
          `${what}: bad frames at ${piece.offset}-${piece.offset + piece.length} (${(err as Error).message})`,
        );
      }
    } else if (piece.kind === "file") {
      const o = p.objects.get(piece.entry.digest!)!;
      if (o.size !== piece.entry.size) {
        throw new FormatError(`${what}: ${piece.entry.path}: a held object of another size`);
      }
      yield* ahead.read(piece.entry, o);
    } else if (piece.kind === "chunk") {
      yield* objectRange(repo, p.chunks.get(piece.frame.digest)!, what);
    } else {
      yield* zeros(piece.frame.size);
    }
  }
}

/** Zeros for holes. */
const ZEROS = new Uint8Array(64 * 1024);

/** `size` zero bytes (a hole), in pieces of one shared buffer. */
function* zeros(size: number): Generator<Uint8Array> {
  for (let left = size; left > 0; left -= ZEROS.length) yield ZEROS.subarray(0, Math.min(left, ZEROS.length));
}

/** `length` bytes of `file` from `offset`, in pieces. */
async function* fileRegion(file: Deno.FsFile, offset: number, length: number, what: string) {
  for (let at = 0; at < length;) {
    const buf = new Uint8Array(Math.min(READ, length - at));
    await file.seek(offset + at, Deno.SeekMode.Start);
    let got = 0;
    while (got < buf.length) {
      const n = await file.read(buf.subarray(got));
      if (n === null) throw new FormatError(`${what}: fetched frames end early`);
      got += n;
    }
    at += buf.length;
    yield buf;
  }
}

/** The bytes of a chunk of an object. */
async function* objectRange(repo: Repository, c: ContentChunk, what: string): AsyncGenerator<Uint8Array> {
  const file = await openObject(repo, c.hex);
  try {
    file.seek(c.offset);
    for (let left = c.size; left > 0;) {
      const buf = new Uint8Array(Math.min(READ, left));
      const n = await file.read(buf);
      if (n === null) throw new FormatError(`${what}: object ${c.hex} is shorter than its content index says`);
      left -= n;
      yield buf.subarray(0, n);
    }
  } finally {
    file.close();
  }
}
