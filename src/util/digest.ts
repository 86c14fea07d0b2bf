/**
 * Content digests (`sha256:<hex>`, `sha512:<hex>`): parsing, hashing, and verifying
 * byte streams against them.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { DigestMismatchError, FormatError, SizeMismatchError } from "../errors.ts";
import { type StreamSha256, streamSha256 } from "./sha256_blocks.ts";

/** A digest string in OCI form, `algorithm:hex`. */
export type Digest = string;

declare const digestKind: unique symbol;
/** A digest known to name one kind of content: a plain digest, or one of another kind, does not convert silently. */
type DigestOf<K extends string> = Digest & { readonly [digestKind]: K };

/** The digest of an image manifest (an image's identity in the repository). */
export type ManifestDigest = DigestOf<"manifest">;
/** The digest of an image config (the image ID; how a delta names its source). */
export type ConfigDigest = DigestOf<"config">;
/** A layer's diff_id: the digest of its uncompressed tar (how the repository keeps layers). */
export type DiffId = DigestOf<"diff_id">;

/** Takes a digest, validated, as a manifest digest (at the boundary where it is known to be one). */
export function asManifestDigest(d: Digest): ManifestDigest {
  parseDigest(d, "manifest digest");
  return d as ManifestDigest;
}

/** Takes a digest, validated, as a config digest. */
export function asConfigDigest(d: Digest): ConfigDigest {
  parseDigest(d, "config digest");
  return d as ConfigDigest;
}

/** Takes a digest, validated, as a diff_id. */
export function asDiffId(d: Digest): DiffId {
  parseDigest(d, "diff_id");
  return d as DiffId;
}

const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

/** A digest split into its algorithm and lowercase hex encoding. */
export interface ParsedDigest {
  algorithm: "sha256" | "sha512";
  hex: string;
}

/** Parses and validates a digest; `what` names it in the error message. */
export function parseDigest(digest: string, what = "digest"): ParsedDigest {
  const colon = digest.indexOf(":");
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const len = HEX_LENGTH[algorithm];
  if (colon < 0 || !len) {
    throw new FormatError(`${what} ${JSON.stringify(digest)} is not a sha256 or sha512 digest`);
  }
  if (hex.length !== len || !/^[0-9a-f]+$/.test(hex)) {
    throw new FormatError(`${what} ${JSON.stringify(digest)} has a malformed ${algorithm} value`);
  }
  return { algorithm: algorithm as ParsedDigest["algorithm"], hex };
}

/** True when `s` is a well-formed digest. */
export function isDigest(s: string): boolean {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

/** SHA-256 digest of some bytes, as `sha256:<hex>`. */
export function sha256(bytes: Uint8Array | string): Digest {
  return "sha256:" + createHash("sha256").update(bytes).digest("hex");
}

/** Chunks at least this large are hashed aside by {@link Hasher.updateAside}; smaller ones cost less than the handoff. */
const ASIDE_MIN = 256 << 10;

/**
 * Incremental hashing of a byte stream for one algorithm: SHA-256 in libcrypto
 * where it loads (sha256_blocks.ts), so that large chunks can be hashed on
 * another thread; node:crypto otherwise and for SHA-512.
 */
export class Hasher {
  #hash: Hash | undefined;
  #native: StreamSha256 | undefined;
  #algorithm: "sha256" | "sha512";
  /** Bytes hashed so far. */
  size = 0;

  constructor(algorithm: "sha256" | "sha512" = "sha256", copyOf?: Hasher) {
    this.#algorithm = algorithm;
    if (copyOf) {
      this.#hash = copyOf.#hash?.copy();
      this.#native = copyOf.#native?.copy();
      this.size = copyOf.size;
    } else {
      this.#native = algorithm === "sha256" ? streamSha256() : undefined;
      if (!this.#native) this.#hash = createHash(algorithm);
    }
  }

  /** Adds bytes. */
  update(chunk: Uint8Array): void {
    if (this.#native) this.#native.update(chunk);
    else this.#hash!.update(chunk);
    this.size += chunk.length;
  }

  /**
   * Adds bytes, on another thread when that pays: the promise (when there is
   * one) must be awaited before `chunk` changes and before this hasher is used
   * again; meanwhile the caller may read `chunk` and do other work.
   */
  updateAside(chunk: Uint8Array): Promise<void> | undefined {
    if (!this.#native || chunk.length < ASIDE_MIN) {
      this.update(chunk);
      return undefined;
    }
    this.size += chunk.length;
    return this.#native.updateAside(chunk);
  }

  /** An independent hasher that has seen what this one has. */
  copy(): Hasher {
    return new Hasher(this.#algorithm, this);
  }

  /** The digest of everything added, as `algorithm:hex`. Call once. */
  digest(): Digest {
    return `${this.#algorithm}:${toHex(this.digestBytes())}`;
  }

  /** The raw digest bytes. Call once, instead of {@link digest}. */
  digestBytes(): Uint8Array {
    return this.#native ? this.#native.digest() : new Uint8Array(this.#hash!.digest());
  }
}

/**
 * Verifies a byte stream against an expected digest and size as it passes: the
 * size is enforced chunk by chunk (so an oversized blob fails early), the digest
 * at the end.
 */
export class Verifier {
  #hasher: Hasher;

  constructor(
    readonly what: string,
    readonly expectedDigest: Digest,
    readonly expectedSize?: number,
  ) {
    this.#hasher = new Hasher(parseDigest(expectedDigest, what).algorithm);
  }

  /** Adds a chunk; throws when the stream is already longer than expected. */
  update(chunk: Uint8Array): void {
    this.#hasher.update(chunk);
    if (this.expectedSize !== undefined && this.#hasher.size > this.expectedSize) {
      throw new SizeMismatchError(this.what, this.expectedSize, this.#hasher.size);
    }
  }

  /** Bytes seen so far. */
  get size(): number {
    return this.#hasher.size;
  }

  /** Checks the final size and digest. Later calls repeat the first verdict. */
  finish(): void {
    this.#verdict ??= this.#judge();
    if (this.#verdict !== true) throw this.#verdict;
  }

  #verdict: true | Error | undefined;

  #judge(): true | Error {
    if (this.expectedSize !== undefined && this.#hasher.size !== this.expectedSize) {
      return new SizeMismatchError(this.what, this.expectedSize, this.#hasher.size);
    }
    const actual = this.#hasher.digest();
    if (actual !== this.expectedDigest) return new DigestMismatchError(this.what, this.expectedDigest, actual);
    return true;
  }
}

/**
 * A pass-through stream stage that feeds `verifier` (and `onChunk`, e.g. progress)
 * with every chunk and checks the digest and size when the stream ends.
 */
export function verifying(
  verifier: Verifier,
  onChunk?: (bytes: number) => void,
): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      verifier.update(chunk);
      onChunk?.(chunk.length);
      controller.enqueue(chunk);
    },
    flush() {
      verifier.finish();
    },
  });
}

/** Checks whole in-memory bytes (manifests, configs) against a digest and optional size. */
export function verifyBytes(
  what: string,
  bytes: Uint8Array,
  digest: Digest,
  size?: number,
): void {
  const v = new Verifier(what, digest, size);
  v.update(bytes);
  v.finish();
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]];
  return s;
}

/** Bytes of a lowercase hex string. */
export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = (nibble(hex.charCodeAt(2 * i)) << 4) | nibble(hex.charCodeAt(2 * i + 1));
  }
  return out;
}

/** The value of one hex digit's char code (0 for anything else: callers pass checked hex). */
function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : 0;
}
