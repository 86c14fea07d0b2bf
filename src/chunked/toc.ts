/**
 * The zstd:chunked table of contents (TOC), as containers/storage defines it
 * (`TOC` and `FileMetadata` in `pkg/chunked/internal/minimal/compression.go`):
 * a JSON document listing every tar entry with its metadata and, for regular
 * files, the SHA-256 of the content and where its zstd frames lie in the
 * blob; a file cut into several chunks has one `chunk` entry after it for each
 * chunk but the first. This module writes it, field for field as
 * containers/storage does; `toc_reader.ts` reads it.
 *
 * @module
 */
import { goBase64, goBytesString, goString, type GoTime, goTime } from "./go_json.ts";

/** The types of TOC entries that describe a tar entry (besides `chunk`, which continues a `reg`). */
export type TocType = "reg" | "hardlink" | "symlink" | "char" | "block" | "dir" | "fifo";

/** An entry's metadata as the TOC holds it. */
export interface TocMetadata {
  type: TocType;
  /** The name as Go reads it (bytes: it may not be UTF-8). */
  name: Uint8Array;
  linkname: Uint8Array;
  mode: number;
  size: number;
  uid: number;
  gid: number;
  mtime: GoTime;
  atime?: GoTime;
  ctime?: GoTime;
  devmajor: number;
  devminor: number;
  /** `SCHILY.xattr.*` records without the prefix, sorted by name. */
  xattrs: [string, Uint8Array][];
}

/** One chunk of a regular file's content: a frame of its own in the blob. */
export interface TocChunk {
  /** Where the chunk's frame starts in the blob. */
  offset: number;
  /** Where the chunk starts in the file, and its length. */
  chunkOffset: number;
  chunkSize: number;
  /** `sha256:<hex>` of the chunk's bytes. */
  digest: string;
  /** A run of zeros (a hole). */
  zeros: boolean;
}

/** Where a regular file's content lies in the blob. */
export interface TocContent {
  /** `sha256:<hex>` of the whole content. */
  digest: string;
  /** From the start of its first frame to the end of its last. */
  offset: number;
  endOffset: number;
  /** Its chunks, when there is more than one. */
  chunks?: TocChunk[];
}

/** One entry of a TOC being written: its name as JSON and its metadata fields, up to `xattrs`. */
export interface TocEntryText {
  name: string;
  head: string;
}

/**
 * The JSON of an entry's metadata (an object left open after `xattrs`, for
 * {@link tocEntryJson} to finish), in the field order and with the omissions of
 * Go's encoding of `FileMetadata`. `what` names the entry in errors.
 */
export function tocEntryText(md: TocMetadata, what: string): TocEntryText {
  const name = goBytesString(md.name);
  let head = `{"type":"${md.type}","name":${name}`;
  if (md.linkname.length > 0) head += `,"linkName":${goBytesString(md.linkname)}`;
  if (md.mode !== 0) head += `,"mode":${md.mode}`;
  if (md.size !== 0) head += `,"size":${md.size}`;
  if (md.uid !== 0) head += `,"uid":${md.uid}`;
  if (md.gid !== 0) head += `,"gid":${md.gid}`;
  head += `,"modtime":${goTime(md.mtime, `${what}: modification time`)}`;
  if (md.atime) head += `,"accesstime":${goTime(md.atime, `${what}: access time`)}`;
  if (md.ctime) head += `,"changetime":${goTime(md.ctime, `${what}: change time`)}`;
  if (md.devmajor !== 0) head += `,"devMajor":${md.devmajor}`;
  if (md.devminor !== 0) head += `,"devMinor":${md.devminor}`;
  if (md.xattrs.length > 0) {
    head += `,"xattrs":{${md.xattrs.map(([k, v]) => `${goString(k)}:${goBase64(v)}`).join(",")}}`;
  }
  return { name, head };
}

/**
 * The TOC entries of one tar entry, comma-separated: its own, and for a file in
 * several chunks one `chunk` entry for each chunk after the first.
 */
export function tocEntryJson(entry: TocEntryText, content: TocContent | undefined): string {
  if (!content) return `${entry.head}}`;
  let out = `${entry.head},"digest":"${content.digest}","offset":${content.offset},"endOffset":${content.endOffset}`;
  const chunks = content.chunks;
  if (!chunks) return `${out}}`;
  out += `${chunkFields(chunks[0])}}`;
  for (let i = 1; i < chunks.length; i++) {
    out += `,{"type":"chunk","name":${entry.name},"offset":${chunks[i].offset}${chunkFields(chunks[i])}}`;
  }
  return out;
}

function chunkFields(c: TocChunk): string {
  return `,"chunkSize":${c.chunkSize}${c.chunkOffset !== 0 ? `,"chunkOffset":${c.chunkOffset}` : ""},` +
    `"chunkDigest":"${c.digest}"${c.zeros ? ',"chunkType":"zeros"' : ""}`;
}

/** The TOC document's text before its entries. */
export const TOC_START = '{"version":1,"entries":[';

/** The TOC document's text after its entries (`entries` is `null` when there are none, as Go writes a nil slice). */
export function tocEnd(tarSplitDigest: string): string {
  return `],"tarSplitDigest":"${tarSplitDigest}"}`;
}

/** The whole TOC text of a layer without entries. */
export function emptyToc(tarSplitDigest: string): string {
  return `{"version":1,"entries":null,"tarSplitDigest":"${tarSplitDigest}"}`;
}
