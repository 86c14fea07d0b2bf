/**
 * Opening a registry connection the same way for reading, writing and
 * logging in: credentials from `--creds` or the auth files, TLS as the
 * options, certs.d and registries.conf say, and the retry, idle-timeout and
 * deadline settings from the environment.
 *
 * How a registry is reached:
 * - `--tls-verify=true`: HTTPS, the certificate checked;
 * - `--tls-verify=false`, or `insecure = true` in registries.conf (the flag
 *   wins): HTTPS without checking the certificate, else plain HTTP when the
 *   registry answers only that, as containers/image decides (it asks `GET /v2/`
 *   over HTTPS first, then over HTTP);
 * - otherwise HTTPS with the certificate checked, except for loopback hosts
 *   (`localhost`, 127.0.0.0/8, `[::1]`) that have no certificates directory:
 *   plain HTTP, as docker treats them.
 *
 * @module
 */
import { TransportError } from "../../errors.ts";
import { envSetting, type SettingRange } from "../../util/settings.ts";
import { certsDirFor, readCertsDir, type TlsFiles } from "./certs_dir.ts";
import { RegistryClient } from "./client.ts";
import { type Env, lookupCredentials, parseCredsOption } from "./credentials.ts";
import { type DockerReference, isLoopbackHost } from "./reference.ts";
import { findRegistry, type RegistriesConf } from "./registries_conf.ts";
import { DEFAULT_RETRY, type RetryPolicy } from "./retry.ts";

/** How to reach a registry. */
export interface ConnectOptions {
  /** `USER:PASS`; else credentials are looked up in auth files. */
  creds?: string;
  /** The option that gave `creds`, for messages (default `--creds`). */
  credsOption?: string;
  /** `--authfile FILE`: the only auth file read. */
  authfile?: string;
  /** true: HTTPS, verified; false: HTTPS unverified, else plain HTTP; unset: see the module comment. */
  tlsVerify?: boolean;
  /** `--cert-dir DIR`: the certificates directory, instead of certs.d's for the host. */
  certDir?: string;
  /** `--registries-conf FILE`: the registries.conf read instead of the default one. */
  registriesConf?: string;
  /**
   * Environment: auth files, registries.conf and certs.d locations
   * (`DELTASHIP_SYSTEM_ROOT`), `DELTASHIP_HTTP_TIMEOUT_MS` (idle timeout,
   * default 30000), `DELTASHIP_HTTP_DEADLINE_MS` (total time for a manifest,
   * config or token, retries included, default 60000), both 1 to 86400000, and
   * `DELTASHIP_RETRY_BASE_MS` (first retry delay, default 250, 0 to 30000).
   */
  env?: Env;
}

/** An open connection to one registry, and the policies its users share. */
export interface Connection {
  client: RegistryClient;
  retry: RetryPolicy;
  /** Longest a whole document may take, retries included. */
  deadlineMs: number;
}

/** Which registry, and how registries.conf's table for it says to reach it. */
export interface ConnectTarget {
  /** The registry as the reference names it, and the host[:port] to connect to. */
  domain: string;
  host: string;
  /** The repository, for the auth file lookup (namespaced entries); none for a login. */
  repository?: string;
  /** registries.conf's `insecure` for this endpoint. */
  insecure?: boolean;
  /**
   * The registry the user named, when this is a mirror or a rewritten
   * location: `--creds` are sent only to that registry (as containers/image).
   */
  logicalDomain?: string;
}

const DEFAULT_IDLE_TIMEOUT_MS = 30_000;
/**
 * `DELTASHIP_HTTP_TIMEOUT_MS` and `DELTASHIP_HTTP_DEADLINE_MS`: a millisecond to
 * a day. A timer takes at most 2^31-1 ms (more fires at once, with a warning);
 * a day leaves room for a deadline derived from these, twice one included.
 */
const TIME_RANGE: SettingRange = { min: 1, max: 86_400_000, unit: "ms" };
/** `DELTASHIP_RETRY_BASE_MS`: up to the longest delay between tries (`DEFAULT_RETRY.maxMs`). */
const RETRY_BASE_RANGE: SettingRange = { min: 0, max: DEFAULT_RETRY.maxMs, unit: "ms" };
/** Longest a whole document (manifest, config, token) may take, retries included. */
export const DEFAULT_DEADLINE_MS = 60_000;

