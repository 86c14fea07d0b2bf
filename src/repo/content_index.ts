/**
 * The content index: which object holds a content of a given SHA-256, for the
 * partial pull of a zstd:chunked layer (whose TOC names each file by the
 * SHA-256 of its content, where objects are named by their fs-verity digest).
 *
 * One index file per stored layer, `content-index/<alg>/<hex>` beside the
 * layer record `layers/<alg>/<hex>`, listing the layer's objects by SHA-256,
 * and their chunks (cut as a zstd:chunked writer cuts a file: see
 * compression/content_chunks.ts) by SHA-256 with their place in the object,
 * for files of which only some chunks changed.
 * It is made lazily, the first time a partial pull asks, by reading the
 * layer's objects (a repository made before the index existed needs nothing
 * else), written whole to a temporary file and renamed into place, and
 * carries a checksum of its entries: a file a crash left torn is found
 * wrong, ignored and made again. It is derived data: gc removes it with its
 * layer, and anything it says is checked again downstream (the object's size
 * against the TOC, the rebuilt layer against its diff_id).
 *
 * Format: `DSCINDX2`, u32 LE object and chunk counts, then per object 32
 * bytes of SHA-256, 32 bytes of fs-verity digest and a u64 LE size, then per
 * chunk 32 bytes of SHA-256, the object's 32-byte fs-verity digest, u64 LE
 * offset and size, then the SHA-256 of all that follows the magic.
 *
 * @module
 */
import { type DiffId, fromHex, Hasher, parseDigest, toHex } from "../util/digest.ts";
import { readRecord } from "./layer_record.ts";
import { openObject } from "./layer_reader.ts";
import { objectName } from "./objects.ts";
import { RepositoryError } from "../errors.ts";
import { type ChunkSink, ContentChunker, MAX_CHUNK } from "../compression/content_chunks.ts";
import type { Repository } from "./repository.ts";

/** A chunk of an object: `size` bytes at `offset`. */
export interface ContentChunk {
  hex: string;
  offset: number;
  size: number;
}

/** The contents and chunks the repository holds, by the SHA-256 (hex) of their bytes. */
export interface ContentIndex {
  files: Map<string, ContentObject>;
  chunks: Map<string, ContentChunk>;
}

/** An object that holds a content. */
export interface ContentObject {
  /** Its fs-verity digest (hex): its name in `objects/`. */
  hex: string;
  size: number;
}

const MAGIC = new TextEncoder().encode("DSCINDX2");
const HEADER = MAGIC.length + 8;
const ENTRY = 72;
const CHUNK_ENTRY = 80;
/** Bytes read at once while hashing objects (one buffer per lane, reused). */
const READ = 256 * 1024;
/** Objects hashed at once. */
const LANES = 8;

/** Path of the index file of the layer `diffId`. */
export function contentIndexPath(repo: Repository, diffId: DiffId): string {
  const { algorithm, hex } = parseDigest(diffId);
  return `${repo.root}/content-index/${algorithm}/${hex}`;
}

/**
 * The objects of every stored layer by the SHA-256 (hex) of their content,
 * each layer's index read, or made when it is missing or damaged. `onBuilt` is
 * told of each layer whose index was made.
 */
