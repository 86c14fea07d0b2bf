/**
 * Registry credentials: `--creds USER:PASS`, else the auth files, read as
 * containers-auth.json(5) and containers/image's pkg/docker/config/config.go
 * read them (see docs/design.md, "Registry credentials", for the commit):
 *
 * - `--authfile FILE`, else `$REGISTRY_AUTH_FILE`: that file only;
 * - otherwise `$XDG_RUNTIME_DIR/containers/auth.json` (when the variable is
 *   unset, `/run/containers/$UID/auth.json`), `$XDG_CONFIG_HOME/containers/auth.json`
 *   (default `~/.config`), `$DOCKER_CONFIG/config.json` (default `~/.docker`) and
 *   `~/.dockercfg` (the legacy format: no `auths` level), the first file that
 *   has credentials for the image winning.
 *
 * In a file, the keys tried are the image's name and each of its namespaces,
 * most specific first (`host/a/b/c`, `host/a/b`, `host/a`, `host`), then any
 * key that names the host as a URL (`https://host/v1/`, docker's old form). A
 * `credHelpers` entry for the host (or docker's `credsStore`) means the
 * credentials are kept by a program: deltaship starts no programs, so it only
 * names the helper when the registry asks for credentials.
 *
 * Secrets never appear in error messages: errors name the file and key only.
 *
 * @module
 */
import { FormatError, InvalidArgumentError } from "../../errors.ts";
import { type Env, homeDir, readConfigText, systemPath } from "./host_config.ts";
import { DOCKER_HUB } from "./reference.ts";

export type { Env } from "./host_config.ts";

/** A user name and password for one registry, and where they came from (for messages). */
export interface Credentials {
  username: string;
  password: string;
  /** `--creds` or the auth file's path. */
  source: string;
}

/** A credential helper that keeps the credentials of a registry (deltaship cannot run it). */
export interface CredentialHelper {
  /** The program, `docker-credential-NAME`. */
  program: string;
  /** The auth file naming it, and how (`credHelpers` or `credsStore`). */
  file: string;
  field: "credHelpers" | "credsStore";
}

/** What a lookup found: credentials, a helper that keeps them, or (undefined) nothing. */
export type CredentialLookup = Credentials | CredentialHelper | undefined;

/** An auth file to read, and whether it is in the legacy `.dockercfg` format. */
export interface AuthPath {
  path: string;
  legacy: boolean;
}

/** Parses `--creds USER:PASS` (the password may itself contain ':'); `option` names the option in messages. */
export function parseCredsOption(value: string, option = "--creds"): Credentials {
  const colon = value.indexOf(":");
  if (colon <= 0) throw new InvalidArgumentError(`${option} must be USER:PASS (user name, a colon, then the password)`);
  return { username: value.slice(0, colon), password: value.slice(colon + 1), source: option };
}

/** True for a lookup that found credentials. */
export function isCredentials(found: CredentialLookup): found is Credentials {
  return found !== undefined && "password" in found;
}

/**
 * The auth file login and logout write: `authfile` (`--authfile`), else
 * `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
 * `/run/containers/$UID/auth.json`. `explicit` says whether the user named it.
 */
export function primaryAuthFile(env: Env, authfile?: string): { path: string; explicit: boolean } {
  const chosen = authfile || env.REGISTRY_AUTH_FILE;
  if (chosen) return { path: chosen, explicit: true };
  if (env.XDG_RUNTIME_DIR) return { path: `${env.XDG_RUNTIME_DIR}/containers/auth.json`, explicit: false };
  return { path: systemPath(env, `/run/containers/${Deno.uid() ?? 0}/auth.json`), explicit: false };
}

/** The auth files consulted, most preferred first (`authfile` is `--authfile`). */
export function authFilePaths(env: Env, authfile?: string): AuthPath[] {
  const primary = primaryAuthFile(env, authfile);
  const paths: AuthPath[] = [{ path: primary.path, legacy: false }];
  if (primary.explicit) return paths;
  const home = homeDir(env);
  const configHome = env.XDG_CONFIG_HOME || (home ? `${home}/.config` : undefined);
  if (configHome) paths.push({ path: `${configHome}/containers/auth.json`, legacy: false });
  const dockerConfig = env.DOCKER_CONFIG || (home ? `${home}/.docker` : undefined);
  if (dockerConfig) paths.push({ path: `${dockerConfig}/config.json`, legacy: false });
  if (home) paths.push({ path: `${home}/.dockercfg`, legacy: true });
  return paths;
}

/** Where to look for credentials. */
export interface LookupOptions {
  env: Env;
  /** `--authfile FILE`. */
  authfile?: string;
  /** Credentials given on the command line: used as they are. */
  explicit?: Credentials;
}

/**
 * The credentials for `repository` on `domain` (as references name it:
 * `docker.io`, `quay.io`, `127.0.0.1:5000`): the explicit ones when given,
 * else the first auth file's, else the helper that keeps them, else undefined.
 */
