/**
 * A zstd:chunked layer put back together without its whole blob: which
 * frames to fetch (those of the files whose content is not at hand), and the
 * exact uncompressed tar, its header bytes from the tar-split, each file's
 * content from wherever the caller has it (an object, or the fetched frames).
 * Pure: the TOC and tar-split come read and checked (toc_reader.ts,
 * tar_split.ts); contents come through {@link PartialContents}.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { cleanEntryPath } from "../tar/path.ts";
import type { TarSplitItem } from "./tar_split.ts";
import type { ChunkedToc, TocEntry, TocFrame } from "./toc_reader.ts";

/** A stretch of the blob to fetch. */
export interface BlobSpan {
  offset: number;
  length: number;
}

/** Where one frame of a file that is not held whole comes from. */
export type FrameSource = "fetch" | "zeros" | "chunk";

/** A file (one per distinct content) that is not held whole: each of its frames' source. */
export interface FileFetch {
  entry: TocEntry;
  /** One per frame of `entry.frames`. */
  frames: FrameSource[];
}

/** What a partial pull of one layer fetches and reuses. */
export interface PartialPlan {
  /** The files not held whole, one per distinct content (in blob order). */
  fetch: FileFetch[];
  /** The spans of the frames to fetch, sorted, apart (frames that follow each other are one span). */
  spans: BlobSpan[];
  /** Compressed bytes of those spans. */
  fetchBytes: number;
  /** Files (with content) found whole at hand, and their bytes (uncompressed). */
  reusedFiles: number;
  reusedBytes: number;
  /** Chunks of the other files found at hand (and holes, which need nothing), and their bytes. */
  reusedChunks: number;
  reusedChunkBytes: number;
  /** Files (with content) in the layer. */
  files: number;
}

/**
 * Plans a partial pull: every regular file with content whose digest
 * `haveFile` knows is reused; of the others (each distinct content once),
 * frames of zeros are made, not fetched, frames whose chunk `haveChunk` knows
 * (digest and size) are reused, and the rest fetched.
 */
export function planPartial(
  toc: ChunkedToc,
  haveFile: (digest: string) => boolean,
  haveChunk: (digest: string, size: number) => boolean = () => false,
): PartialPlan {
  const plan: PartialPlan = {
    fetch: [],
    spans: [],
    fetchBytes: 0,
    reusedFiles: 0,
    reusedBytes: 0,
    reusedChunks: 0,
    reusedChunkBytes: 0,
    files: 0,
  };
  const fetching = new Set<string>();
  for (const e of toc.entries) {
    if (e.type !== "reg" || !e.digest || !e.frames) continue;
    plan.files++;
    if (haveFile(e.digest)) {
      plan.reusedFiles++;
      plan.reusedBytes += e.size;
      continue;
    }
    if (fetching.has(e.digest)) continue;
    fetching.add(e.digest);
    const several = e.frames.length > 1;
    const frames = e.frames.map((f): FrameSource => {
      if (f.zeros) return "zeros";
      return several && haveChunk(f.digest, f.size) ? "chunk" : "fetch";
    });
    plan.fetch.push({ entry: e, frames });
  }
  plan.fetch.sort((a, b) => a.entry.frames![0].offset - b.entry.frames![0].offset);
  for (const { entry, frames } of plan.fetch) {
    entry.frames!.forEach((f, i) => {
      if (frames[i] !== "fetch") {
        plan.reusedChunks++;
        plan.reusedChunkBytes += f.size;
        return;
      }
      const last = plan.spans[plan.spans.length - 1];
      if (last && last.offset + last.length === f.offset) last.length += f.end - f.offset;
      else plan.spans.push({ offset: f.offset, length: f.end - f.offset });
      plan.fetchBytes += f.end - f.offset;
    });
  }
  return plan;
}

/** Where file contents come from. */
export interface PartialContents {
  /** The content of `entry` (a regular file with content), exactly `entry.size` bytes in pieces. */
  content(entry: TocEntry): AsyncIterable<Uint8Array>;
}

