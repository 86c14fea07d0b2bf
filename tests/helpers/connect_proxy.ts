/**
 * Test helper: a forward proxy on 127.0.0.1 that speaks HTTP CONNECT, as
 * HTTPS_PROXY names one: each tunnel asked for is counted (with its target),
 * then bytes are copied both ways. Tunnels go to this machine only (loopback
 * targets; anything else is answered 403 and never connected to); anything
 * but CONNECT is answered 405.
 */

/** A running CONNECT proxy. */
export interface ConnectProxy extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`, for HTTPS_PROXY. */
  url: string;
  /** The `host:port` of every tunnel asked for, in order. */
  tunnels: string[];
}

/** Starts a CONNECT proxy on a free port. */
export function startConnectProxy(): ConnectProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const tunnels: string[] = [];
  const open = new Set<Deno.Conn>();
  const serve = async (client: Deno.Conn) => {
    open.add(client);
    let upstream: Deno.Conn | undefined;
    try {
      const head = await readHead(client);
      const m = /^CONNECT (\S+):(\d+) HTTP\/1\.[01]\r\n/.exec(head);
      if (!m) {
        await client.write(new TextEncoder().encode("HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n"));
        return;
      }
      tunnels.push(`${m[1]}:${m[2]}`);
      if (!/^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/.test(m[1])) {
        await client.write(new TextEncoder().encode("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"));
        return;
      }
      upstream = await Deno.connect({ hostname: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) });
      open.add(upstream);
      await client.write(new TextEncoder().encode("HTTP/1.1 200 Connection Established\r\n\r\n"));
      await Promise.allSettled([
        client.readable.pipeTo(upstream.writable),
        upstream.readable.pipeTo(client.writable),
      ]);
    } catch {
      /* a side closed */
    } finally {
      for (const c of [client, upstream]) {
        if (!c) continue;
        open.delete(c);
        try {
          c.close();
        } catch { /* closed by pipeTo */ }
      }
    }
  };
  const accepting = (async () => {
    for await (const conn of listener) serve(conn);
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    tunnels,
    async [Symbol.asyncDispose]() {
      listener.close();
      for (const c of open) {
        try {
          c.close();
        } catch { /* already closed */ }
      }
      await accepting;
    },
  };
}

/** Reads a request head (through the blank line), byte by byte so nothing after it is consumed. */
async function readHead(conn: Deno.Conn): Promise<string> {
  const one = new Uint8Array(1);
  let head = "";
  while (!head.endsWith("\r\n\r\n")) {
    if (head.length > 8192) throw new Error("request head too long");
    const n = await conn.read(one);
    if (n === null) throw new Error("closed before the request head ended");
    head += String.fromCharCode(one[0]);
  }
  return head;
}
