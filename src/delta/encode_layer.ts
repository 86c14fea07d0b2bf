/**
 * Encoding a stored layer as a tar-diff: the repository side of the encoder.
 * The codec (`tardiff/encode.ts`) reads nothing itself; here the target layer's
 * record and the contents of target and source files come from the repository,
 * and the blob is written to a file and hashed as it is produced. Runs in a
 * worker as the "encode" task.
 *
 * @module
 */
import { loadRootfs, objectChunks, readObject, storedPieces } from "../repo/layer_reader.ts";
import type { Repository } from "../repo/repository.ts";
import { encodeLayer, type EncodeOptions, type EncoderInput, type EncodeStats } from "../tardiff/encode.ts";
import { SourceCatalog } from "../tardiff/source_catalog.ts";
import { type DiffId, Hasher } from "../util/digest.ts";
import { writeAll } from "../util/fs.ts";
import { osErrorAt } from "../util/os_error.ts";
import type { TaskKind } from "../util/worker_pool.ts";

/** A tar-diff written to a file. */
export interface TarDiffFile {
  digest: string;
  size: number;
  stats: EncodeStats;
}

/** The encoder's input: the stored layer `diffId` and the repository's objects. */
export function storedLayerInput(repo: Repository, diffId: DiffId): EncoderInput {
  return {
    pieces: () => storedPieces(repo, diffId),
    read: (object, into) => readObject(repo, object, into),
    chunks: (object, size) => objectChunks(repo, object, size),
  };
}

/**
 * Encodes the stored layer `target` against the merged filesystem of the stored
 * layers `source` (bottom first; files under `ignoredPrefixes` are not used) into
 * the file `path`, hashing it as it is written. The file is removed on failure.
 */
export async function encodeLayerToFile(
  repo: Repository,
  source: DiffId[],
  ignoredPrefixes: readonly string[],
  target: DiffId,
  path: string,
  options: EncodeOptions = {},
): Promise<TarDiffFile> {
  const catalog = SourceCatalog.fromRootfs(await loadRootfs(repo, source), ignoredPrefixes);
  const file = await Deno.open(path, { write: true, createNew: true });
  const hasher = new Hasher();
  let done = false;
  try {
    const stats = await encodeLayer(storedLayerInput(repo, target), catalog, async (chunk) => {
      hasher.update(chunk);
      await writeAll(file, chunk).catch((e) => Promise.reject(osErrorAt(e, path))); // a write names no path itself
    }, options);
    done = true;
    return { digest: hasher.digest(), size: hasher.size, stats };
  } finally {
    file.close();
    if (!done) await Deno.remove(path).catch(() => {});
  }
}

/** Encode the stored layer `target` as a tar-diff against the layers `source`, into the file `out`. */
export interface EncodeTask {
  /** diff_ids of the source image's layers, bottom first. */
  source: DiffId[];
  /** Source paths under these prefixes are not used. */
  ignoredPrefixes: string[];
  target: DiffId;
  /** Path of the tar-diff file to create. */
  out: string;
  /** zstd level of the op stream. */
  level: number;
  /** How changed files are diffed, and the limits and settings of each method. */
  diff?: Omit<EncodeOptions, "level" | "progress">;
}

/** The "encode" task kind, against `repo`. */
export function encodeTaskKind(repo: Repository): TaskKind<EncodeTask, TarDiffFile> {
  return {
    run: (task, progress) =>
      encodeLayerToFile(repo, task.source, task.ignoredPrefixes, task.target, task.out, {
        ...task.diff,
        level: task.level,
        progress,
      }),
  };
}
