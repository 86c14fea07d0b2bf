/**
 * Writing OCI image layouts: into a directory (`oci:DIR`, adding to a layout
 * that may already be there) or into a tar archive (`oci-archive:FILE`). Blobs
 * are streamed in and hashed as they pass; nothing is visible until
 * {@link LayoutWriter.commit}, and {@link LayoutWriter.abort} leaves the
 * destination as it was.
 *
 * Every writer stages its output where a writer killed midway (SIGKILL: no
 * cleanup runs) leaves nothing in the way of the next one. Staging paths come
 * with a lock file held while their process lives (see util/owned_temp.ts), and
 * the next writer to the same destination removes those whose owner is gone.
 *
 * - New directory: the whole layout is built in a sibling `.DIR.deltaship-*`
 *   directory and renamed to DIR at commit: DIR appears complete or not at all.
 * - Existing directory (a layout, or empty): blobs are staged in
 *   `DIR/.deltaship-staging-*` and moved into `blobs/` at commit, then
 *   `index.json` is replaced atomically, last. Other index entries are kept;
 *   an entry with the same tag is replaced. A writer killed during commit
 *   leaves at most extra blobs no index entry names (and, in a directory that
 *   was empty, `blobs/` without `index.json`, which is accepted as a layout
 *   holding no image).
 * - Archive: written to a sibling `.FILE.deltaship-*` and renamed over FILE at
 *   the end (an existing FILE is replaced, not merged). A streamed blob's
 *   header is written as a placeholder and patched in place once its size and
 *   digest are known, so each blob is produced and written exactly once.
 *
 * One writer per destination at a time: two processes adding to the same
 * layout at once may lose one index entry.
 *
 * @module
 */
