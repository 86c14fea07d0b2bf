/**
 * Where the containers tools keep a host's registry configuration, and reading
 * it: auth files, registries.conf, certs.d. Paths come from the environment
 * the caller hands in (never the process's), so tests control them; the
 * system-wide ones (`/etc/containers/...`, `/etc/docker/certs.d`,
 * `/run/containers/UID`) are taken under `$DELTASHIP_SYSTEM_ROOT` when it is
 * set, as containers/image's `RootForImplicitAbsolutePaths` does, so tests and
 * chroots need not touch the host's `/etc`.
 *
 * @module
 */
import { FormatError } from "../../errors.ts";
import { readFull } from "../../util/fs.ts";

/** The environment variables configuration lookup reads. */
export type Env = Record<string, string | undefined>;

/** Largest configuration file read (auth files, registries.conf, certificates). */
export const CONFIG_FILE_LIMIT = 1 << 20;

/** `absolute` (a system-wide default path) under `$DELTASHIP_SYSTEM_ROOT`, when that is set. */
export function systemPath(env: Env, absolute: string): string {
  const root = env.DELTASHIP_SYSTEM_ROOT;
  return root ? `${root.replace(/\/+$/, "")}${absolute}` : absolute;
}

/** The user's home directory (`$HOME`), if known. */
export function homeDir(env: Env): string | undefined {
  return env.HOME || undefined;
}

/**
 * The text of a configuration file, or undefined when there is none (missing,
 * or a component of its path is not a directory). A file over
 * {@link CONFIG_FILE_LIMIT} bytes is refused naming `what` and the path.
 */
export async function readConfigText(path: string, what: string): Promise<string | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return undefined;
    throw e;
  }
  try {
    const buf = new Uint8Array(CONFIG_FILE_LIMIT + 1);
    const n = await readFull(file, buf);
    if (n > CONFIG_FILE_LIMIT) {
      throw new FormatError(`${what} ${path} is larger than ${CONFIG_FILE_LIMIT} bytes: not read`);
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(0, n));
    } catch {
      throw new FormatError(`${what} ${path} is not UTF-8 text`);
    }
  } finally {
    file.close();
  }
}
