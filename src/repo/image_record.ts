/**
 * Image records, `images/<alg>/<hex>.json`: reading one (checked, bounded) and
 * listing them all. A record that cannot be used (not a regular file, too
 * large, not JSON, a field missing or of the wrong kind, another image's
 * manifest digest) is *damaged*: reading it fails naming it, and the listing
 * returns it apart, so that one damaged record never stops the commands that
 * list images (see `docs/design.md`, "Damaged records").
 *
 * @module
 */
import { MAX_DOCUMENT } from "../oci/documents.ts";
import { asManifestDigest, type ConfigDigest, type DiffId, isDigest, type ManifestDigest } from "../util/digest.ts";
import { damagedFile, entryKind, notRegularProblem, problemOf, readRepoFile } from "./repo_file.ts";

/** What the repository knows of one image: kept at `images/<alg>/<hex>.json`. */
export interface ImageRecord {
  /** Digest of the manifest (the image's identity here). */
  manifest: ManifestDigest;
  /** Digest of the image config. */
  config: ConfigDigest;
  /** The manifest's media type. */
  mediaType: string;
  /** The image's layers, bottom first. */
  layers: { diffId: DiffId; tarSize: number }[];
  /** When the image was first stored (ISO 8601). */
  created: string;
  /**
   * fs-verity digest (hex) of the image's composefs EROFS image (format version 1),
   * an object in `objects/`: its composefs id. Absent in records made before images were.
   */
  composefs?: string;
}

/** Largest image record read: no larger than the manifest it is made from can be. */
const MAX_IMAGE_RECORD = MAX_DOCUMENT;

/** An entry of `images/` that is not a usable image record. */
export interface DamagedImageRecord {
  /** Its path in the repository (`images/sha256/<hex>.json`). */
  path: string;
  /** The manifest digest its name says, when its name is a record's. */
  manifest?: ManifestDigest;
  /** What is wrong with it ("is not JSON", "is a directory, not a regular file", ...). */
  problem: string;
}

/** Every entry of `images/`: the usable records and the damaged ones. */
export interface ImageScan {
  images: ImageRecord[];
  damaged: DamagedImageRecord[];
}

/** Path of the record of `manifest` under the repository `root`. */
export function imageRecordPath(root: string, manifest: ManifestDigest): string {
  const [algorithm, hex] = manifest.split(":");
  return `${root}/images/${algorithm}/${hex}.json`;
}

/**
 * Reads and checks the record of `manifest` at `path`: Deno's NotFound when
 * there is none, a {@link damagedFile} error naming the path and the problem
 * when it is damaged.
 */
export async function readImageRecord(path: string, manifest: ManifestDigest): Promise<ImageRecord> {
  const bytes = await readRepoFile(path, MAX_IMAGE_RECORD);
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw damagedFile(path, bytes.length === 0 ? "is empty" : "is not JSON (truncated or overwritten?)");
  }
  const problem = recordProblem(doc, manifest);
  if (problem !== undefined) throw damagedFile(path, problem);
  return doc as ImageRecord;
}

/** What makes `doc` no record of `manifest`, or undefined when it is one. */
function recordProblem(doc: unknown, manifest: ManifestDigest): string | undefined {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return "is not a JSON object";
  const r = doc as Record<string, unknown>;
  if (r.manifest !== manifest) return "names another manifest digest than its file name";
  if (typeof r.config !== "string" || !isDigest(r.config)) return "has no valid config digest";
  if (typeof r.mediaType !== "string") return "has no media type";
  if (typeof r.created !== "string") return "has no creation time";
  if (r.composefs !== undefined && (typeof r.composefs !== "string" || !/^[0-9a-f]{64}$/.test(r.composefs))) {
    return "names a malformed composefs image digest";
  }
  if (!Array.isArray(r.layers)) return "has no layer list";
  for (const l of r.layers as unknown[]) {
    const layer = l as { diffId?: unknown; tarSize?: unknown } | null;
    if (typeof layer?.diffId !== "string" || !isDigest(layer.diffId)) return "names a layer without a valid diff_id";
    if (!Number.isSafeInteger(layer.tarSize) || (layer.tarSize as number) < 0) return "names a layer without a size";
  }
  return undefined;
}

/** One entry of `images/<alg>/`: its path there, and the manifest digest its name says (if it says one). */
interface RecordEntry {
  path: string;
  manifest?: ManifestDigest;
  entry: Deno.DirEntry;
}

/**
 * The entries of `images/` (those that are not directories of records are
 * added to `damaged`), sorted by path.
 */
async function recordEntries(root: string, damaged: DamagedImageRecord[]): Promise<RecordEntry[]> {
  const out: RecordEntry[] = [];
  for (const alg of await listDir(`${root}/images`)) {
    const dir = `images/${alg.name}`;
    if (!alg.isDirectory) {
      damaged.push({ path: dir, problem: `is ${entryKind(`${root}/${dir}`, alg) ?? "a file"}, not a directory` });
      continue;
    }
    for (const entry of await listDir(`${root}/${dir}`)) {
      const path = `${dir}/${entry.name}`;
      const name = `${alg.name}:${entry.name.slice(0, -".json".length)}`;
      const manifest = entry.name.endsWith(".json") && isDigest(name) ? asManifestDigest(name) : undefined;
      out.push({ path, manifest, entry });
    }
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

async function listDir(dir: string): Promise<Deno.DirEntry[]> {
  try {
    return await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
}

/** The manifest digests of every entry of `images/` named as a record is, damaged or not. */
export async function imageRecordNames(root: string): Promise<ManifestDigest[]> {
  return (await recordEntries(root, [])).flatMap((e) => e.manifest ? [e.manifest] : []);
}

/**
 * The record of `manifest` in the repository at `root`, as {@link scanImageRecords}
 * lists it: usable or damaged; Deno's NotFound when there is none.
 */
export async function scanImageRecord(root: string, manifest: ManifestDigest): Promise<ImageScan> {
  const path = imageRecordPath(root, manifest);
  try {
    return { images: [await readImageRecord(path, manifest)], damaged: [] };
  } catch (e) {
    const problem = problemOf(e);
    if (problem === undefined) throw e;
    return { images: [], damaged: [{ path: path.slice(root.length + 1), manifest, problem }] };
  }
}

/**
 * Every image record of the repository at `root`, read and checked: the usable
 * ones sorted by creation time (then manifest digest), the damaged ones by path.
 */
export async function scanImageRecords(root: string): Promise<ImageScan> {
  const images: ImageRecord[] = [];
  const damaged: DamagedImageRecord[] = [];
  for (const { path, manifest, entry } of await recordEntries(root, damaged)) {
    if (!manifest) {
      damaged.push({ path, problem: "is not named by a manifest digest (<hex>.json)" });
    } else if (!entry.isFile) {
      const kind = entryKind(`${root}/${path}`, entry);
      if (kind !== undefined) damaged.push({ path, manifest, problem: notRegularProblem(kind) });
    } else {
      try {
        images.push(await readImageRecord(`${root}/${path}`, manifest));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) continue; // removed meanwhile
        const problem = problemOf(e);
        if (problem === undefined) throw e;
        damaged.push({ path, manifest, problem });
      }
    }
  }
  images.sort((a, b) => a.created.localeCompare(b.created) || a.manifest.localeCompare(b.manifest));
  return { images, damaged };
}
