/**
 * Applying an oci-delta during a pull: find the source image the delta was made
 * against, rebuild the changed target layers from their tar-diffs (or import the
 * original blobs the delta ships) in parallel, reuse the rest, and store the
 * embedded target manifest and config byte for byte, so the result is the target
 * image itself. Nothing of the target becomes visible unless all of it is stored
 * and verified.
 *
 * @module
 */
import { FormatError, NotFoundError } from "../errors.ts";
import type { Descriptor } from "../oci/documents.ts";
import { layerCompression } from "../oci/media_types.ts";
import { checkLayers, layerLimits, type PullOptions, type PullResult } from "../repo/pull.ts";
import type { LayerLimits } from "../repo/layer_writer.ts";
import type { ImageRecord, Repository } from "../repo/repository.ts";
import { loadRootfs } from "../repo/rootfs.ts";
import { TARDIFF_MEDIA_TYPE } from "../tardiff/format.ts";
import type { ImageSource, ResolvedManifest } from "../transport/source.ts";
import type { Digest } from "../util/digest.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import { TaskPool } from "../workers/pool.ts";
import type { Task } from "../workers/tasks.ts";
import { type DeltaArtifact, type DeltaTarget, fetchDeltaTarget, parseDeltaArtifact } from "./artifact.ts";
import { MemoryBudget, type SourceIndex, sourceIndex } from "./source.ts";

/** Delta blobs downloaded at once from a registry unless `--max-downloads` says otherwise. */
export const DELTA_MAX_DOWNLOADS = 1;

/** What a delta pull did, beyond what every pull reports. */
export interface DeltaPullInfo {
  /** Digest of the delta manifest applied. */
  manifest: Digest;
  /** Manifest digest of the source image it was applied against (absent when none was needed). */
  source?: Digest;
  /** Target layers rebuilt from tar-diffs. */
  layersRebuilt: number;
  /** Target layers imported from original blobs shipped in the delta. */
  layersImported: number;
  /** Compressed size of the target image's layers: what a full pull would have fetched. */
  imageSize: number;
}

/** One target layer the pull must produce. */
interface Work {
  index: number;
  layer: Descriptor;
  diffId: Digest;
  shipped: Descriptor;
  rebuild: boolean;
}

/**
 * Applies the delta `resolved` (a manifest whose artifactType is oci-delta) from
 * `source` to the repository, as part of a pull.
 */
export async function applyDelta(
  repo: Repository,
  source: ImageSource,
  resolved: ResolvedManifest,
  options: PullOptions,
): Promise<PullResult & { delta: DeltaPullInfo }> {
  const what = `delta ${source.description} (${resolved.digest})`;
  const name = options.name ?? source.tag;
  const progress = options.progress ?? silentProgress;
  const artifact = parseDeltaArtifact(resolved.manifest, resolved.digest, what);
  const target = await fetchDeltaTarget(source, artifact, what);
  const { manifest } = target;
  checkLayers(manifest, target.config, `${what}: target ${artifact.target}`);
  const imageSize = manifest.layers.reduce((a, l) => a + l.size, 0);
  const info: DeltaPullInfo = { manifest: resolved.digest, layersRebuilt: 0, layersImported: 0, imageSize };
  const result = {
    name,
    manifest: artifact.target,
    config: manifest.config.digest,
    alreadyPresent: false,
    layersFetched: 0,
    layersSkipped: 0,
    bytesFetched: 0,
    delta: info,
  };

  if (await repo.hasImage(artifact.target)) {
    if (name) await repo.tagImage(name, artifact.target);
    return { ...result, alreadyPresent: true, layersSkipped: manifest.layers.length };
  }

  // Plan every layer before fetching anything, so a delta that cannot apply fails with nothing written.
  const { work, missing } = await planLayers(repo, artifact, target, progress);
  let sourceImage: ImageRecord | undefined;
  if (missing.length > 0 || work.some((w) => w.rebuild)) {
    sourceImage = (await repo.findByConfig(artifact.sourceConfig))[0];
    if (!sourceImage) {
      throw new NotFoundError(
        `delta needs source image with config ${artifact.sourceConfig} which is not in the repository; pull it first`,
      );
    }
    info.source = sourceImage.manifest;
  }
  if (missing.length > 0) {
    const m = missing[0];
    throw new NotFoundError(
      `${what}: target layer ${m.index + 1} (${m.layer.digest}, diff_id ${m.diffId}) is not in the delta, ` +
        `so it must be reused from the repository, which does not have it; pull the full image instead`,
    );
  }

  source.defaultMaxDownloads?.(DELTA_MAX_DOWNLOADS);
  const pool = new TaskPool(repo, Math.min(options.jobs, work.length));
  try {
    pool.warm(); // workers start while the source index loads
    const index = work.some((w) => w.rebuild) ? await loadSourceIndex(repo, sourceImage!) : undefined;
    const memory = MemoryBudget.create().buffer;
    // Largest target layer first: the longest rebuild starts at once.
    const order = [...work].sort((a, b) => b.layer.size - a.layer.size);
    await Promise.all(order.map(async (w) => {
      const id = w.layer.digest;
      progress.start(id, `layer ${w.index + 1}/${manifest.layers.length}`, w.shipped.size);
      await pool.run(
        async () => layerTask(w, await source.blob(w.shipped), index, memory, layerLimits(options)),
        (n) => {
          result.bytesFetched += n;
          progress.advance(id, n);
        },
      );
      if (w.rebuild) info.layersRebuilt++;
      else info.layersImported++;
      progress.finish(id, w.rebuild ? "rebuilt" : "done");
    }));
  } finally {
    pool.close();
  }

  const layers = [];
  for (const diffId of target.config.rootfs.diff_ids) {
    layers.push({ diffId, tarSize: (await repo.layerInfo(diffId)).tarSize });
  }
  const record: ImageRecord = {
    manifest: artifact.target,
    config: manifest.config.digest,
    mediaType: target.mediaType,
    layers,
    created: new Date().toISOString(),
  };
  await repo.commitImage(record, target.manifestBytes, target.configBytes, name);
  result.layersFetched = work.length;
  result.layersSkipped = manifest.layers.length - work.length;
  return result;
}

