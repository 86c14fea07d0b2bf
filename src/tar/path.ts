/**
 * Path hygiene for names that come from untrusted archives and deltas.
 *
 * @module
 */
import { UnsafePathError } from "../errors.ts";

/**
 * Cleans a tar entry name into a relative path with no `.` or empty components
 * (`""` is the root). A leading `/` is dropped (an absolute name is taken from
 * the layer's root, as container engines and composefs-rs take it); `..`
 * components are refused: a layer must not name anything outside its own root.
 */
export function cleanEntryPath(name: string): string {
  const out: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") throw new UnsafePathError(name, "'..' in tar entry path");
    if (part.includes("\0")) throw new UnsafePathError(name, "NUL in tar entry path");
    out.push(part);
  }
  return out.join("/");
}

/**
 * Cleans a path as if joined to `/` and normalised: `..` at the root stays at the
 * root, so the result can never leave it. Returns a relative path (`""` for the
 * root itself). This is how tar-diff Open paths are resolved.
 */
export function cleanRootedPath(name: string): string {
  const out: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return out.join("/");
}

/** The parent directory of a cleaned path (`""` for top-level names). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

/** The last component of a cleaned path. */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}
