/**
 * Reading stored layers back: the exact uncompressed tar as a stream, or the
 * entries with the objects that hold their contents.
 *
 * @module
 */
import { NotFoundError, RepositoryError, withContext } from "../errors.ts";
import { BLOCK, type TarEntry } from "../tar/header.ts";
import { parseHeaderGroup } from "../tar/header_group.ts";
import { readFull } from "../util/fs.ts";
import type { DiffId } from "../util/digest.ts";
import { readRecord, type RecordItem } from "./layer_record.ts";
import { Rootfs } from "../oci/rootfs.ts";
import { Yielder } from "../util/yielder.ts";
import { objectName } from "./objects.ts";
import { RepoFile } from "./repo_file.ts";
import type { Repository } from "./repository.ts";

const CHUNK = 1 << 20;
const ZEROS = new Uint8Array(CHUNK);

async function* records(repo: Repository, diffId: DiffId): AsyncGenerator<RecordItem> {
  try {
    yield* readRecord(repo.layerPath(diffId));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new NotFoundError(`layer ${diffId} is not in the repository`);
    throw e;
  }
}

/**
 * Opens an object for reading (never through a symbolic link: see repo_file.ts);
 * a missing object is a repository fault naming it.
 */
export async function openObject(repo: Repository, hex: string): Promise<RepoFile> {
  try {
    return await RepoFile.open(repo.objects.path(hex));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new RepositoryError(`${objectName(hex)} is missing from the repository; run fsck`);
    }
    throw e;
  }
}

/** The `size` bytes of an object, in chunks of up to 1 MiB (each a fresh buffer). */
export async function* objectChunks(repo: Repository, hex: string, size: number): AsyncGenerator<Uint8Array> {
  const file = await openObject(repo, hex);
  try {
    let left = size;
    while (left > 0) {
      const buf = new Uint8Array(Math.min(CHUNK, left));
      const n = await file.read(buf);
      if (n === null) throw shorterThanRecorded(hex);
      left -= n;
      yield buf.subarray(0, n);
    }
  } finally {
    file.close();
  }
}

/** Fills `into` with an object's first `into.length` bytes; returns `into`. */
export async function readObject(repo: Repository, hex: string, into: Uint8Array): Promise<Uint8Array> {
  const file = await openObject(repo, hex);
  try {
    if ((await readFull(file, into)) < into.length) throw shorterThanRecorded(hex);
    return into;
  } finally {
    file.close();
  }
}

function shorterThanRecorded(hex: string): RepositoryError {
  return new RepositoryError(`${objectName(hex)} is shorter than recorded; run fsck`);
}

/** Yields the layer's uncompressed tar, byte for byte, in chunks. */
export async function* layerTarChunks(repo: Repository, diffId: DiffId): AsyncGenerator<Uint8Array> {
  for await (const item of records(repo, diffId)) {
    switch (item.type) {
      case "header":
      case "raw":
        yield item.bytes;
        break;
      case "zero":
        for (let left = item.length; left > 0; left -= CHUNK) yield ZEROS.subarray(0, Math.min(CHUNK, left));
        break;
      case "object":
        yield* objectChunks(repo, item.hex, item.size);
        break;
    }
  }
}

/** The layer's uncompressed tar as a Web Stream. */
export function layerTarStream(repo: Repository, diffId: DiffId): ReadableStream<Uint8Array> {
  return ReadableStream.from(layerTarChunks(repo, diffId));
}

/** A tar entry of a stored layer, with the object that holds its content (if any). */
export interface StoredEntry {
  entry: TarEntry;
  /** fs-verity digest (hex) of the content object, when the entry has content. */
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

/** One piece of a stored layer's tar: bytes kept verbatim, a run of zeros, or a file's content object. */
export type StoredPiece =
  | { type: "bytes"; bytes: Uint8Array }
  | { type: "zeros"; length: number }
  | { type: "content"; entry: TarEntry; object: string; size: number };

/** Yields a stored layer as {@link StoredPiece}s in tar order, each content with the entry it belongs to. */
export async function* storedPieces(repo: Repository, diffId: DiffId): AsyncGenerator<StoredPiece> {
  const globals = new Map<string, Uint8Array>();
  let entry: TarEntry | undefined;
  for await (const item of records(repo, diffId)) {
    switch (item.type) {
      case "header":
        entry = item.bytes.length >= BLOCK ? parseHeaderGroup(item.bytes, globals) : undefined;
        yield { type: "bytes", bytes: item.bytes };
        break;
      case "raw":
        yield { type: "bytes", bytes: item.bytes };
        break;
      case "zero":
        yield { type: "zeros", length: item.length };
        break;
      case "object":
        if (!entry) throw new RepositoryError(`layer ${diffId}: content without a header in its record; run fsck`);
        yield { type: "content", entry, object: item.hex, size: item.size };
        entry = undefined;
        break;
    }
  }
}

/** Yields the entries of a stored layer in order, without reading file contents. */
export async function* layerEntries(repo: Repository, diffId: DiffId): AsyncGenerator<StoredEntry> {
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
        throw withContext(e, `layer ${diffId}`);
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

/**
 * Builds the merged filesystem of layers `diffIds` (bottom first) from the
 * repository. The tree is complete; callers that exclude paths as delta sources
 * (e.g. `sysroot/ostree/`) filter when they choose, since hardlinks elsewhere may
 * share those files' content.
 */
export async function loadRootfs(repo: Repository, diffIds: DiffId[]): Promise<Rootfs> {
  const fs = new Rootfs();
  const yielder = new Yielder({ every: 256 });
  for (let i = 0; i < diffIds.length; i++) {
    const entries = [];
    for await (const e of layerEntries(repo, diffIds[i])) {
      entries.push(e);
      await yielder.yieldIfDue();
    }
    try {
      await fs.apply(entries, i, yielder);
    } catch (e) {
      throw withContext(e, `layer ${diffIds[i]}`);
    }
  }
  return fs;
}
