/**
 * Writing OCI image layouts: into a directory (`oci:DIR`, adding to a layout
 * that may already be there) or into a tar archive (`oci-archive:FILE`). Blobs
 * are streamed in and hashed as they pass; nothing is visible until
 * {@link LayoutWriter.commit}, and {@link LayoutWriter.abort} leaves the
 * destination as it was.
 *
 * - Directory: each blob goes to a temporary file in `blobs/<alg>/` and is
 *   renamed to its digest; `index.json` is replaced atomically, last. Other
 *   index entries are kept; an entry with the same tag is replaced.
 * - Archive: written to `FILE.tmp-<id>` beside FILE and renamed over FILE at
 *   the end (an existing FILE is replaced, not merged). A streamed blob's
 *   header is written as a placeholder and patched in place once its size and
 *   digest are known, so each blob is produced and written exactly once.
 *
 * One writer per destination at a time: two processes adding to the same
 * layout at once may lose one index entry.
 *
 * @module
 */
import { DigestMismatchError, FormatError, NotFoundError, UsageError } from "../errors.ts";
import { checkTagName } from "../repo/repository.ts";
import { encodeHeader, END_OF_ARCHIVE, paddingFor } from "../tar/header_writer.ts";
import { parseTransportRef } from "../transport/reference.ts";
import { type Digest, Hasher, parseDigest } from "../util/digest.ts";
import { type Descriptor, encodeJson, type Index, REF_NAME_ANNOTATION } from "./documents.ts";
import { DirFiles, readLayoutIndex, refName } from "./layout.ts";
import { MediaType } from "./media_types.ts";
import { lstatOrUndefined, writeAll } from "../util/fs.ts";

/** Where an image is written: `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]`. */
export interface LayoutDest {
  transport: "oci" | "oci-archive";
  path: string;
  tag?: string;
}

/** A blob as written: its digest and length. */
export interface WrittenBlob {
  digest: Digest;
  size: number;
}

/** Bytes of a blob: whole, or as chunks (a ReadableStream is an async iterable). */
export type BlobContent = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Writes one layout; see the module documentation for the guarantees. */
export interface LayoutWriter {
  /** The destination as the user wrote it (`oci:DIR`, `oci-archive:FILE`). */
  readonly description: string;
  /**
   * Writes a blob, hashing it on the way (SHA-256, or the algorithm of
   * `expected`). With `expected`, a blob of another digest is refused and not kept.
   */
  putBlob(content: BlobContent, expected?: Digest): Promise<WrittenBlob>;
  /** Lists a manifest (already written with putBlob) in the index, under `tag` if given. */
  addManifest(desc: Descriptor, tag?: string): void;
  /** Makes everything written visible (index.json last; the archive renamed into place). */
  commit(): Promise<void>;
  /** Removes everything written; the destination is as it was before. Safe to call twice. */
  abort(): Promise<void>;
}

const OCI_LAYOUT = encodeJson({ imageLayoutVersion: "1.0.0" });

