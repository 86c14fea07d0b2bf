/**
 * Pulling an image whose manifest is resolved: verify the config, import the
 * missing layers in parallel (each blob verified, decompressed, hashed to its
 * diff_id and split into the repository in one pass), then make the image
 * visible in one step (record, then tag).
 *
 * @module
 */
import { UnsupportedError } from "../errors.ts";
import { checkImageLayers, parseImageConfig } from "../oci/documents.ts";
import { MediaType } from "../oci/media_types.ts";
import type { Repository } from "../repo/repository.ts";
import type { ImageSource, ResolvedManifest } from "../transport/source.ts";
import { silentProgress } from "../util/progress.ts";
import { fanOut } from "./fan_out.ts";
import {
  commitPulled,
  layerLabel,
  layerLimits,
  type LayerWay,
  missingLayers,
  type PullOptions,
  type PullResult,
} from "./pull_steps.ts";
import { errorText, fallsBack, type PartialPlans, planPartialLayers } from "./partial_layers.ts";
import { pullPartialLayer } from "./partial_rebuild.ts";

const CONFIG_TYPES: readonly string[] = [MediaType.ociConfig, MediaType.dockerConfig];

/**
 * Pulls the image `resolved` (a manifest read from `source`) into `repo`;
 * zstd:chunked layers partially where that saves bytes (`options.partial`),
 * as `prepared` plans them when the caller planned already.
 */
export async function pullImage(
  repo: Repository,
  source: ImageSource,
  resolved: ResolvedManifest,
  options: PullOptions,
  prepared?: PartialPlans,
): Promise<PullResult> {
  const { manifest, digest } = resolved;
  const name = options.name ?? source.tag;
  if (!CONFIG_TYPES.includes(manifest.config.mediaType)) {
    throw new UnsupportedError(
      `${source.description} (${digest}) is not a container image: its config has media type ${manifest.config.mediaType}${
        manifest.artifactType ? ` (artifact type ${manifest.artifactType})` : ""
      }`,
    );
  }
  const result: PullResult = {
    name,
    manifest: digest,
    config: manifest.config.digest,
    alreadyPresent: false,
    layersFetched: 0,
    layersSkipped: 0,
    bytesFetched: 0,
  };
  if (await repo.hasImage(digest)) {
    const record = await repo.readImage(digest);
    if (name) await repo.tagImage(name, digest);
    return { ...result, config: record.config, alreadyPresent: true, layersSkipped: record.layers.length };
  }

  const configBytes = await source.document(manifest.config);
  const config = parseImageConfig(configBytes, `${source.description}: config ${manifest.config.digest}`);
  checkImageLayers(manifest, config, `${source.description} (${digest})`);
  const diffIds = config.rootfs.diff_ids;
  const progress = options.progress ?? silentProgress;
  const todo = await missingLayers(repo, manifest, diffIds, progress);
  const limits = layerLimits(options);
  const plans = prepared ??
    (options.partial === "never" ? undefined : await planPartialLayers(repo, source, todo, limits));
  const ways = new Map<string, LayerWay>();
  for (const { desc } of todo) {
    const p = plans?.partial.get(desc.digest);
    const w = plans?.whole.get(desc.digest);
    const fetched = p?.metadataBytes ?? w?.metadataBytes ?? 0;
    result.bytesFetched += fetched;
    ways.set(desc.digest, {
      digest: desc.digest,
      way: p ? "partial" : "full",
      size: desc.size,
      fetched,
      ...(w ? { reason: w.reason } : {}),
      ...(p ? { files: p.plan.files, reusedFiles: p.plan.reusedFiles, reusedChunks: p.plan.reusedChunks } : {}),
    });
    if (w && !w.quiet) await options.onNote?.(`layer ${desc.digest}: fetching the whole blob: ${w.reason}`);
  }

  await fanOut(repo, todo, {
    jobs: options.jobs,
    progress,
    unit: ({ index, desc }) => {
      const p = plans?.partial.get(desc.digest);
      return { id: desc.digest, label: layerLabel(index, manifest), total: p ? p.frameBytes : desc.size };
    },
    note: ({ desc }) => ways.get(desc.digest)!.way === "partial" ? "done (partial)" : "done",
  }, async (pool, { desc, diffId }, onBytes) => {
    const way = ways.get(desc.digest)!;
    const counted = (n: number) => {
      result.bytesFetched += n;
      way.fetched += n;
      onBytes(n);
    };
    const p = plans?.partial.get(desc.digest);
    if (p) {
      try {
        return await pullPartialLayer(repo, source, p, limits, counted);
      } catch (e) {
        if (!fallsBack(e)) throw e;
        way.way = "full";
        way.reason = `the partial pull failed: ${errorText(e)}`;
        delete way.files;
        delete way.reusedFiles;
        delete way.reusedChunks;
        await options.onNote?.(`layer ${desc.digest}: ${way.reason}; fetching the whole blob`);
      }
    }
    return await pool.run("import", async () => ({
      layer: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, diffId },
      blob: await source.blob(desc),
      limits,
    }), counted);
  });
  // Registries (where layers may come partially) say how each layer came; local layouts are read whole.
  if (source.blobRanges) result.layers = todo.map(({ desc }) => ways.get(desc.digest)!);

  await commitPulled(repo, {
    requested: digest,
    manifest: digest,
    manifestBytes: resolved.bytes,
    mediaType: resolved.mediaType,
    config: manifest.config.digest,
    configBytes,
    diffIds,
    name,
    memoryLimit: options.memoryLimit,
  });
  return { ...result, layersFetched: todo.length, layersSkipped: manifest.layers.length - todo.length };
}