export async function lookupCredentials(
  domain: string,
  repository: string,
  options: LookupOptions,
): Promise<CredentialLookup> {
  if (options.explicit) return options.explicit;
  let helper: CredentialHelper | undefined;
  for (const path of authFilePaths(options.env, options.authfile)) {
    const found = await fromAuthFile(path, domain, `${domain}/${repository}`);
    if (found && "field" in found && found.field === "credsStore") helper ??= found;
    else if (found) return found;
  }
  return helper;
}

/** An auth file's contents: its entries by key, and its helpers. */
export interface AuthFileContents {
  /** The whole document. */
  doc: Record<string, unknown>;
  auths: Record<string, unknown>;
  credHelpers: Record<string, unknown>;
  credsStore?: string;
}

/** Reads and checks an auth file (undefined when there is none). */
export async function readAuthFile(path: string, legacy = false): Promise<AuthFileContents | undefined> {
  const text = await readConfigText(path, "auth file");
  if (text === undefined) return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new FormatError(`auth file ${path} is not valid JSON: fix or remove it`);
  }
  if (!isObject(doc)) throw new FormatError(`auth file ${path} is not a JSON object`);
  if (legacy) return { doc, auths: doc, credHelpers: {} };
  const { auths = {}, credHelpers = {}, credsStore } = doc as Record<string, unknown>;
  for (const [name, value] of [["auths", auths], ["credHelpers", credHelpers]] as const) {
    if (!isObject(value)) throw new FormatError(`auth file ${path}: "${name}" is not an object`);
  }
  return {
    doc,
    auths: auths as Record<string, unknown>,
    credHelpers: credHelpers as Record<string, unknown>,
    ...(typeof credsStore === "string" && credsStore !== "" ? { credsStore } : {}),
  };
}

/**
 * The credentials in one auth file for the image `name` (`domain/repository`)
 * on `domain`, in containers/image's order (`findCredentialsInFile`).
 */
async function fromAuthFile(at: AuthPath, domain: string, name: string): Promise<CredentialLookup> {
  const file = await readAuthFile(at.path, at.legacy);
  if (!file) return undefined;
  const helperName = file.credHelpers[domain];
  if (typeof helperName === "string" && helperName !== "") {
    return { program: `docker-credential-${helperName}`, file: at.path, field: "credHelpers" };
  }
  const exact = at.legacy ? [domain] : lookupKeys(name);
  let key = exact.find((k) => Object.hasOwn(file.auths, k));
  if (key === undefined) {
    const host = normaliseRegistry(domain);
    key = Object.keys(file.auths).find((k) => normaliseKey(k, at.legacy) === host);
  }
  const found = key === undefined ? undefined : decodeEntry(at.path, key, file.auths[key]);
  if (found) return found;
  // Docker keeps credentials in its store and writes an empty entry (or none) here.
  return file.credsStore
    ? { program: `docker-credential-${file.credsStore}`, file: at.path, field: "credsStore" }
    : undefined;
}

/** `name` and each namespace above it, most specific first: `host/a/b`, `host/a`, `host`. */
function lookupKeys(name: string): string[] {
  const keys = [name];
  for (let slash = name.lastIndexOf("/"); slash > 0; slash = name.lastIndexOf("/", slash - 1)) {
    keys.push(name.slice(0, slash));
  }
  return keys;
}

/** Docker Hub under the one name its auth entries are compared by. */
function normaliseRegistry(host: string): string {
  return host === DOCKER_HUB || host === "registry-1.docker.io" ? "index.docker.io" : host;
}

/** A key as a host: a URL's scheme and path dropped (`https://index.docker.io/v1/`), Hub aliases merged. */
function normaliseKey(key: string, legacy: boolean): string {
  const stripped = key.replace(/^https?:\/\//, "");
  const host = legacy || stripped !== key ? stripped.split("/")[0] : stripped;
  return normaliseRegistry(host);
}

/**
 * An entry's user and password. Its `auth` must be base64; without a colon in
 * it (an empty entry kept by a helper) the file has no credentials for the image.
 */
function decodeEntry(path: string, key: string, entry: unknown): Credentials | undefined {
  const auth = isObject(entry) ? entry.auth : undefined;
  if (auth === undefined || auth === "") return undefined;
  let text: string | undefined;
  if (typeof auth === "string") {
    try {
      const bin = atob(auth.trim());
      text = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
    } catch { /* reported below */ }
  }
  if (text === undefined) {
    throw new FormatError(`auth file ${path}: the "auth" field for ${JSON.stringify(key)} is not base64 of USER:PASS`);
  }
  const colon = text.indexOf(":");
  if (colon < 0) return undefined;
  // As containers/image: NUL padding after the password is not part of it.
  return { username: text.slice(0, colon), password: text.slice(colon + 1).replace(/^\0+|\0+$/g, ""), source: path };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
