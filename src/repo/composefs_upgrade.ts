/**
 * The repository format step that brings stored composefs images to the
 * current tree rules. An image's composefs image is made by the rules of the
 * deltaship that pulled it (docs/design.md, "composefs images"); when the
 * rules change, its id changes, so the images made by older rules are made
 * again. `composefs-rules.json` in the repository says which rules the stored
 * images follow (absent: the first rules, composefs-rs 234f87f's).
 *
 * Crash-safe by its order, as the format-version upgrade (`upgrade.ts`) is:
 * under the exclusive repository lock, each image's composefs image is made by
 * the current rules and stored (durably, as at pull), then its record is
 * replaced atomically, durably, naming it; only when every record is done is
 * the rules file written (after a barrier). A killed run leaves some records
 * done and the rules file old: the next command that writes runs the step
 * again, and the records done already get the same image and stay as they are.
 * The images the old rules made are left to gc. An image whose layers are
 * missing or damaged keeps its record (fsck names it; a pull restores it).
 *
 * @module
 */
import { DeltashipError } from "../errors.ts";
import { type ProgressSink, silentProgress } from "../util/progress.ts";
import { storeComposefsImage } from "./composefs_image.ts";
import type { Repository } from "./repository.ts";

/**
 * The composefs tree rules the stored images follow: 1, those of composefs-rs
 * 234f87f; 2, those of composefs-rs HEAD (issue 22: xattrs allowlist, PAX
 * nanoseconds, global headers ignored, hardlinks to any leaf, absolute names,
 * names as bytes).
 */
export const COMPOSEFS_RULES = 2;

/** The file that says which rules the stored composefs images follow. */
export const RULES_FILE = "composefs-rules.json";

/** What the step did. */
export interface ComposefsUpgrade {
  /** Images whose composefs image was made again (and so changed). */
  rebuilt: number;
  /** Images with a composefs image, looked at (one made before composefs images were has none, and keeps none). */
  images: number;
  /** Images whose layers could not be read (their records unchanged; fsck names them). */
  failed: number;
  seconds: number;
}

/** The rules the stored composefs images of `repo` follow. */
export async function composefsRules(repo: Repository): Promise<number> {
  try {
    const doc = JSON.parse(await Deno.readTextFile(`${repo.root}/${RULES_FILE}`));
    return typeof doc?.rules === "number" ? doc.rules : 1;
  } catch {
    return 1;
  }
}

const PROGRESS_ID = "composefs-rules";

/**
 * Makes the composefs images of `repo`'s images by the current rules, when the
 * rules file says they follow older ones (see the module documentation);
 * undefined when there was nothing to do.
 */
export async function upgradeComposefsImages(
  repo: Repository,
  progress: ProgressSink = silentProgress,
): Promise<ComposefsUpgrade | undefined> {
  if ((await composefsRules(repo)) >= COMPOSEFS_RULES) return undefined;
  using _lock = await repo.lock(true);
  if ((await composefsRules(repo)) >= COMPOSEFS_RULES) return undefined; // another process did it meanwhile
  const started = performance.now();
  const images = (await repo.listImages()).filter((r) => r.composefs !== undefined);
  const done: ComposefsUpgrade = { rebuilt: 0, images: images.length, failed: 0, seconds: 0 };
  const size = (r: (typeof images)[number]) => r.layers.reduce((a, l) => a + l.tarSize, 0);
  if (images.length > 0) progress.start(PROGRESS_ID, "composefs images", images.reduce((a, r) => a + size(r), 0));
  for (const record of images) {
    let id: string | undefined;
    try {
      id = await storeComposefsImage(repo, record.layers.map((l) => l.diffId));
    } catch (e) {
      if (!(e instanceof DeltashipError)) throw e;
      done.failed++;
      progress.advance(PROGRESS_ID, size(record));
      continue;
    }
    if (id !== record.composefs) {
      const { composefs: _old, ...rest } = record;
      await repo.rewriteImage(id === undefined ? rest : { ...rest, composefs: id });
      done.rebuilt++;
    }
    progress.advance(PROGRESS_ID, size(record));
  }
  // Every new image and record durable before the rules file says they are done. When nothing changed (a new
  // repository, or images the new rules give alike), losing the file costs only a look like this one again.
  if (done.rebuilt > 0) await repo.sync();
  await repo.writeAtomic(`${repo.root}/${RULES_FILE}`, new TextEncoder().encode(`{"rules":${COMPOSEFS_RULES}}\n`));
  if (done.rebuilt > 0) await repo.sync(repo.root);
  if (images.length > 0) progress.finish(PROGRESS_ID, "rebuilt");
  return { ...done, seconds: (performance.now() - started) / 1000 };
}
