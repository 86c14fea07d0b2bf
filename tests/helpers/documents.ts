/**
 * Test helper: JSON documents that are cheap to send and costly to parse (the
 * shapes of issue 20's attack: a config under the size limit holding millions of
 * empty objects), and images carrying them.
 */
import { compress, putBlob, putOciManifest } from "./oci.ts";

const enc = new TextEncoder();

/**
 * A valid image config for `diffIds` whose extra field `x` is an array of
 * `count` copies of `unit` (default `{}`, an empty object: 3 bytes of input, ~90
 * bytes of heap once parsed). Built as text, never as objects.
 */
export function bloatedConfig(diffIds: string[], count: number, unit = "{}"): Uint8Array {
  const head = JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: diffIds } });
  return enc.encode(`${head.slice(0, -1)},"x":[${count > 0 ? `${unit},`.repeat(count - 1) + unit : ""}]}`);
}

/** Writes an image of one uncompressed layer `tar` whose config is exactly `configBytes`, tagged `tag`. */
export async function writeImageWithConfig(
  dir: string,
  tag: string,
  tar: Uint8Array,
  configBytes: Uint8Array,
): Promise<{ manifest: string; config: string }> {
  const layer = compress(tar, "none");
  const layers = [{
    mediaType: "application/vnd.oci.image.layer.v1.tar",
    digest: await putBlob(dir, layer),
    size: layer.length,
  }];
  const { manifest, config } = await putOciManifest(dir, tag, configBytes, layers);
  return { manifest, config };
}
