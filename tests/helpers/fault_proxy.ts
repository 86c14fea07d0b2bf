/**
 * Test helper: an HTTP proxy (Deno.serve on 127.0.0.1) in front of a real
 * registry that can inject faults: error statuses, 429 with Retry-After,
 * bodies cut off, stalled or trickled midway, redirects, corrupted bytes. It logs every
 * request so tests can assert what the client did (retries, Range requests,
 * which headers went where), with the bytes each carried each way, and counts
 * them by kind ({@link countRequests}). Below: a TCP-level proxy that drops a
 * connection in the middle of an upload ({@link startDropProxy}).
 */

/** One request the proxy received. */
export interface LoggedRequest {
  method: string;
  path: string;
  /** The Range header, if any. */
  range: string | null;
  /** Whether an Authorization header came with it. */
  authorization: boolean;
  /** Milliseconds since the proxy started. */
  at: number;
  /** Body bytes the client sent, and bytes of the response body it was sent (so far). */
  bytesIn: number;
  bytesOut: number;
}

/** Decides the answer to one request: `forward()` fetches it from the registry. */
export type FaultHandler = (
  req: Request,
  ctx: {
    path: string;
    forward: (init?: { headers?: Headers; body?: Uint8Array }) => Promise<Response>;
    signal: AbortSignal;
  },
) => Promise<Response>;

/** A running proxy. */
export interface FaultProxy extends AsyncDisposable {
  /** `127.0.0.1:PORT`. */
  host: string;
  url: string;
  requests: LoggedRequest[];
  close(): Promise<void>;
}

/** Starts a proxy to `target` (e.g. `http://127.0.0.1:5000`); `handler` defaults to forwarding everything. */
export function startProxy(target: string, handler?: FaultHandler): FaultProxy {
  const requests: LoggedRequest[] = [];
  const started = Date.now();
  const closing = new AbortController();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const u = new URL(req.url);
    const path = u.pathname + u.search;
    const entry: LoggedRequest = {
      method: req.method,
      path: u.pathname,
      range: req.headers.get("range"),
      authorization: req.headers.has("authorization"),
      at: Date.now() - started,
      bytesIn: 0,
      bytesOut: 0,
    };
    requests.push(entry);
    // Request bodies (upload chunks, manifests) are small in tests: read whole, so they go on with a Content-Length.
    let body: Uint8Array | undefined;
    const requestBody = async () => {
      if (body === undefined && req.body) {
        body = new Uint8Array(await new Response(req.body).arrayBuffer());
        entry.bytesIn = body.length;
      }
      return body;
    };
    const forward = async (init: { headers?: Headers; body?: Uint8Array } = {}) => {
      const headers = new Headers(init.headers ?? req.headers);
      headers.delete("host");
      // So the registry names itself by the proxy's address in the Locations it sends, as behind a real proxy.
      headers.set("x-forwarded-host", u.host);
      headers.set("x-forwarded-proto", "http");
      const sent = init.body ?? await requestBody();
      if (init.body) entry.bytesIn = init.body.length;
      const res = await fetch(target + path, {
        method: req.method,
        headers,
        body: sent as Uint8Array<ArrayBuffer> | undefined,
        redirect: "manual",
      });
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers: res.headers });
    };
    const res = handler ? await handler(req, { path: u.pathname, forward, signal: closing.signal }) : await forward();
    if (!res.body) return res;
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          entry.bytesOut += chunk.length;
          c.enqueue(chunk);
        },
      }),
    );
    return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers });
  });
  const host = `127.0.0.1:${server.addr.port}`;
  const close = async () => {
    closing.abort();
    await server.shutdown();
  };
  return { host, url: `http://${host}`, requests, close, [Symbol.asyncDispose]: close };
}

/**
 * What a registry request is, by method and path: `GET manifest`, `HEAD blob`,
 * `POST upload`, `PATCH upload`, `PUT upload`, `GET upload`, `GET referrers`,
 * `PUT manifest`, ... (`GET other` for anything else).
 */
export function requestKind(method: string, path: string): string {
  const m = /^\/v2\/.+\/(manifests|blobs\/uploads|blobs|referrers)\/[^/]*$/.exec(path);
  const what = m
    ? ({ manifests: "manifest", "blobs/uploads": "upload", blobs: "blob", referrers: "referrers" })[m[1]]!
    : "other";
  return `${method} ${what}`;
}

