/**
 * Opening a registry connection the same way for reading and for writing:
 * credentials from `--creds` or the auth files, HTTPS or plain HTTP, and the
 * retry, idle-timeout and deadline settings from the environment.
 *
 * @module
 */
import { InvalidArgumentError } from "../../errors.ts";
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
   * manifest, config or token, retries included, default 60000) and
   * `DELTASHIP_RETRY_BASE_MS` (first retry delay, default 250).
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
/** Longest a whole document (manifest, config, token) may take, retries included. */
const DEFAULT_DEADLINE_MS = 60_000;

/** Opens a client for the registry of `ref`. Nothing is sent yet. */
export async function connect(ref: DockerReference, options: ConnectOptions = {}): Promise<Connection> {
  const env = options.env ?? {};
  const explicit = options.creds !== undefined ? parseCredsOption(options.creds) : undefined;
  const credentials = await lookupCredentials(ref.domain, ref.repository, env, explicit);
  const retry = { ...DEFAULT_RETRY, baseMs: envInt(env, "DELTASHIP_RETRY_BASE_MS", DEFAULT_RETRY.baseMs, 0) };
  const deadlineMs = envInt(env, "DELTASHIP_HTTP_DEADLINE_MS", DEFAULT_DEADLINE_MS, 1);
  const client = new RegistryClient({
    host: ref.host,
    registry: ref.domain,
    https: options.tlsVerify ?? !isLoopbackHost(ref.host),
    credentials,
    retry,
    idleTimeoutMs: envInt(env, "DELTASHIP_HTTP_TIMEOUT_MS", DEFAULT_IDLE_TIMEOUT_MS, 1),
    deadlineMs,
    insecure: options.tlsVerify === false,
  });
  return { client, retry, deadlineMs };
}

/** An integer setting from the environment, at least `min`; `fallback` when unset. */
export function envInt(env: Env, name: string, fallback: number, min: number): number {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new InvalidArgumentError(`${name} must be an integer of at least ${min}, got ${JSON.stringify(v)}`);
  }
  return n;
}
