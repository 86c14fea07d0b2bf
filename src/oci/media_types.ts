/**
 * Media types of OCI and Docker documents and layers, and what each layer type
 * means for decompression.
 *
 * @module
 */
import type { Compression, LayerCompression } from "../compression/stages.ts";
import { UnsupportedError } from "../errors.ts";

/** OCI and Docker document media types. */
export const MediaType = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  ociLayerTar: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  tarDiff: "application/vnd.tar-diff",
} as const;

/** The media types a manifest may have. */
export const MANIFEST_TYPES: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];
/** The media types an index (multi-platform list) may have. */
export const INDEX_TYPES: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList];

const LAYER_COMPRESSION: Record<string, Compression> = {
  [MediaType.ociLayerTar]: "none",
  [MediaType.ociLayerGzip]: "gzip",
  [MediaType.ociLayerZstd]: "zstd",
  "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
  [MediaType.dockerLayerGzip]: "gzip",
  "application/vnd.docker.image.rootfs.diff.tar": "none",
};

/** True when `mediaType` is a layer type deltaship can import. */
export function isLayerType(mediaType: string): boolean {
  return mediaType in LAYER_COMPRESSION;
}

/** The compression of a layer media type; a clear error for foreign and unknown types. */
export function layerCompression(mediaType: string, digest: string): Compression {
  const c = LAYER_COMPRESSION[mediaType];
  if (c) return c;
  if (mediaType.includes("foreign")) {
    throw new UnsupportedError(
      `layer ${digest} has foreign media type ${mediaType}: foreign layers are not distributed with the image and cannot be pulled`,
    );
  }
  throw new UnsupportedError(`layer ${digest} has unsupported media type ${JSON.stringify(mediaType)}`);
}

/** The layer media type (OCI) for a compression, as export and apply-delta write it. */
export function layerTypeFor(compression: LayerCompression): string {
  return compression === "gzip"
    ? MediaType.ociLayerGzip
    : compression === "zstd" || compression === "zstd:chunked"
    ? MediaType.ociLayerZstd
    : MediaType.ociLayerTar;
}
