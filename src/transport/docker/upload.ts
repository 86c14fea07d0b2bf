/**
 * Blob uploads, as the distribution spec has them: `HEAD` first when the
 * digest is known (the registry may have the blob already), a cross-repository
 * mount (`POST …/blobs/uploads/?mount=DIGEST&from=REPO`) when another
 * repository of the registry is known to hold it, and otherwise a chunked
 * upload: `POST` opens a session, each chunk goes in a `PATCH` with its
 * `Content-Range`, and the last chunk in the `PUT ?digest=` that closes it. The
 * digest is computed as the bytes pass, so a blob made on the fly (a layer
 * compressed as it uploads) needs no temporary file.
 *
 * One chunk is held in memory at a time, which is what makes an upload
 * resumable: when a connection drops (or the registry answers 429/5xx), the
 * session's status (`GET` on its URL, a `Range` header) says how much arrived,
 * and the rest of the chunk is sent again. A registry that lost the session
 * (404; distribution 2.8 drops a session a cut-off chunk was written to) gets a
 * new one and the blob from its start: the content is opened again.
 * `Location` headers may be relative or absolute, and the latest one is used;
 * each must be an http(s) URL on the registry's origin (registry_url.ts).
 *
 * @module
 */
import { DigestMismatchError, FormatError, SizeMismatchError, TransportError } from "../../errors.ts";
import { type Digest, Hasher, parseDigest } from "../../util/digest.ts";
import { type Fetched, isRetryable, type RegistryClient } from "./client.ts";
import { type RegistryUrl, registryUrl, withParam } from "./registry_url.ts";
import { backoffDelay, retryAfterMs, type RetryPolicy, sleep } from "./retry.ts";

/** Where blobs are uploaded to: one repository of one registry. */
export interface UploadTarget {
  client: RegistryClient;
  /** Repository path in the registry. */
  repository: string;
  /** Authorization scope of a push (`repository:REPO:pull,push`). */
  scope: string;
  retry: RetryPolicy;
  /** Bytes per chunk (the memory an upload holds). */
  chunkSize: number;
}

/** A blob to upload. */
export interface BlobUpload {
  /** The blob in messages (`docker://host/repo:tag: layer 2/3`). */
  what: string;
  /** Its digest and size when known beforehand: checked, and the registry asked first. */
  digest?: Digest;
  size?: number;
  /** Repositories of the same registry that may hold it, to mount it from. */
  mountFrom?: readonly string[];
  /** The blob's bytes; called again when an upload must start over. */
  open(): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>;
}

/** How a blob reached the registry. */
export type UploadOutcome = "exists" | "mounted" | "uploaded";

/** A blob in the registry. */
export interface UploadedBlob {
  digest: Digest;
  size: number;
  outcome: UploadOutcome;
  /** Bytes sent (0 when it existed or was mounted); more than `size` when chunks were sent again. */
  sent: number;
  /** Chunks continued after a dropped connection, and uploads started over. */
  resumes: number;
  restarts: number;
}

/** Default bytes per chunk. */
export const DEFAULT_CHUNK_SIZE = 8 << 20;

/** The registry forgot the upload session: it must start over. */
class SessionLost extends Error {}

/** An open upload session. */
interface Session {
  /** The latest `Location` the registry gave. */
  location: RegistryUrl;
  /** Bytes the registry has confirmed. */
  offset: number;
}

/** True when the registry has blob `digest` in the target repository. */
export async function blobExists(target: UploadTarget, digest: Digest, what: string): Promise<boolean> {
  const f = await target.client.request(`/v2/${target.repository}/blobs/${digest}`, {
    method: "HEAD",
    what,
    scope: target.scope,
    pass: [404],
  });
  await settle(f);
  return f.status !== 404;
}

/**
 * Puts one blob into the registry: skipped when it is there (known digest),
 * mounted when it can be, else uploaded in chunks (resumed after dropped
 * connections, started over when the session is lost). `onBytes` is told of
 * newly confirmed bytes.
 */
export async function uploadBlob(
  target: UploadTarget,
  blob: BlobUpload,
  onBytes: (n: number) => void = () => {},
): Promise<UploadedBlob> {
  const known = blob.digest;
  if (known !== undefined && await blobExists(target, known, blob.what)) {
    return { digest: known, size: blob.size ?? 0, outcome: "exists", sent: 0, resumes: 0, restarts: 0 };
  }
  let reported = 0;
  const stats = { sent: 0, resumes: 0, restarts: 0 };
  const progress = (confirmed: number) => {
    if (confirmed > reported) onBytes(confirmed - reported);
    reported = Math.max(reported, confirmed);
  };
  for (let round = 0;; round++) {
    const opened = await openSession(target, blob, round === 0 ? blob.mountFrom ?? [] : []);
    if (opened === "mounted") {
      return { digest: known!, size: blob.size ?? 0, outcome: "mounted", sent: 0, resumes: 0, restarts: 0 };
    }
    try {
      const { digest, size } = await sendAll(target, blob, opened, stats, progress);
      return { digest, size, outcome: "uploaded", ...stats };
    } catch (e) {
      if (!(e instanceof SessionLost)) {
        await cancelSession(target, opened, blob.what);
        throw e;
      }
      if (round + 1 >= target.retry.attempts) {
        throw new TransportError(`${blob.what}: the registry lost the upload ${round + 1} times; giving up`);
      }
      stats.restarts++;
      await sleep(backoffDelay(target.retry, round + 1));
    }
  }
}

