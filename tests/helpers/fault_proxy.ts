/**
 * Test helper: an HTTP proxy (Deno.serve on 127.0.0.1) in front of a real
 * registry that can inject faults: error statuses, 429 with Retry-After,
 * bodies cut off, stalled or trickled midway, redirects, corrupted bytes. It logs every
 * request so tests can assert what the client did (retries, Range requests,
 * which headers went where).
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
}

/** Decides the answer to one request: `forward()` fetches it from the registry. */
export type FaultHandler = (
  req: Request,
  ctx: { path: string; forward: (init?: { headers?: Headers }) => Promise<Response>; signal: AbortSignal },
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
    requests.push({
      method: req.method,
      path: u.pathname,
      range: req.headers.get("range"),
      authorization: req.headers.has("authorization"),
      at: Date.now() - started,
    });
    const forward = async (init: { headers?: Headers } = {}) => {
      const headers = new Headers(init.headers ?? req.headers);
      headers.delete("host");
      const res = await fetch(target + path, { method: req.method, headers, redirect: "manual" });
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers: res.headers });
    };
    if (!handler) return await forward();
    return await handler(req, { path: u.pathname, forward, signal: closing.signal });
  });
  const host = `127.0.0.1:${server.addr.port}`;
  const close = async () => {
    closing.abort();
    await server.shutdown();
  };
  return { host, url: `http://${host}`, requests, close, [Symbol.asyncDispose]: close };
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
