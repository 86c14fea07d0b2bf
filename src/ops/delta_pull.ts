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
import { NotFoundError, withContext } from "../errors.ts";
import { checkImageLayers, type Descriptor } from "../oci/documents.ts";
import { layerCompression } from "../oci/media_types.ts";
import type { LayerLimits } from "../repo/layer_writer.ts";
import { loadRootfs } from "../repo/layer_reader.ts";
import type { ImageRecord, Repository } from "../repo/repository.ts";
import { TARDIFF_MEDIA_TYPE } from "../tardiff/format.ts";
import type { ImageSource, ResolvedManifest } from "../transport/source.ts";
import type { ManifestDigest } from "../util/digest.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import { type DeltaArtifact, type DeltaTarget, fetchDeltaTarget, parseDeltaArtifact } from "../delta/artifact.ts";
import { verifyEmbeddedSignature } from "../delta/signature.ts";
import { sourceTagOfDeltaTag } from "../delta/annotations.ts";
import { MemoryBudget, type SourceIndex, sourceIndex } from "../delta/source_files.ts";
import { fanOut } from "./fan_out.ts";
import type { LayerPool } from "./layer_tasks.ts";
import {
  checkRequested,
  commitPulled,
  type DeltaPullInfo,
  type ImageLayer,
  layerLabel,
  layerLimits,
  missingLayers,
  type PullOptions,
  type PullResult,
} from "./pull_steps.ts";

/** Delta blobs downloaded at once from a registry unless `--max-downloads` says otherwise. */
export const DELTA_MAX_DOWNLOADS = 1;

/** One target layer the pull must produce, and what the delta ships for it. */
interface Work extends ImageLayer {
  shipped: Descriptor;
  rebuild: boolean;
}

/**
 * Applies the delta `resolved` (a manifest whose artifactType is oci-delta) from
 * `source` to the repository, as part of a pull. `requested` is the image the
 * caller asked for, when it asked for one (a delta found for it); otherwise
 * the delta's own target is.
 */
export async function applyDelta(
  repo: Repository,
  source: ImageSource,
  resolved: ResolvedManifest,
  options: PullOptions,
  requested?: ManifestDigest,
): Promise<PullResult & { delta: DeltaPullInfo }> {
  const what = `delta ${source.description} (${resolved.digest})`;
  const name = options.name ?? source.tag;
  const progress = options.progress ?? silentProgress;
  const artifact = parseDeltaArtifact(resolved.manifest, resolved.digest, what);
  // Before anything is fetched or stored: a delta that must be signed and is not fails here.
  if (options.verifyKey) {
    await verifyEmbeddedSignature(source, artifact.signatures, artifact.target, options.verifyKey, what);
  }
  const target = await fetchDeltaTarget(source, artifact, what);
  const { manifest } = target;
  checkImageLayers(manifest, target.config, `${what}: target ${artifact.target}`);
  const imageSize = manifest.layers.reduce((a, l) => a + l.size, 0);
  const info: DeltaPullInfo = {
    manifest: resolved.digest,
    layersRebuilt: 0,
    layersImported: 0,
    imageSize,
    signed: artifact.signatures.length > 0,
    ...(options.verifyKey ? { verified: true } : {}),
  };
  const result: PullResult & { delta: DeltaPullInfo } = {
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
    checkRequested(requested ?? artifact.target, artifact.target, name);
    if (name) await repo.tagImage(name, artifact.target);
    return { ...result, alreadyPresent: true, layersSkipped: manifest.layers.length };
  }

  // Plan every layer before fetching anything, so a delta that cannot apply fails with nothing written.
  const { work, missing } = await planLayers(repo, artifact, target, progress);
  let sourceImage: ImageRecord | undefined;
  if (missing.length > 0 || work.some((w) => w.rebuild)) {
    sourceImage = (await repo.findByConfig(artifact.sourceConfig))[0];
    if (!sourceImage) throw missingSource(what, artifact, source);
    info.source = sourceImage.manifest;
  }
  if (missing.length > 0) {
    const m = missing[0];
    throw new NotFoundError(
      `${what}: target layer ${m.index + 1} (${m.desc.digest}, diff_id ${m.diffId}) is not in the delta, ` +
        `so it must be reused from the repository, which does not have it; pull the full image instead`,
    );
  }

  source.defaultMaxDownloads?.(DELTA_MAX_DOWNLOADS);
  let index: SourceIndex | undefined;
  const memory = MemoryBudget.create(options.sourceMemory, options.memoryLimit).buffer;
  await fanOut(repo, work, {
    jobs: options.jobs,
    progress,
    unit: (w) => ({
      id: w.desc.digest,
      label: layerLabel(w.index, manifest),
      total: w.shipped.size,
      size: w.desc.size,
    }),
    note: (w) => w.rebuild ? "rebuilt" : "done",
    // One large rebuild and small others (both benchmark corpora): a worker saved at most a fifth of the wall time
    // and cost ~30 MiB; measured, one thread was as fast (docs/design.md, "One thread for a dominant layer").
    oneThreadWhenDominant: 4,
    // The workers start while the source index loads.
    prepare: async () => {
      if (work.some((w) => w.rebuild)) index = await loadSourceIndex(repo, sourceImage!);
    },
  }, async (pool, w, onBytes) => {
    await runLayer(pool, w, source, index, memory, layerLimits(options), (n) => {
      result.bytesFetched += n;
      onBytes(n);
    });
    if (w.rebuild) info.layersRebuilt++;
    else info.layersImported++;
  });

  await commitPulled(repo, {
    requested: requested ?? artifact.target,
    manifest: artifact.target,
    manifestBytes: target.manifestBytes,
    mediaType: target.mediaType,
    config: manifest.config.digest,
    configBytes: target.configBytes,
    diffIds: target.config.rootfs.diff_ids,
    name,
    memoryLimit: options.memoryLimit,
  });
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
  const work: Work[] = [];
  const missing: Work[] = [];
  for (const layer of await missingLayers(repo, target.manifest, target.config.rootfs.diff_ids, progress)) {
    const shipped = artifact.layers.get(layer.desc.digest);
    const rebuild = shipped?.mediaType === TARDIFF_MEDIA_TYPE;
    if (shipped && !rebuild) layerCompression(shipped.mediaType, shipped.digest);
    (shipped ? work : missing).push({ ...layer, shipped: shipped!, rebuild });
  }
  return { work, missing };
}

