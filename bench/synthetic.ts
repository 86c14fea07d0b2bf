/**
 * Synthetic inputs for the scaling cases: an image with one layer holding one
 * file of a chosen size, a new image where a few KiB of that file changed, and
 * the oci-delta between them (Data, Open, Copy, AddData, Copy, Data). Pulling and
 * delta-applying these at two sizes shows whether memory stays flat as layers grow.
 */
import { createHash } from "node:crypto";
import { noise } from "../tests/helpers/data.ts";
import { putOciManifest, writeImage, type WrittenImage } from "../tests/helpers/oci.ts";
import { buildTar, headerBlock } from "../tests/helpers/tar.ts";
import { tarDiff } from "../tests/helpers/tardiff.ts";
import { writeDelta } from "../tests/helpers/tardiff.ts";

/** Where one size's inputs are. */
export interface Synthetic {
  dir: string;
  old: string;
  delta: string;
  /** Bytes of the layer tar. */
  tarSize: number;
}

const EDIT = 64 << 10;
/** Sizes above this are generated as streams (the layer never held whole), not in memory. */
const IN_MEMORY_MAX = 1 << 30;

/** Writes (once) the synthetic images and delta for `size` bytes of file content under `root`. */
export async function synthetic(root: string, size: number): Promise<Synthetic> {
  const dir = `${root}/synthetic-${size}`;
  const result = { dir, old: `${dir}/images`, delta: `${dir}/delta`, tarSize: 0 };
  try {
    result.tarSize = JSON.parse(await Deno.readTextFile(`${dir}/done.json`)).tarSize;
    return result;
  } catch { /* build it */ }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  if (size > IN_MEMORY_MAX) {
    result.tarSize = await streamedSynthetic(result, size);
    await Deno.writeTextFile(`${dir}/done.json`, JSON.stringify({ tarSize: result.tarSize }));
    return result;
  }
  const content = noise(size, 1234);
  const oldTar = buildTar([{ path: "data/big.bin", content }]);
  const source = await writeImage(result.old, { tag: "old", layers: [{ tar: oldTar, compression: "zstd" }] });
  const at = Math.floor(size / 2);
  const newTar = oldTar.slice();
  for (let i = 0; i < EDIT; i++) newTar[512 + at + i] += 1;
  const target = await writeImage(result.old, { tag: "new", layers: [{ tar: newTar, compression: "zstd" }] });
  const tardiff = tarDiff([
    { data: oldTar.subarray(0, 512) },
    { open: "data/big.bin" },
    { copy: at },
    { add: new Uint8Array(EDIT).fill(1) },
    { copy: size - at - EDIT },
    { data: oldTar.subarray(512 + size) },
  ]);
  await writeDelta(result.delta, { source, target, targetDir: result.old, layers: [{ tardiff }] });
  result.tarSize = oldTar.length;
  await Deno.writeTextFile(`${dir}/done.json`, JSON.stringify({ tarSize: oldTar.length }));
  return result;
}

const CHUNK = 1 << 20;

/**
 * The one-file layer tar of {@link synthetic} as 1 MiB chunks, generated as it
 * goes: header, `size` bytes of xorshift noise (`size` a multiple of 4 KiB),
 * the end-of-archive blocks; with `edit`, the EDIT bytes from the middle of the
 * file each one more, as the new image has them.
 */
function* layerChunks(size: number, edit: boolean): Generator<Uint8Array> {
  yield headerBlock({ name: "data/big.bin", size, typeflag: "0" });
  const at = Math.floor(size / 2);
  let x = 1234;
  for (let offset = 0; offset < size; offset += CHUNK) {
    const chunk = new Uint8Array(Math.min(CHUNK, size - offset));
    const words = new Uint32Array(chunk.buffer);
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    if (edit) {
      for (let i = Math.max(at, offset); i < Math.min(at + EDIT, offset + chunk.length); i++) chunk[i - offset] += 1;
    }
    yield chunk;
  }
  yield new Uint8Array(1024);
}

/** Writes one layer of {@link layerChunks} as a zstd blob into `dir`'s layout; its descriptor and diff_id. */
async function streamLayer(dir: string, size: number, edit: boolean) {
  await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
  const tmp = `${dir}/blob.tmp`;
  const zstd = new Deno.Command("sh", { args: ["-c", `zstd -q -3 -T2 -c > '${tmp}'`], stdin: "piped" }).spawn();
  const writer = zstd.stdin.getWriter();
  const tar = createHash("sha256");
  let tarSize = 0;
  for (const chunk of layerChunks(size, edit)) {
    tar.update(chunk);
    tarSize += chunk.length;
    await writer.write(chunk);
  }
  await writer.close();
  if (!(await zstd.status).success) throw new Error("zstd failed");
  const blob = createHash("sha256");
  using file = await Deno.open(tmp);
  for await (const chunk of file.readable) blob.update(chunk);
  const hex = blob.digest("hex");
  await Deno.rename(tmp, `${dir}/blobs/sha256/${hex}`);
  const desc = {
    mediaType: "application/vnd.oci.image.layer.v1.tar+zstd",
    digest: `sha256:${hex}`,
    size: (await Deno.stat(`${dir}/blobs/sha256/${hex}`)).size,
  };
  return { desc, diffId: `sha256:${tar.digest("hex")}`, tarSize };
}

/** An image of one streamed layer, tagged `tag`, in the layout `dir`. */
async function streamImage(dir: string, tag: string, size: number, edit: boolean) {
  await Deno.writeTextFile(`${dir}/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const { desc, diffId, tarSize } = await streamLayer(dir, size, edit);
  const enc = new TextEncoder();
  const configBytes = enc.encode(JSON.stringify({
    architecture: "amd64",
    os: "linux",
    config: { Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: [diffId] },
  }));
  const { manifest, manifestBytes, mediaType, config } = await putOciManifest(dir, tag, configBytes, [desc]);
  const image: WrittenImage = {
    manifest,
    manifestSize: manifestBytes.length,
    manifestBytes,
    mediaType,
    config,
    configBytes,
    diffIds: [diffId],
    layers: [desc],
    tars: [],
  };
  return { image, tarSize };
}

/** {@link synthetic} for layers too large to hold: images and delta written as streams; the tar's size. */
export async function streamedSynthetic(result: Synthetic, size: number): Promise<number> {
  if (size % 4096 !== 0) throw new Error("streamed synthetic sizes are multiples of 4 KiB");
  await Deno.mkdir(result.old, { recursive: true });
  const { image: source, tarSize } = await streamImage(result.old, "old", size, false);
  const { image: target } = await streamImage(result.old, "new", size, true);
  const at = Math.floor(size / 2);
  const tardiff = tarDiff([
    { data: headerBlock({ name: "data/big.bin", size, typeflag: "0" }) },
    { open: "data/big.bin" },
    { copy: at },
    { add: new Uint8Array(EDIT).fill(1) },
    { copy: size - at - EDIT },
    { data: new Uint8Array(1024) },
  ]);
  await writeDelta(result.delta, { source, target, targetDir: result.old, layers: [{ tardiff }] });
  return tarSize;
}
