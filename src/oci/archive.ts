/**
 * OCI layouts packed in a tar archive (`oci-archive:`), read in place: the
 * archive's member offsets are indexed once by walking its headers (seeking past
 * contents), and blobs are then streamed from their offsets. Nothing is
 * extracted.
 *
 * @module
 */
import { DeltashipError, FormatError, NotFoundError } from "../errors.ts";
import {
  BLOCK,
  isExtension,
  isZeroBlock,
  MAX_EXTENSION,
  padded,
  parseHeaderBlock,
  parseHeaderGroup,
} from "../tar/header.ts";
import { fileRangeStream } from "../util/streams.ts";
import type { LayoutFiles } from "./layout.ts";

interface Member {
  offset: number;
  size: number;
}

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array | null> {
  await file.seek(offset, Deno.SeekMode.Start);
  const buf = new Uint8Array(length);
  let n = 0;
  while (n < length) {
    const r = await file.read(buf.subarray(n));
    if (r === null) return n === 0 ? null : buf.subarray(0, n);
    n += r;
  }
  return buf;
}

/** The regular-file members of an archive by cleaned path. */
export async function indexArchive(path: string): Promise<Map<string, Member>> {
  const members = new Map<string, Member>();
  const file = await Deno.open(path);
  const globals = new Map<string, Uint8Array>();
  try {
    let offset = 0;
    for (;;) {
      const groupStart = offset;
      const parts: Uint8Array[] = [];
      let header;
      for (;;) {
        const block = await readAt(file, offset, BLOCK);
        if (block === null) return members; // end without end-of-archive blocks
        if (block.length < BLOCK) throw new FormatError(`truncated tar header at byte ${offset}`);
        if (parts.length === 0 && isZeroBlock(block)) return members;
        header = parseHeaderBlock(block);
        parts.push(block);
        offset += BLOCK;
        if (!isExtension(header.typeflag) && header.typeflag !== "g") break;
        if (header.size > MAX_EXTENSION) throw new FormatError(`oversized tar extension at byte ${offset - BLOCK}`);
        const data = await readAt(file, offset, padded(header.size));
        if (data === null || data.length < padded(header.size)) throw new FormatError("truncated tar extension");
        parts.push(data);
        offset += padded(header.size);
        if (header.typeflag === "g") break;
      }
      const group = new Uint8Array(offset - groupStart);
      let o = 0;
      for (const p of parts) {
        group.set(p, o);
        o += p.length;
      }
      const entry = parseHeaderGroup(group, globals);
      if (entry.kind === "file") members.set(entry.path, { offset, size: entry.size });
      offset += padded(entry.size);
    }
  } catch (e) {
    if (e instanceof DeltashipError) e.message = `oci-archive:${path}: ${e.message}`;
    throw e;
  } finally {
    file.close();
  }
}

/** Layout files inside a tar archive. */
export class ArchiveFiles implements LayoutFiles {
  readonly description: string;

  private constructor(readonly archive: string, readonly members: Map<string, Member>) {
    this.description = `oci-archive:${archive}`;
  }

  /** Indexes the archive at `path`. */
  static async open(path: string): Promise<ArchiveFiles> {
    try {
      const st = await Deno.stat(path);
      if (!st.isFile) throw new FormatError(`oci-archive:${path} is not a file`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`oci-archive:${path} does not exist`);
      throw e;
    }
    return new ArchiveFiles(path, await indexArchive(path));
  }

  size(path: string): Promise<number | undefined> {
    return Promise.resolve(this.members.get(path)?.size);
  }

  open(path: string): Promise<ReadableStream<Uint8Array>> {
    const m = this.members.get(path);
    if (!m) throw new NotFoundError(`${this.description}: ${path} is missing`);
    return Promise.resolve(fileRangeStream(this.archive, m.offset, m.size));
  }

  close(): void {}
}
