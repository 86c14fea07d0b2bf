/**
 * Creating a repository: its directory layout (see `docs/repository.md`) made in
 * a sibling directory, made durable, and renamed into place, so that concurrent
 * first uses agree and nobody sees a half-made repository.
 *
 * @module
 */
import { RepositoryError } from "../errors.ts";
import { exists } from "../util/fs.ts";
import { Durability, type SyncMode } from "./durability.ts";

/** The file that marks a directory as a deltaship repository, and says its format. */
export const FORMAT_FILE = "deltaship-repo.json";
/** The format this deltaship writes and reads. */
export const FORMAT = { format: "deltaship-repo", version: 1 };

/**
 * Creates the layout in a sibling directory and renames it into place, so that
 * concurrent first uses agree and nobody sees a half-made repository. The
 * layout is made durable before the rename, and the rename after it.
 */
export async function createRepository(root: string, sync: SyncMode | undefined): Promise<void> {
  const staging = `${root}.init-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(staging, { recursive: true });
  const durability = Durability.open(staging, sync);
  try {
    const dirs = ["tmp", "layers/sha256", "blobs/sha256", "images/sha256", "tags"];
    for (const dir of dirs) await Deno.mkdir(`${staging}/${dir}`, { recursive: true });
    const fans = [];
    for (let i = 0; i < 256; i++) {
      fans.push(`${staging}/objects/sha256/${i.toString(16).padStart(2, "0")}`);
      await Deno.mkdir(fans[i], { recursive: true });
    }
    await Deno.writeTextFile(`${staging}/lock`, "");
    await Deno.writeTextFile(`${staging}/${FORMAT_FILE}`, JSON.stringify(FORMAT) + "\n");
    const format = await Deno.open(`${staging}/${FORMAT_FILE}`, { read: true });
    try {
      await durability.fileWritten(format);
    } finally {
      format.close();
    }
    await durability.barrier([
      staging,
      ...dirs.map((d) => `${staging}/${d}`),
      `${staging}/layers`,
      `${staging}/blobs`,
      `${staging}/images`,
      `${staging}/objects`,
      `${staging}/objects/sha256`,
      ...fans,
    ]);
    try {
      await Deno.rename(staging, root); // replaces an empty directory, never a full one
    } catch (e) {
      if (await exists(`${root}/${FORMAT_FILE}`)) return; // another process made it first
      if (e instanceof Deno.errors.NotFound) throw e;
      throw new RepositoryError(
        `${root} exists, is not empty, and is not a deltaship repository; choose another --repo`,
      );
    }
    await durability.barrier([root.slice(0, root.lastIndexOf("/")) || "/"]);
  } finally {
    durability.close();
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}