import { DigestMismatchError, FormatError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import { encodeHeader, END_OF_ARCHIVE, paddingFor } from "../tar/header_writer.ts";
import { type Digest, Hasher, parseDigest } from "../util/digest.ts";
import { type Descriptor, encodeJson, type Index, REF_NAME_ANNOTATION } from "./documents.ts";
import { DirFiles, readLayoutIndex, readLayoutMarker, refName } from "./layout.ts";
import { MediaType } from "./media_types.ts";
import { lstatOrUndefined, writeAll } from "../util/fs.ts";
import { type OwnedTemp, removeDeadTemps, reserveTemp } from "../util/owned_temp.ts";

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

/** Prefix of a writer's staging directory inside an existing `oci:DIR`. */
const STAGE_PREFIX = ".deltaship-staging-";

/** Prefix of staging paths beside a destination named `base` (a new `oci:DIR`, an archive). */
function siblingPrefix(base: string): string {
  return `.${base.slice(0, 100)}.deltaship-`;
}

/** Splits a path into its directory and last name (`a/b/` -> `a`, `b`). */
function splitPath(path: string): { parent: string; base: string } {
  const trimmed = path.replace(/(.)\/+$/, "$1");
  const slash = trimmed.lastIndexOf("/");
  return slash < 0
    ? { parent: ".", base: trimmed }
    : { parent: slash === 0 ? "/" : trimmed.slice(0, slash), base: trimmed.slice(slash + 1) };
}

/**
 * What is at an `oci:DIR` being written to: nothing (`new`), an empty directory,
 * a layout, or a layout without `index.json` (blobs and `oci-layout` only: what
 * a writer killed in its last steps leaves, which holds no image yet).
 */
type DirState = "new" | "empty" | "layout" | "no-index";

/** An `oci:DIR` layout being written. */
class DirLayoutWriter implements LayoutWriter {
  readonly description: string;
  #entries: { desc: Descriptor; tag?: string }[] = [];
  /** Blobs written to the staging directory: `<alg>/<hex>`. */
  #staged = new Set<string>();
  /** What commit moved or wrote into an existing directory, undone by abort if it fails midway. */
  #added: string[] = [];
  #madeDirs: string[] = [];
  #done = false;

  /**
   * Blobs are written under `stage`: for a new DIR, a sibling directory renamed
   * to DIR at commit; otherwise a directory inside DIR whose blobs commit
   * moves into place before index.json. Either way a writer killed before then
   * leaves only a staging directory, which the next writer removes.
   */
  private constructor(readonly dir: string, readonly state: DirState, readonly stage: OwnedTemp) {
    this.description = `oci:${dir}`;
  }

  static async open(dir: string): Promise<DirLayoutWriter> {
    const { parent, base } = splitPath(dir);
    const st = await lstatOrUndefined(dir);
    if (st === undefined) {
      await Deno.mkdir(parent, { recursive: true });
      await removeDeadTemps(parent, siblingPrefix(base));
      const stage = await reserveTemp(parent, siblingPrefix(base));
      await DirLayoutWriter.#makeStage(stage);
      return new DirLayoutWriter(dir, "new", stage);
    }
    if (!st.isDirectory && !(st.isSymlink && (await Deno.stat(dir)).isDirectory)) {
      throw new InvalidArgumentError(`oci:${dir} exists and is not a directory`);
    }
    await removeDeadTemps(dir, STAGE_PREFIX);
    await removeDeadTemps(parent, siblingPrefix(base));
    const state = await DirLayoutWriter.#inspect(dir);
    const stage = await reserveTemp(dir, STAGE_PREFIX);
    await DirLayoutWriter.#makeStage(stage);
    return new DirLayoutWriter(dir, state, stage);
  }

  static async #makeStage(stage: OwnedTemp): Promise<void> {
    try {
      await Deno.mkdir(stage.path);
    } catch (e) {
      await stage.release();
      throw e;
    }
  }

  /** What an existing directory holds; refuses one that is neither empty nor a layout. */
  static async #inspect(dir: string): Promise<DirState> {
    const files = new DirFiles(dir);
    if ((await files.size("index.json")) !== undefined) {
      await readLayoutIndex(files); // refuse a damaged layout before writing anything
      return "layout";
    }
    const names = new Set<string>();
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith(STAGE_PREFIX)) continue; // another writer's, live
      if (!(e.name === "oci-layout" || (e.name === "blobs" && e.isDirectory))) {
        throw new InvalidArgumentError(
          `oci:${dir} is a non-empty directory that is not an OCI layout; choose an empty or new directory`,
        );
      }
      names.add(e.name);
    }
    if (names.has("oci-layout")) await readLayoutMarker(files);
    return names.size ? "no-index" : "empty";
  }

  async putBlob(content: BlobContent, expected?: Digest): Promise<WrittenBlob> {
    if (this.#done) throw new Error("layout writer already finished");
    const algorithm = expected ? parseDigest(expected).algorithm : "sha256";
    const dir = `${this.stage.path}/blobs/${algorithm}`;
    await Deno.mkdir(dir, { recursive: true });
    const tmp = `${dir}/.tmp-${shortId()}`;
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
      const name = `${algorithm}/${parseDigest(digest).hex}`;
      if (this.#staged.has(name) || (this.state !== "new" && await lstatOrUndefined(`${this.dir}/blobs/${name}`))) {
        await Deno.remove(tmp);
      } else {
        await Deno.rename(tmp, `${this.stage.path}/blobs/${name}`);
        this.#staged.add(name);
      }
      return { digest, size: hasher.size };
    } catch (e) {
      await Deno.remove(tmp).catch(() => {});
      throw e;
    }
  }

  addManifest(desc: Descriptor, tag?: string): void {
    this.#entries.push({ desc, tag });
  }

  async commit(): Promise<void> {
    if (this.#done) throw new Error("layout writer already finished");
    if (this.state === "new") {
      await Deno.writeFile(`${this.stage.path}/oci-layout`, OCI_LAYOUT);
      await Deno.writeFile(`${this.stage.path}/index.json`, mergeIndex(undefined, this.#entries));
      try {
        await Deno.rename(this.stage.path, this.dir); // the whole layout appears at once
      } catch (e) {
        if (e instanceof Deno.errors.AlreadyExists || (e as { code?: string }).code === "ENOTEMPTY") {
          throw new InvalidArgumentError(
            `oci:${this.dir} was created by something else during the export; export again`,
          );
        }
        throw e;
      }
      this.#done = true;
      await this.stage.release();
      return;
    }
    // Blobs first (a writer killed here leaves extra blobs, no image), index.json last.
    for (const name of this.#staged) {
      const path = `${this.dir}/blobs/${name}`;
      if (await lstatOrUndefined(path)) continue;
      await this.#makeDirs(`blobs/${name.slice(0, name.indexOf("/"))}`);
      await Deno.rename(`${this.stage.path}/blobs/${name}`, path);
      this.#added.push(path);
    }
    const files = new DirFiles(this.dir);
    if ((await files.size("oci-layout")) === undefined) await this.#place("oci-layout", OCI_LAYOUT);
    const existing = (await files.size("index.json")) === undefined ? undefined : await readLayoutIndex(files);
    await this.#place("index.json", mergeIndex(existing, this.#entries), existing !== undefined);
    this.#done = true;
    await this.stage.remove();
  }

  /** Creates `rel` (and its parents) in the directory, noting which were made. */
  async #makeDirs(rel: string): Promise<void> {
    let path = this.dir;
    for (const part of rel.split("/")) {
      path += `/${part}`;
      if (await lstatOrUndefined(path)) continue;
      await Deno.mkdir(path);
      this.#madeDirs.push(path);
    }
  }

  /** Writes a file of the layout atomically: in the staging directory, then renamed into place. */
  async #place(name: string, bytes: Uint8Array, replaces = false): Promise<void> {
    const tmp = `${this.stage.path}/${name}`;
    await Deno.writeFile(tmp, bytes);
    await Deno.rename(tmp, `${this.dir}/${name}`);
    if (!replaces) this.#added.push(`${this.dir}/${name}`);
  }

  async abort(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    for (const path of this.#added.reverse()) await Deno.remove(path).catch(() => {});
    for (const path of this.#madeDirs.reverse()) await Deno.remove(path).catch(() => {});
    await this.stage.remove();
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

  /** The archive is written to `stage`, a sibling of `path` that a later writer removes if this one is killed. */
  private constructor(readonly path: string, readonly stage: OwnedTemp, readonly file: Deno.FsFile) {
    this.description = `oci-archive:${path}`;
  }

  static async open(path: string): Promise<ArchiveLayoutWriter> {
    const st = await lstatOrUndefined(path);
    if (st?.isDirectory) throw new InvalidArgumentError(`oci-archive:${path} is a directory; give a file name`);
    const { parent, base } = splitPath(path);
    let stage: OwnedTemp;
    try {
      await removeDeadTemps(parent, siblingPrefix(base));
      stage = await reserveTemp(parent, siblingPrefix(base));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new NotFoundError(`oci-archive:${path}: the directory it would be written in does not exist`);
      }
      throw e;
    }
    let file: Deno.FsFile;
    try {
      file = await Deno.open(stage.path, { write: true, createNew: true });
    } catch (e) {
      await stage.release();
      throw e;
    }
    const writer = new ArchiveLayoutWriter(path, stage, file);
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
        await Deno.rename(this.stage.path, this.path);
      } catch (e) {
        await this.stage.remove();
        if (e instanceof Deno.errors.IsADirectory) throw new FormatError(`oci-archive:${this.path} is a directory`);
        throw e;
      }
      await this.stage.release();
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
    await this.stage.remove();
  }
}
