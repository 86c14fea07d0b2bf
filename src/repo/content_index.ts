/**
 * The content index: which object holds a content of a given SHA-256, for the
 * partial pull of a zstd:chunked layer (whose TOC names each file by the
 * SHA-256 of its content, where objects are named by their fs-verity digest).
 *
 * One index file per stored layer, `content-index/<alg>/<hex>` beside the
 * layer record `layers/<alg>/<hex>`, listing the layer's objects by SHA-256.
 * It is made lazily, the first time a partial pull asks, by reading the
 * layer's objects (a repository made before the index existed needs nothing
 * else), written whole to a temporary file and renamed into place, and
 * carries a checksum of its entries: a file a crash left torn is found
 * wrong, ignored and made again. It is derived data: gc removes it with its
 * layer, and anything it says is checked again downstream (the object's size
 * against the TOC, the rebuilt layer against its diff_id).
 *
 * Format: `DSCINDX1`, then per object 32 bytes of SHA-256, 32 bytes of
 * fs-verity digest and a u64 LE size, then the SHA-256 of those entries.
 *
 * @module
 */
import { type DiffId, fromHex, Hasher, parseDigest, toHex } from "../util/digest.ts";
import { readRecord } from "./layer_record.ts";
import { openObject } from "./layer_reader.ts";
import { objectName } from "./objects.ts";
import { RepositoryError } from "../errors.ts";
import type { Repository } from "./repository.ts";

/** An object that holds a content. */
export interface ContentObject {
  /** Its fs-verity digest (hex): its name in `objects/`. */
  hex: string;
  size: number;
}

const MAGIC = new TextEncoder().encode("DSCINDX1");
const ENTRY = 72;
/** Bytes read at once while hashing objects (one buffer, reused). */
const READ = 1 << 20;

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
): Promise<Map<string, ContentObject>> {
  const out = new Map<string, ContentObject>();
  for (const diffId of await storedLayers(repo)) {
    let bytes = await readIndex(contentIndexPath(repo, diffId));
    if (!bytes) {
      bytes = await buildIndex(repo, diffId);
      onBuilt?.(diffId);
    }
    for (let at = MAGIC.length; at + ENTRY <= bytes.length - 32; at += ENTRY) {
      const sha = toHex(bytes.subarray(at, at + 32));
      if (out.has(sha)) continue;
      const size = Number(new DataView(bytes.buffer, bytes.byteOffset + at + 64, 8).getBigUint64(0, true));
      out.set(sha, { hex: toHex(bytes.subarray(at + 32, at + 64)), size });
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
  const n = bytes.length - MAGIC.length - 32;
  if (n < 0 || n % ENTRY !== 0 || !MAGIC.every((b, i) => bytes[i] === b)) return undefined;
  const h = new Hasher();
  h.update(bytes.subarray(MAGIC.length, bytes.length - 32));
  const sum = h.digestBytes();
  return sum.every((b, i) => bytes[bytes.length - 32 + i] === b) ? bytes : undefined;
}

/** Makes the index of `diffId` by hashing its objects, writes it (atomically), returns its bytes. */
async function buildIndex(repo: Repository, diffId: DiffId): Promise<Uint8Array> {
  const seen = new Set<string>();
  const entries: Uint8Array[] = [];
  const buffer = new Uint8Array(READ);
  for await (const item of readRecord(repo.layerPath(diffId))) {
    if (item.type !== "object" || seen.has(item.hex)) continue;
    seen.add(item.hex);
    const h = new Hasher();
    const file = await openObject(repo, item.hex);
    try {
      for (let left = item.size; left > 0;) {
        const n = await file.read(buffer.subarray(0, Math.min(buffer.length, left)));
        if (n === null) throw new RepositoryError(`${objectName(item.hex)} is shorter than recorded; run fsck`);
        h.update(buffer.subarray(0, n));
        left -= n;
      }
    } finally {
      file.close();
    }
    const entry = new Uint8Array(ENTRY);
    entry.set(h.digestBytes());
    entry.set(fromHex(item.hex), 32);
    new DataView(entry.buffer).setBigUint64(64, BigInt(item.size), true);
    entries.push(entry);
  }
  const bytes = new Uint8Array(MAGIC.length + entries.length * ENTRY + 32);
  bytes.set(MAGIC);
  entries.forEach((e, i) => bytes.set(e, MAGIC.length + i * ENTRY));
  const h = new Hasher();
  h.update(bytes.subarray(MAGIC.length, bytes.length - 32));
  bytes.set(h.digestBytes(), bytes.length - 32);
  const path = contentIndexPath(repo, diffId);
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await repo.writeAtomic(path, bytes);
  return bytes;
}
