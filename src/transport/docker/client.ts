/**
 * The HTTP side of a registry: GET requests with authentication, bounded retries
 * (429 with `Retry-After`, 5xx, dropped connections), redirects followed by hand
 * so the registry's Authorization header never reaches another host, and idle
 * timeouts (for the response headers, then for each body chunk) so a stalled
 * connection fails instead of hanging.
 *
 * Error messages name the URL without its query (signed blob URLs carry secrets
 * there) and the HTTP status; credentials and tokens are redacted.
 *
 * @module
 */
import { DeltashipError, FormatError, NotFoundError, TransportError } from "../../errors.ts";
import { concat } from "../../util/streams.ts";
import { Authenticator } from "./auth.ts";
import type { Credentials } from "./credentials.ts";
import { backoffDelay, retryAfterMs, type RetryPolicy, sleep } from "./retry.ts";

/** How to reach one registry. */
export interface ClientOptions {
  /** `host[:port]` to connect to. */
  host: string;
  /** The registry's name in messages. */
  registry: string;
  /** HTTPS (true) or plain HTTP (false). */
  https: boolean;
  credentials?: Credentials;
  retry: RetryPolicy;
  /** Longest wait for response headers, and for each further body chunk. */
  idleTimeoutMs: number;
  /** Whether the user relaxed transport security (`--tls-verify=false`). */
  insecure?: boolean;
}

/** One GET request. */
export interface RequestOptions {
  /** What is fetched, for messages (`docker://host/repo:tag: manifest`). */
  what: string;
  /** Authorization scope, e.g. `repository:library/alpine:pull`. */
  scope: string;
  headers?: Record<string, string>;
  /** Statuses handed back to the caller instead of becoming errors (e.g. 416). */
  pass?: number[];
}

/** A connection that stopped sending: retried like a dropped one. */
export class StalledError extends TransportError {}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
const ERROR_BODY_LIMIT = 64 * 1024;
/** fetch() failures that are about TLS (certificates, or TLS spoken to a plain-HTTP server). */
const TLS_FAILURE = /certificate|tls|handshake|corrupt message|InvalidContentType/i;

/** A URL for messages: scheme, host and path, never the query or user info. */
export function displayUrl(url: URL | string): string {
  const u = typeof url === "string" ? new URL(url) : url;
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** True for failures another try may cure: dropped or refused connections, stalls. */
export function isRetryable(e: unknown): boolean {
  if (e instanceof StalledError) return true;
  if (e instanceof DeltashipError) return false;
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : "";
  if (TLS_FAILURE.test(cause)) return false; // the same certificate will fail again
  return e instanceof TypeError || (e instanceof Error && /connection|reset|broken pipe|eof/i.test(e.message));
}

/** A response whose body is read with an idle timeout. */
export class Fetched {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  #done = false;

  constructor(
    readonly response: Response,
    /** The final URL (after redirects). */
    readonly url: URL,
    readonly controller: AbortController,
    readonly idleTimeoutMs: number,
  ) {
    this.#reader = response.body?.getReader();
  }

  get status(): number {
    return this.response.status;
  }

  get headers(): Headers {
    return this.response.headers;
  }

  /** The next body chunk; aborts the request and throws {@link StalledError} when none comes in time. */
  async read(): Promise<ReadableStreamReadResult<Uint8Array>> {
    if (!this.#reader || this.#done) return { done: true, value: undefined };
    const pending = this.#reader.read();
    pending.catch(() => {}); // it rejects when the timeout aborts the request; that is reported below
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new StalledError(
          `no data from ${displayUrl(this.url)} for ${this.idleTimeoutMs / 1000} s (connection stalled)`,
        );
        this.controller.abort(err);
        reject(err);
      }, this.idleTimeoutMs);
    });
    try {
      const r = await Promise.race([pending, stalled]);
      if (r.done) this.#done = true;
      return r;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The whole body, refused when longer than `limit` bytes. For documents, never for blobs. */
  async bytes(limit: number, what: string): Promise<Uint8Array> {
    const declared = Number(this.headers.get("content-length") ?? NaN);
    if (declared > limit) {
      this.cancel();
      throw new FormatError(`${what} is ${declared} bytes, more than the ${limit} deltaship accepts for a document`);
    }
    const parts: Uint8Array[] = [];
    let n = 0;
    for (;;) {
      const { done, value } = await this.read();
      if (done) break;
      n += value.length;
      if (n > limit) {
        this.cancel();
        throw new FormatError(`${what} is more than the ${limit} bytes deltaship accepts for a document`);
      }
      parts.push(value);
    }
    return concat(parts, n);
  }

  /** Stops reading and closes the connection. */
  cancel(): void {
    this.#done = true;
    this.#reader?.cancel().catch(() => {});
    this.controller.abort(new DOMException("cancelled", "AbortError"));
  }
}

