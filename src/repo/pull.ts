/**
 * Pulling an image from a source into the repository: resolve the manifest,
 * verify the config, import the missing layers in parallel, then make the image
 * visible in one step (record, then tag).
 *
 * @module
 */
import { applyDelta, type DeltaPullInfo } from "../delta/apply.ts";
import { isDeltaManifest } from "../delta/artifact.ts";
import { FormatError, UnsupportedError } from "../errors.ts";
import { type ImageConfig, type Manifest, parseImageConfig } from "../oci/documents.ts";
import { layerCompression, MediaType } from "../oci/media_types.ts";
import type { Platform } from "../oci/documents.ts";
import { type ImageSource, type ResolvedManifest, resolveManifest } from "../transport/source.ts";
import type { Digest } from "../util/digest.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import { TaskPool } from "../workers/pool.ts";
import type { ImageRecord, Repository } from "./repository.ts";
import { DEFAULT_MAX_LAYER_SIZE, type LayerLimits } from "./layer_writer.ts";

/** How to pull. */
export interface PullOptions {
  /** Platform to choose from an index. */
  platform: Platform;
  /** Most layers processed at once. */
  jobs: number;
  /** Tag to give the image; defaults to the source's tag. */
  name?: string;
  progress?: ProgressSink;
  /** Largest uncompressed layer accepted (default {@link DEFAULT_MAX_LAYER_SIZE}). */
  maxLayerSize?: number;
}

/** What a pull did. */
export interface PullResult {
  /** The tag given, if any. */
  name?: string;
  manifest: Digest;
  config: Digest;
  /** The image was already stored; nothing was fetched. */
  alreadyPresent: boolean;
  /** Layers imported, and layers skipped because the repository had them. */
  layersFetched: number;
  layersSkipped: number;
  /** Compressed bytes read from the source for layers (for a delta: its layer blobs). */
  bytesFetched: number;
  /** Set when the pulled manifest was an oci-delta, which was applied. */
  delta?: DeltaPullInfo;
}

const CONFIG_TYPES = [MediaType.ociConfig, MediaType.dockerConfig];

/**
 * Pulls the image `source` names into `repo`. When the manifest is an oci-delta
 * artifact, the delta is applied instead: the result is its target image.
 */
export async function pull(repo: Repository, source: ImageSource, options: PullOptions): Promise<PullResult> {
  const resolved = await resolveManifest(source, options.platform);
  if (isDeltaManifest(resolved.manifest)) return await applyDelta(repo, source, resolved, options);
  return await pullResolved(repo, source, resolved, options);
}

/** Pulls an image whose manifest has already been resolved. */
export async function pullResolved(
  repo: Repository,
  source: ImageSource,
  resolved: ResolvedManifest,
  options: PullOptions,
): Promise<PullResult> {
  const { manifest, digest } = resolved;
  const name = options.name ?? source.tag;
  if (!CONFIG_TYPES.includes(manifest.config.mediaType as typeof CONFIG_TYPES[number])) {
    throw new UnsupportedError(
      `${source.description} (${digest}) is not a container image: its config has media type ${manifest.config.mediaType}${
        manifest.artifactType ? ` (artifact type ${manifest.artifactType})` : ""
      }`,
    );
  }
  if (await repo.hasImage(digest)) {
    const record = await repo.readImage(digest);
    if (name) await repo.tagImage(name, digest);
    return {
      name,
      manifest: digest,
      config: record.config,
      alreadyPresent: true,
      layersFetched: 0,
      layersSkipped: record.layers.length,
      bytesFetched: 0,
    };
  }

  const configBytes = await source.document(manifest.config);
  const config = parseImageConfig(configBytes, `${source.description}: config ${manifest.config.digest}`);
  checkLayers(manifest, config, `${source.description} (${digest})`);

  const diffIds = config.rootfs.diff_ids;
  const progress = options.progress ?? silentProgress;
  const todo = new Map<Digest, number>(); // diff_id -> layer index, each diff_id once
  for (let i = 0; i < manifest.layers.length; i++) {
    if (todo.has(diffIds[i])) continue;
    if (await repo.hasLayer(diffIds[i])) {
      progress.start(manifest.layers[i].digest, `layer ${i + 1}/${manifest.layers.length}`, 0);
      progress.finish(manifest.layers[i].digest, "already present");
    } else {
      todo.set(diffIds[i], i);
    }
  }

  const pool = new TaskPool(repo, Math.min(options.jobs, todo.size));
  let bytesFetched = 0;
  try {
    // Largest first: the longest task starts at once, smaller ones fill the other slots.
    const order = [...todo.values()].sort((a, b) => manifest.layers[b].size - manifest.layers[a].size);
    await Promise.all(
      order.map(async (i) => {
        const desc = manifest.layers[i];
        const id = desc.digest;
        progress.start(id, `layer ${i + 1}/${manifest.layers.length}`, desc.size);
        await pool.run(
          async () => ({
            op: "import",
            layer: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, diffId: diffIds[i] },
            blob: await source.blob(desc),
            limits: layerLimits(options),
          }),
          (n) => {
            bytesFetched += n;
            progress.advance(id, n);
          },
        );
        progress.finish(id, "done");
      }),
    );
  } finally {
    pool.close();
  }

  const layers = [];
  for (const diffId of diffIds) layers.push({ diffId, tarSize: (await repo.layerInfo(diffId)).tarSize });
  const record: ImageRecord = {
    manifest: digest,
    config: manifest.config.digest,
    mediaType: resolved.mediaType,
    layers,
    created: new Date().toISOString(),
  };
  await repo.commitImage(record, resolved.bytes, configBytes, name);
  return {
    name,
    manifest: digest,
    config: manifest.config.digest,
    alreadyPresent: false,
    layersFetched: todo.size,
    layersSkipped: manifest.layers.length - todo.size,
    bytesFetched,
  };
}

/** The limits a pull puts on each layer it stores. */
export function layerLimits(options: Pick<PullOptions, "maxLayerSize">): LayerLimits {
  return { maxLayerSize: options.maxLayerSize ?? DEFAULT_MAX_LAYER_SIZE };
}

/** Checks that every layer has a diff_id and a media type deltaship can import. */
export function checkLayers(manifest: Manifest, config: ImageConfig, what: string): void {
  const n = manifest.layers.length;
  const d = config.rootfs.diff_ids.length;
  if (n !== d) {
    throw new FormatError(`${what}: manifest has ${n} layers but the config lists ${d} diff_ids`);
  }
  for (const layer of manifest.layers) layerCompression(layer.mediaType, layer.digest);
}
