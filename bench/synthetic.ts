/**
 * Synthetic inputs for the scaling cases: an image with one layer holding one
 * file of a chosen size, a new image where a few KiB of that file changed, and
 * the oci-delta between them (Data, Open, Copy, AddData, Copy, Data). Pulling and
 * delta-applying these at two sizes shows whether memory stays flat as layers grow.
 */
import { noise } from "../tests/helpers/data.ts";
import { writeImage } from "../tests/helpers/oci.ts";
import { buildTar } from "../tests/helpers/tar.ts";
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

/** Writes (once) the synthetic images and delta for `size` bytes of file content under `root`. */
export async function synthetic(root: string, size: number): Promise<Synthetic> {
  const dir = `${root}/synthetic-${size}`;
  const result = { dir, old: `${dir}/images`, delta: `${dir}/delta`, tarSize: 0 };
  try {
    result.tarSize = JSON.parse(await Deno.readTextFile(`${dir}/done.json`)).tarSize;
    return result;
  } catch { /* build it */ }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
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
