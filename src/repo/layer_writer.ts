/**
 * Storing layers: an uncompressed tar stream in, objects and a layer record out,
 * checked against the layer's diff_id before anything becomes visible.
 *
 * @module
 */
import { DeltashipError, DigestMismatchError, FormatError, LimitError, withContext } from "../errors.ts";
import { BLOCK, type TarEntry } from "../tar/header.ts";
import { type TarSink, TarSplitter } from "../tar/splitter.ts";
import { type DiffId, Hasher, parseDigest } from "../util/digest.ts";
import { Yielder } from "../util/yielder.ts";
import { knownOsCode } from "../util/os_error.ts";
import { LayerRecordWriter, type RecordFooter } from "./layer_record.ts";
import { type ObjectStaging, type ObjectWriter, SMALL_OBJECT } from "./objects.ts";
import type { Repository } from "./repository.ts";

/** Splits tar parts into a record and objects. */
class RecordSink implements TarSink {
  entries = 0;
  #small: Uint8Array | undefined;
  #smallLength = 0;
  #large: ObjectWriter | undefined;

  constructor(readonly objects: ObjectStaging, readonly record: LayerRecordWriter) {}

  async entry(entry: TarEntry, group: Uint8Array): Promise<void> {
    this.entries++;
    await this.record.header(group);
    if (entry.size === 0) return;
    if (entry.size <= SMALL_OBJECT) {
      this.#small = new Uint8Array(entry.size);
      this.#smallLength = 0;
    } else {
      this.#large = await this.objects.begin();
    }
  }

  async content(chunk: Uint8Array): Promise<void> {
    if (this.#small) {
      this.#small.set(chunk, this.#smallLength);
      this.#smallLength += chunk.length;
    } else {
      await this.#large!.write(chunk);
    }
  }

  async endContent(): Promise<void> {
    if (this.#small) {
      const bytes = this.#small;
      this.#small = undefined;
      await this.record.object(bytes.length, this.objects.putSmall(bytes));
    } else if (this.#large) {
      const writer = this.#large;
      this.#large = undefined;
      await this.record.object(writer.size, await writer.finish());
    }
  }

  async padding(bytes: Uint8Array): Promise<void> {
    await this.record.bytes(bytes);
  }

  async trailer(bytes: Uint8Array): Promise<void> {
    await this.record.bytes(bytes);
  }

  async abort(): Promise<void> {
    await this.#large?.abort();
  }
}

/** Limits on a layer being stored. */
export interface LayerLimits {
  /** Largest uncompressed size accepted, in bytes (a decompression bomb stops here). */
  maxLayerSize: number;
  /**
   * Asked when the tar has ended short of its diff_id: the most zero bytes it
   * may lack at its end (a deployed writer's quirk, see docs/design.md).
   */
  missingZeros?: () => number;
}

/** The default for `--max-layer-size`: 64 GiB. */
export const DEFAULT_MAX_LAYER_SIZE = 64 * 2 ** 30;

/**
 * Stores the uncompressed tar `tar` as the layer `diffId`. The tar is hashed as it
 * passes; when it does not hash to `diffId`, or grows past `limits.maxLayerSize`,
 * nothing is committed: its objects were staged and are dropped. `what` names the
 * layer in errors (e.g. its blob digest). Returns the record's totals.
 *
 * Commit order (see durability.ts): the record and the staged objects' data are
 * made durable, the objects renamed into the store and those renames made
 * durable, and only then is the record renamed into `layers/`.
 */
export async function storeLayerTar(
  repo: Repository,
  tar: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  diffId: DiffId,
  what: string,
  limits: LayerLimits = { maxLayerSize: DEFAULT_MAX_LAYER_SIZE },
): Promise<RecordFooter> {
  const hasher = new Hasher(parseDigest(diffId, `${what} diff_id`).algorithm);
  const tmp = repo.tempPath();
  const objects = await repo.objects.stage();
  const record = await LayerRecordWriter.create(tmp, repo.durability);
  const sink = new RecordSink(objects, record);
  const splitter = new TarSplitter(sink);
  const yielder = new Yielder(); // decompressed chunks may come without any I/O: keep signals answered
  try {
    for await (const chunk of tar) {
      if (hasher.size + chunk.length > limits.maxLayerSize) {
        throw new LimitError(
          `${what}: uncompressed layer is larger than the limit of ${formatSize(limits.maxLayerSize)}; ` +
            `nothing was stored (raise it with --max-layer-size or DELTASHIP_MAX_LAYER_SIZE if the image is genuine)`,
        );
      }
      // The diff_id is hashed on another thread while the splitter stores the chunk (it only reads it).
      const hashing = hasher.updateAside(chunk);
      try {
        await splitter.write(chunk);
      } finally {
        await hashing;
      }
      await yielder.yieldIfDue();
    }
    const missing = limits.missingZeros ? zeroPadding(hasher, diffId, limits.missingZeros()) : undefined;
    if (missing) {
      hasher.update(missing);
      await splitter.write(missing);
    }
    splitter.close();
    const footer = { tarSize: hasher.size, entries: sink.entries };
    await record.finish(footer);
    const actual = hasher.digest();
    if (actual !== diffId) throw new DigestMismatchError(`${what}: uncompressed layer (diff_id)`, diffId, actual);
    await objects.commit();
    await repo.commitLayer(tmp, diffId);
    return footer;
  } catch (e) {
    record.abort();
    await sink.abort();
    await objects.abort();
    await Deno.remove(tmp).catch(() => {});
    throw layerError(e, what);
  }
}

/**
 * The whole zero blocks, at most `max` bytes of them, that make what `hasher`
 * has seen hash to `diffId`; undefined when it does already, or when none do.
 */
function zeroPadding(hasher: Hasher, diffId: DiffId, max: number): Uint8Array | undefined {
  const running = hasher.copy();
  if (running.copy().digest() === diffId) return undefined;
  const block = new Uint8Array(BLOCK);
  for (let n = BLOCK; n <= max; n += BLOCK) {
    running.update(block);
    if (running.copy().digest() === diffId) return new Uint8Array(n);
  }
  return undefined;
}

/** A byte count in binary units, as `--max-layer-size` takes them (`64 GiB`, `1.5 MiB`, `300 B`). */
export function formatSize(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/**
 * Names the layer in our errors; foreign ones from the decoders (zlib, a broken
 * stream) become format errors naming it. Known OS errors (a full disk, where
 * the writers have not named the path already) pass unchanged: they are not
 * format errors, and their message names the path.
 */
function layerError(e: unknown, what: string): unknown {
  if (e instanceof DeltashipError) return withContext(e, what);
  if (knownOsCode(e) !== undefined) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new FormatError(`${what}: ${msg}`, { cause: e });
}
