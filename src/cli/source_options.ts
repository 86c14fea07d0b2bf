/**
 * The options of every command that reads an image source: registry
 * credentials, TLS, and the download limit, parsed into {@link OpenOptions}.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { OpenOptions } from "../transport/reference.ts";
import type { OptionSpec, Values } from "./args.ts";
import { positiveInt } from "./context.ts";

/** Option specs to add to a command that opens sources. */
export const SOURCE_OPTIONS: OptionSpec[] = [
  {
    name: "creds",
    type: "string",
    arg: "USER:PASS",
    help: "registry credentials for docker:// (default: from auth files, see README)",
  },
  {
    name: "tls-verify",
    type: "string",
    arg: "true|false",
    help: "docker://: false reaches the registry over plain HTTP; true forces HTTPS (default: HTTPS, " +
      "plain HTTP for localhost and 127.0.0.0/8)",
  },
  {
    name: "max-downloads",
    type: "string",
    arg: "N",
    help: "docker://: most blob downloads at once (default 2, 1 for a delta; independent of --jobs)",
  },
];

/** The {@link OpenOptions} the parsed source options and the environment give. */
export function sourceOpenOptions(values: Values, env: Record<string, string | undefined>): OpenOptions {
  const options: OpenOptions = { env };
  if (typeof values.creds === "string") options.creds = values.creds;
  const tls = values["tls-verify"];
  if (typeof tls === "string") {
    if (tls !== "true" && tls !== "false") {
      throw new UsageError(`--tls-verify must be true or false (as --tls-verify=false), got ${JSON.stringify(tls)}`);
    }
    options.tlsVerify = tls === "true";
  }
  const max = values["max-downloads"];
  if (typeof max === "string") options.maxDownloads = positiveInt(max, "--max-downloads");
  return options;
}
