/**
 * Image arguments as commands take them: `@sha256:<hex>` (a full manifest
 * digest, or a prefix of at least 4 hex digits) or a tag name; and the errors
 * for those that name nothing, with what to write instead.
 *
 * @module
 */
import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import { asManifestDigest, isDigest, type ManifestDigest } from "../util/digest.ts";

/** What an image argument asks for: a full digest, a digest prefix, or a tag. */
export type ImageArgument =
  | { kind: "digest"; digest: ManifestDigest }
  | { kind: "prefix"; prefix: string }
  | { kind: "tag"; name: string };

/** Parses an image argument; a malformed `@...` is an {@link InvalidArgumentError} saying what it needs. */
export function parseImageArgument(arg: string): ImageArgument {
  if (!arg.startsWith("@")) return { kind: "tag", name: arg };
  const want = arg.slice(1);
  if (isDigest(want)) return { kind: "digest", digest: asManifestDigest(want) };
  const short = /^(sha256|sha512):[0-9a-f]{0,3}$/.exec(want);
  if (short) {
    throw new InvalidArgumentError(
      `invalid image reference ${JSON.stringify(arg)}: give at least 4 hex digits of the manifest digest ` +
        `(@${short[1]}:<hex>)`,
    );
  }
  if (!/^(sha256|sha512):[0-9a-f]{4,}$/.test(want)) {
    throw new InvalidArgumentError(`invalid image reference ${JSON.stringify(arg)}: expected @sha256:<hex> or a tag`);
  }
  return { kind: "prefix", prefix: want };
}

/**
 * The error for a tag that names no image. A digest without its `@` is the
 * likely slip, so that case says how to write it.
 */
export function noImageTagged(name: string): NotFoundError {
  const hint = /^(sha256|sha512):[0-9a-f]+$/.test(name)
    ? `; to name an image by manifest digest, write @${name}`
    : " (see 'deltaship images')";
  return new NotFoundError(`no image tagged ${JSON.stringify(name)} in the repository${hint}`);
}
