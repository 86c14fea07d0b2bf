/**
 * Checking a repository: every object re-hashed, every layer rebuilt and hashed
 * against its diff_id, every manifest and config re-hashed, and every reference
 * (tag → image → manifest, config, layers → objects) followed.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { DeltashipError } from "../errors.ts";
import { parseImageConfig, parseManifest } from "../oci/documents.ts";
import { asDiffId, type DiffId, type Digest, Hasher, isDigest, parseDigest } from "../util/digest.ts";
import { Yielder } from "../util/yielder.ts";
import { readRecord } from "./layer_record.ts";
import type { ImageRecord, Repository } from "./repository.ts";

/** One thing found wrong. */
export interface Problem {
  /** What is at fault: `object sha256:...`, `layer sha256:...`, `image @sha256:...`, `tag NAME`. */
  subject: string;
  message: string;
}

/** The outcome of a check. */
export interface FsckReport {
  problems: Problem[];
  checked: { images: number; layers: number; objects: number; blobs: number; tags: number };
}

const CHUNK = 1 << 20;

/** Re-hashes a file; returns its SHA-256 and size. */
async function hashFile(path: string): Promise<{ digest: Digest; size: number }> {
  const h = new Hasher();
  const file = await Deno.open(path);
  try {
    const buf = new Uint8Array(CHUNK);
    for (;;) {
      const n = await file.read(buf);
      if (n === null) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    file.close();
  }
  return { size: h.size, digest: h.digest() };
}

class Checker {
  problems: Problem[] = [];
  verifiedObjects = new Set<string>();
  badObjects = new Set<string>();
  checkedLayers = new Map<DiffId, boolean>();
  checkedBlobs = new Set<Digest>();

  constructor(readonly repo: Repository) {}

  report(subject: string, message: string): void {
    this.problems.push({ subject, message });
  }

  async object(hex: string, size?: number): Promise<boolean> {
    if (this.verifiedObjects.has(hex)) return true;
    if (this.badObjects.has(hex)) return false;
    const subject = `object sha256:${hex}`;
    try {
      const actual = await hashFile(this.repo.objects.path(hex));
      if (actual.digest !== `sha256:${hex}`) {
        this.report(subject, `content hashes to ${actual.digest}`);
      } else if (size !== undefined && actual.size !== size) {
        this.report(subject, `is ${actual.size} bytes, layer record says ${size}`);
      } else {
        this.verifiedObjects.add(hex);
        return true;
      }
    } catch (e) {
      this.report(subject, e instanceof Deno.errors.NotFound ? "is missing" : (e as Error).message);
    }
    this.badObjects.add(hex);
    return false;
  }

  /** Replays a layer record, hashing the tar it rebuilds and each object it reads. */
  async layer(diffId: DiffId): Promise<boolean> {
    const known = this.checkedLayers.get(diffId);
    if (known !== undefined) return known;
    const subject = `layer ${diffId}`;
    let ok = true;
    try {
      const tar = new Hasher(parseDigest(diffId).algorithm);
      const records = readRecord(this.repo.layerPath(diffId));
      const zeros = new Uint8Array(CHUNK);
      const yielder = new Yielder({ every: 16 }); // zero runs and small items involve no I/O
      for (;;) {
        await yielder.yieldIfDue();
        const next = await records.next();
        if (next.done) {
          if (next.value.tarSize !== tar.size) {
            this.report(subject, `footer says ${next.value.tarSize} bytes, record rebuilds ${tar.size}`);
            ok = false;
          }
          break;
        }
        const item = next.value;
        if (item.type === "header" || item.type === "raw") tar.update(item.bytes);
        else if (item.type === "zero") {
          for (let left = item.length; left > 0; left -= CHUNK) {
            tar.update(zeros.subarray(0, Math.min(CHUNK, left)));
            await yielder.yieldIfDue();
          }
        } else {
          if (!(await this.objectInto(item.hex, item.size, tar))) ok = false;
        }
      }
      const actual = tar.digest();
      if (ok && actual !== diffId) {
        this.report(subject, `rebuilds to ${actual}`);
        ok = false;
      }
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) this.report(subject, "is missing");
      else this.report(subject, (e as Error).message);
      ok = false;
    }
    this.checkedLayers.set(diffId, ok);
    return ok;
  }

  /** Feeds an object into a layer hash while verifying the object itself. */
  async objectInto(hex: string, size: number, tar: Hasher): Promise<boolean> {
    const subject = `object sha256:${hex}`;
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.repo.objects.path(hex));
    } catch (e) {
      this.report(subject, e instanceof Deno.errors.NotFound ? "is missing" : (e as Error).message);
      this.badObjects.add(hex);
      return false;
    }
    const own = this.verifiedObjects.has(hex) ? undefined : createHash("sha256");
    let n = 0;
    try {
      const buf = new Uint8Array(CHUNK);
      for (;;) {
        const r = await file.read(buf);
        if (r === null) break;
        const chunk = buf.subarray(0, r);
        own?.update(chunk);
        if (n < size) tar.update(r <= size - n ? chunk : chunk.subarray(0, size - n));
        n += r;
      }
    } finally {
      file.close();
    }
    if (own) {
      const actual = `sha256:${own.digest("hex")}`;
      if (actual !== `sha256:${hex}`) {
        this.report(subject, `content hashes to ${actual}`);
        this.badObjects.add(hex);
        return false;
      }
      this.verifiedObjects.add(hex);
    }
    if (n !== size) {
      this.report(subject, `is ${n} bytes, layer record says ${size}`);
      return false;
    }
    return true;
  }

  async blob(digest: Digest): Promise<Uint8Array | undefined> {
    const subject = `blob ${digest}`;
    try {
      const bytes = await this.repo.readBlob(digest);
      if (!this.checkedBlobs.has(digest)) {
        const h = new Hasher(parseDigest(digest).algorithm);
        h.update(bytes);
        const actual = h.digest();
        if (actual !== digest) {
          this.report(subject, `content hashes to ${actual}`);
          return undefined;
        }
        this.checkedBlobs.add(digest);
      }
      return bytes;
    } catch (e) {
      this.report(subject, e instanceof DeltashipError ? "is missing" : (e as Error).message);
      return undefined;
    }
  }

  async image(record: ImageRecord): Promise<void> {
    const subject = `image @${record.manifest}`;
    const manifestBytes = await this.blob(record.manifest);
    const configBytes = await this.blob(record.config);
    if (manifestBytes && configBytes) {
      try {
        const manifest = parseManifest(manifestBytes, `manifest ${record.manifest}`);
        const config = parseImageConfig(configBytes, `config ${record.config}`);
        if (manifest.config.digest !== record.config) {
          this.report(subject, `manifest names config ${manifest.config.digest}, record says ${record.config}`);
        }
        const diffIds = config.rootfs.diff_ids;
        if (diffIds.length !== manifest.layers.length) {
          this.report(subject, `manifest has ${manifest.layers.length} layers, config ${diffIds.length} diff_ids`);
        }
        if (diffIds.join() !== record.layers.map((l) => l.diffId).join()) {
          this.report(subject, "record's layers differ from the config's diff_ids");
        }
      } catch (e) {
        this.report(subject, (e as Error).message);
      }
    }
    for (const { diffId } of record.layers) {
      if (!(await this.layer(diffId))) this.report(subject, `layer ${diffId} is missing or damaged`);
    }
  }
}