/** Requests by kind ({@link requestKind}), and the bytes they carried each way. */
export interface RequestCounts {
  /** Requests of each kind, e.g. `{ "GET manifest": 2, "GET blob": 3 }`. */
  kinds: Record<string, number>;
  requests: number;
  /** Body bytes sent by the client (uploads), and received by it (downloads). */
  bytesIn: number;
  bytesOut: number;
}

/** Counts `requests` (a proxy's log, or part of it) by kind and adds up their bytes. */
export function countRequests(requests: readonly LoggedRequest[]): RequestCounts {
  const kinds: Record<string, number> = {};
  let bytesIn = 0;
  let bytesOut = 0;
  for (const r of requests) {
    const k = requestKind(r.method, r.path);
    kinds[k] = (kinds[k] ?? 0) + 1;
    bytesIn += r.bytesIn;
    bytesOut += r.bytesOut;
  }
  return { kinds, requests: requests.length, bytesIn, bytesOut };
}

/** True for GETs of a blob (`/v2/NAME/blobs/DIGEST`). */
export function isBlobGet(req: Request, path: string): boolean {
  return req.method === "GET" && /^\/v2\/.+\/blobs\/sha256:[0-9a-f]{64}$/.test(path);
}

/** True for GETs of a manifest. */
export function isManifestGet(req: Request, path: string): boolean {
  return req.method === "GET" && /^\/v2\/.+\/manifests\/[^/]+$/.test(path);
}

/**
 * A copy of `res` whose body is passed through `edit`: called with each chunk and
 * the offset of its first byte, it returns the bytes to send, `"cut"` to drop the
 * connection there, or `"stall"` to send nothing more until the client gives up.
 */
export function editBody(
  res: Response,
  edit: (chunk: Uint8Array, offset: number) => Uint8Array | "cut" | "stall",
  signal: AbortSignal,
): Response {
  const reader = res.body!.getReader();
  const cancelled = new AbortController();
  const stop = AbortSignal.any([signal, cancelled.signal]);
  let offset = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      const out = edit(value, offset);
      offset += value.length;
      if (out === "cut") {
        // Ending the body short of its Content-Length makes the server drop the connection.
        await reader.cancel();
        controller.close();
        return;
      }
      if (out === "stall") {
        await reader.cancel();
        await new Promise((resolve) => {
          const t = setTimeout(resolve, 30_000);
          stop.addEventListener("abort", () => (clearTimeout(t), resolve(undefined)), { once: true });
        });
        controller.close();
        return;
      }
      controller.enqueue(out);
    },
    cancel(reason) {
      cancelled.abort();
      return reader.cancel(reason);
    },
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

/** Passes the first `n` bytes of a body, then `fault` ("cut" or "stall"). */
export function faultAfter(res: Response, n: number, fault: "cut" | "stall", signal: AbortSignal): Response {
  return editBody(res, (chunk, offset) => {
    if (offset + chunk.length <= n) return chunk;
    if (offset >= n) return fault;
    // Send the part before n now; the fault comes with the next chunk.
    return chunk.subarray(0, n - offset);
  }, signal);
}

/**
 * A copy of `res` whose body comes one byte every `everyMs` milliseconds: a
 * connection that never goes quiet long enough to trip an idle timeout.
 */
