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
import type { ChunkedToc, TocEntry } from "./toc_reader.ts";

/** A stretch of the blob to fetch. */
export interface BlobSpan {
  offset: number;
  length: number;
}

/** What a partial pull of one layer fetches and reuses. */
export interface PartialPlan {
  /** The files whose frames are fetched, one per distinct content (in blob order). */
  fetch: TocEntry[];
  /** Their frames' spans in the blob, sorted, apart (a file's frames are one span). */
  spans: BlobSpan[];
  /** Compressed bytes of those spans. */
  fetchBytes: number;
  /** Files (with content) found at hand, and their bytes (uncompressed). */
  reusedFiles: number;
  reusedBytes: number;
  /** Files (with content) in the layer. */
  files: number;
}

/**
 * Plans a partial pull: every regular file with content whose digest `have`
 * knows is reused, the others fetched, each distinct content once.
 */
export function planPartial(toc: ChunkedToc, have: (digest: string) => boolean): PartialPlan {
  const plan: PartialPlan = { fetch: [], spans: [], fetchBytes: 0, reusedFiles: 0, reusedBytes: 0, files: 0 };
  const fetching = new Set<string>();
  for (const e of toc.entries) {
    if (e.type !== "reg" || !e.digest || !e.frames) continue;
    plan.files++;
    if (have(e.digest)) {
      plan.reusedFiles++;
      plan.reusedBytes += e.size;
      continue;
    }
    if (fetching.has(e.digest)) continue;
    fetching.add(e.digest);
    plan.fetch.push(e);
  }
  plan.fetch.sort((a, b) => a.frames![0].offset - b.frames![0].offset);
  for (const e of plan.fetch) {
    const span = fileSpan(e);
    plan.spans.push(span);
    plan.fetchBytes += span.length;
  }
  return plan;
}

/** The span of a file's frames in the blob (they follow each other). */
export function fileSpan(e: TocEntry): BlobSpan {
  const frames = e.frames!;
  return { offset: frames[0].offset, length: frames[frames.length - 1].end - frames[0].offset };
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
