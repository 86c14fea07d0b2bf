/**
 * Test helper: zstd:chunked layers written by deltaship's writer in memory
 * (frames compressed inline), a layer tar with everything the format has to
 * handle (files of many chunks, holes, empty files, links, long names, PAX
 * times and xattrs), and the blob's parts read back independently of the
 * reader under test (JSON.parse, the zstd CLI's format as our decoder reads it).
 */
import { writeZstdChunked } from "../../src/chunked/writer.ts";
import { compressFrames, type FramesJob, type FramesResult } from "../../src/compression/frames.ts";
import { ZstdDecoder } from "../../src/compression/zstd/decoder.ts";
import { concat } from "../../src/util/streams.ts";
import { run } from "./interop.ts";
import { writeImage } from "./oci.ts";
import { buildTar, type TarSpec } from "./tar.ts";

/** Deterministic pseudo-random bytes (an LCG: incompressible enough, and the same every run). */
export function noise(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** The entries of {@link chunkedSampleTar}. */
export function chunkedSampleEntries(): TarSpec[] {
  const holey = noise(400_000, 7);
  holey.fill(0, 100_000, 105_000); // a hole
  holey.fill(0, 200_000, 201_023); // one byte short of a hole
  holey.fill(0, 399_000); // zeros to the end, too few for a hole
  const startsWithHole = noise(50_000, 9);
  startsWithHole.fill(0, 0, 3000);
  return [
    { path: "d/", type: "dir" },
    { path: "d/big.bin", content: noise(700_000, 1) },
    { path: "d/holey.bin", content: holey },
    { path: "d/starts-with-hole.bin", content: startsWithHole },
    { path: "d/zeros.bin", content: new Uint8Array(8192) },
    { path: "d/small.txt", content: 'hello <world> & \u2028 "quoted"\n' },
    { path: "d/empty", content: "" },
    { path: "d/link", type: "symlink", linkname: "small.txt" },
    { path: "d/hard", type: "hardlink", linkname: "d/small.txt" },
    { path: "d/" + "long-name-".repeat(15), content: "long" },
    { path: "d/gnu-" + "n".repeat(120), content: "gnu long name", longNames: "gnu" },
    {
      path: "d/x",
      content: "x",
      pax: { "SCHILY.xattr.user.k": "v\u00e9", mtime: "1700000000.123456789", atime: "1700000001.5" },
    },
    { path: "d/negative-time", content: "n", pax: { mtime: "-1.25" } },
  ];
}

/** A layer tar with everything zstd:chunked has to handle. */
export function chunkedSampleTar(): Uint8Array {
  return buildTar(chunkedSampleEntries());
}

/**
 * Writes {@link chunkedSampleTar} uncompressed as `oci:DIR/src:t` and has skopeo
 * recompress it as zstd:chunked into `oci:DIR/skopeo:t`. Uncompressed, two end
 * blocks: skopeo 1.9's compressor fails ("short write") on more.
 */
export async function skopeoChunkedSample(dir: string): Promise<void> {
  await writeImage(`${dir}/src`, { tag: "t", layers: [{ tar: chunkedSampleTar(), compression: "none" }] });
  await run(
    "skopeo",
    "--insecure-policy",
    "copy",
    "--quiet",
    "--dest-compress-format",
    "zstd:chunked",
    `oci:${dir}/src:t`,
    `oci:${dir}/skopeo:t`,
  );
}

/** A written zstd:chunked blob and its descriptor annotations. */
export interface ChunkedBlob {
  blob: Uint8Array;
  annotations: Record<string, string>;
}

/** Options of {@link writeChunked}. */
export interface WriteChunkedOptions {
  level?: number;
  /** Size of the pieces the tar is fed in (default all at once). */
  piece?: number;
  inFlight?: number;
  /** How jobs run (default: inline, at once). */
  run?: (job: FramesJob) => Promise<FramesResult>;
}

/** Writes `tar` as zstd:chunked with deltaship's writer. */
export async function writeChunked(tar: Uint8Array, options: WriteChunkedOptions = {}): Promise<ChunkedBlob> {
  const piece = options.piece ?? (tar.length || 1);
  const pieces = function* () {
    for (let o = 0; o < tar.length; o += piece) yield tar.subarray(o, o + piece);
  };
  let annotations: Record<string, string> | undefined;
  const out: Uint8Array[] = [];
  for await (
    const c of writeZstdChunked(pieces(), {
      what: "test layer",
      level: options.level ?? 3,
      inFlight: options.inFlight ?? 2,
      run: options.run ?? ((job) => Promise.resolve(compressFrames(job))),
      annotate: (a) => (annotations = a),
    })
  ) out.push(c.slice());
  if (!annotations) throw new Error("the writer gave no annotations");
  return { blob: concat(out), annotations };
}

/** Everything `bytes` (zstd frames, skippable ones included) decompresses to. */
export function unzstd(bytes: Uint8Array): Uint8Array {
  const decoder = new ZstdDecoder();
  const parts: Uint8Array[] = [];
  decoder.push(bytes);
  for (let p = decoder.pull(); p !== null; p = decoder.pull()) parts.push(p.slice());
  decoder.finish();
  return concat(parts);
}

/** A position annotation's numbers. */
export function position(annotations: Record<string, string>, key: string): number[] {
  return annotations[key].split(":").map(Number);
}

/** A TOC entry as JSON.parse gives it. */
export interface TocJsonEntry {
  type: string;
  name: string;
  size?: number;
  digest?: string;
  offset?: number;
  endOffset?: number;
  chunkSize?: number;
  chunkOffset?: number;
  chunkDigest?: string;
  chunkType?: string;
  [field: string]: unknown;
}

/** The TOC of a blob, read with JSON.parse (not the reader under test). */
export function tocJson(b: ChunkedBlob): { version: number; entries: TocJsonEntry[]; tarSplitDigest: string } {
  const [offset, length] = position(b.annotations, "io.github.containers.zstd-chunked.manifest-position");
  return JSON.parse(new TextDecoder().decode(unzstd(b.blob.subarray(offset, offset + length))));
}
