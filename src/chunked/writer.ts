/**
 * Writing a layer as zstd:chunked, as containers/storage's compressor does
 * (`writeZstdChunkedStream` in `pkg/chunked/compressor/compressor.go`): every
 * regular file's content in zstd frames of its own, cut into chunks (holes of
 * zeros apart, about 64 KiB each, by a rolling checksum: see
 * `compression/content_chunks.ts`), the header bytes between contents in
 * frames of their own, then three skippable frames: the TOC, the tar-split and
 * the footer. The frames decompress to the exact tar; the layer descriptor's
 * annotations say where the TOC and tar-split are and give the TOC's digest.
 *
 * Frames are gathered into jobs of up to {@link JOB_SIZE} uncompressed bytes
 * and compressed on the workers (`compression/frames.ts`), written back in
 * order; the calling thread parses the tar, cuts the chunks, hashes the files
 * and keeps the TOC and tar-split, compressed as they grow. Jobs are cut where
 * the content says, so the blob is the same whatever the number of workers.
 *
 * @module
 */
import { UnsupportedError, withContext } from "../errors.ts";
import type { HeaderExtensions } from "../tar/header_group.ts";
import type { TarEntry } from "../tar/header.ts";
import { TarSplitter } from "../tar/splitter.ts";
import { Hasher } from "../util/digest.ts";
import { concat } from "../util/streams.ts";
import { type ChunkSink, ContentChunker, MAX_CHUNK } from "../compression/content_chunks.ts";
import { type BlobRange, chunkedFooterFrame, skippableHeader } from "../compression/chunked_footer.ts";
import type { FramesJob, FrameSpec, FramesResult } from "../compression/frames.ts";
import { ZstdEncoder } from "../compression/zstd/native_encoder.ts";
import { chunkedAnnotations } from "./annotations.ts";
import { tocMetadata } from "./tar_metadata.ts";
import {
  emptyToc,
  TOC_START,
  type TocChunk,
  type TocContent,
  tocEnd,
  tocEntryJson,
  type TocEntryText,
  tocEntryText,
} from "./toc.ts";
import { TarSplitWriter } from "./tar_split.ts";

/** Uncompressed bytes per job, and the most a frame holds (a longer chunk is cut there). */
const JOB_SIZE = MAX_CHUNK;
/** The TOC and tar-split are compressed at most at this level (level 19 would take ~90 MiB per stream). */
const METADATA_LEVEL_MAX = 9;

/** How to write a zstd:chunked layer. */
export interface ChunkedWriteOptions {
  /** Names the layer in errors. */
  what: string;
  /** zstd level of the frames (and of the TOC and tar-split, up to 9). */
  level: number;
  /** Most jobs compressing or waiting to be written at once (bounds memory). */
  inFlight: number;
  /** Compresses a job somewhere (a worker pool, or inline). */
  run(job: FramesJob): Promise<FramesResult>;
  /** Receives the layer descriptor's annotations once the blob is complete. */
  annotate(annotations: Record<string, string>): void;
}

/** Compresses the tar `input` to a zstd:chunked blob, yielded in order. */
export async function* writeZstdChunked(
  input: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: ChunkedWriteOptions,
): AsyncGenerator<Uint8Array> {
  const toc = new CompressedText(Math.min(options.level, METADATA_LEVEL_MAX));
  const tarSplit = new CompressedText(Math.min(options.level, METADATA_LEVEL_MAX));
  try {
    const layer = new ChunkedLayer(options, toc, tarSplit);
    const splitter = new TarSplitter(layer);
    for await (const chunk of input) {
      await splitter.write(chunk);
      yield* layer.ready(options.inFlight);
    }
    splitter.close();
    layer.finish();
    yield* layer.ready(0);
    yield* layer.metadata();
  } finally {
    toc.close();
    tarSplit.close();
  }
}

/** Text compressed into one zstd frame as it is written, with its digest and lengths. */
class CompressedText {
  readonly #encoder: ZstdEncoder;
  readonly #parts: Uint8Array[] = [];
  readonly #hasher = new Hasher();
  #pending = "";
  #uncompressed = 0;
  static readonly #utf8 = new TextEncoder();