/**
 * Opens an upload session (`POST`), trying a mount from each of `mountFrom`
 * first when the digest is known. A registry that cannot mount answers with a
 * session, which is used.
 */
async function openSession(
  target: UploadTarget,
  blob: BlobUpload,
  mountFrom: readonly string[],
): Promise<Session | "mounted"> {
  const base = `/v2/${target.repository}/blobs/uploads/`;
  if (blob.digest !== undefined) {
    for (const from of mountFrom.filter((r) => r !== target.repository)) {
      const query = new URLSearchParams({ mount: blob.digest, from });
      let f: Fetched;
      try {
        f = await target.client.request(`${base}?${query}`, {
          method: "POST",
          what: `${blob.what} (mount from ${from})`,
          scope: `${target.scope} repository:${from}:pull`,
        });
      } catch (e) {
        if (isRetryable(e)) throw e;
        continue; // not allowed to read there, or refused: upload it instead
      }
      await settle(f);
      if (f.status === 201) return "mounted";
      if (f.status === 202) return { location: location(target, f, blob.what), offset: 0 };
    }
  }
  const f = await target.client.request(base, { method: "POST", what: blob.what, scope: target.scope });
  await settle(f);
  if (f.status !== 202) {
    throw new TransportError(`${blob.what}: POST ${base} answered HTTP ${f.status}, expected 202 Accepted`);
  }
  return { location: location(target, f, blob.what), offset: 0 };
}

