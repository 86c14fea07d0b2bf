/**
 * The HTTP side of a registry: requests with authentication, bounded retries
 * (429 with `Retry-After`, 5xx, dropped connections), redirects followed by hand
 * so the registry's Authorization header never reaches another host, idle
 * timeouts (for the response headers, then for each body chunk) so a stalled
 * connection fails instead of hanging, and a total deadline for documents
 * (manifests, configs, tokens) so one trickled a byte at a time does too.
 *
 * Error messages name the URL without its query (signed blob URLs carry secrets
 * there) and the HTTP status; credentials and tokens are redacted. Text from the
 * runtime (a fetch failure's wording) goes into a message only through
 * `failureText` (sanitize.ts), which sanitises every URL in it, whatever the wording.
 *
 * @module
 */
import { DeltashipError, FormatError, NotFoundError, TransportError } from "../../errors.ts";
import { concat } from "../../util/streams.ts";
import { Authenticator } from "./auth.ts";
import { httpClientFor, type TlsFiles } from "./certs_dir.ts";
import type { CredentialLookup } from "./credentials.ts";
import { InsecureHttps } from "./insecure_https.ts";
import { backoffDelay, retryAfterMs, type RetryPolicy, sleep, withDeadline } from "./retry.ts";
import { pathUrl, type RegistryUrl, registryUrl, sendsCredentials } from "./registry_url.ts";
import { TLS_FAILURE, tlsHint } from "./tls_hint.ts";
import { failureText, sanitizeUrls } from "./sanitize.ts";

/** How to reach one registry. */
export interface ClientOptions {
  /** `host[:port]` to connect to. */
  host: string;
  /** The registry's name in messages. */
  registry: string;
  /** HTTPS (true) or plain HTTP (false). */
  https: boolean;
  /** Credentials, or the helper that keeps them (named when the registry asks for them). */
  credentials?: CredentialLookup;
  retry: RetryPolicy;
  /** Longest wait for response headers, and for each further body chunk. */
  idleTimeoutMs: number;
  /**
   * Longest a whole document may take, retries included: manifests and configs
   * (see `withDeadline` in retry.ts), token responses, error bodies.
   */
  deadlineMs: number;
  /**
   * Transport security relaxed (`--tls-verify=false`, registries.conf's
   * `insecure`): server certificates are not checked, and credentials may go
   * to a plain-HTTP token server.
   */
  insecure?: boolean;
  /** CA certificates and a client certificate for HTTPS (a certificates directory's). */
  tls?: TlsFiles;
}

/** One request. */
export interface RequestOptions {
  /** What is fetched, for messages (`docker://host/repo:tag: manifest`). */
  what: string;
  /** Authorization scope, e.g. `repository:library/alpine:pull` (several separated by spaces). */
  scope: string;
  /** HTTP method (default GET). */
  method?: string;
  headers?: Record<string, string>;
  /** The request body, sent with its Content-Length (uploads send bounded chunks). */
  body?: Uint8Array;
  /**
   * Tried once: a dropped connection or a 429/5xx answer is not retried here
   * (a dropped connection becomes a {@link ConnectionError}; the status is
   * handed back when in `pass`). For requests whose effect the caller must
   * check before trying again (an upload chunk).
   */
  once?: boolean;
  /** Statuses handed back to the caller instead of becoming errors (e.g. 416). */
  pass?: number[];
  /** Aborts the request, and the waits between its tries (a document's deadline). */
  signal?: AbortSignal;
}

/** A connection that stopped sending: retried like a dropped one. */
export class StalledError extends TransportError {}

/**
 * A request that failed for a reason another try may cure (a dropped, refused
 * or stalled connection), after the tries it was given: what callers that
 * resume their own work (uploads) look for.
 */
export class ConnectionError extends TransportError {}

/** A try that failed at `at`: the request's own URL, or a host it was redirected to. */
class SendFailure {
  constructor(readonly error: unknown, readonly at: URL) {}
}

