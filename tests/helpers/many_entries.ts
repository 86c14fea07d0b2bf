/**
 * Test helper: trees of many entries, the shape of issue 20's composefs memory
 * attack and of a full OS image's metadata. `dirs` directories `d0000`.. each
 * holding `files` empty regular files `f000000`..: 200 × 1000 is 200,200
 * entries (a 1.4 MB gzip layer), 1000 × 1000 is 1,001,000 (7 MB). Built as a
 * one-layer OCI image (the tar streamed through gzip, never held whole) or as
 * the composefs dumpfile of the same tree (1,001,001 lines with the root), and
 * cached by shape under the system temporary directory, as the bombs are.
 */
import { createHash } from "node:crypto";
import { addOneLayerImage } from "./oci.ts";
import { headerBlock } from "./tar.ts";

/** The shape of a many-entry tree. */
export interface ManyEntries {
  dirs: number;
  files: number;
  /** The mtime of every entry (default 1700000000). */
  mtime?: number;
}

const CACHE = `${Deno.env.get("TMPDIR") ?? "/tmp"}/deltaship-test-many`;
const enc = new TextEncoder();

function dirName(d: number): string {
  return `d${String(d).padStart(4, "0")}`;
}

function fileName(f: number): string {
  return `f${String(f).padStart(6, "0")}`;
}

/** The tar of the shape, in pieces of about 1 MiB. */
function* tarPieces(shape: ManyEntries): Generator<Uint8Array<ArrayBuffer>> {
  const mtime = shape.mtime ?? 1700000000;
  let piece: Uint8Array[] = [];
  for (let d = 0; d < shape.dirs; d++) {
    piece.push(headerBlock({ name: `${dirName(d)}/`, typeflag: "5", mode: 0o755, mtime }));
    for (let f = 0; f < shape.files; f++) {
      piece.push(headerBlock({ name: `${dirName(d)}/${fileName(f)}`, typeflag: "0", mode: 0o644, mtime }));
      if (piece.length === 2048) {
        yield concat(piece);
        piece = [];
      }
    }
  }
  piece.push(new Uint8Array(1024));
  yield concat(piece);
}

function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A cached gzip layer of the shape: its blob's path, digest and size, and the tar's diff_id. */
interface CachedLayer {
  path: string;
  digest: string;
  size: number;
  diffId: string;
}

async function cachedLayer(shape: ManyEntries): Promise<CachedLayer> {
  await Deno.mkdir(CACHE, { recursive: true });
  const base = `${CACHE}/layer-${shape.dirs}x${shape.files}-${shape.mtime ?? 1700000000}`;
  try {
    return JSON.parse(await Deno.readTextFile(`${base}.json`));
  } catch { /* not made yet */ }
  const tmp = `${base}.${crypto.randomUUID()}`;
  const tarHash = createHash("sha256");
  const blobHash = createHash("sha256");
  let size = 0;
  const gzip = new CompressionStream("gzip");
  const writing = (async () => {
    using file = await Deno.open(`${tmp}.blob`, { write: true, createNew: true });
    for await (const chunk of gzip.readable) {
      blobHash.update(chunk);
      size += chunk.length;
      for (let o = 0; o < chunk.length;) o += await file.write(chunk.subarray(o));
    }
  })();
  const writer = gzip.writable.getWriter();
  for (const piece of tarPieces(shape)) {
    tarHash.update(piece);
    await writer.write(piece);
  }
  await writer.close();
  await writing;
  const layer = {
    path: `${base}.blob`,
    digest: `sha256:${blobHash.digest("hex")}`,
    size,
    diffId: `sha256:${tarHash.digest("hex")}`,
  };
  await Deno.rename(`${tmp}.blob`, layer.path);
  await Deno.writeTextFile(`${tmp}.json`, JSON.stringify(layer));
  await Deno.rename(`${tmp}.json`, `${base}.json`);
  return layer;
}

/** Writes an image tagged `tag` into the OCI layout `dir` whose one gzip layer holds the shape's entries. */
export async function writeManyEntriesImage(dir: string, tag: string, shape: ManyEntries): Promise<void> {
  const layer = await cachedLayer(shape);
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  const blob = `${dir}/blobs/sha256/${layer.digest.slice(7)}`;
  await Deno.link(layer.path, blob).catch(() => Deno.copyFile(layer.path, blob));
  const mediaType = "application/vnd.oci.image.layer.v1.tar+gzip";
  await addOneLayerImage(dir, tag, { mediaType, digest: layer.digest, size: layer.size }, layer.diffId);
}

/**
 * Writes the composefs dumpfile of the shape's tree to `path` (the root, then
 * each directory followed by its files, as `composefs-info dump` lists them):
 * the tree a pull of the image gives (its root, which no entry names, has
 * mode 0755, owner root and mtime 0).
 */
export async function writeManyEntriesDumpfile(path: string, shape: ManyEntries): Promise<void> {
  const mtime = `${shape.mtime ?? 1700000000}.0`;
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  const write = async (text: string) => {
    const bytes = enc.encode(text);
    for (let o = 0; o < bytes.length;) o += await file.write(bytes.subarray(o));
  };
  await write(`/ 4096 40755 ${shape.dirs + 2} 0 0 0 0.0 - - -\n`);
  for (let d = 0; d < shape.dirs; d++) {
    let text = `/${dirName(d)} 4096 40755 2 0 0 0 ${mtime} - - -\n`;
    for (let f = 0; f < shape.files; f++) text += `/${dirName(d)}/${fileName(f)} 0 100644 1 0 0 0 ${mtime} - - -\n`;
    await write(text);
  }
}
