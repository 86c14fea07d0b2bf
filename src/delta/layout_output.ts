/**
 * Writing a finished artifact (its blobs and manifest) to an OCI layout
 * directory or an oci-archive, all or nothing: a new directory or archive is
 * assembled under a temporary name beside its destination and renamed into
 * place; an existing layout gets its blobs first and its index.json last.
 *
 * A minimal writer private to create-delta; to be replaced by the shared layout
 * writer (src/oci/layout_writer.ts) once that lands.
 *
 * @module
 */
import { FormatError, UnsupportedError, UsageError } from "../errors.ts";
import { type Descriptor, parseIndex, REF_NAME_ANNOTATION } from "../oci/documents.ts";
import { MediaType } from "../oci/media_types.ts";
import { writeAll } from "../repo/layer_record.ts";
import { type Digest, parseDigest, Verifier } from "../util/digest.ts";

/** Where to write: `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`. */
export interface OutputRef {
  transport: "oci" | "oci-archive";
  path: string;
  tag?: string;
}

/** One blob to write, from memory, a local file, or a stream (verified as it is copied). */
export interface OutputBlob {
  digest: Digest;
  size: number;
  bytes?: Uint8Array;
  file?: string;
  stream?: () => Promise<ReadableStream<Uint8Array>>;
}

/**
 * Parses an output reference. Without a transport prefix the argument is an
 * oci-archive file name (taken whole).
 */
export function parseOutputRef(s: string): OutputRef {
  if (s.startsWith("docker://")) {
    throw new UnsupportedError(
      `cannot write a delta to ${s}: write it to oci:DIR or oci-archive:FILE and push that (e.g. with skopeo copy)`,
    );
  }
  const m = /^(oci|oci-archive):(.*)$/.exec(s);
  if (!m) {
    if (s === "") throw new UsageError("output path is empty");
    return { transport: "oci-archive", path: s };
  }
  const rest = m[2];
  const colon = rest.indexOf(":");
  const path = colon < 0 ? rest : rest.slice(0, colon);
  const tag = colon < 0 ? undefined : rest.slice(colon + 1);
  if (path === "") throw new UsageError(`invalid output ${JSON.stringify(s)}: no path`);
  if (tag !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(tag)) {
    throw new UsageError(`invalid output ${JSON.stringify(s)}: ${JSON.stringify(tag)} is not a valid tag`);
  }
  return { transport: m[1] as OutputRef["transport"], path, tag };
}