export function trickle(res: Response, everyMs: number, signal: AbortSignal): Response {
  const reader = res.body!.getReader();
  let pending = new Uint8Array(0);
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (pending.length === 0) {
        const r = await reader.read();
        if (r.done) return controller.close();
        pending = r.value;
      }
      await new Promise((resolve) => {
        const t = setTimeout(resolve, everyMs);
        signal.addEventListener("abort", () => (clearTimeout(t), resolve(undefined)), { once: true });
      });
      if (signal.aborted) return controller.close();
      controller.enqueue(pending.slice(0, 1));
      pending = pending.subarray(1);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

/** A proxy that measures how many blob bodies a client downloads at once. */
export interface OverlapProxy extends FaultProxy {
  /** Most bodies of the watched blobs that were in flight at the same time (reset with `reset`). */
  peak(): number;
  reset(): void;
}

/**
 * Starts a proxy that holds back the last chunk of each watched blob's body for
 * `holdMs`, so a client's downloads overlap as far as it lets them, and records
 * the peak number in flight.
 */
export function startOverlapProxy(target: string, watched: Set<string>, holdMs = 300): OverlapProxy {
  let inFlight = 0;
  let peak = 0;
  const proxy = startProxy(target, async (req, { path, forward }) => {
    if (!isBlobGet(req, path) || !watched.has(path.slice(path.lastIndexOf("/") + 1))) return await forward();
    const res = await forward();
    inFlight++;
    peak = Math.max(peak, inFlight);
    const reader = res.body!.getReader();
    let held: Uint8Array | undefined;
    let done = false;
    const end = () => {
      if (!done) (done = true, inFlight--);
    };
    const body = new ReadableStream<Uint8Array>({
      async pull(c) {
        for (;;) {
          const r = await reader.read();
          if (r.done) {
            await new Promise((resolve) => setTimeout(resolve, holdMs));
            if (held) c.enqueue(held);
            end();
            c.close();
            return;
          }
          const previous = held;
          held = r.value;
          if (previous) return c.enqueue(previous);
        }
      },
      cancel(reason) {
        end();
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: res.status, headers: res.headers });
  });
  return { ...proxy, peak: () => peak, reset: () => void (peak = 0) };
}

/** How {@link startDropProxy} treats one request. */
export interface DropPlan {
  /** Body bytes the client sends before its connection is dropped. */
  afterBytes: number;
  /**
   * true: the head and those bytes reach the registry first (it sees a chunk cut
   * off; distribution 2.8 then forgets the session); false: nothing of the
   * request reaches it (the session is as it was).
   */
  forward: boolean;
}

/** A request the drop proxy saw. */
export interface SeenRequest {
  method: string;
  path: string;
  /** The request was dropped midway. */
  dropped: boolean;
}

/** A running drop proxy. */
export interface DropProxy extends AsyncDisposable {
  host: string;
  requests: SeenRequest[];
  close(): Promise<void>;
}

const CRLF2 = new TextEncoder().encode("\r\n\r\n");

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * A TCP-level proxy to `target` (`http://HOST:PORT`) that can drop a client's
 * connection in the middle of a request body, which an HTTP server in Deno
 * cannot do: for each request (`index` counts requests of the same method),
 * `plan` says whether to drop it. Responses pass through untouched. Requests
 * must carry a Content-Length (deltaship's do).
 */
export function startDropProxy(
  target: string,
  plan: (req: { method: string; path: string; index: number }) => DropPlan | undefined,
): DropProxy {
  const url = new URL(target);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: SeenRequest[] = [];
  const perMethod = new Map<string, number>();
  const conns = new Set<Deno.Conn>();
  const serve = async (client: Deno.Conn) => {
    const upstream = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
    conns.add(client).add(upstream);
    const close = () => {
      for (const c of [client, upstream]) {
        conns.delete(c);
        try {
          c.close();
        } catch { /* closed already */ }
      }
    };
    upstream.readable.pipeTo(client.writable, { preventClose: false }).catch(() => {}).finally(close);
    const reader = client.readable.getReader();
    const writer = upstream.writable.getWriter();
    let buffer = new Uint8Array(0);
    const more = async () => {
      const { done, value } = await reader.read();
      if (done) return false;
      const next = new Uint8Array(buffer.length + value.length);
      next.set(buffer);
      next.set(value, buffer.length);
      buffer = next;
      return true;
    };
    try {
      for (;;) {
        let end: number;
        while ((end = indexOf(buffer, CRLF2)) < 0) if (!(await more())) return close();
        const head = buffer.subarray(0, end + 4);
        const text = new TextDecoder().decode(head);
        const [method, path] = text.split(" ");
        const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(text)?.[1] ?? 0);
        const index = perMethod.get(method) ?? 0;
        perMethod.set(method, index + 1);
        const p = plan({ method, path: path.split("?")[0], index });
        requests.push({ method, path: path.split("?")[0], dropped: p !== undefined });
        buffer = buffer.slice(end + 4);
        if (p) {
          while (buffer.length < Math.min(p.afterBytes, length)) if (!(await more())) break;
          if (p.forward) {
            await writer.write(head);
            await writer.write(buffer.subarray(0, Math.min(p.afterBytes, length)));
            await new Promise((r) => setTimeout(r, 100)); // let the registry read them before the cut
          }
          return close();
        }
        await writer.write(head);
        let left = length;
        while (left > 0) {
          if (buffer.length === 0 && !(await more())) return close();
          const n = Math.min(left, buffer.length);
          await writer.write(buffer.subarray(0, n));
          buffer = buffer.slice(n);
          left -= n;
        }
      }
    } catch {
      close();
    }
  };
  (async () => {
    for await (const conn of listener) serve(conn).catch(() => {});
  })().catch(() => {});
  const host = `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  const close = () => {
    try {
      listener.close();
    } catch { /* closed */ }
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    return Promise.resolve();
  };
  return { host, requests, close, [Symbol.asyncDispose]: close };
}