/** The error of a failed try, and where it failed. */
function unwrap(thrown: unknown, url: URL): { e: unknown; at: URL } {
  return thrown instanceof SendFailure ? { e: thrown.error, at: thrown.at } : { e: thrown, at: url };
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
const ERROR_BODY_LIMIT = 64 * 1024;
/** The slowest a request body is assumed to go out (bytes a second): added to the wait for its response. */
const SLOWEST_UPLOAD = 64 * 1024;

/** A URL for messages: scheme, host and path, never the query, fragment or user info. */
export function displayUrl(url: URL | string): string {
  const u = typeof url === "string" ? new URL(url) : url;
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/**
 * The runtime's preamble to a fetch failure, in the wordings Deno has used (URLs
 * already sanitised): `error sending request for url (URL): ` and, from Deno 2.9,
 * `error sending request from IP:PORT for URL (HOST): `.
 */
const SENDING_PREAMBLE = /^error sending request (?:from \S+ )?for (?:url \(\S*\)|\S+(?: \([^)]*\))?): /;

/** True for failures another try may cure: dropped or refused connections, stalls. */
export function isRetryable(e: unknown): boolean {
  if (e instanceof StalledError || e instanceof ConnectionError) return true;
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
  /** HTTPS without certificate checks (insecure registries), through node:https: see insecure_https.ts. */
  readonly #unverified: InsecureHttps | undefined;
  readonly #closed = new AbortController();

  readonly #options: ClientOptions;

  constructor(options: ClientOptions) {
    this.#options = options;
    this.origin = `${options.https ? "https" : "http"}://${options.host}`;
    this.#http = httpClientFor(options.tls);
    this.#unverified = options.insecure ? new InsecureHttps(options.tls?.client) : undefined;
    this.auth = new Authenticator(
      options.registry,
      options.credentials,
      (url, headers) => this.#tokenRequest(url, headers),
      options.insecure ?? false,
    );
  }

  /**
   * GETs `path` (a path on the registry, or a URL it gave, checked) with
   * {@link request}.
   */
  get(path: string | RegistryUrl, request: RequestOptions): Promise<Fetched> {
    return this.request(path, request);
  }

  /**
   * Sends a request to `path` (a path on the registry, starting with `/`, or a
   * URL it gave, such as an upload's `Location`, checked by `registryUrl`):
   * authenticates as the registry asks, retries what may pass (unless `once`),
   * and returns a 2xx response (or one of `pass`). Other answers are errors
   * naming `what`, the method, URL and status.
   */
  async request(path: string | RegistryUrl, request: RequestOptions): Promise<Fetched> {
    const url = typeof path === "string" ? pathUrl(path, this.origin) : path;
    const method = request.method ?? "GET";
    const attempts = request.once ? 1 : this.#options.retry.attempts;
    const signal = this.#signal(request.signal);
    // The registry's credentials go to the registry only.
    const ours = sendsCredentials(url, this.origin);
    let authRounds = 0;
    for (let attempt = 1;; attempt++) {
      const authorization = ours ? await this.auth.header(request.scope) : undefined;
      let fetched: Fetched;
      try {
        fetched = await this.#send(url, method, request, { authorization, for: this.origin }, signal);
      } catch (thrown) {
        const { e, at } = unwrap(thrown, url);
        if (signal.aborted || !isRetryable(e)) throw this.#wrap(e, url, at, request, attempt);
        if (attempt >= attempts) throw this.#wrap(e, url, at, request, attempt);
        await sleep(backoffDelay(this.#options.retry, attempt), signal);
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
        await sleep(wait, signal);
        continue;
      }
      throw await this.#statusError(fetched, method, request.what, attempt);
    }
  }

  /** The signal that stops one request: the client closing, or the caller's own (a deadline). */
  #signal(own: AbortSignal | undefined): AbortSignal {
    return own ? AbortSignal.any([this.#closed.signal, own]) : this.#closed.signal;
  }

  /** Stops every request in flight and releases connections. */
  close(): void {
    this.#closed.abort(new TransportError("registry source closed"));
    this.#http.close();
    this.#unverified?.close();
  }

  /**
   * Token requests: retried like registry requests, but never carrying the
   * registry's Authorization, and read whole within the document deadline.
   */
  #tokenRequest(url: URL, headers: Headers): Promise<Response> {
    const what = `token request to ${displayUrl(url)}`;
    const h = new Headers(headers);
    const authorization = h.get("authorization") ?? undefined;
    h.delete("authorization");
    return withDeadline(what, this.#options.deadlineMs, async (deadline) => {
      const signal = this.#signal(deadline);
      for (let attempt = 1;; attempt++) {
        let fetched: Fetched;
        try {
          // The realm's credentials go to the realm's origin only.
          fetched = await this.#send(url, "GET", { what, headers: h }, { authorization, for: url.origin }, signal);
        } catch (thrown) {
          const { e, at } = unwrap(thrown, url);
          if (attempt >= this.#options.retry.attempts || !isRetryable(e)) {
            throw this.#wrap(e, url, at, { what }, attempt);
          }
          await sleep(backoffDelay(this.#options.retry, attempt), signal);
          continue;
        }
        const { status } = fetched;
        if ((status === 429 || status >= 500) && attempt < this.#options.retry.attempts) {
          fetched.cancel();
          await sleep(
            retryAfterMs(fetched.headers.get("retry-after"), this.#options.retry.maxMs) ??
              backoffDelay(this.#options.retry, attempt),
            signal,
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
    });
  }

  /**
   * One try: follows redirects by hand (each checked by `registryUrl`),
   * sending `credentials.authorization` only to the origin it is `for` (never
   * to another host a redirect leads to), with a timeout for each response's
   * headers (longer for a request with a body: its upload cannot be watched).
   * A failed fetch is thrown as a {@link SendFailure} naming the URL it failed at.
   */
  async #send(
    url: URL,
    method: string,
    request: { what: string; headers?: Record<string, string> | Headers; body?: Uint8Array },
    credentials: { authorization: string | undefined; for: string },
    stop: AbortSignal,
  ): Promise<Fetched> {
    const controller = new AbortController();
    const signal = AbortSignal.any([controller.signal, stop]);
    let current = url;
    let body = request.body;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const h = new Headers(request.headers);
      if (!h.has("accept-encoding")) h.set("accept-encoding", "identity");
      const { authorization } = credentials;
      if (authorization && sendsCredentials(current, credentials.for)) h.set("authorization", authorization);
      else h.delete("authorization");
      const timeoutMs = this.#options.idleTimeoutMs + Math.ceil((1000 * (body?.length ?? 0)) / SLOWEST_UPLOAD);
      const timer = setTimeout(
        () =>
          controller.abort(new StalledError(`no response from ${displayUrl(current)} within ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
      let res: Response;
      try {
        res = this.#unverified && current.protocol === "https:"
          ? await this.#unverified.fetch(current, { method, headers: h, body, signal })
          : await fetch(current, {
            method,
            headers: h,
            body: body as Uint8Array<ArrayBuffer> | undefined,
            redirect: "manual",
            signal,
            client: this.#http,
          });
      } catch (e) {
        throw new SendFailure(e, current);
      } finally {
        clearTimeout(timer);
      }
      const location = res.headers.get("location");
      if (REDIRECTS.has(res.status) && location !== null) {
        await res.body?.cancel();
        const next = registryUrl(location, { kind: "redirect", base: current }, request.what);
        if (res.status === 303 && method !== "HEAD") {
          method = "GET";
          body = undefined;
        }
        current = next;
        continue;
      }
      return new Fetched(res, current, controller, this.#options.idleTimeoutMs);
    }
    throw new TransportError(`${displayUrl(url)}: more than ${MAX_REDIRECTS} redirects`);
  }

  /**
   * Turns a failed try into a one-line error naming the method and URL (and the
   * one it was redirected to, `at`, when it failed there), built from sanitised
   * text only. A failure another try might cure is a {@link ConnectionError}.
   */
  #wrap(e: unknown, url: URL, at: URL, request: { what: string; method?: string }, attempts: number): Error {
    if (e instanceof DeltashipError && !(e instanceof StalledError)) return e;
    // The reason (refused, reset, TLS, DNS) without the preamble: the message names the URL already.
    const text = failureText(e);
    const detail = this.auth.redact(text.replace(SENDING_PREAMBLE, ""));
    const tries = attempts > 1 ? ` (${attempts} tries)` : "";
    const hint = TLS_FAILURE.test(text) ? tlsHint(text, at, this.#options.tls, this.#options.https) : "";
    const where = at.href === url.href ? displayUrl(url) : `${displayUrl(url)} (redirected to ${displayUrl(at)})`;
    const message = `${request.what}: ${request.method ?? "GET"} ${where} failed${tries}: ${detail}${hint}`;
    return isRetryable(e) ? new ConnectionError(message) : new TransportError(message);
  }

  async #statusError(fetched: Fetched, method: string, what: string, attempts: number): Promise<Error> {
    let codes = "";
    try {
      // Within the deadline: an error body trickled a byte at a time would hold the error back.
      const body = await withDeadline("error body", this.#options.deadlineMs, (signal) => {
        signal.addEventListener("abort", () => fetched.cancel(), { once: true });
        return fetched.bytes(ERROR_BODY_LIMIT, "error body");
      });
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
    // The body is the server's text: an object store's may quote the signed URL.
    const detail = this.auth.redact(sanitizeUrls(`${status}${codes ? ` (${codes.slice(0, 300)})` : ""}${tries}`));
    const where = `${method} ${displayUrl(fetched.url)}`;
    if (fetched.status === 404) return new NotFoundError(`${what}: not found: ${where}: ${detail}`);
    if (fetched.status === 403) return new TransportError(`${what}: access denied: ${where}: ${detail}`);
    return new TransportError(`${what}: ${where}: ${detail}`);
  }
}