function siblingTemp(path: string): string {
  return `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Writes the whole blob into an open file, verifying streamed content. */
async function copyBlob(file: Deno.FsFile, blob: OutputBlob): Promise<void> {
  if (blob.bytes) {
    await writeAll(file, blob.bytes);
    return;
  }
  if (blob.file) {
    const src = await Deno.open(blob.file);
    try {
      const buf = new Uint8Array(1 << 20);
      let left = blob.size;
      while (left > 0) {
        const n = await src.read(buf.subarray(0, Math.min(buf.length, left)));
        if (n === null) throw new FormatError(`${blob.file} is shorter than ${blob.size} bytes`);
        await writeAll(file, buf.subarray(0, n));
        left -= n;
      }
    } finally {
      src.close();
    }
    return;
  }
  const verifier = new Verifier(`blob ${blob.digest}`, blob.digest, blob.size);
  for await (const chunk of await blob.stream!()) {
    verifier.update(chunk);
    await writeAll(file, chunk);
  }
  verifier.finish();
}

function indexEntry(manifest: Descriptor, tag: string | undefined): Descriptor {
  const d: Descriptor = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.size };
  if (tag) d.annotations = { [REF_NAME_ANNOTATION]: tag };
  return d;
}

const enc = new TextEncoder();
const LAYOUT_MARKER = enc.encode(JSON.stringify({ imageLayoutVersion: "1.0.0" }));

function newIndex(entries: Descriptor[]): Uint8Array {
  return enc.encode(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: entries }));
}

/** Writes `blobs` and an index naming `manifest` (which must be among the blobs) to `out`. */
export async function writeArtifact(out: OutputRef, blobs: OutputBlob[], manifest: Descriptor): Promise<void> {
  const unique = new Map(blobs.map((b) => [b.digest, b]));
  if (out.transport === "oci-archive") await writeArchive(out, [...unique.values()], manifest);
  else await writeDirectory(out, [...unique.values()], manifest);
}

async function isEmptyDir(path: string): Promise<boolean | undefined> {
  try {
    const st = await Deno.stat(path);
    if (!st.isDirectory) return false;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  for await (const _ of Deno.readDir(path)) return false;
  return true;
}

async function writeDirectory(out: OutputRef, blobs: OutputBlob[], manifest: Descriptor): Promise<void> {
  const state = await isEmptyDir(out.path);
  if (state === false) {
    let layout = false;
    try {
      layout = (await Deno.stat(`${out.path}/oci-layout`)).isFile;
    } catch { /* not a layout */ }
    if (!layout) {
      throw new UsageError(`oci:${out.path} exists and is not an OCI layout; choose another directory`);
    }
    await addToLayout(out, blobs, manifest);
    return;
  }
  const tmp = siblingTemp(out.path);
  try {
    await Deno.mkdir(`${tmp}/blobs/sha256`, { recursive: true });
    for (const blob of blobs) {
      const { algorithm, hex } = parseDigest(blob.digest);
      await Deno.mkdir(`${tmp}/blobs/${algorithm}`, { recursive: true });
      const file = await Deno.open(`${tmp}/blobs/${algorithm}/${hex}`, { write: true, createNew: true });
      try {
        await copyBlob(file, blob);
      } finally {
        file.close();
      }
    }
    await Deno.writeFile(`${tmp}/oci-layout`, LAYOUT_MARKER);
    await Deno.writeFile(`${tmp}/index.json`, newIndex([indexEntry(manifest, out.tag)]));
    await Deno.rename(tmp, out.path); // replaces an empty directory, never a full one
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

async function addToLayout(out: OutputRef, blobs: OutputBlob[], manifest: Descriptor): Promise<void> {
  const indexPath = `${out.path}/index.json`;
  let entries: Descriptor[] = [];
  try {
    entries = parseIndex(await Deno.readFile(indexPath), `oci:${out.path}: index.json`).manifests;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  for (const blob of blobs) {
    const { algorithm, hex } = parseDigest(blob.digest);
    const dir = `${out.path}/blobs/${algorithm}`;
    const path = `${dir}/${hex}`;
    try {
      if ((await Deno.stat(path)).size === blob.size) continue;
    } catch { /* absent */ }
    await Deno.mkdir(dir, { recursive: true });
    const tmp = siblingTemp(path);
    const file = await Deno.open(tmp, { write: true, createNew: true });
    try {
      await copyBlob(file, blob);
      file.close();
      await Deno.rename(tmp, path);
    } catch (e) {
      try {
        file.close();
      } catch { /* closed */ }
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
  }
  const kept = entries.filter((d) =>
    out.tag ? d.annotations?.[REF_NAME_ANNOTATION] !== out.tag : !(d.digest === manifest.digest && !refName(d))
  );
  const tmp = siblingTemp(indexPath);
  await Deno.writeFile(tmp, newIndex([...kept, indexEntry(manifest, out.tag)]));
  await Deno.rename(tmp, indexPath);
}

function refName(d: Descriptor): string | undefined {
  return d.annotations?.[REF_NAME_ANNOTATION];
}

// ---- oci-archive ----

const BLOCK = 512;
const ZERO_BLOCK = new Uint8Array(BLOCK);

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

/** A ustar header block for a member of the archive. */
function tarHeader(name: string, size: number, dir: boolean, typeflag = dir ? 0x35 : 0x30): Uint8Array {
  const b = new Uint8Array(BLOCK);
  const put = (off: number, s: string) => b.set(enc.encode(s), off);
  put(0, name);
  put(100, octal(dir ? 0o755 : 0o644, 8));
  put(108, octal(0, 8));
  put(116, octal(0, 8));
  if (size < 8 ** 11) {
    put(124, octal(size, 12));
  } else {
    // GNU base-256 for sizes of 8 GiB and more.
    b[124] = 0x80;
    let v = size;
    for (let i = 135; i > 124; i--) {
      b[i] = v % 256;
      v = Math.floor(v / 256);
    }
  }
  put(136, octal(0, 12));
  put(148, "        ");
  b[156] = typeflag;
  put(257, "ustar\x0000");
  let sum = 0;
  for (const x of b) sum += x;
  put(148, octal(sum, 7) + " ");
  return b;
}

/** A PAX extended header carrying a name too long for the ustar field. */
function paxPath(name: string): Uint8Array {
  const base = enc.encode(` path=${name}\n`).length;
  let len = base + 1;
  while (base + String(len).length !== len) len = base + String(len).length;
  const data = enc.encode(`${len} path=${name}\n`);
  const out = new Uint8Array(BLOCK + Math.ceil(data.length / BLOCK) * BLOCK);
  out.set(tarHeader("PaxHeader", data.length, false, 0x78));
  out.set(data, BLOCK);
  return out;
}

async function writeMember(file: Deno.FsFile, name: string, blob: OutputBlob): Promise<void> {
  if (enc.encode(name).length > 100) {
    await writeAll(file, paxPath(name));
    name = name.slice(0, 99);
  }
  await writeAll(file, tarHeader(name, blob.size, false));
  await copyBlob(file, blob);
  const pad = (BLOCK - (blob.size % BLOCK)) % BLOCK;
  if (pad) await writeAll(file, ZERO_BLOCK.subarray(0, pad));
}

async function writeArchive(out: OutputRef, blobs: OutputBlob[], manifest: Descriptor): Promise<void> {
  const tmp = siblingTemp(out.path);
  const file = await Deno.open(tmp, { write: true, createNew: true });
  let done = false;
  try {
    const index = newIndex([indexEntry(manifest, out.tag)]);
    await writeMember(file, "oci-layout", { digest: "", size: LAYOUT_MARKER.length, bytes: LAYOUT_MARKER });
    await writeMember(file, "index.json", { digest: "", size: index.length, bytes: index });
    const algorithms = [...new Set(blobs.map((b) => parseDigest(b.digest).algorithm))];
    await writeAll(file, tarHeader("blobs/", 0, true));
    for (const alg of algorithms) await writeAll(file, tarHeader(`blobs/${alg}/`, 0, true));
    for (const blob of blobs) {
      const { algorithm, hex } = parseDigest(blob.digest);
      await writeMember(file, `blobs/${algorithm}/${hex}`, blob);
    }
    await writeAll(file, new Uint8Array(2 * BLOCK));
    file.close();
    done = true;
    await Deno.rename(tmp, out.path);
  } catch (e) {
    if (!done) {
      try {
        file.close();
      } catch { /* closed */ }
    }
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}
