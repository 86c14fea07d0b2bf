/**
 * Writing tar headers, for the archives deltaship makes itself (oci-archive
 * exports): regular files and directories only, ustar blocks with a PAX `path`
 * record when a name does not fit, and base-256 sizes beyond 8 GiB.
 *
 * (Layer tars are never written here: their headers are kept byte for byte.)
 *
 * @module
 */
import { BLOCK, padded } from "./header.ts";

/** An entry deltaship writes into an archive of its own. */
export interface HeaderFields {
  name: string;
  /** Content length (0 for a directory). */
  size: number;
  /** Default 0o644 for files, 0o755 for directories. */
  mode?: number;
  type?: "file" | "dir";
  /** Seconds since the epoch; default 0, so archives are reproducible. */
  mtime?: number;
}

const enc = new TextEncoder();
/** Largest size an 11-digit octal field holds. */
const MAX_OCTAL_SIZE = 0o77777777777;

function putString(block: Uint8Array, offset: number, length: number, value: Uint8Array): void {
  block.set(value.subarray(0, length), offset);
}

function putOctal(block: Uint8Array, offset: number, length: number, value: number): void {
  putString(block, offset, length, enc.encode(value.toString(8).padStart(length - 1, "0") + "\0"));
}

/** GNU base-256: a marker bit, then the value big-endian. */
function putBase256(block: Uint8Array, offset: number, length: number, value: number): void {
  let v = value;
  for (let i = length - 1; i > 0; i--) {
    block[offset + i] = v % 256;
    v = Math.floor(v / 256);
  }
  block[offset] = 0x80;
}

/** Splits a name into ustar prefix and name fields, or undefined when it cannot be. */
function splitName(name: Uint8Array): { prefix: Uint8Array; name: Uint8Array } | undefined {
  if (name.length <= 100) return { prefix: new Uint8Array(0), name };
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== 0x2f) continue;
    if (i <= 155 && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return { prefix: name.subarray(0, i), name: name.subarray(i + 1) };
    }
  }
  return undefined;
}

function ustarBlock(name: Uint8Array, prefix: Uint8Array, f: HeaderFields, typeflag: string, size: number): Uint8Array {
  const b = new Uint8Array(BLOCK);
  putString(b, 0, 100, name);
  putOctal(b, 100, 8, f.mode ?? (f.type === "dir" ? 0o755 : 0o644));
  putOctal(b, 108, 8, 0);
  putOctal(b, 116, 8, 0);
  if (size > MAX_OCTAL_SIZE) putBase256(b, 124, 12, size);
  else putOctal(b, 124, 12, size);
  putOctal(b, 136, 12, Math.floor(f.mtime ?? 0));
  b.fill(0x20, 148, 156);
  b[156] = typeflag.charCodeAt(0);
  putString(b, 257, 8, enc.encode("ustar\x0000"));
  putString(b, 345, 155, prefix);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  putString(b, 148, 8, enc.encode(sum.toString(8).padStart(6, "0") + "\0 "));
  return b;
}

/** One PAX record, `"<len> <key>=<value>\n"`, its length counting itself. */
function paxRecord(key: string, value: string): Uint8Array {
  const body = enc.encode(` ${key}=${value}\n`);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return enc.encode(`${len} ${key}=${value}\n`);
}

/** Encodes an entry's header group (PAX extension, if needed, then the ustar block). */
export function encodeHeader(f: HeaderFields): Uint8Array {
  const typeflag = f.type === "dir" ? "5" : "0";
  const raw = enc.encode(f.type === "dir" && !f.name.endsWith("/") ? `${f.name}/` : f.name);
  const split = splitName(raw);
  if (split) return ustarBlock(split.name, split.prefix, f, typeflag, f.size);
  const data = paxRecord("path", new TextDecoder().decode(raw));
  const out = new Uint8Array(BLOCK + padded(data.length) + BLOCK);
  out.set(ustarBlock(enc.encode("PaxHeader"), new Uint8Array(0), { name: "", size: 0 }, "x", data.length), 0);
  out.set(data, BLOCK);
  out.set(ustarBlock(raw.subarray(0, 100), new Uint8Array(0), f, typeflag, f.size), BLOCK + padded(data.length));
  return out;
}

/** The zero bytes that pad `size` bytes of content to whole blocks. */
export function paddingFor(size: number): Uint8Array {
  return new Uint8Array(padded(size) - size);
}

/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE: Uint8Array = new Uint8Array(2 * BLOCK);
