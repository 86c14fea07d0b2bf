/**
 * Test helper: a small tar-diff encoder (ops in, `tardf1\n\0` + zstd out, good or
 * hostile), a naive differ that turns an old file set and a new tar into a valid
 * tar-diff, a tar-diff source held in memory, and a writer of oci-delta
 * artifacts into OCI layouts.
 */
import zlib from "node:zlib";
import { DELTA_ARTIFACT_TYPE, DeltaAnnotation, DeltaContent } from "../../src/delta/annotations.ts";
import { EMPTY_CONFIG } from "../../src/oci/documents.ts";
import type { TarEntry } from "../../src/tar/header.ts";
import { TarSplitter } from "../../src/tar/splitter.ts";
import { TARDIFF_MAGIC, TARDIFF_MEDIA_TYPE } from "../../src/tardiff/format.ts";
import type { LookupFailure } from "../../src/oci/rootfs.ts";
import type { SourceFile, TarDiffSource } from "../../src/tardiff/source.ts";
import { concat } from "../../src/util/streams.ts";
import { writeVarint } from "../../src/util/varint.ts";
import { addIndexEntry, putBlob, type WrittenImage } from "./oci.ts";

const enc = new TextEncoder();

/** One tar-diff operation, or raw bytes for hostile streams. */
export type TarDiffOp =
  | { data: Uint8Array | string }
  | { open: string | Uint8Array }
  | { copy: number }
  | { add: Uint8Array }
  | { seek: number }
  /** Any op code with any size; `bytes` (if given) follow the header. */
  | { op: number; size: number; bytes?: Uint8Array }
  /** Bytes put into the op stream as they are. */
  | { raw: Uint8Array };

function header(op: number, size: number): Uint8Array {
  const b = new Uint8Array(11);
  b[0] = op;
  return b.subarray(0, writeVarint(b, 1, size));
}

/**
 * A tar-diff source held in memory: path → content. Files named in `held` also
 * offer their bytes (as a source holding them whole does). A read outside a
 * file throws: the interpreter must keep its reads within the sizes it is given.
 */
export function memorySource(
  files: Record<string, Uint8Array> | Map<string, Uint8Array>,
  held: string[] = [],
): TarDiffSource {
  const byPath = files instanceof Map ? files : new Map(Object.entries(files));
  return {
    open(path: string): SourceFile | LookupFailure {
      const bytes = byPath.get(path);
      if (bytes === undefined) return "missing";
      return {
        size: bytes.length,
        bytes: held.includes(path) ? bytes : undefined,
        read(position, into, offset, length) {
          if (position < 0 || position + length > bytes.length) {
            throw new Error(`tar-diff read outside the file: ${position}+${length} of ${bytes.length}`);
          }
          into.set(bytes.subarray(position, position + length), offset);
        },
        close() {},
      };
    },
  };
}

/** The uncompressed op stream of `ops`. */
export function encodeOps(ops: TarDiffOp[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const o of ops) {
    if ("data" in o) {
      const d = typeof o.data === "string" ? enc.encode(o.data) : o.data;
      parts.push(header(0, d.length), d);
    } else if ("open" in o) {
      const p = typeof o.open === "string" ? enc.encode(o.open) : o.open;
      parts.push(header(1, p.length), p);
    } else if ("copy" in o) {
      parts.push(header(2, o.copy));
    } else if ("add" in o) {
      parts.push(header(3, o.add.length), o.add);
    } else if ("seek" in o) {
      parts.push(header(4, o.seek));
    } else if ("op" in o) {
      parts.push(header(o.op, o.size));
      if (o.bytes) parts.push(o.bytes);
    } else {
      parts.push(o.raw);
    }
  }
  return concat(parts);
}

/** Compresses an op stream as zstd (with a checksum, as the reference encoder writes). */
export function zstd(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(
    zlib.zstdCompressSync(bytes, { params: { [zlib.constants.ZSTD_c_checksumFlag]: 1 } }),
  );
}

