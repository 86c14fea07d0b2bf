/**
 * The options of every command that writes layers out (export, apply-delta):
 * `--compression` and `--level`.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { LayerCompression } from "../compression/stages.ts";
import { parseSetting } from "../util/settings.ts";
import type { OptionSpec, ValuesOf } from "./args.ts";

const LEVELS: Record<LayerCompression, [number, number]> = {
  gzip: [1, 9],
  zstd: [1, 19],
  "zstd:chunked": [1, 19],
  none: [0, 0],
};

/** Option specs to add to a command that compresses layers. */
export const COMPRESSION_OPTIONS = [
  {
    name: "compression",
    type: "string",
    arg: "gzip|zstd|zstd:chunked|none",
    help: "layer compression (default gzip); zstd:chunked can be pulled partially",
  },
  { name: "level", type: "string", arg: "N", help: "compression level (gzip 1-9, default 6; zstd 1-19, default 3)" },
] as const satisfies readonly OptionSpec[];

/** The compression and level the parsed options ask for. */
export function compressionOptions(
  values: ValuesOf<typeof COMPRESSION_OPTIONS>,
): { compression: LayerCompression; level?: number } {
  const compression = values.compression ?? "gzip";
  if (!isCompression(compression)) {
    throw new UsageError(`--compression must be gzip, zstd, zstd:chunked or none, got ${JSON.stringify(compression)}`);
  }
  if (values.level === undefined) return { compression };
  if (compression === "none") throw new UsageError("--level needs --compression gzip, zstd or zstd:chunked");
  const [min, max] = LEVELS[compression];
  return { compression, level: parseSetting(`--level for ${compression}`, values.level, { min, max }) };
}

function isCompression(s: string): s is LayerCompression {
  return Object.hasOwn(LEVELS, s);
}
