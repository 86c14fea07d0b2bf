/**
 * Reading OCI image layouts (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`),
 * whether they sit in a directory or packed in an archive, through one small
 * file-access interface.
 *
 * @module
 */
import { FormatError, NotFoundError } from "../errors.ts";
import { parseDigest } from "../util/digest.ts";
import { fileRangeStream, readAll } from "../util/streams.ts";
import { type Descriptor, type Index, MAX_DOCUMENT, parseIndex, parseJson, REF_NAME_ANNOTATION } from "./documents.ts";

/** Read access to the files of a layout, wherever they are kept. */
export interface LayoutFiles {
  /** Describes the layout in messages (`oci:DIR`, `oci-archive:FILE`). */
  readonly description: string;
  /** Size of a file, or undefined when it does not exist. */
  size(path: string): Promise<number | undefined>;
  /** A stream of a file's bytes. */
  open(path: string): Promise<ReadableStream<Uint8Array>>;
  /** Releases resources. */
  close(): void | Promise<void>;
}

/** Layout files in a plain directory. */
export class DirFiles implements LayoutFiles {
  readonly description: string;
  constructor(readonly dir: string) {
    this.description = `oci:${dir}`;
  }

  async size(path: string): Promise<number | undefined> {
    try {
      const st = await Deno.stat(`${this.dir}/${path}`);
      return st.isFile ? st.size : undefined;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return undefined;
      throw e;
    }
  }

  open(path: string): Promise<ReadableStream<Uint8Array>> {
    return Promise.resolve(fileRangeStream(`${this.dir}/${path}`));
  }

  close(): void {}
}

/** The path of a blob inside a layout. */
export function blobPathInLayout(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}

/** Reads a small file of a layout whole. */
export async function readLayoutFile(files: LayoutFiles, path: string): Promise<Uint8Array> {
  const size = await files.size(path);
  if (size === undefined) throw new NotFoundError(`${files.description}: ${path} is missing`);
  if (size > MAX_DOCUMENT) throw new FormatError(`${files.description}: ${path} is too large (${size} bytes)`);
  return await readAll(await files.open(path), MAX_DOCUMENT);
}

/** Reads and checks `oci-layout` and `index.json`. */
export async function readLayoutIndex(files: LayoutFiles): Promise<Index> {
  if ((await files.size("oci-layout")) === undefined && (await files.size("index.json")) === undefined) {
    throw new NotFoundError(`${files.description} is not an OCI image layout (no oci-layout or index.json)`);
  }
  await readLayoutMarker(files);
  return parseIndex(await readLayoutFile(files, "index.json"), `${files.description}: index.json`);
}

/** Checks a layout's `oci-layout` file: JSON with an `imageLayoutVersion`. */
export async function readLayoutMarker(files: LayoutFiles): Promise<void> {
  const marker = parseJson(await readLayoutFile(files, "oci-layout"), `${files.description}: oci-layout`) as {
    imageLayoutVersion?: unknown;
  };
  if (typeof marker?.imageLayoutVersion !== "string") {
    throw new FormatError(`${files.description}: oci-layout has no imageLayoutVersion`);
  }
}

/** The tag of an index entry, if it has one. */
export function refName(desc: Descriptor): string | undefined {
  return desc.annotations?.[REF_NAME_ANNOTATION];
}

/**
 * Picks the index.json entry for `ref`: a tag (`org.opencontainers.image.ref.name`)
 * or a manifest digest. Without `ref` the layout must hold exactly one entry.
 */
export function findLayoutEntry(index: Index, ref: string | undefined, description: string): Descriptor {
  const tags = index.manifests.map(refName).filter((t): t is string => t !== undefined);
  const known = tags.length ? `; tags: ${tags.join(", ")}` : "";
  if (ref === undefined) {
    if (index.manifests.length === 1) return index.manifests[0];
    if (index.manifests.length === 0) throw new NotFoundError(`${description} holds no images`);
    throw new NotFoundError(
      `${description} holds ${index.manifests.length} manifests; name one as ${description}:REF${known}`,
    );
  }
  const byDigest = /^(sha256|sha512):/.test(ref);
  const hits = index.manifests.filter((m) => (byDigest ? m.digest === ref : refName(m) === ref));
  if (hits.length === 0) {
    throw new NotFoundError(`${description} has no ${byDigest ? "manifest" : "tag"} ${ref}${known}`);
  }
  return hits[0];
}
