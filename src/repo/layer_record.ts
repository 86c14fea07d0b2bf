/**
 * Layer records: how the repository keeps a layer. A record lists, in order, the
 * pieces of the layer's uncompressed tar: header groups and other bytes verbatim,
 * runs of zeros by length, and regular-file contents by object digest. Replaying
 * it gives back the tar byte for byte. The format is described in
 * `docs/repository.md`.
 *
 * @module
 */
import { FormatError } from "../errors.ts";
import { ByteReader, fileSource } from "../util/byte_reader.ts";
import { toHex } from "../util/digest.ts";
import { MAX_VARINT_BYTES, writeVarint } from "../util/varint.ts";
import { readFull, writeAll } from "../util/fs.ts";
import { MAX_HEADER_GROUP } from "../tar/header.ts";
import { osErrorAt } from "../util/os_error.ts";
import type { Durability } from "./durability.ts";
import { RepoFile } from "./repo_file.ts";

/**
 * First bytes of every layer record of repository format 2, whose object items
 * name objects by fs-verity digest.
 */
export const RECORD_MAGIC = new TextEncoder().encode("DSLAYER2");
/** The magic of format 1, whose object items named objects by SHA-256: read (and written) only by the upgrade. */
export const LEGACY_RECORD_MAGIC = new TextEncoder().encode("DSLAYER1");
const FOOTER_MAGIC = new TextEncoder().encode("DSLEND01");
const FOOTER_SIZE = 1 + 8 + 8 + 8;

const HEADER = 0x48; // 'H'
const RAW = 0x52; // 'R'
const ZERO = 0x5a; // 'Z'
const OBJECT = 0x4f; // 'O'
const END = 0x45; // 'E'

/** Largest R record; longer runs of bytes are split. */
const MAX_RAW = 1 << 16;

/** One piece of a layer record. */
export type RecordItem =
  | { type: "header"; bytes: Uint8Array }
  | { type: "raw"; bytes: Uint8Array }
  | { type: "zero"; length: number }
  | { type: "object"; size: number; hex: string };

/** Which record format: 2 (fs-verity object names), or 1 (SHA-256, for the upgrade from it). */
export type RecordVersion = 1 | 2;

function magicOf(version: RecordVersion): Uint8Array {
  return version === 2 ? RECORD_MAGIC : LEGACY_RECORD_MAGIC;
}

/** Totals stored at the end of a record. */
export interface RecordFooter {
  /** Length of the uncompressed tar. */
  tarSize: number;
  /** Number of tar entries (header groups). */
  entries: number;
}

/** Writes a layer record to a file, buffering small writes. */
export class LayerRecordWriter {
  #file: Deno.FsFile;
  #buf = new Uint8Array(1 << 18);
  #len = 0;
  #zeros = 0;

  private constructor(
    file: Deno.FsFile,
    /** The file being written, named in errors. */
    readonly path: string,
    readonly durability: Durability | undefined,
    version: RecordVersion,
  ) {
    this.#file = file;
    const magic = magicOf(version);
    this.#buf.set(magic);
    this.#len = magic.length;
  }

  /**
   * Creates the record file at `path` (a temporary path; the caller renames it).
   * With `durability`, its data is synced as that asks when it is finished.
   * `version` 1 writes a record of the format before fs-verity names (tests
   * make version-1 repositories with it, to upgrade).
   */
  static async create(path: string, durability?: Durability, version: RecordVersion = 2): Promise<LayerRecordWriter> {
    return new LayerRecordWriter(await Deno.open(path, { write: true, createNew: true }), path, durability, version);
  }

  /** Appends a header group. */
  async header(bytes: Uint8Array): Promise<void> {
    await this.#tagged(HEADER, bytes);
  }

  /** Appends bytes kept verbatim; zero bytes are stored as runs. */
  async bytes(bytes: Uint8Array): Promise<void> {
    let i = 0;
    while (i < bytes.length) {
      let j = i;
      while (j < bytes.length && bytes[j] === 0) j++;
      this.#zeros += j - i;
      if (j === bytes.length) return;
      let k = j;
      while (k < bytes.length && (bytes[k] !== 0 || (k + 1 < bytes.length && bytes[k + 1] !== 0))) k++;
      for (let o = j; o < k; o += MAX_RAW) {
        await this.#tagged(RAW, bytes.subarray(o, Math.min(k, o + MAX_RAW)));
      }
      i = k;
    }
  }

