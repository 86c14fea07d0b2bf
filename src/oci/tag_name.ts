/**
 * Tag names: what a repository tag or a layout's `org.opencontainers.image.ref.name`
 * may be. One rule for every place a tag is given or read.
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";

/** Checks that a tag name is usable; returns it. */
export function checkTagName(name: string): string {
  if (name === "" || name.length > 255) {
    throw new InvalidArgumentError(`invalid tag name ${JSON.stringify(name)}: 1 to 255 characters`);
  }
  if (name.startsWith("@")) {
    throw new InvalidArgumentError(`invalid tag name ${JSON.stringify(name)}: must not start with '@'`);
  }
  if (name === "." || name === "..") throw new InvalidArgumentError(`invalid tag name ${JSON.stringify(name)}`);
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(name)) {
    throw new InvalidArgumentError(`invalid tag name ${JSON.stringify(name)}: no spaces or control characters`);
  }
  return name;
}

/** A tag as OCI distribution defines it: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`. */
const OCI_TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** True when `name` is an OCI tag. */
export function isOciTag(name: string): boolean {
  return OCI_TAG.test(name);
}

/**
 * Checks a tag name the user gives to name an image (`tag IMAGE NAME`, pull's
 * NAME): it must be an OCI tag, so that it can also be pushed as one. Names
 * read from layouts (whose `ref.name` may be a whole reference) are held to
 * {@link checkTagName} only. Returns the name.
 */
export function checkOciTag(name: string): string {
  if (isOciTag(name)) return name;
  const quoted = JSON.stringify(name);
  const digest = /^@?((sha256|sha512):[0-9a-fA-F]*)$/.exec(name);
  const hint = digest
    ? `; a tag cannot be a digest (images are named by digest as @${digest[1]})`
    : name.length > 128
    ? `; at most 128 characters`
    : "";
  throw new InvalidArgumentError(
    `invalid tag name ${quoted}: a tag is letters, digits, '_', '.' and '-' (not first), ` +
      `up to 128 characters${hint}`,
  );
}
