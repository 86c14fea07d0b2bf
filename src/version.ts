/**
 * The deltaship version, from `deno.json` (bundled into the module graph, so the
 * compiled binary knows it without reading files).
 *
 * @module
 */
import config from "../deno.json" with { type: "json" };

/** deltaship's version. */
export const VERSION: string = config.version;
