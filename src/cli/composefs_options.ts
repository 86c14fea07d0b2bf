/**
 * The options of the commands that make a composefs image (`compute-id`,
 * `create-image`): its format version.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { DEFAULT_EROFS_VERSION, type ErofsVersion } from "../repo/composefs_image.ts";
import type { OptionSpec } from "./args.ts";

/** `--erofs-version N`. */
export const EROFS_VERSION_OPTION = {
  name: "erofs-version",
  type: "string",
  arg: "N",
  help: "composefs format version: 1 (default, composefs-rs's) or 0 (mkcomposefs's default)",
} as const satisfies OptionSpec;

/** The format version `--erofs-version` asks for. */
export function erofsVersion(command: string, value: string | undefined): ErofsVersion {
  if (value === undefined) return DEFAULT_EROFS_VERSION;
  if (value === "0" || value === "1") return Number(value) as ErofsVersion;
  throw new UsageError(`${command}: --erofs-version must be 0 or 1, not ${JSON.stringify(value)}`);
}