/** A registry's HTTP endpoint, shared by every request of one source. */
export class RegistryClient {
  readonly origin: string;
  readonly auth: Authenticator;
  readonly #http: Deno.HttpClient;
  readonly #closed = new AbortController();

  readonly #options: ClientOptions;

  constructor(options: ClientOptions) {
    this.#options = options;
    this.origin = `${options.https ? "https" : "http"}://${options.host}`;
    this.#http = Deno.createHttpClient({});
    this.auth = new Authenticator(
      options.registry,
      options.credentials,
      (url, headers) => this.#tokenRequest(url, headers),
      options.insecure ?? false,
    );
  }

  /**
   * GETs `path` on the registry: authenticates as the registry asks, retries what
   * may pass, and returns a 2xx response (or one of `pass`). Other answers are
   * errors naming `what`, the URL and the status.
   */
  async get(path: string, request: RequestOptions): Promise<Fetched> {
    const url = new URL(path, this.origin);
    const { attempts } = this.#options.retry;
    let authRounds = 0;
    for (let attempt = 1;; attempt++) {
      const authorization = await this.auth.header(request.scope);
      let fetched: Fetched;
      try {
        fetched = await this.#send(url, request.headers, authorization);
      } catch (e) {
        if (this.#closed.signal.aborted || !isRetryable(e)) throw this.#wrap(e, url, request.what, attempt);
        if (attempt >= attempts) throw this.#wrap(e, url, request.what, attempt);
        await sleep(backoffDelay(this.#options.retry, attempt), this.#closed.signal);
        continue;
      }
      const { status } = fetched;
      if ((status >= 200 && status < 300) || request.pass?.includes(status)) return fetched;
      if (status === 401 && fetched.url.origin === this.origin) {
        fetched.cancel();
        if (authRounds++ >= 2) throw this.auth.denied(request.what);
        this.auth.unauthorized(fetched.headers.get("www-authenticate"), request.scope, authorization);
        attempt--; // an authentication round is not a failed try
        continue;
      }
      if ((status === 429 || (status >= 500 && status !== 501 && status !== 505)) && attempt < attempts) {
        const { retry } = this.#options;
        const wait = retryAfterMs(fetched.headers.get("retry-after"), retry.maxMs) ?? backoffDelay(retry, attempt);
        fetched.cancel();
        await sleep(wait, this.#closed.signal);
        continue;
      }
      throw await this.#statusError(fetched, request.what, attempt);
    }
  }

  /** Stops every request in flight and releases connections. */
  close(): void {
    this.#closed.abort(new TransportError("registry source closed"));
    this.#http.close();
  }

  /** Token requests: retried like registry requests, but never carrying the registry's Authorization. */
  async #tokenRequest(url: URL, headers: Headers): Promise<Response> {
    const what = `token request to ${displayUrl(url)}`;
    const h = new Headers(headers);
    const authorization = h.get("authorization") ?? undefined;
    h.delete("authorization");
    for (let attempt = 1;; attempt++) {
      let fetched: Fetched;
      try {
        fetched = await this.#send(url, h, authorization);
      } catch (e) {
        if (attempt >= this.#options.retry.attempts || !isRetryable(e)) throw this.#wrap(e, url, what, attempt);
        await sleep(backoffDelay(this.#options.retry, attempt), this.#closed.signal);
        continue;
      }
      const { status } = fetched;
      if ((status === 429 || status >= 500) && attempt < this.#options.retry.attempts) {
        fetched.cancel();
        await sleep(
          retryAfterMs(fetched.headers.get("retry-after"), this.#options.retry.maxMs) ??
            backoffDelay(this.#options.retry, attempt),
          this.#closed.signal,
        );
        continue;
      }
      // The body is read whole by the caller; it is small.
      const body = await fetched.bytes(1 << 20, what);
      return new Response(body.length ? body as Uint8Array<ArrayBuffer> : null, {
        status,
        statusText: fetched.response.statusText,
      });
    }
  }

  /**
   * One try: follows redirects by hand, sending `authorization` only to the
   * origin of `url` (never to a host it redirects to), with a timeout for each
   * response's headers.
   */
  async #send(
    url: URL,
    headers: Record<string, string> | Headers | undefined,
    authorization?: string,
  ): Promise<Fetched> {
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, this.#closed.signal]);
    let current = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const h = new Headers(headers);
      if (!h.has("accept-encoding")) h.set("accept-encoding", "identity");
      if (authorization && current.origin === url.origin) h.set("authorization", authorization);
      else h.delete("authorization");
      const timeoutMs = this.#options.idleTimeoutMs;
      const timer = setTimeout(
        () =>
          controller.abort(new StalledError(`no response from ${displayUrl(current)} within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
      let res: Response;
      try {
        res = await fetch(current, { headers: h, redirect: "manual", signal, client: this.#http });
      } finally {
        clearTimeout(timer);
      }
      const location = res.headers.get("location");
      if (REDIRECTS.has(res.status) && location !== null) {
        await res.body?.cancel();
        const next = new URL(location, current);
        if (next.protocol !== "http:" && next.protocol !== "https:") {
          throw new TransportError(`${displayUrl(current)} redirected to a ${next.protocol} URL`);
        }
        current = next;
        continue;
      }
      return new Fetched(res, current, controller, timeoutMs);
    }
    throw new TransportError(`${displayUrl(url)}: more than ${MAX_REDIRECTS} redirects`);
  }

  /** Turns a failed try into a one-line error naming the URL. */
  #wrap(e: unknown, url: URL, what: string, attempts: number): Error {
    if (e instanceof DeltashipError && !(e instanceof StalledError)) return e;
    // fetch() says "fetch failed" and keeps the reason (refused, TLS, DNS) in `cause`.
    const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : undefined;
    const raw = cause ?? (e instanceof Error ? e.message : String(e));
    const detail = this.auth.redact(
      raw.replace(/^error sending request for url \([^)]*\): /, "").replace(/ for url \([^)]*\)/, "").replace(
        /\s+/g,
        " ",
      )
        .trim(),
    );
    const tries = attempts > 1 ? ` (${attempts} tries)` : "";
    let hint = "";
    if (TLS_FAILURE.test(raw)) {
      hint = this.#options.https
        ? "; if the registry serves plain HTTP, pass --tls-verify=false"
        : "; the registry may require HTTPS: drop --tls-verify=false";
    }
    return new TransportError(`${what}: GET ${displayUrl(url)} failed${tries}: ${detail}${hint}`);
  }

  async #statusError(fetched: Fetched, what: string, attempts: number): Promise<Error> {
    let codes = "";
    try {
      const body = await fetched.bytes(ERROR_BODY_LIMIT, "error body");
      const parsed = JSON.parse(new TextDecoder().decode(body)) as { errors?: { code?: unknown; message?: unknown }[] };
      codes = (parsed.errors ?? [])
        .map((x) => [x.code, x.message].filter((v) => typeof v === "string" && v !== "").join(": "))
        .filter(Boolean)
        .join("; ");
    } catch {
      fetched.cancel();
    }
    const status = `HTTP ${fetched.status}${fetched.response.statusText ? ` ${fetched.response.statusText}` : ""}`;
    const tries = attempts > 1 ? `, after ${attempts} tries` : "";
    const detail = this.auth.redact(`${status}${codes ? ` (${codes.slice(0, 300)})` : ""}${tries}`);
    const where = `GET ${displayUrl(fetched.url)}`;
    if (fetched.status === 404) return new NotFoundError(`${what}: not found: ${where}: ${detail}`);
    if (fetched.status === 403) return new TransportError(`${what}: access denied: ${where}: ${detail}`);
    return new TransportError(`${what}: ${where}: ${detail}`);
  }
}
