/**
 * SHA-256 of many small, independent messages: the 4096-byte blocks of an
 * fs-verity Merkle tree, each hashed on its own. node:crypto costs three calls
 * into the runtime and a Buffer per message, which makes a tree's leaves hash
 * at about half the speed of one SHA-256 over the same bytes; OpenSSL's
 * `SHA256_Init`/`Update`/`Final` through FFI cost a fraction of that (measured:
 * 0.46x versus 0.9x of plain SHA-256 over 4096-byte blocks, both with SHA-NI).
 * So libcrypto is used where it can be loaded (Linux, FFI permission,
 * `libcrypto.so.3` or `.so.1.1`, and a known answer checked at load), and
 * node:crypto elsewhere: the digests are the same either way. The same library
 * gives {@link StreamSha256}, one SHA-256 over a stream whose large updates can
 * run on another thread (util/digest.ts's Hasher uses it).
 *
 * @module
 */
import { createHash } from "node:crypto";

/** Hashes one message at a time into a caller's buffer. */
export interface BlockHash {
  /** Writes the SHA-256 of `bytes` into `out` at `at` (32 bytes). */
  hash(bytes: Uint8Array, out: Uint8Array, at: number): void;
}

const SYMBOLS = {
  SHA256_Init: { parameters: ["buffer"], result: "i32" },
  // The size as a BigInt: V8's fast FFI path takes usize only so (a Number costs 4x the call).
  SHA256_Update: { parameters: ["buffer", "buffer", "usize"], result: "i32" },
  SHA256_Final: { parameters: ["buffer", "buffer"], result: "i32" },
  // The same function run on one of the runtime's blocking threads (a promise): see StreamSha256.
  SHA256_Update_aside: {
    name: "SHA256_Update",
    parameters: ["buffer", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
} as const;

type Libcrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** `sizeof(SHA256_CTX)` is 112; room to spare. */
const CTX_SIZE = 128;
const BLOCK = 4096;
const BLOCK_N = 4096n;
/** SHA-256 of "abc" (FIPS 180-2, appendix B.1): the known answer libcrypto must give before it is used. */
const ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

/** Loads libcrypto's SHA-256 functions, or undefined where they cannot be used. */
function loadLibcrypto(): Libcrypto | undefined {
  if (Deno.build.os !== "linux") return undefined;
  try {
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
  } catch {
    return undefined;
  }
  for (const name of ["libcrypto.so.3", "libcrypto.so.1.1"]) {
    try {
      const symbols = Deno.dlopen(name, SYMBOLS).symbols;
      const out = new Uint8Array(32);
      new NativeBlockHash(symbols).hash(new TextEncoder().encode("abc"), out, 0);
      if (Array.from(out, (b) => b.toString(16).padStart(2, "0")).join("") === ABC_SHA256) return symbols;
    } catch { /* not here, or not usable: try the next */ }
  }
  return undefined;
}

/** libcrypto's SHA-256 with a context of its own. */
class NativeBlockHash implements BlockHash {
  readonly #ctx = new Uint8Array(CTX_SIZE);
  readonly #md = new Uint8Array(32);

  constructor(readonly lib: Libcrypto) {}

  hash(bytes: Uint8Array, out: Uint8Array, at: number): void {
    const lib = this.lib;
    lib.SHA256_Init(this.#ctx);
    lib.SHA256_Update(this.#ctx, bytes, bytes.length === BLOCK ? BLOCK_N : BigInt(bytes.length));
    lib.SHA256_Final(this.#md, this.#ctx);
    out.set(this.#md, at);
  }
}

/** node:crypto's SHA-256. */
const nodeBlockHash: BlockHash = {
  hash(bytes, out, at) {
    out.set(createHash("sha256").update(bytes).digest(), at);
  },
};

/**
 * The library, loaded once per thread when this module is first imported and
 * never changed (each hasher has its own context buffer).
 */
const LIBCRYPTO = loadLibcrypto();

/** A block hasher: libcrypto's where available, node:crypto's otherwise. */
export function blockHash(): BlockHash {
  return LIBCRYPTO ? new NativeBlockHash(LIBCRYPTO) : nodeBlockHash;
}

/** Which implementation {@link blockHash} gives here (for benchmarks and tests). */
export function blockHashImplementation(): "libcrypto" | "node:crypto" {
  return LIBCRYPTO ? "libcrypto" : "node:crypto";
}

/** A node:crypto block hasher whatever is available (for tests that compare the two). */
export function nodeBlockHasher(): BlockHash {
  return nodeBlockHash;
}

/**
 * One SHA-256 over a stream, in libcrypto: updates run on the calling thread,
 * or, with {@link updateAside}, on one of the runtime's blocking threads while
 * the caller goes on with other work (a layer's diff_id is hashed so while its
 * objects are split out and hashed for fs-verity). The context is plain data,
 * so a copy of its bytes is a copy of the hash.
 */
export class StreamSha256 {
  readonly #ctx = new Uint8Array(CTX_SIZE);
  #busy: Promise<unknown> | undefined;

  constructor(readonly lib: Libcrypto, from?: StreamSha256) {
    if (from) this.#ctx.set(from.#ctx);
    else lib.SHA256_Init(this.#ctx);
  }

  /** Adds `bytes` now. */
  update(bytes: Uint8Array): void {
    if (this.#busy) throw new Error("StreamSha256.update while an update aside is running");
    this.lib.SHA256_Update(this.#ctx, bytes, BigInt(bytes.length));
  }

  /**
   * Adds `bytes` on another thread: neither they nor this hash may be used until
   * the promise settles (the caller awaits it before reusing the buffer).
   */
  async updateAside(bytes: Uint8Array): Promise<void> {
    if (this.#busy) throw new Error("StreamSha256.updateAside while another is running");
    const busy = this.lib.SHA256_Update_aside(this.#ctx, bytes, BigInt(bytes.length));
    this.#busy = busy;
    try {
      await busy;
    } finally {
      this.#busy = undefined;
    }
  }

  /** An independent hash that has seen what this one has. */
  copy(): StreamSha256 {
    return new StreamSha256(this.lib, this);
  }

  /** The digest (32 bytes); call once. */
  digest(): Uint8Array {
    const md = new Uint8Array(32);
    this.lib.SHA256_Final(md, this.#ctx);
    return md;
  }
}

/** A libcrypto stream hash, or undefined where libcrypto cannot be used (node:crypto serves then). */
export function streamSha256(): StreamSha256 | undefined {
  return LIBCRYPTO ? new StreamSha256(LIBCRYPTO) : undefined;
}
