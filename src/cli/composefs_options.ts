/**
 * The options of the commands that make a composefs image (`compute-id`,
 * `create-image`, `dump`, `mount`): its format version and which xattrs its
 * tree keeps.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import {
  DEFAULT_EROFS_VERSION,
  DEFAULT_XATTRS,
  type ErofsVersion,
  XATTR_FILTERINGS,
  type XattrFiltering,
} from "../repo/composefs_image.ts";
import type { OptionSpec } from "./args.ts";

/** `--erofs-version N`. */
export const EROFS_VERSION_OPTION = {
  name: "erofs-version",
  type: "string",
  arg: "N",
  choices: ["1", "0"],
  help: "composefs format version: 1 (default, composefs-rs's) or 0 (mkcomposefs's default)",
} as const satisfies OptionSpec;

/** `--xattrs MODE`, as cfsctl's. */
export const XATTRS_OPTION = {
  name: "xattrs",
  type: "string",
  arg: "MODE",
  choices: ["allowlist-only", "keep-user-xattrs"],
  help: "xattrs the tree keeps: allowlist-only (default, cfsctl's: security.capability) or keep-user-xattrs " +
    "(user.* too)",
} as const satisfies OptionSpec;

/** The format version `--erofs-version` asks for. */
export function erofsVersion(command: string, value: string | undefined): ErofsVersion {
  if (value === undefined) return DEFAULT_EROFS_VERSION;
  if (value === "0" || value === "1") return Number(value) as ErofsVersion;
  throw new UsageError(`${command}: --erofs-version must be 0 or 1, not ${JSON.stringify(value)}`);
}

/** The xattr filtering `--xattrs` asks for. */
export function xattrFiltering(command: string, value: string | undefined): XattrFiltering {
  if (value === undefined) return DEFAULT_XATTRS;
  if ((XATTR_FILTERINGS as readonly string[]).includes(value)) return value as XattrFiltering;
  throw new UsageError(`${command}: --xattrs must be allowlist-only or keep-user-xattrs, not ${JSON.stringify(value)}`);
}