/**
 * Decides, for each distinct target layer, whether it is already stored (skipped
 * and reported as such), shipped in the delta (work: a tar-diff to rebuild or an
 * original blob to import), or neither (missing: it must be reused but is not here).
 */
async function planLayers(
  repo: Repository,
  artifact: DeltaArtifact,
  target: DeltaTarget,
  progress: ProgressSink,
): Promise<{ work: Work[]; missing: Work[] }> {
  const { manifest } = target;
  const diffIds = target.config.rootfs.diff_ids;
  const work: Work[] = [];
  const missing: Work[] = [];
  const planned = new Set<Digest>();
  for (const [index, layer] of manifest.layers.entries()) {
    const diffId = diffIds[index];
    if (planned.has(diffId)) continue;
    planned.add(diffId);
    if (await repo.hasLayer(diffId)) {
      progress.start(layer.digest, `layer ${index + 1}/${manifest.layers.length}`, 0);
      progress.finish(layer.digest, "already present");
      continue;
    }
    const shipped = artifact.layers.get(layer.digest);
    const rebuild = shipped?.mediaType === TARDIFF_MEDIA_TYPE;
    if (shipped && !rebuild) layerCompression(shipped.mediaType, shipped.digest);
    (shipped ? work : missing).push({ index, layer, diffId, shipped: shipped!, rebuild });
  }
  return { work, missing };
}

/** The worker task that produces one planned layer from its shipped blob. */
function layerTask(
  w: Work,
  blob: ReadableStream<Uint8Array>,
  index: SourceIndex | undefined,
  memory: SharedArrayBuffer,
  limits: LayerLimits,
): Task {
  if (w.rebuild) {
    const layer = {
      digest: w.layer.digest,
      diffId: w.diffId,
      delta: { digest: w.shipped.digest, size: w.shipped.size },
    };
    return { op: "rebuild", layer, blob, source: index!, memory, limits };
  }
  const { mediaType, digest, size } = w.shipped;
  return { op: "import", layer: { mediaType, digest, size, diffId: w.diffId }, blob, limits };
}

/** The source image's files, for tar-diff Open ops. */
async function loadSourceIndex(repo: Repository, image: ImageRecord): Promise<SourceIndex> {
  try {
    return await sourceIndex(await loadRootfs(repo, image.layers.map((l) => l.diffId)));
  } catch (e) {
    if (e instanceof FormatError) e.message = `source image ${image.manifest}: ${e.message}`;
    throw e;
  }
}
