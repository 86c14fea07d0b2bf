/**
 * Registry credentials: `--creds USER:PASS`, else the first auth file that has an
 * entry for the registry, looked up in the order skopeo and podman use:
 * `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
 * `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config`), then docker's
 * `config.json` (`$DOCKER_CONFIG`, default `~/.docker`). The environment comes
 * from the caller, never from the process, so tests control it.
 *
 * Secrets never appear in error messages: errors name the file and registry only.
 *
 * @module
 */
import { FormatError, InvalidArgumentError } from "../../errors.ts";
import { DOCKER_HUB } from "./reference.ts";

/** A user name and password for one registry, and where they came from (for messages). */
export interface Credentials {
  username: string;
  password: string;
  /** `--creds` or the auth file's path. */
  source: string;
}

/** The environment variables credential lookup reads. */
export type Env = Record<string, string | undefined>;

/** Parses `--creds USER:PASS` (the password may itself contain ':'). */
export function parseCredsOption(value: string): Credentials {
  const colon = value.indexOf(":");
  if (colon <= 0) throw new InvalidArgumentError("--creds must be USER:PASS (user name, a colon, then the password)");
  return { username: value.slice(0, colon), password: value.slice(colon + 1), source: "--creds" };
}

/** The auth files consulted, most preferred first. */
export function authFilePaths(env: Env): string[] {
  const paths: string[] = [];
  if (env.REGISTRY_AUTH_FILE) paths.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) paths.push(`${env.XDG_RUNTIME_DIR}/containers/auth.json`);
  const configHome = env.XDG_CONFIG_HOME || (env.HOME ? `${env.HOME}/.config` : undefined);
  if (configHome) paths.push(`${configHome}/containers/auth.json`);
  const dockerConfig = env.DOCKER_CONFIG || (env.HOME ? `${env.HOME}/.docker` : undefined);
  if (dockerConfig) paths.push(`${dockerConfig}/config.json`);
  return paths;
}

/**
 * The credentials for `repository` on `domain`: `explicit` when given, else the
 * first auth file with a matching entry, else undefined (anonymous).
 */
export async function lookupCredentials(
  domain: string,
  repository: string,
  env: Env,
  explicit?: Credentials,
): Promise<Credentials | undefined> {
  if (explicit) return explicit;
  const keys = lookupKeys(domain, repository);
  for (const path of authFilePaths(env)) {
    const found = await fromAuthFile(path, keys);
    if (found) return found;
  }
  return undefined;
}

/** Keys to try in an auth file, most specific first: `domain/a/b`, `domain/a`, `domain`. */
function lookupKeys(domain: string, repository: string): string[] {
  const parts = repository.split("/");
  const keys = [];
  for (let n = parts.length; n >= 1; n--) keys.push(`${domain}/${parts.slice(0, n).join("/")}`);
  keys.push(domain);
  return keys;
}

/** An `auths` key as containers/image compares it: no scheme, legacy `/v1/` paths dropped, Hub aliases merged. */
function normaliseKey(key: string): string {
  let k = key;
  const scheme = /^https?:\/\//.exec(k);
  if (scheme) {
    k = k.slice(scheme[0].length);
    const slash = k.indexOf("/");
    if (slash >= 0) k = k.slice(0, slash); // legacy docker keys: https://index.docker.io/v1/
  }
  k = k.replace(/\/+$/, "");
  const slash = k.indexOf("/");
  const host = slash < 0 ? k : k.slice(0, slash);
  if (host === "index.docker.io" || host === "registry-1.docker.io") k = DOCKER_HUB + k.slice(host.length);
  return k;
}

async function fromAuthFile(path: string, keys: string[]): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return undefined;
    throw e;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new FormatError(`auth file ${path} is not valid JSON: fix or remove it`);
  }
  const auths = (doc as { auths?: unknown } | null)?.auths;
  if (auths === undefined) return undefined;
  if (typeof auths !== "object" || auths === null || Array.isArray(auths)) {
    throw new FormatError(`auth file ${path}: "auths" is not an object`);
  }
  const entries = new Map<string, { key: string; value: unknown }>();
  for (const [key, value] of Object.entries(auths)) {
    const k = normaliseKey(key);
    if (!entries.has(k)) entries.set(k, { key, value });
  }
  for (const k of keys) {
    const entry = entries.get(k);
    if (!entry) continue;
    const auth = (entry.value as { auth?: unknown } | null)?.auth;
    if (auth === undefined || auth === "") continue; // e.g. entries kept by a credential helper
    const decoded = typeof auth === "string" ? decodeAuth(auth) : undefined;
    if (!decoded) {
      throw new FormatError(
        `auth file ${path}: the "auth" field for ${JSON.stringify(entry.key)} is not base64 of USER:PASS`,
      );
    }
    return { ...decoded, source: path };
  }
  return undefined;
}

function decodeAuth(auth: string): { username: string; password: string } | undefined {
  let text: string;
  try {
    const bin = atob(auth.trim());
    text = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
  const colon = text.indexOf(":");
  if (colon <= 0) return undefined;
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}