/** A complete tar-diff blob: magic, then the zstd-compressed ops. */
export function tarDiff(ops: TarDiffOp[], magic: Uint8Array = TARDIFF_MAGIC): Uint8Array {
  return concat([magic, zstd(encodeOps(ops))]);
}

/**
 * A zstd frame built by hand from raw and RLE blocks, so a test can describe a
 * huge op stream (e.g. 100 MiB of AddData) in a few bytes without compressing it.
 */
export function zstdFrame(blocks: ({ raw: Uint8Array } | { rle: number; size: number })[]): Uint8Array {
  const parts: Uint8Array[] = [new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58])]; // no checksum, 8 MiB window
  blocks.forEach((b, i) => {
    const last = i === blocks.length - 1 ? 1 : 0;
    const [type, size, body] = "raw" in b ? [0, b.raw.length, b.raw] : [1, b.size, new Uint8Array([b.rle])];
    if (size > 128 << 10) throw new RangeError("zstd blocks hold at most 128 KiB");
    const v = last | (type << 1) | (size << 3);
    parts.push(new Uint8Array([v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff]), body);
  });
  return concat(parts);
}

/** The tar header of one op (for use in {@link zstdFrame} raw blocks). */
export function opHeader(op: number, size: number): Uint8Array {
  return header(op, size);
}

/** Pieces of a tar, in order: bytes to ship as Data, or the content of a regular file. */
type TarPiece = { bytes: Uint8Array } | { file: string; content: Uint8Array };

async function tarPieces(tar: Uint8Array): Promise<TarPiece[]> {
  const pieces: TarPiece[] = [];
  let current: { file: string; parts: Uint8Array[] } | undefined;
  const splitter = new TarSplitter({
    entry(entry: TarEntry, group: Uint8Array) {
      pieces.push({ bytes: group.slice() });
      current = entry.kind === "file" ? { file: entry.path, parts: [] } : undefined;
    },
    content(chunk: Uint8Array) {
      if (current) current.parts.push(chunk.slice());
      else pieces.push({ bytes: chunk.slice() });
    },
    endContent() {
      if (current) pieces.push({ file: current.file, content: concat(current.parts) });
      current = undefined;
    },
    padding(bytes: Uint8Array) {
      pieces.push({ bytes: bytes.slice() });
    },
    trailer(bytes: Uint8Array) {
      pieces.push({ bytes: bytes.slice() });
    },
  });
  await splitter.write(tar);
  splitter.close();
  return pieces;
}

/** The regular files of layer tars applied in order (later layers win; no whiteouts). */
export async function tarFiles(...tars: Uint8Array[]): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const tar of tars) {
    for (const piece of await tarPieces(tar)) if ("file" in piece) files.set(piece.file, piece.content);
  }
  return files;
}

/**
 * A valid tar-diff that rebuilds `tar` from `old` (path → content of the source
 * image's regular files): headers as Data; a file whose path is in `old` is
 * Opened, then Copied when unchanged, else AddData over the common prefix (with a
 * Seek back to 0 first, to exercise it) and Data for the rest; other files as Data.
 * `openPath` rewrites the paths Open names (e.g. to test how they are resolved).
 */
export async function diffTar(
  old: Map<string, Uint8Array>,
  tar: Uint8Array,
  options: { openPath?: (path: string) => string } = {},
): Promise<Uint8Array> {
  const ops: TarDiffOp[] = [];
  for (const piece of await tarPieces(tar)) {
    if ("bytes" in piece) {
      ops.push({ data: piece.bytes });
      continue;
    }
    const before = old.get(piece.file);
    const now = piece.content;
    if (!before || before.length === 0) {
      ops.push({ data: now });
      continue;
    }
    ops.push({ open: options.openPath ? options.openPath(piece.file) : piece.file });
    if (before.length === now.length && before.every((b, i) => b === now[i])) {
      ops.push({ copy: now.length });
      continue;
    }
    const common = Math.min(before.length, now.length);
    ops.push({ copy: 0 }, { seek: 0 }, { add: now.subarray(0, common).map((b, i) => b - before[i]) });
    if (now.length > common) ops.push({ data: now.subarray(common) });
  }
  return tarDiff(ops);
}