/** Parses a destination; `what` names the argument in errors. */
export function parseLayoutDest(s: string, what = "destination"): LayoutDest {
  if (!/^(oci|oci-archive):/.test(s)) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(s)}: expected oci:DIR[:TAG] or oci-archive:FILE[:TAG]`);
  }
  const ref = parseTransportRef(s);
  if (ref.transport === "docker") throw new UsageError(`invalid ${what} ${JSON.stringify(s)}`);
  if (ref.ref !== undefined && /^(sha256|sha512):/.test(ref.ref)) {
    throw new UsageError(`invalid ${what} ${JSON.stringify(s)}: name a tag, not a digest`);
  }
  if (ref.ref !== undefined) checkTagName(ref.ref);
  return ref.ref === undefined
    ? { transport: ref.transport, path: ref.path }
    : { transport: ref.transport, path: ref.path, tag: ref.ref };
}

/** Opens a writer for the layout `dest` names. */
export async function openLayoutWriter(dest: Pick<LayoutDest, "transport" | "path">): Promise<LayoutWriter> {
  return dest.transport === "oci" ? await DirLayoutWriter.open(dest.path) : await ArchiveLayoutWriter.open(dest.path);
}

/** The index after adding `entries` to `existing`: same tag replaced, the rest kept. */
export function mergeIndex(existing: Index | undefined, entries: { desc: Descriptor; tag?: string }[]): Uint8Array {
  const manifests = [...(existing?.manifests ?? [])];
  for (const { desc, tag } of entries) {
    const entry = tag ? { ...desc, annotations: { ...desc.annotations, [REF_NAME_ANNOTATION]: tag } } : desc;
    for (let i = manifests.length - 1; i >= 0; i--) {
      const name = refName(manifests[i]);
      if (tag ? name === tag : name === undefined && manifests[i].digest === desc.digest) manifests.splice(i, 1);
    }
    manifests.push(entry);
  }
  return encodeJson({
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests,
    ...(existing?.annotations ? { annotations: existing.annotations } : {}),
  });
}

async function* chunksOf(content: BlobContent): AsyncGenerator<Uint8Array> {
  if (content instanceof Uint8Array) yield content;
  else yield* content;
}

function shortId(): string {
  return crypto.randomUUID().slice(0, 8);
}

/** An `oci:DIR` layout being written. */
class DirLayoutWriter implements LayoutWriter {
  readonly description: string;
  #entries: { desc: Descriptor; tag?: string }[] = [];
  #temps = new Set<string>();
  #added: string[] = [];
  #done = false;

  /** `created`: the directory did not exist; `empty`: it existed, empty. Either way abort leaves it so. */
  private constructor(readonly dir: string, readonly created: boolean, readonly empty = false) {
    this.description = `oci:${dir}`;
  }

  static async open(dir: string): Promise<DirLayoutWriter> {
    const st = await lstatOrUndefined(dir);
    if (st === undefined) {
      await Deno.mkdir(dir, { recursive: true });
      return new DirLayoutWriter(dir, true);
    }
    if (!st.isDirectory && !(st.isSymlink && (await Deno.stat(dir)).isDirectory)) {
      throw new UsageError(`oci:${dir} exists and is not a directory`);
    }
    const files = new DirFiles(dir);
    if ((await files.size("index.json")) !== undefined || (await files.size("oci-layout")) !== undefined) {
      await readLayoutIndex(files); // refuse a damaged layout before writing anything
      return new DirLayoutWriter(dir, false);
    }
    for await (const _ of Deno.readDir(dir)) {
      throw new UsageError(
        `oci:${dir} is a non-empty directory that is not an OCI layout; choose an empty or new directory`,
      );
    }
    return new DirLayoutWriter(dir, false, true);
  }

  async putBlob(content: BlobContent, expected?: Digest): Promise<WrittenBlob> {
    const algorithm = expected ? parseDigest(expected).algorithm : "sha256";
    const dir = `${this.dir}/blobs/${algorithm}`;
    await Deno.mkdir(dir, { recursive: true });
    const tmp = `${dir}/.tmp-deltaship-${shortId()}`;
    this.#temps.add(tmp);
    const hasher = new Hasher(algorithm);
    try {
      const file = await Deno.open(tmp, { write: true, createNew: true });
      try {
        for await (const chunk of chunksOf(content)) {
          hasher.update(chunk);
          await writeAll(file, chunk);
        }
      } finally {
        file.close();
      }
      const digest = hasher.digest();
      if (expected && digest !== expected) {
        throw new DigestMismatchError(`blob for ${this.description}`, expected, digest);
      }
      const path = `${dir}/${parseDigest(digest).hex}`;
      if (await lstatOrUndefined(path)) {
        await Deno.remove(tmp);
      } else {
        await Deno.rename(tmp, path);
        this.#added.push(path);
      }
      this.#temps.delete(tmp);
      return { digest, size: hasher.size };
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      this.#temps.delete(tmp);
      throw e;
    }
  }

  addManifest(desc: Descriptor, tag?: string): void {
    this.#entries.push({ desc, tag });
  }

  async commit(): Promise<void> {
    const files = new DirFiles(this.dir);
    const existing = (await files.size("index.json")) === undefined ? undefined : await readLayoutIndex(files);
    if ((await files.size("oci-layout")) === undefined) await this.#writeAtomic("oci-layout", OCI_LAYOUT);
    await this.#writeAtomic("index.json", mergeIndex(existing, this.#entries));
    this.#done = true;
  }

  async #writeAtomic(name: string, bytes: Uint8Array): Promise<void> {
    const tmp = `${this.dir}/.${name}.tmp-deltaship-${shortId()}`;
    this.#temps.add(tmp);
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, `${this.dir}/${name}`);
    this.#temps.delete(tmp);
  }

  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    for (const tmp of this.#temps) await Deno.remove(tmp).catch(() => {});
    if (this.created) {
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
      return;
    }
    if (this.empty) {
      for await (const e of Deno.readDir(this.dir)) {
        await Deno.remove(`${this.dir}/${e.name}`, { recursive: true }).catch(() => {});
      }
      return;
    }
    for (const path of this.#added) await Deno.remove(path).catch(() => {});
  }
}

/** An `oci-archive:FILE` being written. */
class ArchiveLayoutWriter implements LayoutWriter {
  readonly description: string;
  #entries: { desc: Descriptor; tag?: string }[] = [];
  #blobs = new Set<Digest>();
  #offset = 0;
  #chain: Promise<unknown> = Promise.resolve();
  #done = false;

  private constructor(readonly path: string, readonly tmp: string, readonly file: Deno.FsFile) {
    this.description = `oci-archive:${path}`;
  }

  static async open(path: string): Promise<ArchiveLayoutWriter> {
    const st = await lstatOrUndefined(path);
    if (st?.isDirectory) throw new UsageError(`oci-archive:${path} is a directory; give a file name`);
    const tmp = `${path}.tmp-${shortId()}`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(tmp, { write: true, createNew: true });
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new NotFoundError(`oci-archive:${path}: the directory it would be written in does not exist`);
      }
      throw e;
    }
    const writer = new ArchiveLayoutWriter(path, tmp, file);
    try {
      await writer.#member("oci-layout", OCI_LAYOUT);
      await writer.#write(encodeHeader({ name: "blobs/", size: 0, type: "dir" }));
      await writer.#write(encodeHeader({ name: "blobs/sha256/", size: 0, type: "dir" }));
    } catch (e) {
      await writer.abort();
      throw e;
    }
    return writer;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    await writeAll(this.file, bytes);
    this.#offset += bytes.length;
  }

  async #member(name: string, bytes: Uint8Array): Promise<void> {
    await this.#write(encodeHeader({ name, size: bytes.length }));
    await this.#write(bytes);
    await this.#write(paddingFor(bytes.length));
  }

  /** Runs `fn` after every earlier blob: members are written one at a time. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => {});
    return run;
  }

  putBlob(content: BlobContent, expected?: Digest): Promise<WrittenBlob> {
    return this.#serial(() => this.#putBlob(content, expected));
  }

  async #putBlob(content: BlobContent, expected?: Digest): Promise<WrittenBlob> {
    if (this.#done) throw new Error("layout writer already finished");
    const { algorithm, hex } = parseDigest(expected ?? `sha256:${"0".repeat(64)}`);
    const start = this.#offset;
    // A placeholder of the final header's shape (same name length): patched below.
    await this.#write(encodeHeader({ name: `blobs/${algorithm}/${"0".repeat(hex.length)}`, size: 0 }));
    const hasher = new Hasher(algorithm);
    try {
      for await (const chunk of chunksOf(content)) {
        hasher.update(chunk);
        await this.#write(chunk);
      }
      await this.#write(paddingFor(hasher.size));
      const digest = hasher.digest();
      if (expected && digest !== expected) {
        throw new DigestMismatchError(`blob for ${this.description}`, expected, digest);
      }
      if (this.#blobs.has(digest)) {
        await this.#rewind(start);
      } else {
        const header = encodeHeader({ name: `blobs/${algorithm}/${parseDigest(digest).hex}`, size: hasher.size });
        await this.file.seek(start, Deno.SeekMode.Start);
        await writeAll(this.file, header);
        await this.file.seek(this.#offset, Deno.SeekMode.Start);
        this.#blobs.add(digest);
      }
      return { digest, size: hasher.size };
    } catch (e) {
      await this.#rewind(start).catch(() => {});
      throw e;
    }
  }

  /** Drops everything from `offset` on (a duplicate or failed member). */
  async #rewind(offset: number): Promise<void> {
    await this.file.truncate(offset);
    await this.file.seek(offset, Deno.SeekMode.Start);
    this.#offset = offset;
  }

  addManifest(desc: Descriptor, tag?: string): void {
    this.#entries.push({ desc, tag });
  }

  commit(): Promise<void> {
    return this.#serial(async () => {
      if (this.#done) throw new Error("layout writer already finished");
      await this.#member("index.json", mergeIndex(undefined, this.#entries));
      await this.#write(END_OF_ARCHIVE);
      this.file.close();
      this.#done = true;
      try {
        await Deno.rename(this.tmp, this.path);
      } catch (e) {
        await Deno.remove(this.tmp).catch(() => {});
        if (e instanceof Deno.errors.IsADirectory) throw new FormatError(`oci-archive:${this.path} is a directory`);
        throw e;
      }
    });
  }

  async abort(): Promise<void> {
    await this.#chain;
    if (!this.#done) {
      this.#done = true;
      try {
        this.file.close();
      } catch { /* already closed */ }
    }
    await Deno.remove(this.tmp).catch(() => {});
  }
}