  constructor(level: number) {
    this.#encoder = new ZstdEncoder(level);
  }

  write(text: string): void {
    this.#pending += text;
    if (this.#pending.length >= 64 << 10) this.#flush();
  }

  /** The compressed frame, its digest, and the length of the text (UTF-8). */
  finish(): { bytes: Uint8Array; digest: string; uncompressedLength: number } {
    this.#flush();
    this.#encoder.end((p) => this.#add(p));
    return { bytes: concat(this.#parts), digest: this.#hasher.digest(), uncompressedLength: this.#uncompressed };
  }

  close(): void {
    this.#encoder.close();
  }

  #flush(): void {
    if (this.#pending === "") return;
    const bytes = CompressedText.#utf8.encode(this.#pending);
    this.#pending = "";
    this.#uncompressed += bytes.length;
    this.#encoder.write(bytes, (p) => this.#add(p));
  }

  #add(p: Uint8Array): void {
    this.#parts.push(p);
    this.#hasher.update(p);
  }
}

/** A chunk cut and waiting for its frame's place in the blob. */
interface PendingChunk extends TocChunk {
  /** Where the frame ends in the blob (-1 until its job is written). */
  end: number;
  /** Its digest goes in the TOC (the file has several chunks). */
  wanted: boolean;
}

/** A tar entry waiting for its frames' places before its TOC entries can be written. */
interface PendingEntry {
  text: TocEntryText;
  size: number;
  chunks: PendingChunk[];
  /** `sha256:<hex>` of the content, once it is complete. */
  digest?: string;
  complete: boolean;
}

/** A job being filled, or in flight. */
interface Job {
  buffer: Uint8Array;
  used: number;
  frames: FrameSpec[];
  /** The chunk each frame holds (header frames hold none). */
  chunks: (PendingChunk | undefined)[];
}

/** The tar sink that cuts a layer into frames and keeps its TOC and tar-split. */
class ChunkedLayer implements ChunkSink {
  readonly #options: ChunkedWriteOptions;
  readonly #toc: CompressedText;
  readonly #tarSplit: TarSplitWriter;
  readonly #tarSplitText: CompressedText;
  readonly #chunker = new ContentChunker(this, JOB_SIZE);
  /** Cleaned paths seen, to refuse duplicates (tar-split cannot hold them). */
  readonly #paths = new Set<string>();
  #job: Job = newJob();
  /** The open frame: where it starts in the job's buffer, and what it holds. */
  #frameStart = 0;
  #frame: "none" | "header" | "data" = "none";
  readonly #queue: { job: Job; result: Promise<FramesResult> }[] = [];
  readonly #entries: PendingEntry[] = [];
  /** The entry whose content is streaming. */
  #current: PendingEntry | undefined;
  #fileHasher: Hasher | undefined;
  /** Content of the current file given out as chunks so far. */
  #emitted = 0;
  /** Compressed bytes written so far. */
  #written = 0;
  #tocEntries = 0;

  constructor(options: ChunkedWriteOptions, toc: CompressedText, tarSplit: CompressedText) {
    this.#options = options;
    this.#toc = toc;
    this.#tarSplitText = tarSplit;
    this.#tarSplit = new TarSplitWriter((text) => tarSplit.write(text));
  }

  // ---- TarSink ----

  entry(entry: TarEntry, group: Uint8Array, extensions: HeaderExtensions): void {
    try {
      const md = tocMetadata(entry, group, extensions);
      if (this.#paths.has(entry.path)) {
        throw new UnsupportedError(`the layer has more than one entry for ${JSON.stringify(entry.path)}, ${DUPLICATE}`);
      }
      this.#paths.add(entry.path);
      const pending: PendingEntry = {
        text: tocEntryText(md, `tar entry ${JSON.stringify(entry.path)}`),
        size: entry.size,
        chunks: [],
        complete: entry.size === 0,
      };
      this.#entries.push(pending);
      this.#tarSplit.entry(group, md.name, entry.size);
      this.#appendHeader(group);
      if (entry.size > 0) {
        this.#current = pending;
        this.#fileHasher = new Hasher();
        this.#emitted = 0;
        this.#chunker.begin();
      }
    } catch (e) {
      throw withContext(e, `${this.#options.what}: cannot write zstd:chunked`);
    }
  }

  content(chunk: Uint8Array): void {
    this.#fileHasher!.update(chunk);
    this.#tarSplit.content(chunk);
    this.#chunker.push(chunk);
  }

  endContent(): void {
    this.#tarSplit.endContent();
    const entry = this.#current;
    if (!entry) return;
    this.#chunker.end();
    entry.digest = this.#fileHasher!.digest();
    entry.complete = true;
    this.#current = undefined;
    this.#fileHasher = undefined;
  }

  padding(bytes: Uint8Array): void {
    this.#tarSplit.padding(bytes);
    this.#appendHeader(bytes);
  }

  trailer(bytes: Uint8Array): void {
    this.#tarSplit.trailer(bytes);
    this.#appendHeader(bytes);
  }

  // ---- ChunkSink: the current file's chunks ----

  bytes(data: Uint8Array): void {
    if (this.#frame !== "data") {
      this.#closeFrame(undefined);
      this.#frame = "data";
      this.#frameStart = this.#job.used;
    }
    this.#append(data);
    this.#emitted += data.length;
  }

  endChunk(): void {
    const length = this.#job.used - this.#frameStart;
    this.#closeFrame(this.#chunk(length, false));
  }

  zeros(length: number): void {
    this.#closeFrame(undefined);
    this.#emitted += length;
    const chunk = this.#chunk(length, true);
    this.#job.frames.push({ length, zeros: true, ...(chunk.wanted ? { digest: true } : {}) });
    this.#job.chunks.push(chunk);
  }

  // ---- output ----

  /** Ends the stream: the last header frame, and its job. */
  finish(): void {
    if (this.#current) throw new Error("zstd:chunked: the tar ended inside a file"); // the splitter refuses that first
    try {
      this.#tarSplit.finish();
    } catch (e) {
      throw withContext(e, `${this.#options.what}: cannot write zstd:chunked`);
    }
    this.#closeFrame(undefined);
    if (this.#job.frames.length > 0) this.#dispatch();
  }

  /** The compressed bytes of the jobs done, waiting while more than `inFlight` are in flight. */
  async *ready(inFlight: number): AsyncGenerator<Uint8Array> {
    while (this.#queue.length > inFlight) {
      const { job, result } = this.#queue.shift()!;
      const done = await result;
      for (let i = 0; i < job.frames.length; i++) {
        const start = this.#written;
        this.#written += done.sizes[i];
        const chunk = job.chunks[i];
        if (chunk) {
          chunk.offset = start;
          chunk.end = this.#written;
          if (done.digests[i]) chunk.digest = done.digests[i]!;
        }
      }
      this.#flushEntries();
      yield done.data;
    }
  }

  /** The TOC, tar-split and footer frames, once every job is written; hands the annotations over. */
  *metadata(): Generator<Uint8Array> {
    this.#flushEntries();
    if (this.#entries.length > 0) throw new Error("zstd:chunked: TOC entries left unwritten");
    const tarSplit = this.#tarSplitText.finish();
    if (this.#tocEntries === 0) this.#toc.write(emptyToc(tarSplit.digest));
    else this.#toc.write(tocEnd(tarSplit.digest));
    const toc = this.#toc.finish();
    const tocRange: BlobRange = {
      offset: this.#written + 8,
      length: toc.bytes.length,
      uncompressedLength: toc.uncompressedLength,
    };
    const tarSplitRange: BlobRange = {
      offset: tocRange.offset + toc.bytes.length + 8,
      length: tarSplit.bytes.length,
      uncompressedLength: tarSplit.uncompressedLength,
    };
    yield skippableHeader(toc.bytes.length);
    yield toc.bytes;
    yield skippableHeader(tarSplit.bytes.length);
    yield tarSplit.bytes;
    yield chunkedFooterFrame(tocRange, tarSplitRange);
    this.#options.annotate(chunkedAnnotations(toc.digest, tocRange, tarSplitRange));
  }

  // ---- frames and jobs ----

  /** A chunk of the current file just cut (its frame's place comes when its job is written). */
  #chunk(length: number, zeros: boolean): PendingChunk {
    const entry = this.#current!;
    // Chunk digests are written only for files of several chunks: known here, since
    // a chunk that ends before the content does has another after it.
    const wanted = entry.chunks.length > 0 || this.#emitted < entry.size;
    const chunkOffset = this.#emitted - length;
    const chunk: PendingChunk = { offset: -1, end: -1, chunkOffset, chunkSize: length, digest: "", zeros, wanted };
    entry.chunks.push(chunk);
    return chunk;
  }

  /** Bytes between contents: headers, padding, the trailer. They share frames until the next content. */
  #appendHeader(bytes: Uint8Array): void {
    let at = 0;
    while (at < bytes.length) {
      if (this.#frame !== "header") {
        this.#closeFrame(undefined);
        this.#frame = "header";
        this.#frameStart = this.#job.used;
      }
      const n = Math.min(bytes.length - at, JOB_SIZE - (this.#job.used - this.#frameStart));
      this.#append(bytes.subarray(at, at + n));
      at += n;
      if (this.#job.used - this.#frameStart === JOB_SIZE) this.#closeFrame(undefined);
    }
  }

  /** Appends bytes to the open frame, moving it to a new job when this one is full. */
  #append(data: Uint8Array): void {
    let at = 0;
    while (at < data.length) {
      if (this.#job.used === this.#job.buffer.length) this.#rollOver();
      const n = Math.min(data.length - at, this.#job.buffer.length - this.#job.used);
      this.#job.buffer.set(data.subarray(at, at + n), this.#job.used);
      this.#job.used += n;
      at += n;
    }
  }

  /** Sends the full job off; the open frame's bytes so far start the next one. */
  #rollOver(): void {
    const old = this.#job;
    const open = old.buffer.subarray(this.#frameStart, old.used);
    if (open.length === old.buffer.length) throw new Error("zstd:chunked: a frame outgrew its job");
    this.#job = newJob();
    this.#job.buffer.set(open);
    this.#job.used = open.length;
    old.used = this.#frameStart;
    this.#frameStart = 0;
    this.#dispatch(old);
  }

  /** Closes the open frame (if any) as holding `chunk`. */
  #closeFrame(chunk: PendingChunk | undefined): void {
    if (this.#frame === "none") return;
    const length = this.#job.used - this.#frameStart;
    this.#frame = "none";
    if (length === 0) return;
    this.#job.frames.push({ length, ...(chunk?.wanted ? { digest: true } : {}) });
    this.#job.chunks.push(chunk);
    this.#frameStart = this.#job.used;
  }

  #dispatch(job = this.#job): void {
    if (job === this.#job) this.#job = newJob();
    const result = this.#options.run({
      level: this.#options.level,
      data: job.buffer.subarray(0, job.used),
      frames: job.frames,
    });
    result.catch(() => {}); // awaited in order; never an unhandled rejection meanwhile
    this.#queue.push({ job, result });
  }

  /** Writes the TOC entries of every finished entry whose frames all have their places, in order. */
  #flushEntries(): void {
    while (this.#entries.length > 0) {
      const entry = this.#entries[0];
      if (!entry.complete || entry.chunks.some((c) => c.end < 0)) return;
      this.#entries.shift();
      this.#toc.write((this.#tocEntries++ === 0 ? TOC_START : ",") + tocEntryJson(entry.text, contentOf(entry)));
    }
  }
}

const DUPLICATE = "which a zstd:chunked layer cannot hold (tar-split refuses duplicate names)";

function newJob(): Job {
  return { buffer: new Uint8Array(JOB_SIZE), used: 0, frames: [], chunks: [] };
}

/** Where an entry's content went, for its TOC entry. */
function contentOf(entry: PendingEntry): TocContent | undefined {
  const chunks = entry.chunks;
  if (chunks.length === 0) return undefined;
  return {
    digest: entry.digest!,
    offset: chunks[0].offset,
    endOffset: chunks[chunks.length - 1].end,
    ...(chunks.length > 1 ? { chunks } : {}),
  };
}