/** How the delta carries one target layer. */
export type DeltaLayer = "reused" | "original" | { tardiff: Uint8Array };

/** A delta to write. */
export interface DeltaSpec {
  source: WrittenImage;
  target: WrittenImage;
  /** The layout the target image was written to (original blobs are copied from it). */
  targetDir: string;
  /** One per target layer. */
  layers: DeltaLayer[];
  /** Tag in index.json (none by default, like the fixtures). */
  tag?: string;
  /** Edits the delta manifest before it is written. */
  // deno-lint-ignore no-explicit-any
  mutate?: (manifest: any) => void;
}

/** What was written. */
export interface WrittenDelta {
  manifest: string;
  /** Digests of the tar-diff / original blobs shipped, in target layer order (undefined when reused). */
  blobs: (string | undefined)[];
  /** Sum of the shipped layer blobs' sizes. */
  shippedBytes: number;
}

/**
 * Writes an oci-delta artifact into the layout at `dir`: the target manifest and
 * config embedded, each target layer reused, shipped as its original blob, or as
 * the tar-diff given.
 */
export async function writeDelta(dir: string, spec: DeltaSpec): Promise<WrittenDelta> {
  const { source, target } = spec;
  await putBlob(dir, new TextEncoder().encode("{}"));
  await putBlob(dir, target.manifestBytes);
  await putBlob(dir, target.configBytes);
  const layers: Record<string, unknown>[] = [
    {
      mediaType: target.mediaType,
      digest: target.manifest,
      size: target.manifestBytes.length,
      annotations: { [DeltaAnnotation.content]: DeltaContent.imageManifest },
    },
    {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: target.config,
      size: target.configBytes.length,
      annotations: { [DeltaAnnotation.content]: DeltaContent.imageConfig },
    },
  ];
  const blobs: (string | undefined)[] = [];
  const reused: string[] = [];
  const reusedDiffIds: string[] = [];
  let shippedBytes = 0;
  for (const [i, how] of spec.layers.entries()) {
    const desc = target.layers[i];
    if (how === "reused") {
      blobs.push(undefined);
      reused.push(desc.digest);
      reusedDiffIds.push(target.diffIds[i]);
      continue;
    }
    let entry;
    if (how === "original") {
      // The original blob: copy it from the target's layout bytes.
      const bytes = await Deno.readFile(`${spec.targetDir}/blobs/sha256/${desc.digest.slice(7)}`);
      await putBlob(dir, bytes);
      entry = { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
    } else {
      entry = { mediaType: TARDIFF_MEDIA_TYPE, digest: await putBlob(dir, how.tardiff), size: how.tardiff.length };
    }
    blobs.push(entry.digest);
    shippedBytes += entry.size;
    layers.push({
      ...entry,
      annotations: { [DeltaAnnotation.content]: DeltaContent.imageLayer, [DeltaAnnotation.to]: desc.digest },
    });
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    artifactType: DELTA_ARTIFACT_TYPE,
    config: EMPTY_CONFIG,
    layers,
    subject: { mediaType: target.mediaType, digest: target.manifest, size: target.manifestBytes.length },
    annotations: {
      [DeltaAnnotation.target]: target.manifest,
      [DeltaAnnotation.source]: source.manifest,
      [DeltaAnnotation.sourceConfig]: source.config,
      [DeltaAnnotation.reused]: JSON.stringify(reused),
      [DeltaAnnotation.reusedDiffId]: JSON.stringify(reusedDiffIds),
    },
  };
  spec.mutate?.(manifest);
  const bytes = enc.encode(JSON.stringify(manifest));
  const digest = await putBlob(dir, bytes);
  await addIndexEntry(dir, {
    mediaType: manifest.mediaType,
    digest,
    size: bytes.length,
    ...(spec.tag ? { annotations: { "org.opencontainers.image.ref.name": spec.tag } } : {}),
  });
  return { manifest: digest, blobs, shippedBytes };
}
