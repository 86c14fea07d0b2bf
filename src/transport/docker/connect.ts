/**
 * Opening a registry connection the same way for reading and for writing:
 * credentials from `--creds` or the auth files, HTTPS or plain HTTP, and the
 * retry, idle-timeout and deadline settings from the environment.
 *
 * @module
 */
import { envSetting, type SettingRange } from "../../util/settings.ts";
import { RegistryClient } from "./client.ts";
import { type Env, lookupCredentials, parseCredsOption } from "./credentials.ts";
import { type DockerReference, isLoopbackHost } from "./reference.ts";
import { DEFAULT_RETRY, type RetryPolicy } from "./retry.ts";

/** How to reach a registry. */
export interface ConnectOptions {
  /** `USER:PASS`; else credentials are looked up in auth files. */
  creds?: string;
  /** true: HTTPS; false: plain HTTP; unset: HTTPS except for loopback hosts. */
  tlsVerify?: boolean;
  /**
   * Environment: auth file locations, `DELTASHIP_HTTP_TIMEOUT_MS` (idle
   * timeout, default 30000), `DELTASHIP_HTTP_DEADLINE_MS` (total time for a
   * manifest, config or token, retries included, default 60000), both 1 to
   * 86400000, and `DELTASHIP_RETRY_BASE_MS` (first retry delay, default 250, 0
   * to 30000).
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
const DEFAULT_DEADLINE_MS = 60_000;

/** Opens a client for the registry of `ref`. Nothing is sent yet. */
export async function connect(ref: DockerReference, options: ConnectOptions = {}): Promise<Connection> {
  const env = options.env ?? {};
  const explicit = options.creds !== undefined ? parseCredsOption(options.creds) : undefined;
  const credentials = await lookupCredentials(ref.domain, ref.repository, env, explicit);
  const baseMs = envSetting(env, "DELTASHIP_RETRY_BASE_MS", RETRY_BASE_RANGE, DEFAULT_RETRY.baseMs);
  const retry = { ...DEFAULT_RETRY, baseMs };
  const deadlineMs = envSetting(env, "DELTASHIP_HTTP_DEADLINE_MS", TIME_RANGE, DEFAULT_DEADLINE_MS);
  const client = new RegistryClient({
    host: ref.host,
    registry: ref.domain,
    https: options.tlsVerify ?? !isLoopbackHost(ref.host),
    credentials,
    retry,
    idleTimeoutMs: envSetting(env, "DELTASHIP_HTTP_TIMEOUT_MS", TIME_RANGE, DEFAULT_IDLE_TIMEOUT_MS),
    deadlineMs,
    insecure: options.tlsVerify === false,
  });
  return { client, retry, deadlineMs };
}
