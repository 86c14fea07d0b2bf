/**
 * Test helper: external tools (skopeo, umoci, zstd, registry, oci-delta). A test
 * that needs a missing tool is skipped with a visible message, or fails when
 * REQUIRE_INTEROP=1 (as in CI).
 */

const found = new Map<string, string | undefined>();

/** The path of `tool` on PATH, or undefined. */
export function which(tool: string): string | undefined {
  if (found.has(tool)) return found.get(tool);
  let path: string | undefined;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${tool}`).isFile) {
        path = `${dir}/${tool}`;
        break;
      }
    } catch { /* not here */ }
  }
  found.set(tool, path);
  return path;
}

/**
 * What a test does when this host lacks what it needs (`why`): with
 * REQUIRE_INTEROP=1 throw (the test fails: CI has everything, so a test must
 * not pass there by not running); otherwise say that it is skipped, and why.
 */
function lacking(why: string): false {
  if (Deno.env.get("REQUIRE_INTEROP") === "1") throw new Error(`${why}, and REQUIRE_INTEROP=1`);
  console.log(`SKIPPED ${why}`);
  return false;
}

/**
 * True when every tool is available. When one is missing: with REQUIRE_INTEROP=1
 * this throws (the test fails); otherwise it prints why the test is skipped.
 */
export function haveTools(test: string, ...tools: string[]): boolean {
  const missing = tools.filter((t) => !which(t));
  return missing.length === 0 || lacking(`${test}: needs ${missing.join(", ")} (not on PATH)`);
}

/** True when the tests run as root; otherwise as {@link haveTools} for a missing tool. */
export function haveRoot(test: string): boolean {
  return Deno.uid() === 0 || lacking(`${test}: needs root`);
}

/** What a host offers kernel mounts: its system, whether it is root, its kernel release and filesystems. */
export interface MountHost {
  os: string;
  root: boolean;
  /** `uname -r`, e.g. `6.1.0-18-amd64`. */
  release: string;
  /** The contents of /proc/filesystems. */
  filesystems: string;
}

function thisHost(): MountHost {
  let filesystems = "";
  try {
    filesystems = Deno.readTextFileSync("/proc/filesystems");
  } catch { /* not Linux, or no /proc */ }
  return { os: Deno.build.os, root: Deno.uid() === 0, release: Deno.osRelease(), filesystems };
}

/**
 * Why composefs mounts cannot be tested on `host`, or undefined when they can:
 * Linux, root, erofs and overlay, and a kernel of 6.5 or later (overlayfs
 * data-only lower layers, which composefs mounts use for the object store).
 */
export function whyNoMounts(host: MountHost = thisHost()): string | undefined {
  if (host.os !== "linux") return "not Linux";
  if (!host.root) return "not root";
  for (const name of ["erofs", "overlay"]) {
    if (!new RegExp(`\\s${name}$`, "m").test(host.filesystems)) return `the kernel has no ${name}`;
  }
  const m = /^(\d+)\.(\d+)/.exec(host.release);
  if (!m || Number(m[1]) * 1000 + Number(m[2]) < 6005) {
    return `Linux ${host.release} is older than 6.5 (no overlayfs data-only layers)`;
  }
  return undefined;
}

/** True when composefs mounts can be tested here; otherwise as {@link haveTools} for a missing tool. */
export function canMount(test: string): boolean {
  const why = whyNoMounts();
  return why === undefined || lacking(`${test}: ${why}`);
}

/** Runs a command, failing with its stderr when it fails; returns stdout. */
export async function run(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}
