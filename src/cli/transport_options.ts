/**
 * The options of every command that talks to a registry (credentials, auth
 * file, TLS, registries.conf), with the download limit for those that read
 * ({@link OpenOptions}) and the upload limit for those that push
 * ({@link TargetOptions}).
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { OpenOptions, RegistryOptions, TargetOptions } from "../transport/reference.ts";
import { envSetting, parseSetting, type SettingRange } from "../util/settings.ts";
import type { OptionSpec, ValuesOf } from "./args.ts";

/** The options of every command that talks to a registry: credentials, auth file, TLS, registries.conf. */
export const REGISTRY_OPTIONS = [
  {
    name: "creds",
    type: "string",
    arg: "USER:PASS",
    help: "registry credentials for docker:// (default: from the auth files, see docs/registries.md)",
  },
  {
    name: "authfile",
    type: "string",
    arg: "FILE",
    path: "file",
    help:
      "docker://: read credentials from FILE only (default $REGISTRY_AUTH_FILE, else the containers-auth.json files)",
  },
  {
    name: "tls-verify",
    type: "string",
    arg: "true|false",
    help: "docker://: false skips certificate checks (plain HTTP where the registry speaks only that); true checks " +
      "them (default: true, and plain HTTP for localhost and 127.0.0.0/8 without certificates in certs.d)",
  },
  {
    name: "cert-dir",
    type: "string",
    arg: "DIR",
    path: "dir",
    help: "docker://: *.crt CA certificates and NAME.cert/NAME.key client certificate (default: certs.d for the host)",
  },
  {
    name: "registries-conf",
    type: "string",
    arg: "FILE",
    path: "file",
    help:
      "docker://: registries.conf to read (default $CONTAINERS_REGISTRIES_CONF, else /etc/containers/registries.conf)",
  },
] as const satisfies readonly OptionSpec[];

/** Option specs to add to a command that opens sources. */
export const SOURCE_OPTIONS = [
  ...REGISTRY_OPTIONS,
  {
    name: "max-downloads",
    type: "string",
    arg: "N",
    help: "docker://: most blob downloads at once (default 2, 1 for a delta; independent of --jobs)",
  },
] as const satisfies readonly OptionSpec[];

/** The option that bounds uploads in flight. */
export const MAX_UPLOADS_OPTION = {
  name: "max-uploads",
  type: "string",
  arg: "N",
  help: "docker://: most blob uploads at once (default 2; independent of --jobs)",
} as const satisfies OptionSpec;

/** Option specs to add to a command that pushes to a registry. */
export const TARGET_OPTIONS = [...REGISTRY_OPTIONS, MAX_UPLOADS_OPTION] as const satisfies readonly OptionSpec[];

/** The option that bounds each layer a command stores (pull, apply-delta, create-delta). */
export const MAX_LAYER_SIZE_OPTION = {
  name: "max-layer-size",
  type: "string",
  arg: "SIZE",
  help: "stop a layer whose uncompressed size passes SIZE (bytes, or with KiB, MiB, GiB, TiB; " +
    "default $DELTASHIP_MAX_LAYER_SIZE, else 64GiB)",
} as const satisfies OptionSpec;

/** The option that bounds the memory a command's own buffers and threads take (pull, apply-delta). */
export const MEMORY_LIMIT_OPTION = {
  name: "memory-limit",
  type: "string",
  arg: "SIZE",
  help: "keep deltaship's buffers, layer threads and dictionaries within SIZE beyond the runtime's own ~50 MiB " +
    "(slower; default $DELTASHIP_MEMORY_LIMIT, else no limit)",
} as const satisfies OptionSpec;

/** `--max-layer-size`, `--memory-limit` and their variables: 1 byte to 1024 TiB. */
const SIZE_RANGE: SettingRange = { min: 1, max: 2 ** 50, unit: "bytes" };
/** `--max-downloads` and `--max-uploads`: blobs in flight at once. */
const TRANSFERS_RANGE: SettingRange = { min: 1, max: 64 };

/** The memory limit from `--memory-limit` or `DELTASHIP_MEMORY_LIMIT` (undefined: none). */
export function memoryLimit(
  values: ValuesOf<[typeof MEMORY_LIMIT_OPTION]>,
  env: Record<string, string | undefined>,
): number | undefined {
  return sizeSetting(values["memory-limit"], "--memory-limit", env, "DELTASHIP_MEMORY_LIMIT");
}

/** A size from its option's value, else from its environment variable (undefined: neither is set). */
function sizeSetting(
  value: unknown,
  option: string,
  env: Record<string, string | undefined>,
  variable: string,
): number | undefined {
  if (typeof value === "string") return parseSetting(option, value, SIZE_RANGE);
  return envSetting(env, variable, SIZE_RANGE, undefined);
}

/** The layer size limit from `--max-layer-size` or `DELTASHIP_MAX_LAYER_SIZE` (undefined: the default). */
export function maxLayerSize(
  values: ValuesOf<[typeof MAX_LAYER_SIZE_OPTION]>,
  env: Record<string, string | undefined>,
): number | undefined {
  return sizeSetting(values["max-layer-size"], "--max-layer-size", env, "DELTASHIP_MAX_LAYER_SIZE");
}

/** How to reach registries, from the parsed registry options and the environment. */
export function registryOpenOptions(
  values: ValuesOf<typeof REGISTRY_OPTIONS>,
  env: Record<string, string | undefined>,
): RegistryOptions {
  const options: RegistryOptions = { env };
  if (typeof values.creds === "string") options.creds = values.creds;
  for (
    const [name, key] of [["authfile", "authfile"], ["cert-dir", "certDir"], [
      "registries-conf",
      "registriesConf",
    ]] as const
  ) {
    const v = values[name];
    if (v === "") throw new UsageError(`--${name} needs a path`);
    if (typeof v === "string") options[key] = v;
  }
  const tls = values["tls-verify"];
  if (typeof tls === "string") {
    if (tls !== "true" && tls !== "false") {
      throw new UsageError(`--tls-verify must be true or false (as --tls-verify=false), got ${JSON.stringify(tls)}`);
    }
    options.tlsVerify = tls === "true";
  }
  return options;
}

/** The {@link OpenOptions} the parsed source options and the environment give. */
export function sourceOpenOptions(
  values: ValuesOf<typeof SOURCE_OPTIONS>,
  env: Record<string, string | undefined>,
): OpenOptions {
  const options: OpenOptions = registryOpenOptions(values, env);
  const max = values["max-downloads"];
  if (typeof max === "string") options.maxDownloads = parseSetting("--max-downloads", max, TRANSFERS_RANGE);
  return options;
}

/** The {@link TargetOptions} the parsed push options and the environment give. */
export function targetOpenOptions(
  values: ValuesOf<typeof TARGET_OPTIONS>,
  env: Record<string, string | undefined>,
): TargetOptions {
  const options: TargetOptions = registryOpenOptions(values, env);
  const max = values["max-uploads"];
  if (typeof max === "string") options.maxUploads = parseSetting("--max-uploads", max, TRANSFERS_RANGE);
  return options;
}
