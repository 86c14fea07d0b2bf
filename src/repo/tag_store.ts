/**
 * Tags: `tags/<name>` files holding one line, the manifest digest the tag names
 * (the name URI-encoded). Reading never fails on a damaged tag file: it is
 * reported as malformed, and any tag file can be removed. Writes go through the
 * repository (atomic, durable), which holds its names lock around them.
 *
 * @module
 */
import { RepositoryError } from "../errors.ts";
import { checkTagName } from "../oci/tag_name.ts";
import { isDigest, type ManifestDigest } from "../util/digest.ts";
import { lstatOrUndefined } from "../util/fs.ts";
import { readRepoFile } from "./repo_file.ts";

/** Largest tag file read: one digest line is at most 136 bytes (sha512). */
const MAX_TAG_FILE = 4096;

/** The text of the tag file at `path` (a regular file of at most {@link MAX_TAG_FILE} bytes). */
async function readTagFile(path: string): Promise<string> {
  return new TextDecoder().decode(await readRepoFile(path, MAX_TAG_FILE));
}

/** A tag and the manifest it names. */
export interface Tag {
  name: string;
  manifest: ManifestDigest;
}

/** A file in `tags/` that is not a usable tag (damaged, or put there by hand). */
export interface MalformedTag {
  /** The file's name in `tags/`. */
  file: string;
  /** The tag name it decodes to, when it decodes. */
  name?: string;
  /** What is wrong with it. */
  problem: string;
}

/** Every file of `tags/`: the usable tags and the malformed ones. */
export interface TagScan {
  tags: Tag[];
  malformed: MalformedTag[];
}

/** The `tags/` directory. */
export class TagStore {
  constructor(
    readonly dir: string,
    /** Writes a file atomically (temporary file, then rename). */
    readonly writeAtomic: (path: string, bytes: Uint8Array) => Promise<void>,
    /** A durability barrier covering `dir`. */
    readonly sync: (dir: string) => Promise<void>,
  ) {}

  #path(name: string): string {
    return `${this.dir}/${encodeURIComponent(name)}`;
  }

  /** The manifest digest a tag names, or undefined. A malformed tag file is a RepositoryError. */
  async read(name: string): Promise<ManifestDigest | undefined> {
    checkTagName(name);
    let text: string;
    try {
      text = await readTagFile(this.#path(name));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
    const d = text.trim();
    if (!isDigest(d)) {
      throw new RepositoryError(
        `tag ${JSON.stringify(name)} is malformed (it holds ${JSON.stringify(d.slice(0, 80))}, not a digest); ` +
          `remove it with: deltaship untag ${name}`,
      );
    }
    return d as ManifestDigest;
  }

  /** Points tag `name` at `manifest`, durably. (The caller holds the names lock.) */
  async write(name: string, manifest: ManifestDigest): Promise<void> {
    checkTagName(name);
    await this.writeAtomic(this.#path(name), new TextEncoder().encode(manifest + "\n"));
    await this.sync(this.dir);
  }

  /**
   * Removes the tag file for `name`, whatever it holds; `name` may also be the raw
   * file name of a tag file whose name does not decode. Returns the digest it
   * named when it named one, or false when there was no such tag. Durable unless
   * `sync` is false (the caller then syncs). (The caller holds the names lock.)
   */
  async remove(name: string, options: { sync?: boolean } = {}): Promise<{ manifest?: ManifestDigest } | false> {
    const files = [encodeURIComponent(name)];
    if (/^[^/\0]+$/.test(name) && name !== "." && name !== ".." && !files.includes(name)) files.push(name);
    for (const file of files) {
      const path = `${this.dir}/${file}`;
      const st = await lstatOrUndefined(path);
      if (!st) continue;
      const text = st.isFile ? (await readTagFile(path).catch(() => "")).trim() : "";
      try {
        await Deno.remove(path, { recursive: true });
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue;
        throw e;
      }
      if (options.sync !== false) await this.sync(this.dir);
      return isDigest(text) ? { manifest: text as ManifestDigest } : {};
    }
    return false;
  }

  /** Every file of `tags/`, sorted by name: the usable tags and the malformed ones. */
  async scan(): Promise<TagScan> {
    const tags: Tag[] = [];
    const malformed: MalformedTag[] = [];
    for await (const e of Deno.readDir(this.dir)) {
      let name: string;
      try {
        name = decodeURIComponent(e.name);
        if (encodeURIComponent(name) !== e.name) throw new URIError("not in canonical form");
        checkTagName(name);
      } catch {
        malformed.push({ file: e.name, problem: "its file name is not a valid tag name" });
        continue;
      }
      if (!e.isFile) {
        malformed.push({ file: e.name, name, problem: "it is not a regular file" });
        continue;
      }
      try {
        const manifest = await this.read(name);
        if (manifest) tags.push({ name, manifest });
      } catch (err) {
        if (!(err instanceof RepositoryError)) throw err;
        malformed.push({ file: e.name, name, problem: "it does not hold a manifest digest" });
      }
    }
    tags.sort((a, b) => a.name.localeCompare(b.name));
    malformed.sort((a, b) => a.file.localeCompare(b.file));
    return { tags, malformed };
  }

  /** Every usable tag, sorted by name (malformed tag files are skipped: see {@link scan}). */
  async list(): Promise<Tag[]> {
    return (await this.scan()).tags;
  }
}