/** `DELTASHIP_HTTP_DEADLINE_MS`, within its range; {@link DEFAULT_DEADLINE_MS} when unset. */
export function deadlineSetting(env: Env): number {
  return envSetting(env, "DELTASHIP_HTTP_DEADLINE_MS", TIME_RANGE, DEFAULT_DEADLINE_MS);
}

/**
 * Opens a client for a registry. Nothing is sent, except for an insecure
 * registry: one `GET /v2/` (two when HTTPS fails) learns which scheme it speaks.
 */
export async function connect(target: ConnectTarget, options: ConnectOptions = {}): Promise<Connection> {
  const env = options.env ?? {};
  const ownCreds = target.logicalDomain === undefined || target.logicalDomain === target.domain;
  const explicit = options.creds !== undefined && ownCreds
    ? parseCredsOption(options.creds, options.credsOption)
    : undefined;
  const credentials = explicit ??
    await lookupCredentials(target.domain, target.repository ?? "", { env, authfile: options.authfile });
  const baseMs = envSetting(env, "DELTASHIP_RETRY_BASE_MS", RETRY_BASE_RANGE, DEFAULT_RETRY.baseMs);
  const retry = { ...DEFAULT_RETRY, baseMs };
  const deadlineMs = deadlineSetting(env);
  const certsDir = await certsDirFor(env, target.domain, options.certDir);
  const tls: TlsFiles | undefined = certsDir === undefined ? undefined : await readCertsDir(certsDir);
  const base = {
    host: target.host,
    registry: target.domain,
    credentials,
    retry,
    idleTimeoutMs: envSetting(env, "DELTASHIP_HTTP_TIMEOUT_MS", TIME_RANGE, DEFAULT_IDLE_TIMEOUT_MS),
    deadlineMs,
    ...(tls ? { tls } : {}),
  };
  const insecure = options.tlsVerify === false || (options.tlsVerify === undefined && target.insecure === true);
  if (!insecure) {
    const https = options.tlsVerify === true || tls !== undefined || !isLoopbackHost(target.host);
    return { client: new RegistryClient({ ...base, https }), retry, deadlineMs };
  }
  const secure = new RegistryClient({ ...base, https: true, insecure: true });
  try {
    await ping(secure, target.domain);
    return { client: secure, retry, deadlineMs };
  } catch (e) {
    secure.close();
    const plain = new RegistryClient({ ...base, https: false, insecure: true });
    try {
      await ping(plain, target.domain);
    } catch (p) {
      plain.close();
      const said = (x: unknown) => x instanceof Error ? x.message : String(x);
      throw new TransportError(
        `${target.domain} answers neither over HTTPS (${said(e)}) nor over plain HTTP (${said(p)})`,
      );
    }
    return { client: plain, retry, deadlineMs };
  }
}

/**
 * Asks `GET /v2/` without credentials, once, as containers/image pings a
 * registry to learn whether it speaks a scheme: a 200 or 401 answer is a
 * registry; any other answer, or a failure, is an error.
 */
async function ping(client: RegistryClient, registry: string): Promise<void> {
  const f = await client.request("/v2/", { what: `${registry}: registry check`, scope: "", pass: [401], once: true });
  f.cancel();
}

/** The error for a registry that registries.conf blocks, or nothing. */
export function checkNotBlocked(conf: RegistriesConf, name: string): void {
  const entry = findRegistry(conf, name);
  if (entry?.blocked) {
    throw new TransportError(`${name}: registry ${entry.prefix} is blocked in ${entry.file} (blocked = true)`);
  }
}

/** The {@link ConnectTarget} for a reference read or written where it is (no mirror). */
export function targetOf(ref: DockerReference, conf: RegistriesConf): ConnectTarget {
  const name = `${ref.domain}/${ref.repository}`;
  checkNotBlocked(conf, name);
  return {
    domain: ref.domain,
    host: ref.host,
    repository: ref.repository,
    insecure: findRegistry(conf, name)?.insecure,
  };
}
