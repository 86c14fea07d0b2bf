/**
 * Reading stored layers back: the exact uncompressed tar as a stream, or the
 * entries with the objects that hold their contents.
 *
 * @module
 */
import { FormatError, NotFoundError, RepositoryError } from "../errors.ts";
import { parseHeaderGroup, type TarEntry } from "../tar/header.ts";
import type { Digest } from "../util/digest.ts";
import { readRecord, type RecordItem } from "./layer_record.ts";
import type { Repository } from "./repository.ts";

const CHUNK = 1 << 20;
const ZEROS = new Uint8Array(CHUNK);

async function* records(repo: Repository, diffId: Digest): AsyncGenerator<RecordItem> {
  try {
    yield* readRecord(repo.layerPath(diffId));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`layer ${diffId} is not in the repository`);
    throw e;
  }
}

/** Opens an object for reading; a missing object is a repository fault naming it. */
export async function openObject(repo: Repository, hex: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(repo.objects.path(hex));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new RepositoryError(`object sha256:${hex} is missing from the repository; run fsck`);
    }
    throw e;
  }
}

/** Yields the layer's uncompressed tar, byte for byte, in chunks. */
export async function* layerTarChunks(repo: Repository, diffId: Digest): AsyncGenerator<Uint8Array> {
  for await (const item of records(repo, diffId)) {
    switch (item.type) {
      case "header":
      case "raw":
        yield item.bytes;
        break;
      case "zero":
        for (let left = item.length; left > 0; left -= CHUNK) yield ZEROS.subarray(0, Math.min(CHUNK, left));
        break;
      case "object": {
        const file = await openObject(repo, item.hex);
        try {
          let left = item.size;
          while (left > 0) {
            const buf = new Uint8Array(Math.min(CHUNK, left));
            const n = await file.read(buf);
            if (n === null) throw new RepositoryError(`object sha256:${item.hex} is shorter than recorded; run fsck`);
            left -= n;
            yield buf.subarray(0, n);
          }
        } finally {
          file.close();
        }
        break;
      }
    }
  }
}

/** The layer's uncompressed tar as a Web Stream. */
export function layerTarStream(repo: Repository, diffId: Digest): ReadableStream<Uint8Array> {
  return ReadableStream.from(layerTarChunks(repo, diffId));
}

/** A tar entry of a stored layer, with the object that holds its content (if any). */
export interface StoredEntry {
  entry: TarEntry;
  /** SHA-256 hex of the content object, when the entry has content. */
  object?: string;
}

/** Bytes of the tar a record item stands for. */
function tarLength(item: RecordItem): number {
  switch (item.type) {
    case "header":
    case "raw":
      return item.bytes.length;
    case "zero":
      return item.length;
    case "object":
      return item.size;
  }
}

/** Yields the entries of a stored layer in order, without reading file contents. */
export async function* layerEntries(repo: Repository, diffId: Digest): AsyncGenerator<StoredEntry> {
  const globals = new Map<string, Uint8Array>();
  let pending: TarEntry | undefined;
  /** Offset in the tar of the item being read, to name entries in errors. */
  let offset = 0;
  for await (const item of records(repo, diffId)) {
    if (item.type === "header") {
      if (pending) yield { entry: pending };
      try {
        pending = parseHeaderGroup(item.bytes, globals, offset);
      } catch (e) {
        if (e instanceof FormatError) throw new FormatError(`layer ${diffId}: ${e.message}`, { cause: e });
        throw e;
      }
      if (pending.kind === "pax-global") pending = undefined;
    } else if (item.type === "object" && pending) {
      yield { entry: pending, object: item.hex };
      pending = undefined;
    }
    offset += tarLength(item);
  }
  if (pending) yield { entry: pending };
}