/** Streams the blob into the session chunk by chunk, then closes it with its digest. */
async function sendAll(
  target: UploadTarget,
  blob: BlobUpload,
  session: Session,
  stats: { sent: number; resumes: number },
  progress: (confirmed: number) => void,
): Promise<{ digest: Digest; size: number }> {
  const hasher = new Hasher(blob.digest ? parseDigest(blob.digest).algorithm : "sha256");
  const buffer = new Uint8Array(target.chunkSize);
  let fill = 0;
  for await (const piece of await blob.open()) {
    hasher.update(piece);
    for (let off = 0; off < piece.length;) {
      const n = Math.min(buffer.length - fill, piece.length - off);
      buffer.set(piece.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (blob.size !== undefined && session.offset + fill > blob.size) {
        throw new SizeMismatchError(blob.what, blob.size, session.offset + fill);
      }
      if (fill === buffer.length) {
        await sendChunk(target, blob, session, buffer, undefined, stats);
        progress(session.offset);
        fill = 0;
      }
    }
  }
  const size = session.offset + fill;
  const digest = hasher.digest();
  if (blob.digest !== undefined && digest !== blob.digest) {
    throw new DigestMismatchError(blob.what, blob.digest, digest);
  }
  if (blob.size !== undefined && size !== blob.size) throw new SizeMismatchError(blob.what, blob.size, size);
  await sendChunk(target, blob, session, buffer.subarray(0, fill), digest, stats);
  progress(size);
  return { digest, size };
}

/**
 * Sends `chunk` (the bytes from `session.offset`) in a `PATCH`, or, with
 * `digest`, in the closing `PUT`. After a dropped connection or a 429/5xx the
 * session's status says where to go on from; a session the registry no longer
 * knows throws {@link SessionLost}.
 */
async function sendChunk(
  target: UploadTarget,
  blob: BlobUpload,
  session: Session,
  chunk: Uint8Array,
  digest: Digest | undefined,
  stats: { sent: number; resumes: number },
): Promise<void> {
  const start = session.offset;
  const end = start + chunk.length;
  const method = digest === undefined ? "PATCH" : "PUT";
  let from = start;
  for (let failures = 0;;) {
    const data = chunk.subarray(from - start);
    const url = digest === undefined ? session.location : withParam(session.location, "digest", digest);
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    if (data.length > 0) headers["content-range"] = `${from}-${from + data.length - 1}`;
    let f: Fetched | undefined;
    let failure: unknown;
    try {
      f = await target.client.request(url, {
        method,
        what: blob.what,
        scope: target.scope,
        headers,
        body: data,
        once: true,
        pass: [404, 416, 429, 500, 502, 503, 504],
      });
      stats.sent += data.length;
    } catch (e) {
      if (!isRetryable(e)) throw e;
      failure = e;
    }
    if (f && f.status === 404) {
      await settle(f);
      throw new SessionLost();
    }
    if (f && f.status >= 200 && f.status < 300) {
      await settle(f);
      if (digest !== undefined) {
        const claimed = f.headers.get("docker-content-digest")?.trim();
        if (claimed && claimed !== digest) {
          throw new DigestMismatchError(`${blob.what} (the registry's digest)`, digest, claimed);
        }
        session.offset = end;
        return;
      }
      session.location = location(target, f, blob.what, session.location);
      const confirmed = rangeEnd(f.headers.get("range")) ?? end;
      if (confirmed === end) {
        session.offset = end;
        return;
      }
      if (confirmed < start || confirmed > end || ++failures >= target.retry.attempts) {
        throw new TransportError(
          `${blob.what}: the registry confirmed ${confirmed} bytes after a chunk ending at ${end}`,
        );
      }
      from = confirmed; // it kept part of the chunk: send the rest
      stats.resumes++;
      continue;
    }
    if (f && f.status === 416) {
      await settle(f);
      if (++failures >= target.retry.attempts) throw new SessionLost();
      from = checkedOffset(rangeEnd(f.headers.get("range")) ?? -1, start, end);
      stats.resumes++;
      continue;
    }
    // Dropped, stalled, or 429/5xx: ask the registry how far it got.
    if (++failures >= target.retry.attempts) {
      if (f) await settle(f);
      if (failure) throw failure;
      throw new TransportError(`${blob.what}: ${method} ${url.pathname} answered HTTP ${f!.status} ${failures} times`);
    }
    const wait = f ? retryAfterMs(f.headers.get("retry-after"), target.retry.maxMs) : undefined;
    if (f) await settle(f);
    await sleep(wait ?? backoffDelay(target.retry, failures));
    const status = await uploadStatus(target, blob, session, digest);
    if (status === "complete") {
      session.offset = end;
      return;
    }
    from = checkedOffset(status, start, end);
    stats.resumes++;
  }
}

/**
 * How many bytes the registry holds for the session (`GET` on its URL), or
 * "complete" when the session is gone because the closing `PUT` (of `digest`)
 * did arrive. A session the registry no longer knows throws {@link SessionLost}.
 */
async function uploadStatus(
  target: UploadTarget,
  blob: BlobUpload,
  session: Session,
  digest: Digest | undefined,
): Promise<number | "complete"> {
  const f = await target.client.request(session.location, {
    what: `${blob.what} (upload status)`,
    scope: target.scope,
    pass: [404],
  });
  await settle(f);
  if (f.status === 404) {
    if (digest !== undefined && await blobExists(target, digest, blob.what)) return "complete";
    throw new SessionLost();
  }
  session.location = location(target, f, blob.what, session.location);
  return rangeEnd(f.headers.get("range")) ?? 0;
}

/** `offset` when it lies within the chunk being sent; else the session is of no further use. */
function checkedOffset(offset: number, start: number, end: number): number {
  if (offset < start || offset > end) throw new SessionLost();
  return offset;
}

/** Bytes a `Range: [bytes=]0-LAST` header confirms (`0-0` is read as none). */
function rangeEnd(header: string | null): number | undefined {
  const m = /^\s*(?:bytes=)?0-(\d+)\s*$/.exec(header ?? "");
  if (!m) return undefined;
  const last = Number(m[1]);
  return last === 0 ? 0 : last + 1;
}

/**
 * The session URL a response gives (relative to the response's URL, or
 * absolute; on the registry's origin), else `fallback`.
 */
function location(target: UploadTarget, f: Fetched, what: string, fallback?: RegistryUrl): RegistryUrl {
  const value = f.headers.get("location");
  if (value === null || value === "") {
    if (fallback) return fallback;
    throw new FormatError(`${what}: the registry opened an upload without a Location header`);
  }
  return registryUrl(value, { kind: "upload Location", base: f.url, origin: target.client.origin }, what);
}

/** Tells the registry to drop a session (best effort: the upload has failed already). */
async function cancelSession(target: UploadTarget, session: Session, what: string): Promise<void> {
  try {
    const f = await target.client.request(session.location, {
      method: "DELETE",
      what,
      scope: target.scope,
      once: true,
      pass: [400, 404, 405],
    });
    await settle(f);
  } catch { /* the registry expires abandoned sessions */ }
}

/** Reads what is left of a (small, usually empty) response, so its connection can serve the next request. */
async function settle(f: Fetched): Promise<void> {
  try {
    await f.bytes(64 * 1024, "response");
  } catch {
    f.cancel();
  }
}