/**
 * The layer's uncompressed tar: the tar-split's segments verbatim, each file
 * entry's content from `contents` (checked for its size). `items` must be the
 * tar-split that `checkTarSplit` accepted against `toc`. A FormatError names
 * `what`.
 */
export async function* partialTar(
  toc: ChunkedToc,
  items: Iterable<TarSplitItem>,
  contents: PartialContents,
  what: string,
): AsyncGenerator<Uint8Array> {
  const byPath = new Map(toc.entries.map((e) => [e.path, e]));
  for (const item of items) {
    if (item.type === "segment") {
      yield item.bytes.slice(); // a view into the tar-split's line, which the next line replaces
      continue;
    }
    if (item.size === 0) continue;
    const e = byPath.get(cleanEntryPath(item.name));
    if (!e || e.type !== "reg" || e.size !== item.size || !e.digest) {
      throw new FormatError(`${what}: tar-split names ${JSON.stringify(item.name.slice(0, 200))}, not in the TOC`);
    }
    let n = 0;
    for await (const piece of contents.content(e)) {
      n += piece.length;
      if (n > e.size) break;
      yield piece;
    }
    if (n !== e.size) {
      throw new FormatError(`${what}: ${JSON.stringify(e.path.slice(0, 200))}: ${n} bytes of content, not ${e.size}`);
    }
  }
}

/** A stretch of a layer's content, for a rebuild without tar-split (see {@link planStream}). */
export type StreamPiece =
  /** Blob bytes to fetch and decompress: whole frames (headers, and the contents not at hand). */
  | { kind: "fetch"; offset: number; length: number }
  /** A file held whole: its frames' place, and the entry. */
  | { kind: "file"; offset: number; length: number; entry: TocEntry }
  /** A chunk held in an object, or a hole: one frame. */
  | { kind: "chunk" | "zeros"; offset: number; length: number; frame: TocFrame };

/**
 * For a layer without tar-split (written before containers/storage 1.47):
 * the blob's content `[0, contentEnd)` decompresses to the tar, frame after
 * frame, so the layer is those frames in order, each either fetched or, for
 * a file or chunk at hand (or a hole), taken from there. Returns the pieces in
 * order and the spans to fetch; fetched stretches closer than `gap` are
 * merged, and what lies between them is then fetched too.
 */
export function planStream(
  toc: ChunkedToc,
  plan: PartialPlan,
  haveFile: (digest: string) => boolean,
  contentEnd: number,
  gap: number,
): { pieces: StreamPiece[]; spans: BlobSpan[] } {
  const held: StreamPiece[] = [];
  for (const e of toc.entries) {
    if (e.type !== "reg" || !e.digest || !e.frames || !haveFile(e.digest)) continue;
    const first = e.frames[0].offset;
    held.push({ kind: "file", offset: first, length: e.frames[e.frames.length - 1].end - first, entry: e });
  }
  for (const { entry, frames } of plan.fetch) {
    entry.frames!.forEach((f, i) => {
      if (frames[i] !== "fetch") held.push({ kind: frames[i], offset: f.offset, length: f.end - f.offset, frame: f });
    });
  }
  held.sort((a, b) => a.offset - b.offset);
  // The rest is fetched, merged where the held pieces between are small.
  const fetch: BlobSpan[] = [];
  let at = 0;
  for (const h of [...held, { offset: contentEnd, length: 0 }]) {
    if (h.offset > at) fetch.push({ offset: at, length: h.offset - at });
    at = Math.max(at, h.offset + h.length);
  }
  const spans: BlobSpan[] = [];
  for (const r of fetch) {
    const last = spans[spans.length - 1];
    if (last && r.offset - (last.offset + last.length) < gap) last.length = r.offset + r.length - last.offset;
    else spans.push({ ...r });
  }
  const pieces: StreamPiece[] = spans.map((s) => ({ kind: "fetch", ...s }));
  let k = 0;
  for (const h of held) {
    while (k < spans.length && spans[k].offset + spans[k].length <= h.offset) k++;
    if (k < spans.length && spans[k].offset <= h.offset) continue; // inside a merged span: fetched with it
    pieces.push(h);
  }
  pieces.sort((a, b) => a.offset - b.offset);
  return { pieces, spans };
}
