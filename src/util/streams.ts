/**
 * Web Stream plumbing: compression and decompression stages, and helpers to
 * read streams in bounded pieces.
 *
 * @module
 */
import zlib from "node:zlib";
import { Duplex } from "node:stream";
import { zstdDecompressStream } from "./zstd.ts";

/** Compression formats of layer blobs. */
export type Compression = "gzip" | "zstd" | "none";

function nodeStage(stream: Duplex): TransformStream<Uint8Array, Uint8Array> {
  const { readable, writable } = Duplex.toWeb(stream) as unknown as {
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  };
  return { readable, writable } as TransformStream<Uint8Array, Uint8Array>;
}

const CHUNK = 256 * 1024;

/**
 * A stream stage that decompresses `format`. node:zlib's gunzip measured 1.4x
 * faster than `DecompressionStream("gzip")` on layer data. zstd goes through
 * {@link zstdDecompressStream}, which drives node:zlib's decoder directly: its
 * stream wrapper misses truncation and crashes on trailing garbage.
 */
export function decompressor(format: Compression): TransformStream<Uint8Array, Uint8Array> {
  switch (format) {
    case "gzip":
      return nodeStage(zlib.createGunzip({ chunkSize: CHUNK }));
    case "zstd":
      return zstdDecompressStream(CHUNK);
    case "none":
      return new TransformStream();
  }
}

/** A stream stage that compresses to `format` (`level` as the format understands it). */
export function compressor(format: Compression, level?: number): TransformStream<Uint8Array, Uint8Array> {
  switch (format) {
    case "gzip":
      return nodeStage(zlib.createGzip({ chunkSize: CHUNK, level: level ?? 6 }));
    case "zstd":
      return nodeStage(
        zlib.createZstdCompress({
          chunkSize: CHUNK,
          params: { [zlib.constants.ZSTD_c_compressionLevel]: level ?? 3 },
        }),
      );
    case "none":
      return new TransformStream();
  }
}

/** A ReadableStream that reads `length` bytes of a file from `offset`, in chunks, then closes it. */
export function fileRangeStream(
  path: string,
  offset = 0,
  length = Infinity,
  chunkSize = 1 << 20,
): ReadableStream<Uint8Array> {
  let file: Deno.FsFile | undefined;
  let left = length;
  return new ReadableStream<Uint8Array>({
    async start() {
      file = await Deno.open(path, { read: true });
      if (offset > 0) await file.seek(offset, Deno.SeekMode.Start);
    },
    async pull(controller) {
      if (left <= 0) {
        file?.close();
        file = undefined;
        controller.close();
        return;
      }
      const buf = new Uint8Array(Math.min(chunkSize, left));
      const n = await file!.read(buf);
      if (n === null) {
        file?.close();
        file = undefined;
        controller.close();
        return;
      }
      left -= n;
      controller.enqueue(n === buf.length ? buf : buf.subarray(0, n));
    },
    cancel() {
      file?.close();
      file = undefined;
    },
  });
}

/** Reads a whole stream into memory. Only for small documents (manifests, configs, indexes). */
export async function readAll(stream: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of stream) {
    n += chunk.length;
    if (n > limit) throw new RangeError(`stream longer than ${limit} bytes`);
    parts.push(chunk);
  }
  return concat(parts, n);
}

/** Concatenates byte arrays. */
export function concat(parts: Uint8Array[], total?: number): Uint8Array {
  const out = new Uint8Array(total ?? parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