  /** Appends a run of `length` zero bytes. */
  zeros(length: number): void {
    this.#zeros += length;
  }

  /**
   * Appends an item read from another record, unchanged but for an object item's
   * digest, which is `digest` (a record being rewritten with new object names).
   */
  async copy(item: RecordItem, digest?: Uint8Array): Promise<void> {
    switch (item.type) {
      case "header":
        return await this.header(item.bytes);
      case "raw":
        return await this.#tagged(RAW, item.bytes);
      case "zero":
        return this.zeros(item.length);
      case "object":
        if (!digest) throw new RangeError("LayerRecordWriter.copy: an object item needs its digest");
        return await this.object(item.size, digest);
    }
  }

  /** Appends a reference to an object holding `size` bytes of file content. */
  async object(size: number, digest: Uint8Array): Promise<void> {
    await this.#flushZeros();
    await this.#room(1 + MAX_VARINT_BYTES + 32);
    this.#buf[this.#len++] = OBJECT;
    this.#len = writeVarint(this.#buf, this.#len, size);
    this.#buf.set(digest, this.#len);
    this.#len += 32;
  }

  /** Writes the footer and closes the file. */
  async finish(footer: RecordFooter): Promise<void> {
    await this.#flushZeros();
    await this.#room(FOOTER_SIZE);
    const view = new DataView(this.#buf.buffer, this.#len, FOOTER_SIZE);
    view.setUint8(0, END);
    view.setBigUint64(1, BigInt(footer.tarSize), true);
    view.setBigUint64(9, BigInt(footer.entries), true);
    this.#buf.set(FOOTER_MAGIC, this.#len + 17);
    this.#len += FOOTER_SIZE;
    await this.#flush();
    try {
      await this.durability?.fileWritten(this.#file);
    } catch (e) {
      throw osErrorAt(e, this.path);
    } finally {
      this.#file.close();
    }
  }

  /** Closes the file without finishing it (the caller removes it). */
  abort(): void {
    try {
      this.#file.close();
    } catch { /* already closed */ }
  }

  async #tagged(tag: number, bytes: Uint8Array): Promise<void> {
    await this.#flushZeros();
    await this.#room(1 + MAX_VARINT_BYTES);
    this.#buf[this.#len++] = tag;
    this.#len = writeVarint(this.#buf, this.#len, bytes.length);
    if (bytes.length > this.#buf.length - this.#len) {
      await this.#flush();
      await this.#write(bytes);
      return;
    }
    this.#buf.set(bytes, this.#len);
    this.#len += bytes.length;
  }

  async #flushZeros(): Promise<void> {
    if (this.#zeros === 0) return;
    await this.#room(1 + MAX_VARINT_BYTES);
    this.#buf[this.#len++] = ZERO;
    this.#len = writeVarint(this.#buf, this.#len, this.#zeros);
    this.#zeros = 0;
  }

  async #room(n: number): Promise<void> {
    if (this.#buf.length - this.#len < n) await this.#flush();
  }

  async #flush(): Promise<void> {
    await this.#write(this.#buf.subarray(0, this.#len));
    this.#len = 0;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    try {
      await writeAll(this.#file, bytes);
    } catch (e) {
      throw osErrorAt(e, this.path);
    }
  }
}

/** Decodes footer bytes (after the `E` tag), refusing totals JavaScript cannot hold exactly. */
function decodeFooter(bytes: Uint8Array, what: string): RecordFooter {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tarSize = view.getBigUint64(0, true);
  const entries = view.getBigUint64(8, true);
  if (tarSize > BigInt(Number.MAX_SAFE_INTEGER) || entries > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new FormatError(`${what}: footer totals are out of range (corrupt record)`);
  }
  return { tarSize: Number(tarSize), entries: Number(entries) };
}

/** Reads and checks the footer of an open record of `size` bytes (moves the file position). */
async function footerOf(file: RepoFile, size: number, what: string): Promise<RecordFooter> {
  if (size < RECORD_MAGIC.length + FOOTER_SIZE) throw new FormatError(`${what} is truncated`);
  file.seek(size - FOOTER_SIZE);
  const buf = new Uint8Array(FOOTER_SIZE);
  if ((await readFull(file, buf)) < FOOTER_SIZE) throw new FormatError(`${what} is truncated`);
  if (buf[0] !== END || toHex(buf.subarray(17)) !== toHex(FOOTER_MAGIC)) {
    throw new FormatError(`${what} has no valid footer`);
  }
  return decodeFooter(buf.subarray(1, 17), what);
}