/**
 * Checks the whole repository, or only what `image` needs. Reads everything it
 * checks; changes nothing.
 */
export async function fsck(repo: Repository, image?: ImageRecord): Promise<FsckReport> {
  const c = new Checker(repo);
  const images = image ? [image] : await repo.listImages();
  let tags = 0;
  if (!image) {
    const imageSet = new Set(images.map((i) => i.manifest));
    const scan = await repo.tags.scan();
    for (const m of scan.malformed) {
      tags++;
      c.report(`tag ${m.name ?? `file ${m.file}`}`, `is malformed: ${m.problem}; remove it with deltaship untag`);
    }
    for (const tag of scan.tags) {
      tags++;
      if (!imageSet.has(tag.manifest)) c.report(`tag ${tag.name}`, `names ${tag.manifest}, which is not stored`);
    }
  }
  for (const record of images) await c.image(record);
  if (!image) {
    for await (const alg of Deno.readDir(`${repo.root}/layers`)) {
      for await (const e of Deno.readDir(`${repo.root}/layers/${alg.name}`)) {
        const name = `${alg.name}:${e.name}`;
        if (isDigest(name)) await c.layer(asDiffId(name));
        else c.report(`layer file ${name}`, "is not named by a digest");
      }
    }
    for await (const alg of Deno.readDir(`${repo.root}/blobs`)) {
      for await (const e of Deno.readDir(`${repo.root}/blobs/${alg.name}`)) await c.blob(`${alg.name}:${e.name}`);
    }
    for await (const fan of Deno.readDir(`${repo.root}/objects/sha256`)) {
      for await (const e of Deno.readDir(`${repo.root}/objects/sha256/${fan.name}`)) {
        if (!e.name.startsWith(fan.name)) c.report(`object ${fan.name}/${e.name}`, "is in the wrong directory");
        await c.object(e.name);
      }
    }
  }
  return {
    problems: c.problems,
    checked: {
      images: images.length,
      layers: c.checkedLayers.size,
      objects: c.verifiedObjects.size + c.badObjects.size,
      blobs: c.checkedBlobs.size,
      tags,
    },
  };
}
