/**
 * Test helper: decompression bombs. A layer whose tar holds one big zero-filled
 * file, compressed from a stream by the `zstd` or `gzip` CLI (never held in
 * memory), so a few hundred KiB of blob decompress to GiBs. Blobs are cached
 * by their parameters under the system temporary directory and reused across
 * runs; generating a 4 GiB one takes a few seconds.
 */
import { headerBlock } from "./tar.ts";
import { addIndexEntry, putBlob } from "./oci.ts";

/** A cached bomb blob. */
export interface Bomb {
  /** Path of the compressed blob. */
  path: string;
  /** Its digest and size. */
  digest: string;
  size: number;
  /** The digest of the uncompressed tar. */
  diffId: string;
  compression: "zstd" | "gzip";
  /** Bytes of the zero-filled file inside. */
  fileSize: number;
}

const CACHE = `${Deno.env.get("TMPDIR") ?? "/tmp"}/deltaship-test-bombs`;

async function sh(script: string): Promise<string> {
  const out = await new Deno.Command("bash", { args: ["-c", `set -o pipefail; ${script}`], stderr: "piped" }).output();
  if (!out.success) throw new Error(`${script}: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

/**
 * The blob of a layer holding one zero-filled file of `fileSize` bytes (a
 * multiple of 512), compressed at level 1: made once, then taken from the cache.
 */
export async function zeroBomb(fileSize: number, compression: "zstd" | "gzip" = "zstd"): Promise<Bomb> {
  if (fileSize % 512 !== 0) throw new RangeError("fileSize must be a multiple of 512");
  await Deno.mkdir(CACHE, { recursive: true });
  const base = `${CACHE}/${compression}-${fileSize}`;
  try {
    return JSON.parse(await Deno.readTextFile(`${base}.json`));
  } catch { /* not made yet */ }
  const tmp = `${base}.${crypto.randomUUID()}`;
  await Deno.writeFile(`${tmp}.header`, headerBlock({ name: "zeros.bin", size: fileSize, typeflag: "0" }));
  // The tar: the header, the content, no padding (a multiple of 512), two zero blocks.
  const tar = `{ cat ${tmp}.header; head -c ${fileSize + 1024} /dev/zero; }`;
  const [diffId, digest] = await Promise.all([
    sh(`${tar} | sha256sum`),
    sh(`${tar} | ${compression} -1 -q -c > ${tmp}.blob && sha256sum < ${tmp}.blob`),
  ]);
  const bomb: Bomb = {
    path: `${base}.blob`,
    digest: `sha256:${digest.split(" ")[0]}`,
    size: (await Deno.stat(`${tmp}.blob`)).size,
    diffId: `sha256:${diffId.split(" ")[0]}`,
    compression,
    fileSize,
  };
  await Deno.rename(`${tmp}.blob`, bomb.path);
  await Deno.remove(`${tmp}.header`);
  await Deno.writeTextFile(`${tmp}.json`, JSON.stringify(bomb));
  await Deno.rename(`${tmp}.json`, `${base}.json`);
  return bomb;
}

/** Writes an image tagged `tag` into the OCI layout `dir` whose one layer is `bomb`. */
export async function writeBombImage(dir: string, tag: string, bomb: Bomb): Promise<void> {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  await Deno.copyFile(bomb.path, `${dir}/blobs/sha256/${bomb.digest.slice(7)}`);
  const enc = new TextEncoder();
  const configBytes = enc.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    rootfs: { type: "layers", diff_ids: [bomb.diffId] },
  }));
  const config = await putBlob(dir, configBytes);
  const manifestBytes = enc.encode(JSON.stringify({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: configBytes.length },
    layers: [{
      mediaType: `application/vnd.oci.image.layer.v1.tar+${bomb.compression}`,
      digest: bomb.digest,
      size: bomb.size,
    }],
  }));
  await addIndexEntry(dir, {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: await putBlob(dir, manifestBytes),
    size: manifestBytes.length,
    annotations: { "org.opencontainers.image.ref.name": tag },
  });
}
