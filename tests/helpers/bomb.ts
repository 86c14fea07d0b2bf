/**
 * Test helper: decompression bombs. A layer whose tar is GiBs of zeros (one
 * zero-filled file, or nothing but zero blocks) compressed to a few hundred KiB.
 * The blob is made from pieces, never held whole: the `zstd` or `gzip` CLI
 * compresses 64 MiB of zeros once, and that member (a zstd frame, a gzip
 * member) is repeated, since concatenated ones decompress as one stream. Blobs
 * are cached by their parameters under the system temporary directory.
 */
import { createHash } from "node:crypto";
import { addOneLayerImage } from "./oci.ts";
import { headerBlock } from "./tar.ts";
/** A cached bomb blob. */
export interface Bomb {
  /** Path of the compressed blob. */
  path: string;
  /** Its digest and size. */
  digest: string;
  size: number;
  /** The digest of the uncompressed tar. */
  diffId: string;
  compression: "zstd" | "gzip";
  shape: BombShape;
  /** Bytes of zeros inside: of the file, or of the whole tar. */
  fileSize: number;
}

/**
 * What the tar holds: one zero-filled file (its content reaches the object
 * store), or nothing but zero blocks (an empty archive whose end-of-archive
 * trailer runs on: stored as a count of zeros, with no I/O at all).
 */
export type BombShape = "file" | "trailer";

const CACHE = `${Deno.env.get("TMPDIR") ?? "/tmp"}/deltaship-test-bombs`;

/** Zeros per repeated member. */
const UNIT = 64 << 20;

async function run(cmd: string, args: string[], input?: Uint8Array): Promise<Uint8Array> {
  const child = new Deno.Command(cmd, { args, stdin: input ? "piped" : "null", stdout: "piped", stderr: "piped" })
    .spawn();
  if (input) {
    const w = child.stdin.getWriter();
    await w.write(input);
    await w.close();
  }
  const out = await child.output();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

/** Levels: zstd's fastest (as a plain `zstd -1`: ~30000:1 on zeros), gzip's best (~1000:1). */
const LEVEL = { zstd: "-1", gzip: "-9" };

/** `bytes` compressed by the CLI. */
function squeeze(compression: "zstd" | "gzip", bytes: Uint8Array): Promise<Uint8Array> {
  return run(compression, [LEVEL[compression], "-q", "-c"], bytes);
}

/**
 * The blob of a layer of `fileSize` zeros (a multiple of 64 MiB) in the given
 * shape: made once, then taken from the cache.
 */
export async function zeroBomb(
  fileSize: number,
  compression: "zstd" | "gzip" = "zstd",
  shape: BombShape = "file",
): Promise<Bomb> {
  if (fileSize <= 0 || fileSize % UNIT !== 0) throw new RangeError("fileSize must be a positive multiple of 64 MiB");
  await Deno.mkdir(CACHE, { recursive: true });
  const base = `${CACHE}/${compression}-${shape}-${fileSize}`;
  try {
    return JSON.parse(await Deno.readTextFile(`${base}.json`));
  } catch { /* not made yet */ }
  // The tar: a header, the content, no padding (a multiple of 512), two zero blocks; or zeros alone.
  const header = headerBlock({ name: "zeros.bin", size: fileSize, typeflag: "0" });
  const unit = await run("bash", ["-c", `head -c ${UNIT} /dev/zero | ${compression} ${LEVEL[compression]} -q -c`]);
  const pieces = [
    ...(shape === "file" ? [await squeeze(compression, header)] : []),
    ...Array.from({ length: fileSize / UNIT }, () => unit),
    ...(shape === "file" ? [await squeeze(compression, new Uint8Array(1024))] : []),
  ];
  const tmp = `${base}.${crypto.randomUUID()}`;
  const blobHash = createHash("sha256");
  using file = await Deno.open(`${tmp}.blob`, { write: true, createNew: true });
  let size = 0;
  for (const p of pieces) {
    blobHash.update(p);
    size += p.length;
    for (let o = 0; o < p.length;) o += await file.write(p.subarray(o));
  }
  const tarHash = createHash("sha256");
  if (shape === "file") tarHash.update(header);
  const zeros = new Uint8Array(1 << 20);
  for (let left = shape === "file" ? fileSize + 1024 : fileSize; left > 0; left -= zeros.length) {
    tarHash.update(zeros.subarray(0, Math.min(left, zeros.length)));
  }
  const bomb: Bomb = {
    path: `${base}.blob`,
    digest: `sha256:${blobHash.digest("hex")}`,
    size,
    diffId: `sha256:${tarHash.digest("hex")}`,
    compression,
    shape,
    fileSize,
  };
  await Deno.rename(`${tmp}.blob`, bomb.path);
  await Deno.writeTextFile(`${tmp}.json`, JSON.stringify(bomb));
  await Deno.rename(`${tmp}.json`, `${base}.json`);
  return bomb;
}

/** Writes an image tagged `tag` into the OCI layout `dir` whose one layer is `bomb`. */
export async function writeBombImage(dir: string, tag: string, bomb: Bomb): Promise<void> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.copyFile(bomb.path, `${dir}/blobs/sha256/${bomb.digest.slice(7)}`);
  const mediaType = `application/vnd.oci.image.layer.v1.tar+${bomb.compression}`;
  await addOneLayerImage(dir, tag, { mediaType, digest: bomb.digest, size: bomb.size }, bomb.diffId);
}