export async function contentIndex(
  repo: Repository,
  onBuilt?: (diffId: DiffId) => void,
): Promise<ContentIndex> {
  const out: ContentIndex = { files: new Map(), chunks: new Map() };
  for (const diffId of await storedLayers(repo)) {
    let bytes = await readIndex(contentIndexPath(repo, diffId));
    if (!bytes) {
      bytes = await buildIndex(repo, diffId);
      onBuilt?.(diffId);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const files = view.getUint32(MAGIC.length, true);
    const chunks = view.getUint32(MAGIC.length + 4, true);
    const u64 = (at: number) => Number(view.getBigUint64(at, true));
    let at = HEADER;
    for (let i = 0; i < files; i++, at += ENTRY) {
      const sha = toHex(bytes.subarray(at, at + 32));
      if (!out.files.has(sha)) out.files.set(sha, { hex: toHex(bytes.subarray(at + 32, at + 64)), size: u64(at + 64) });
    }
    for (let i = 0; i < chunks; i++, at += CHUNK_ENTRY) {
      const sha = toHex(bytes.subarray(at, at + 32));
      if (out.chunks.has(sha)) continue;
      out.chunks.set(sha, { hex: toHex(bytes.subarray(at + 32, at + 64)), offset: u64(at + 64), size: u64(at + 72) });
    }
  }
  return out;
}

/** The diff_ids of the stored layers (records named by a digest). */
async function storedLayers(repo: Repository): Promise<DiffId[]> {
  const out: DiffId[] = [];
  const base = `${repo.root}/layers`;
  try {
    for await (const alg of Deno.readDir(base)) {
      if (!alg.isDirectory || alg.name !== "sha256") continue;
      for await (const e of Deno.readDir(`${base}/${alg.name}`)) {
        if (e.isFile && /^[0-9a-f]{64}$/.test(e.name)) out.push(`${alg.name}:${e.name}` as DiffId);
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** An index file's bytes when it is whole and its checksum holds; undefined otherwise. */
async function readIndex(path: string): Promise<Uint8Array | undefined> {
  let bytes: Uint8Array;
  try {
    const info = await Deno.lstat(path);
    if (!info.isFile || info.size > 1 << 30) return undefined;
    bytes = await Deno.readFile(path);
  } catch {
    return undefined;
  }
  if (bytes.length < HEADER + 32 || !MAGIC.every((b, i) => bytes[i] === b)) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const files = view.getUint32(MAGIC.length, true);
  const chunks = view.getUint32(MAGIC.length + 4, true);
  if (bytes.length !== HEADER + files * ENTRY + chunks * CHUNK_ENTRY + 32) return undefined;
  const sum = checksum(bytes);
  return sum.every((b, i) => bytes[bytes.length - 32 + i] === b) ? bytes : undefined;
}

/** The SHA-256 of an index file's entries: of all between the magic and the checksum that ends it. */
function checksum(bytes: Uint8Array): Uint8Array {
  const h = new Hasher();
  h.update(bytes.subarray(MAGIC.length, bytes.length - 32));
  return h.digestBytes();
}

/** Makes the index of `diffId` by hashing its objects, writes it (atomically), returns its bytes. */
async function buildIndex(repo: Repository, diffId: DiffId): Promise<Uint8Array> {
  const objects = new Map<string, number>();
  for await (const item of readRecord(repo.layerPath(diffId))) {
    if (item.type === "object") objects.set(item.hex, item.size);
  }
  const entries: Uint8Array[] = [];
  const chunkEntries: Uint8Array[] = [];
  const todo = [...objects];
  // A few objects at once: a layer of many small files otherwise waits on one open and read after another.
  const lane = async () => {
    const buffer = new Uint8Array(READ);
    for (let next = todo.pop(); next; next = todo.pop()) {
      const [hex, size] = next;
      const h = new Hasher();
      const verity = fromHex(hex);
      const chunker = new ContentChunker(new ChunkHasher(verity, chunkEntries), MAX_CHUNK);
      chunker.begin();
      const file = await openObject(repo, hex);
      try {
        for (let left = size; left > 0;) {
          const n = await file.read(buffer.subarray(0, Math.min(buffer.length, left)));
          if (n === null) throw new RepositoryError(`${objectName(hex)} is shorter than recorded; run fsck`);
          h.update(buffer.subarray(0, n));
          chunker.push(buffer.subarray(0, n));
          left -= n;
        }
      } finally {
        file.close();
      }
      chunker.end();
      const entry = new Uint8Array(ENTRY);
      entry.set(h.digestBytes());
      entry.set(verity, 32);
      new DataView(entry.buffer).setBigUint64(64, BigInt(size), true);
      entries.push(entry);
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
  // The lanes finish in any order: the file is the same whatever it was.
  entries.sort(byBytes);
  chunkEntries.sort(byBytes);
  const bytes = new Uint8Array(HEADER + entries.length * ENTRY + chunkEntries.length * CHUNK_ENTRY + 32);
  bytes.set(MAGIC);
  const view = new DataView(bytes.buffer);
  view.setUint32(MAGIC.length, entries.length, true);
  view.setUint32(MAGIC.length + 4, chunkEntries.length, true);
  let at = HEADER;
  for (const e of entries) bytes.set(e, (at += ENTRY) - ENTRY);
  for (const e of chunkEntries) bytes.set(e, (at += CHUNK_ENTRY) - CHUNK_ENTRY);
  bytes.set(checksum(bytes), bytes.length - 32);
  const path = contentIndexPath(repo, diffId);
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await repo.writeAtomic(path, bytes);
  return bytes;
}

/** Hashes an object's data chunks as the chunker cuts them, adding an entry for each. */
class ChunkHasher implements ChunkSink {
  #hasher = new Hasher();
  #start = 0;
  #at = 0;

  constructor(readonly verity: Uint8Array, readonly out: Uint8Array[]) {}

  bytes(data: Uint8Array): void {
    this.#hasher.update(data);
    this.#at += data.length;
  }

  endChunk(): void {
    const entry = new Uint8Array(CHUNK_ENTRY);
    entry.set(this.#hasher.digestBytes());
    entry.set(this.verity, 32);
    const view = new DataView(entry.buffer);
    view.setBigUint64(64, BigInt(this.#start), true);
    view.setBigUint64(72, BigInt(this.#at - this.#start), true);
    this.out.push(entry);
    this.#hasher = new Hasher();
    this.#start = this.#at;
  }

  zeros(length: number): void {
    this.#at += length;
    this.#start = this.#at;
  }
}

/** Orders byte strings. */
function byBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length && i < b.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
