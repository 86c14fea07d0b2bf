/**
 * OCI layouts packed in a tar archive (`oci-archive:`), read in place: the
 * archive's member offsets are indexed once by walking its headers (seeking past
 * contents), and blobs are then streamed from their offsets. Nothing is
 * extracted.
 *
 * @module
 */
import { FormatError, NotFoundError, withContext } from "../errors.ts";
import { padded, quote } from "../tar/header.ts";
import { HeaderGroupReader } from "../tar/header_group.ts";
import { fileRangeStream } from "../util/streams.ts";
import { readFull } from "../util/fs.ts";
import type { LayoutFiles } from "./layout.ts";

interface Member {
  offset: number;
  size: number;
}

/** Reads exactly `length` bytes at `offset` (the caller has checked they are in the file). */
async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  await file.seek(offset, Deno.SeekMode.Start);
  const buf = new Uint8Array(length);
  const n = await readFull(file, buf);
  if (n < length) throw new FormatError(`the archive changed while being read (short read at byte ${offset + n})`);
  return buf;
}

/**
 * The regular-file members of an archive by cleaned path. Header groups are read
 * with the splitter's {@link HeaderGroupReader}; contents are seeked past. Every
 * size is checked against the archive's length before it is read or skipped, and
 * each step moves forward, so a hostile archive ends in a FormatError.
 */
export async function indexArchive(path: string): Promise<Map<string, Member>> {
  const members = new Map<string, Member>();
  const file = await Deno.open(path);
  const groups = new HeaderGroupReader();
  try {
    const length = (await file.stat()).size;
    let offset = 0;
    // Ending at a block boundary without end-of-archive blocks is tolerated, as tar(1) does.
    while (offset < length) {
      const start = offset;
      groups.begin(start);
      let step;
      do {
        const want = groups.want;
        if (offset + want > length) {
          throw new FormatError(`tar entry at byte ${start}: truncated header (the archive ends at byte ${length})`);
        }
        step = groups.push(await readAt(file, offset, want));
        offset += want;
      } while (step.type === "more");
      if (step.type === "end") break;
      const entry = step.entry;
      if (offset + entry.size > length) {
        throw new FormatError(
          `tar entry ${quote(entry.path)} (at byte ${start}): its ${entry.size} bytes of content run past ` +
            `the end of the archive (${length} bytes)`,
        );
      }
      if (entry.kind === "file") members.set(entry.path, { offset, size: entry.size });
      const next = offset + padded(entry.size);
      if (!(next > start)) throw new FormatError(`tar entry at byte ${start}: the archive walk cannot advance`);
      offset = next;
    }
    return members;
  } catch (e) {
    throw withContext(e, `oci-archive:${path}`);
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
