/**
 * The repository's format file, `deltaship-repo.json`: which layout the
 * directory holds (see `docs/repository.md`) and whether its objects have
 * fs-verity. Version 2 names objects by their fs-verity digest
 * (`objects/XX/<62 hex>`, a composefs object store); version 1 named them by
 * SHA-256 (`objects/sha256/xx/<64 hex>`) and is upgraded in place
 * (`upgrade.ts`).
 *
 * @module
 */
import { RepositoryError } from "../errors.ts";
import { problemOf, readRepoFile } from "./repo_file.ts";

/** The file that marks a directory as a deltaship repository, and says its format. */
export const FORMAT_FILE = "deltaship-repo.json";
/** The `format` field of every deltaship repository. */
export const FORMAT_NAME = "deltaship-repo";
/** The format version this deltaship writes. */
export const FORMAT_VERSION = 2;
/** The version before fs-verity object names, which {@link FORMAT_VERSION} replaces by upgrade. */
export const LEGACY_VERSION = 1;
/**
 * The directory under `objects/` where version 1 kept its objects: the upgrade
 * removes it last, so a version-2 repository may still have it for a while.
 */
export const LEGACY_OBJECTS_DIR = "sha256";

/** Largest format file read (it holds one short JSON object). */
const MAX_FORMAT_FILE = 4096;

/** What the format file says. */
export interface RepositoryFormat {
  /** 2, or 1 for a repository still to be upgraded. */
  version: number;
  /**
   * True when every object has fs-verity enabled (so a composefs mount can
   * require it); false where the filesystem has no fs-verity, or once an
   * object could not get it. Version 1 has none.
   */
  verity: boolean;
}

/** The bytes of the format file for `format`. */
export function encodeFormat(format: RepositoryFormat): Uint8Array {
  const doc = format.version === LEGACY_VERSION
    ? { format: FORMAT_NAME, version: format.version }
    : { format: FORMAT_NAME, version: format.version, verity: format.verity };
  return new TextEncoder().encode(JSON.stringify(doc) + "\n");
}

/**
 * Reads the format file of the repository at `root`; a {@link RepositoryError}
 * when it is unreadable or names a format this deltaship does not know.
 */
export async function readFormat(root: string): Promise<RepositoryFormat> {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(await readRepoFile(`${root}/${FORMAT_FILE}`, MAX_FORMAT_FILE)));
  } catch (e) {
    const problem = problemOf(e);
    throw new RepositoryError(`${root}/${FORMAT_FILE} is unreadable${problem ? ` (it ${problem})` : ""}`, { cause: e });
  }
  return parseFormat(doc, root);
}

function parseFormat(doc: unknown, root: string): RepositoryFormat {
  const f = doc as { format?: unknown; version?: unknown; verity?: unknown } | null;
  const known = f?.format === FORMAT_NAME &&
    (f.version === LEGACY_VERSION || (f.version === FORMAT_VERSION && typeof f.verity === "boolean"));
  if (!known) {
    throw new RepositoryError(
      `${root} holds a repository in a format this deltaship does not know (${JSON.stringify(doc)})`,
    );
  }
  return { version: f!.version as number, verity: f!.verity === true };
}

/** The error a command that only reads gets on a version-1 repository: what to run. */
export function legacyFormatError(root: string): RepositoryError {
  return new RepositoryError(
    `${root} is a repository of format version ${LEGACY_VERSION} (objects named by SHA-256); ` +
      `run 'deltaship upgrade' (or any command that writes to it) to upgrade it in place to version ${FORMAT_VERSION}`,
  );
}