/** Reads the totals at the end of a record, checking that it is complete. */
export async function readFooter(path: string): Promise<RecordFooter> {
  const file = await RepoFile.open(path);
  try {
    return await footerOf(file, file.regularSize(), `layer record ${path}`);
  } finally {
    file.close();
  }
}

/** Largest H item a reader accepts: a header group as the splitter bounds it. */
const MAX_HEADER_ITEM = MAX_HEADER_GROUP;

/** The format version of the record at `path`, by its magic; undefined when it is not a record. */
export async function recordVersion(path: string): Promise<RecordVersion | undefined> {
  const file = await RepoFile.open(path);
  try {
    const magic = new Uint8Array(RECORD_MAGIC.length);
    if ((await readFull(file, magic)) < magic.length) return undefined;
    if (toHex(magic) === toHex(RECORD_MAGIC)) return 2;
    if (toHex(magic) === toHex(LEGACY_RECORD_MAGIC)) return 1;
    return undefined;
  } finally {
    file.close();
  }
}

/**
 * Reads the items of a record in order. Checks the magic (of `version`: 2, the
 * current format, unless the upgrade asks for 1) and that the footer ends it.
 * The footer is read first, so that no item can claim more of the tar than the
 * record says it holds: lengths are checked before anything is allocated or
 * replayed, and the items must add up to the footer's tar size exactly.
 */
export async function* readRecord(path: string, version: RecordVersion = 2): AsyncGenerator<RecordItem, RecordFooter> {
  const file = await RepoFile.open(path);
  try {
    const what = `layer record ${path}`;
    const footer = await footerOf(file, file.regularSize(), what);
    file.seek(0);
    const r = new ByteReader(fileSource(file, 1 << 18), what);
    const magic = await r.bytes(RECORD_MAGIC.length);
    if (toHex(magic) !== toHex(magicOf(version))) {
      const other = toHex(magic) === toHex(magicOf(version === 2 ? 1 : 2));
      throw new FormatError(`${what}: ${other ? `a record of format ${version === 2 ? 1 : 2}` : "not a layer record"}`);
    }
    /** Bytes of the tar the items so far stand for. */
    let covered = 0;
    /** Checks an item of `length` tar bytes (at most `max`) that starts at record byte `at`. */
    const length = async (at: number, max: number, kind: string): Promise<number> => {
      const n = await r.varint();
      if (n > max) throw new FormatError(`${what}: ${kind} item at byte ${at} is ${n} bytes, over the limit of ${max}`);
      if (n > footer.tarSize - covered) {
        throw new FormatError(
          `${what}: ${kind} item at byte ${at} (${n} bytes) runs past the tar size in the footer (${footer.tarSize})`,
        );
      }
      covered += n;
      return n;
    };
    for (;;) {
      const at = r.offset;
      const tag = await r.u8();
      switch (tag) {
        case HEADER:
          yield { type: "header", bytes: await r.bytes(await length(at, MAX_HEADER_ITEM, "header")) };
          break;
        case RAW:
          yield { type: "raw", bytes: await r.bytes(await length(at, MAX_RAW, "raw")) };
          break;
        case ZERO:
          yield { type: "zero", length: await length(at, Infinity, "zero-run") };
          break;
        case OBJECT: {
          const size = await length(at, Infinity, "object");
          yield { type: "object", size, hex: toHex(await r.bytes(32)) };
          break;
        }
        case END: {
          const end = decodeFooter(await r.bytes(FOOTER_SIZE - 1), what);
          if (!(await r.atEnd())) throw new FormatError(`${what}: data after the footer`);
          if (covered !== end.tarSize) {
            throw new FormatError(`${what}: its items hold ${covered} bytes of tar, the footer says ${end.tarSize}`);
          }
          return end;
        }
        default:
          throw new FormatError(`${what}: unknown item 0x${tag.toString(16)} at byte ${at}`);
      }
    }
  } finally {
    file.close();
  }
}