/** Produces one planned layer from its shipped blob: rebuilt from a tar-diff, or imported as the original. */
async function runLayer(
  pool: LayerPool,
  w: Work,
  source: ImageSource,
  index: SourceIndex | undefined,
  memory: SharedArrayBuffer,
  limits: LayerLimits,
  onBytes: (n: number) => void,
): Promise<void> {
  if (w.rebuild) {
    const layer = {
      digest: w.desc.digest,
      diffId: w.diffId,
      delta: { digest: w.shipped.digest, size: w.shipped.size },
    };
    await pool.run("rebuild", async () => ({
      layer,
      blob: await source.blob(w.shipped),
      source: index!,
      memory,
      limits,
    }), onBytes);
  } else {
    // Stored as the target manifest lists it; the bytes say how it is compressed (oci-delta labels all +gzip).
    const { digest, size } = w.shipped;
    await pool.run("import", async () => ({
      layer: { mediaType: w.desc.mediaType, digest, size, diffId: w.diffId, sniff: true },
      blob: await source.blob(w.shipped),
      limits,
    }), onBytes);
  }
}

/** The source image's files, for tar-diff Open ops. */
async function loadSourceIndex(repo: Repository, image: ImageRecord): Promise<SourceIndex> {
  try {
    return await sourceIndex(await loadRootfs(repo, image.layers.map((l) => l.diffId)));
  } catch (e) {
    throw withContext(e, `source image ${image.manifest}`);
  }
}

/**
 * The error for a delta whose source image the repository lacks: it names the
 * source manifest (and config) the delta records and, when the delta's own tag
 * has create-delta's form `OLDTAG-to-NEWTAG`, the source tag to pull (as a
 * docker:// reference when the delta came from a registry).
 */
function missingSource(what: string, artifact: DeltaArtifact, source: ImageSource): NotFoundError {
  const recorded = artifact.source
    ? `manifest ${artifact.source}, config ${artifact.sourceConfig}`
    : `config ${artifact.sourceConfig}`;
  const tag = sourceTagOfDeltaTag(source.tag);
  let pull = "";
  if (tag !== undefined) {
    const suffix = `:${source.tag}`;
    const desc = source.description;
    pull = desc.startsWith("docker://") && desc.endsWith(suffix)
      ? `: deltaship pull ${desc.slice(0, -suffix.length)}:${tag}`
      : ` (tagged ${JSON.stringify(tag)}, by the delta's name)`;
  }
  return new NotFoundError(
    `${what} needs its source image (${recorded}), which is not in the repository; pull it first${pull}`,
  );
}
