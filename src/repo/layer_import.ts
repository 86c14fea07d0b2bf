/**
 * Importing a layer blob: the compressed stream is verified against its
 * descriptor, decompressed, hashed against its diff_id and split into the
 * repository in one pass, with nothing held whole in memory.
 *
 * @module
 */
import { DeltashipError, FormatError } from "../errors.ts";
import { layerCompression } from "../oci/media_types.ts";
import { type DiffId, type Digest, Verifier, verifying } from "../util/digest.ts";
import { coalesce, concat } from "../util/streams.ts";
import { decompressor, sniffCompression } from "../compression/stages.ts";
import { FOOTER_TAIL, parseChunkedFooter } from "../compression/chunked_footer.ts";
import type { RecordFooter } from "./layer_record.ts";
import type { Repository } from "./repository.ts";
import { type LayerLimits, storeLayerTar } from "./layer_writer.ts";
import type { OnBytes } from "../util/progress.ts";
import type { TaskKind } from "../util/worker_pool.ts";
import { traceMemory } from "../util/memory_trace.ts";

/** A layer blob to import: its descriptor fields and the diff_id the config gives it. */
export interface LayerBlob {
  mediaType: string;
  digest: Digest;
  size: number;
  diffId: DiffId;
  /**
   * Tell the compression from the blob's first bytes instead of its media type
   * (for the original layers oci-delta ships, all labelled `tar+gzip`).
   */
  sniff?: boolean;
}

/** Smallest piece of compressed input handed to the decompressor. */
const DECOMPRESS_INPUT = 256 * 1024;

/**
 * Most zero bytes a zstd:chunked layer may lack at its end: containers/storage
 * before 1.52 (skopeo 1.9, podman 4) left out the zero blocks past the tar's
 * end-of-archive marker (docs/design.md, "Deployed writers' quirks").
 */
const CHUNKED_MISSING_ZEROS = 10240;

/** Import a (compressed) layer blob streamed in `blob`: the "import" task. */
export interface ImportTask {
  layer: LayerBlob;
  blob: ReadableStream<Uint8Array>;
  limits: LayerLimits;
}

/** The "import" task kind, into `repo`. Progress counts compressed bytes consumed. */
export function importTaskKind(repo: Repository): TaskKind<ImportTask, RecordFooter> {
  return { run: (task, progress) => importLayerBlob(repo, task.blob, task.layer, task.limits, progress) };
}

/** Imports one layer blob into the repository under its diff_id. */
export async function importLayerBlob(
  repo: Repository,
  blob: ReadableStream<Uint8Array>,
  layer: LayerBlob,
  limits: LayerLimits,
  onProgress?: OnBytes,
): Promise<RecordFooter> {
  const what = `layer ${layer.digest}`;
  let compression = layerCompression(layer.mediaType, layer.digest);
  const verifier = new Verifier(what, layer.digest, layer.size);
  let checked = blob.pipeThrough(verifying(verifier, onProgress));
  if (layer.sniff) ({ compression, stream: checked } = await sniffCompression(checked));
  const tail = blobTail(FOOTER_TAIL);
  // Network reads come in 16-64 KiB pieces; node:zlib costs a thread-pool round trip per write.
  const tar = checked.pipeThrough(tail.stage).pipeThrough(coalesce(DECOMPRESS_INPUT)).pipeThrough(
    decompressor(compression),
  );
  // Asked once the blob has been read whole: only a zstd:chunked blob (it ends in a footer) may lack zeros.
  const missingZeros = () => compression === "zstd" && parseChunkedFooter(tail.bytes()) ? CHUNKED_MISSING_ZEROS : 0;
  // A blob corrupted in transit often breaks its compression's own check (gzip's CRC at
  // the end) before the stream's end reaches the digest check: once every byte has been
  // seen, the digest decides which error the user sees.
  const onDecompressError = () => {
    if (verifier.size === layer.size) verifier.finish();
  };
  traceMemory(`import start ${layer.digest.slice(7, 19)}`);
  try {
    const stored = decompressErrors(tar, compression, onDecompressError);
    return await storeLayerTar(repo, stored, layer.diffId, what, { ...limits, missingZeros });
  } finally {
    traceMemory(`import end ${layer.digest.slice(7, 19)}`);
  }
}

/**
 * Re-labels decompressor failures as format errors that say what was being
 * decompressed; `before` may throw a more telling error first.
 */
async function* decompressErrors(
  stream: ReadableStream<Uint8Array>,
  compression: string,
  before: () => void,
): AsyncGenerator<Uint8Array> {
  try {
    yield* stream;
  } catch (e) {
    if (e instanceof DeltashipError) throw e;
    before();
    throw new FormatError(`corrupt or truncated ${compression} data (${(e as Error).message})`);
  }
}

/** A stage that passes a stream through and keeps its last `n` bytes. */
function blobTail(n: number): { stage: TransformStream<Uint8Array, Uint8Array>; bytes(): Uint8Array } {
  let last = new Uint8Array(0);
  const stage = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      last = chunk.length >= n ? chunk.slice(chunk.length - n) : concat([last, chunk]).slice(-n);
      controller.enqueue(chunk);
    },
  });
  return { stage, bytes: () => last };
}
