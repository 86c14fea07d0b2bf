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
  missingLayers,
  type PullOptions,
  type PullResult,
} from "./pull_steps.ts";

const CONFIG_TYPES: readonly string[] = [MediaType.ociConfig, MediaType.dockerConfig];

/** Pulls the image `resolved` (a manifest read from `source`) into `repo`. */
export async function pullImage(
  repo: Repository,
  source: ImageSource,
  resolved: ResolvedManifest,
  options: PullOptions,
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

  await fanOut(repo, todo, {
    jobs: options.jobs,
    progress,
    unit: ({ index, desc }) => ({ id: desc.digest, label: layerLabel(index, manifest), total: desc.size }),
  }, (pool, { desc, diffId }, onBytes) =>
    pool.run("import", async () => ({
      layer: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size, diffId },
      blob: await source.blob(desc),
      limits: layerLimits(options),
    }), (n) => {
      result.bytesFetched += n;
      onBytes(n);
    }));

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
