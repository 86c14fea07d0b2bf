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
import { encodeFormat, FORMAT_FILE, FORMAT_VERSION } from "./format.ts";
import { probeVerity } from "./verity.ts";

/** The 256 fan directories of `objects/` (`00` to `ff`), by path under `objectsDir`. */
export function objectFans(objectsDir: string): string[] {
  return Array.from({ length: 256 }, (_, i) => `${objectsDir}/${i.toString(16).padStart(2, "0")}`);
}

/**
 * Creates the layout in a sibling directory and renames it into place, so that
 * concurrent first uses agree and nobody sees a half-made repository. The
 * layout is made durable before the rename, and the rename after it. Whether
 * the filesystem gives files fs-verity is probed there and recorded in the
 * format file.
 */
export async function createRepository(root: string, sync: SyncMode | undefined): Promise<void> {
  const staging = `${root}.init-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  await Deno.mkdir(staging, { recursive: true });
  const durability = Durability.open(staging, sync);
  try {
    const dirs = ["tmp", "layers/sha256", "blobs/sha256", "images/sha256", "tags"];
    for (const dir of dirs) await Deno.mkdir(`${staging}/${dir}`, { recursive: true });
    const fans = objectFans(`${staging}/objects`);
    for (const fan of fans) await Deno.mkdir(fan, { recursive: true });
    await Deno.writeTextFile(`${staging}/lock`, "");
    const verity = await probeVerity(`${staging}/tmp`);
    await Deno.writeFile(`${staging}/${FORMAT_FILE}`, encodeFormat({ version: FORMAT_VERSION, verity }));
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
