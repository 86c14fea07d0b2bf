/**
 * HTTPS without certificate verification, for `--tls-verify=false` and
 * registries.conf's `insecure = true`. Deno's fetch() cannot do it for one
 * client: `Deno.createHttpClient` takes CA certificates and a client
 * certificate, but certificate checks are turned off only for the whole
 * process, by the runtime flag `--unsafely-ignore-certificate-errors`, which a
 * compiled executable cannot take at run time. The runtime's `node:https` can
 * (`rejectUnauthorized: false`, per connection), so these requests go through
 * it, answered as fetch() answers: a `Response` with a streamed body, failures
 * as fetch()'s `TypeError` with the reason in `cause`, an abort as the signal's
 * reason. See docs/design.md, "TLS".
 *
 * @module
 */
import type { Agent } from "node:https";
import { Readable } from "node:stream";

/** node:https, loaded on first use: most runs never need it, and loading it cost 10-16 ms of every command's start. */
let httpsModule: Promise<typeof import("node:https")> | undefined;

/** What a request carries (the subset of fetch()'s init the registry client uses). */
export interface InsecureRequest {
  method: string;
  headers: Headers;
  body?: Uint8Array;
  signal: AbortSignal;
}

/** Statuses whose responses have no body. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** A connection pool for HTTPS requests whose server certificate is not checked. */
export class InsecureHttps {
  #agent: Agent | undefined;
  readonly #client: { cert?: string; key?: string };

  /** `cert` and `key` (PEM): a client certificate to present, when the registry asks for one. */
  constructor(client: { cert?: string; key?: string } = {}) {
    this.#client = client;
  }

  /** Sends one request to an `https:` URL; resolves with the response once its headers are in. */
  async fetch(url: URL, init: InsecureRequest): Promise<Response> {
    const https = await (httpsModule ??= import("node:https"));
    this.#agent ??= new https.Agent({ keepAlive: true, rejectUnauthorized: false, ...this.#client });
    const agent = this.#agent;
    const { signal } = init;
    return new Promise((resolve, reject) => {
      const fail = (e: unknown) => {
        if (signal.aborted) return reject(signal.reason);
        const reason = e instanceof Error ? e.message : String(e);
        reject(
          new TypeError("fetch failed", { cause: new Error(`error sending request for url (${url}): ${reason}`) }),
        );
      };
      if (signal.aborted) return fail(signal.reason);
      const headers: Record<string, string> = {};
      init.headers.forEach((value, name) => (headers[name] = value));
      if (init.body) headers["content-length"] = String(init.body.length);
      const req = https.request(url, { method: init.method, headers, agent, signal }, (res) => {
        const h = new Headers();
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        const status = res.statusCode ?? 0;
        const empty = init.method === "HEAD" || NULL_BODY.has(status);
        if (empty) res.resume();
        const body = empty ? null : Readable.toWeb(res) as ReadableStream<Uint8Array<ArrayBuffer>>;
        try {
          resolve(new Response(body, { status, statusText: res.statusMessage ?? "", headers: h }));
        } catch (e) {
          res.destroy();
          fail(e); // a status fetch() would not take either (below 200 or above 599)
        }
      });
      req.on("error", fail);
      req.end(init.body);
    });
  }

  /** Closes every pooled connection. */
  close(): void {
    this.#agent?.destroy();
  }
}
