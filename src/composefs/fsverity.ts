/**
 * fs-verity file digests (SHA-256, 4096-byte blocks, no salt), computed in userspace
 * as the kernel would (Documentation/filesystems/fsverity.rst): a Merkle tree of
 * SHA-256 hashes over the file's 4096-byte blocks, the last one zero-padded, each
 * level hashing the 4096-byte blocks of 32-byte hashes below it until one block is
 * left; the digest is the SHA-256 of the 256-byte fs-verity descriptor that holds
 * the tree's root hash and the file size.
 *
 * composefs names every object of its store by this digest, and the image records it
 * in each metacopy stub, so the kernel can refuse an object whose content changed.
 * {@link FsVerityHasher} is streaming and keeps one pending block per tree level, so
 * its memory is O(tree depth) whatever the file size.
 *
 * @module
 */
import { type BlockHash, blockHash } from "../util/sha256_blocks.ts";

/** The fs-verity block size composefs uses (log2 12). */
export const FSVERITY_BLOCK_SIZE = 4096;
/** Length of a SHA-256 digest. */
export const FSVERITY_DIGEST_SIZE = 32;

const DESCRIPTOR_SIZE = 256;

/** One level of the Merkle tree: the block of hashes being filled, and how many it holds. */
interface Level {
  block: Uint8Array;
  fill: number;
  /** Hashes this level received in all, including those of blocks already hashed. */
  count: number;
}

/**
 * Streaming fs-verity SHA-256 digest. Feed the file's bytes with {@link update} in
 * chunks of any size, then call {@link digest} (or {@link hexDigest}) once.
 *
 * ```ts
 * const h = new FsVerityHasher();
 * for await (const chunk of stream) h.update(chunk);
 * const id = h.hexDigest(); // what `fsverity digest --compact` prints
 * ```
 *
 * Each block's hash is written straight into the block of hashes above it, by
 * libcrypto where it can be loaded (see `util/sha256_blocks.ts`: near the speed
 * of one plain SHA-256 over the file), node:crypto otherwise.
 */
export class FsVerityHasher {
  readonly #hash: BlockHash;
  #pending = new Uint8Array(FSVERITY_BLOCK_SIZE);
  #pendingFill = 0;
  #levels: Level[] = [];
  #size = 0;
  #done = false;

  /** `hash` hashes each block (default: the fastest available here). */
  constructor(hash: BlockHash = blockHash()) {
    this.#hash = hash;
  }

  /** Bytes fed so far. */
  get size(): number {
    return this.#size;
  }

  /** Adds the next bytes of the file. */
  update(chunk: Uint8Array): void {
    if (this.#done) throw new Error("FsVerityHasher: update() after digest()");
    this.#size += chunk.length;
    let off = 0;
    if (this.#pendingFill > 0) {
      const take = Math.min(chunk.length, FSVERITY_BLOCK_SIZE - this.#pendingFill);
      this.#pending.set(chunk.subarray(0, take), this.#pendingFill);
      this.#pendingFill += take;
      off = take;
      if (this.#pendingFill < FSVERITY_BLOCK_SIZE) return;
      this.#add(0, this.#pending);
      this.#pendingFill = 0;
    }
    while (chunk.length - off >= FSVERITY_BLOCK_SIZE) {
      this.#add(0, chunk.subarray(off, off + FSVERITY_BLOCK_SIZE));
      off += FSVERITY_BLOCK_SIZE;
    }
    if (off < chunk.length) {
      this.#pending.set(chunk.subarray(off), 0);
      this.#pendingFill = chunk.length - off;
    }
  }

  /** The raw 32-byte digest of everything fed. Call once. */
  digest(): Uint8Array {
    if (this.#done) throw new Error("FsVerityHasher: digest() called twice");
    this.#done = true;
    if (this.#pendingFill > 0) {
      this.#pending.fill(0, this.#pendingFill);
      this.#add(0, this.#pending);
    }
    const descriptor = new Uint8Array(DESCRIPTOR_SIZE);
    const view = new DataView(descriptor.buffer);
    descriptor[0] = 1; // version
    descriptor[1] = 1; // hash algorithm: SHA-256
    descriptor[2] = 12; // log2 of the block size
    descriptor[3] = 0; // salt size
    // bytes 4..7: sig_size, zero when computing the digest
    view.setBigUint64(8, BigInt(this.#size), true);
    descriptor.set(this.#rootHash(), 16);
    const out = new Uint8Array(FSVERITY_DIGEST_SIZE);
    this.#hash.hash(descriptor, out, 0);
    return out;
  }

  /** The digest as lowercase hex (what `fsverity digest --compact` prints). Call once. */
  hexDigest(): string {
    return toHex(this.digest());
  }

  /** Hashes `block` (4096 bytes) into the next slot of `level`, hashing that level's block upwards when it fills. */
  #add(level: number, block: Uint8Array): void {
    let l = this.#levels[level];
    if (!l) {
      l = { block: new Uint8Array(FSVERITY_BLOCK_SIZE), fill: 0, count: 0 };
      this.#levels.push(l);
    }
    this.#hash.hash(block, l.block, l.fill);
    l.fill += FSVERITY_DIGEST_SIZE;
    l.count++;
    if (l.fill === FSVERITY_BLOCK_SIZE) {
      l.fill = 0;
      this.#add(level + 1, l.block); // hashed before this level's block is written again
    }
  }

  /**
   * The tree's root hash: zeros for an empty file; the hash of the only data block
   * for a file of one block; otherwise the hash of the single block at the top.
   */
  #rootHash(): Uint8Array {
    for (let level = 0; level < this.#levels.length; level++) {
      const l = this.#levels[level];
      const top = level === this.#levels.length - 1;
      if (top && l.count === 1) return l.block.subarray(0, FSVERITY_DIGEST_SIZE);
      if (l.fill > 0) {
        l.block.fill(0, l.fill);
        l.fill = 0;
        this.#add(level + 1, l.block);
      }
    }
    return new Uint8Array(FSVERITY_DIGEST_SIZE);
  }
}

/** Lowercase hex of some bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += HEX[b];
  return s;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** The fs-verity SHA-256 digest of bytes held in memory. */
export function fsverityDigest(bytes: Uint8Array): Uint8Array {
  const h = new FsVerityHasher();
  h.update(bytes);
  return h.digest();
}

/** The fs-verity SHA-256 digest of bytes held in memory, as lowercase hex. */
export function fsverityHex(bytes: Uint8Array): string {
  return toHex(fsverityDigest(bytes));
}
