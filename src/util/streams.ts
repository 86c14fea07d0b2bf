/**
 * Web Stream plumbing: helpers to read streams and files in bounded pieces.
 * (The compression stages are in `compression/stages.ts`.)
 *
 * @module
 */

/** A ReadableStream that reads `length` bytes of a file from `offset`, in chunks, then closes it. */
export function fileRangeStream(
  path: string,
  offset = 0,
  length = Infinity,
  chunkSize = 256 << 10,
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

/**
 * A stage that joins small chunks into chunks of at least `minBytes` (the last
 * may be shorter). Network reads arrive in 16-64 KiB pieces; stages with a fixed
 * cost per chunk (node:zlib hands every write to its thread pool) run far faster
 * on larger ones. Holds at most `minBytes` plus one chunk.
 */
export function coalesce(minBytes: number): TransformStream<Uint8Array, Uint8Array> {
  let parts: Uint8Array[] = [];
  let size = 0;
  const take = (): Uint8Array => {
    const out = parts.length === 1 ? parts[0] : concat(parts, size);
    parts = [];
    size = 0;
    return out;
  };
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      if (size === 0 && chunk.length >= minBytes) return controller.enqueue(chunk);
      parts.push(chunk);
      size += chunk.length;
      if (size >= minBytes) controller.enqueue(take());
    },
    flush(controller) {
      if (size > 0) controller.enqueue(take());
    },
  });
}
