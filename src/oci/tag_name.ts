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
