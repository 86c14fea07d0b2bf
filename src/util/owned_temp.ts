/**
 * Temporary files and directories that tell whether their owner still runs, so
 * what a killed process left (SIGKILL runs no cleanup code) can be recognised
 * and removed by the next one.
 *
 * A temporary path `P` comes with a lock file `P.lock`, held (flock) by its
 * process for as long as it lives. The lock is taken before it gets its name
 * and before `P` is made, so a `P` whose lock can be taken, or that has none,
 * belongs to a process that is gone. (The repository's own temporary
 * directories work the same way; see `Repository.tempDir`.)
 *
 * @module
 */

/** A reserved temporary path; the caller makes a file or directory there. */
export interface OwnedTemp {
  /** The temporary path. */
  readonly path: string;
  /** Lets the lock go (the path itself was renamed away or removed). */
  release(): Promise<void>;
  /** Removes the path (recursively) and lets the lock go. */
  remove(): Promise<void>;
}

/** How long a lock file may stay unnamed (`.lock-new`) before it counts as left behind. */
const UNNAMED_LOCK_GRACE_MS = 60_000;

/**
 * Reserves a fresh path `DIR/PREFIX<pid>-<id>` (and its lock). `prefix` should
 * name what the path is for, so {@link removeDeadTemps} finds only its kind.
 */
export async function reserveTemp(dir: string, prefix: string): Promise<OwnedTemp> {
  const path = `${dir}/${prefix}${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const lock = await Deno.open(`${path}.lock-new`, { write: true, createNew: true });
  try {
    await lock.lock(true);
    await Deno.rename(`${path}.lock-new`, `${path}.lock`);
  } catch (e) {
    lock.close();
    await Deno.remove(`${path}.lock-new`).catch(() => {});
    throw e;
  }
  let held = true;
  const release = async () => {
    if (!held) return;
    held = false;
    await Deno.remove(`${path}.lock`).catch(() => {});
    lock.close();
  };
  return {
    path,
    release,
    async remove() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
      await release();
    },
  };
}

/** True when no live process holds the lock file at `path` (or there is none). */
async function isDead(lockPath: string): Promise<boolean> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(lockPath, { write: true });
  } catch (e) {
    return e instanceof Deno.errors.NotFound; // when it cannot be told, keep it
  }
  try {
    return await file.tryLock(true);
  } finally {
    file.close();
  }
}

/**
 * Removes the paths {@link reserveTemp} made in `dir` with `prefix` whose
 * owners no longer run, and their lock files. Never a live process's; errors
 * (an unreadable directory) leave things as they are.
 */
export async function removeDeadTemps(dir: string, prefix: string): Promise<void> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) if (e.name.startsWith(prefix)) names.push(e.name);
  } catch {
    return;
  }
  const locks: string[] = [];
  for (const name of names) {
    const path = `${dir}/${name}`;
    if (name.endsWith(".lock-new")) {
      // Not yet locked, or left by a process killed in that instant: only the latter once it is old.
      const st = await Deno.lstat(path).catch(() => undefined);
      if (st?.mtime && Date.now() - st.mtime.getTime() > UNNAMED_LOCK_GRACE_MS) locks.push(path);
    } else if (name.endsWith(".lock")) {
      if (await isDead(path)) locks.push(path);
    } else if (await isDead(`${path}.lock`)) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
  // Locks last: a path is removed before the lock that vouches for it.
  for (const lock of locks) if (await isDead(lock)) await Deno.remove(lock).catch(() => {});
}

/**
 * A temporary name beside `path`, for a file written there and renamed over
 * it: `DIR/.BASE.deltaship-<pid>-<id>` (the form of layout_writer.ts's
 * sibling stages too), so that {@link userPaths} can name `path` instead.
 */
export function siblingTemp(path: string): string {
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : path.slice(0, slash) || "";
  return `${dir}/.${path.slice(slash + 1).slice(0, 100)}.deltaship-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * The temporary names deltaship makes beside or inside what the user asked
 * for, each with what it stands for: a sibling `.BASE.deltaship-<pid>-<id>`
 * (and its `.lock`) is BASE; a stage `.deltaship-staging-<pid>-<id>` inside a
 * layout and a blob's `.tmp-<id>` are the directory they are in; a new
 * repository's `ROOT.init-<pid>-<id>` is ROOT.
 */
const TEMP_NAMES: [RegExp, string][] = [
  [/\/\.([^/]+?)\.deltaship-\d+-[0-9a-f]{8}(?:\.lock(?:-new)?)?(?=[/'"\s)]|$)/g, "/$1"],
  [/\/\.deltaship-staging-\d+-[0-9a-f]{8}(?:\.lock(?:-new)?)?(?=[/'"\s)]|$)/g, ""],
  [/\/\.tmp-[0-9a-f]{8}(?=['"\s)]|$)/g, ""],
  [/\.init-\d+-[0-9a-f]{8}(?=[/'"\s)]|$)/g, ""],
];

/**
 * `text` (an error message) with every temporary name of {@link TEMP_NAMES}
 * replaced by the path the user gave: errors name what the user asked for,
 * never a name they have not seen (and that is gone by the time they look).
 */
export function userPaths(text: string): string {
  let out = text;
  for (const [re, to] of TEMP_NAMES) out = out.replace(re, to);
  return out;
}
