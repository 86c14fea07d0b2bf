/**
 * Test helper: a small, strict reference decoder for tar-diff blobs, used to
 * check the encoder's output independently of deltaship's own engine. Beyond
 * applying the ops it checks the rules other readers rely on: version-1 ops
 * only under the version-1 magic, minimal varints, Open paths relative and at
 * most 4 KiB, AddData at most 100 MiB, source reads and seeks inside the
 * current file. Version 2's ZstdDict frames are decoded by the real
 * `zstd -d --patch-from` (window log at most 29, as reference readers require).
 */
import zlib from "node:zlib";
import { loadRootfs } from "../../src/repo/layer_reader.ts";
import type { Repository } from "../../src/repo/repository.ts";
import { cleanRootedPath } from "../../src/tar/path.ts";
import { MAX_ADD_DATA, MAX_OPEN_NAME, TARDIFF_MAGIC, TARDIFF_MAGIC_V2 } from "../../src/tardiff/format.ts";
import { type DiffId, type Digest, sha256 } from "../../src/util/digest.ts";
import { concat } from "../../src/util/streams.ts";
import { unpatch } from "./zstd_patch.ts";

/** What a decoded blob held, besides its output. */
export interface Decoded {
  output: Uint8Array;
  ops: { data: number; open: number; copy: number; addData: number; seek: number; zstdDict: number };
  opens: string[];
  /** 1 or 2, from the magic. */
  version: number;
  /** Window log of each ZstdDict frame (its content size's, for a single-segment frame). */
  windowLogs: number[];
}

/** Decodes `blob` against the merged filesystem of `sourceDiffIds` in `repo`. */
export async function decodeTarDiff(repo: Repository, sourceDiffIds: DiffId[], blob: Uint8Array): Promise<Decoded> {
  const magic = blob.subarray(0, 8);
  const is = (m: Uint8Array) => magic.length === 8 && magic.every((b, i) => b === m[i]);
  const version = is(TARDIFF_MAGIC) ? 1 : is(TARDIFF_MAGIC_V2) ? 2 : 0;
  if (version === 0) throw new Error("bad tar-diff magic");
  const stream = new Uint8Array(zlib.zstdDecompressSync(blob.subarray(8)));
  const rootfs = await loadRootfs(repo, sourceDiffIds);
  const out: Uint8Array[] = [];
  const ops = { data: 0, open: 0, copy: 0, addData: 0, seek: 0, zstdDict: 0 };
  const opens: string[] = [];
  const windowLogs: number[] = [];
  let src: Uint8Array | undefined;
  let pos = 0;
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    const start = i;
    for (;;) {
      if (i >= stream.length) throw new Error("truncated varint");
      const b = stream[i++];
      v += (b & 0x7f) * mul;
      mul *= 128;
      if (b < 0x80) {
        if (b === 0 && i - start > 1) throw new Error(`non-minimal varint at ${start}`);
        return v;
      }
      if (i - start >= 10) throw new Error("overlong varint");
    }
  };
  while (i < stream.length) {
    const op = stream[i++];
    const size = varint();
    switch (op) {
      case 0:
        if (i + size > stream.length) throw new Error("truncated Data");
        out.push(stream.slice(i, i + size));
        i += size;
        ops.data++;
        break;
      case 1: {
        if (size > MAX_OPEN_NAME) throw new Error(`Open name of ${size} bytes`);
        const name = new TextDecoder("utf-8", { fatal: true }).decode(stream.subarray(i, i + size));
        i += size;
        if (name.startsWith("/") || name === "") throw new Error(`Open path ${JSON.stringify(name)} is not relative`);
        const file = rootfs.regularFile(cleanRootedPath(name));
        if (typeof file === "string") throw new Error(`Open ${name}: ${file}`);
        src = file.object ? await Deno.readFile(repo.objects.path(file.object)) : new Uint8Array(0);
        if (src.length !== file.size) throw new Error(`Open ${name}: size`);
        pos = 0;
        ops.open++;
        opens.push(name);
        break;
      }
      case 2:
        if (!src || pos + size > src.length) throw new Error("Copy past the end of the source file");
        out.push(src.slice(pos, pos + size));
        pos += size;
        ops.copy++;
        break;
      case 3: {
        if (size > MAX_ADD_DATA) throw new Error(`AddData of ${size} bytes`);
        if (!src || pos + size > src.length) throw new Error("AddData past the end of the source file");
        if (i + size > stream.length) throw new Error("truncated AddData");
        const r = new Uint8Array(size);
        for (let k = 0; k < size; k++) r[k] = stream[i + k] + src[pos + k];
        out.push(r);
        i += size;
        pos += size;
        ops.addData++;
        break;
      }
      case 4:
        if (!src || size > src.length) throw new Error("Seek past the end of the source file");
        pos = size;
        ops.seek++;
        break;
      case 5: {
        if (version !== 2) throw new Error("ZstdDict in a version 1 tar-diff");
        if (!src) throw new Error("ZstdDict with no open file");
        const frame = stream.subarray(i, i + size);
        const descriptor = frame[4];
        const windowLog = (descriptor & 0x20) === 0 ? (frame[5] >> 3) + 10 : Math.ceil(Math.log2(src.length + 1));
        if (windowLog > 29) throw new Error("ZstdDict window log over 29");
        windowLogs.push(windowLog);
        out.push(await unpatch(src, frame));
        i += size;
        pos = src.length;
        ops.zstdDict++;
        break;
      }
      default:
        throw new Error(`unknown op ${op}`);
    }
  }
  return { output: concat(out), ops, opens, version, windowLogs };
}

/** Decodes and checks that the output hashes to `diffId`; returns the decode. */
export async function expectTarDiff(
  repo: Repository,
  sourceDiffIds: DiffId[],
  blob: Uint8Array,
  diffId: Digest,
): Promise<Decoded> {
  const d = await decodeTarDiff(repo, sourceDiffIds, blob);
  const got = sha256(d.output);
  if (got !== diffId) throw new Error(`tar-diff output hashes to ${got}, expected ${diffId}`);
  return d;
}
