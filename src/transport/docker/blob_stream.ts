/**
 * A registry blob as one ReadableStream that survives broken connections: when
 * the body stops early (dropped, reset or stalled), the download continues with
 * a `Range` request from the first byte not yet passed on; a server that ignores
 * `Range` sends the whole blob again and the bytes already passed on are skipped.
 * Chunks go downstream as they arrive (nothing is buffered whole or written to a
 * file); the consumer verifies digest and size.
 *
 * @module
 */
import { DeltashipError, SizeMismatchError, TransportError } from "../../errors.ts";
import { type Fetched, isRetryable } from "./client.ts";
import { failureText } from "./sanitize.ts";
import { backoffDelay, type RetryPolicy, sleep } from "./retry.ts";

/** What a resumable download needs. */
export interface ResumableBlob {
  /** The blob in messages, e.g. `layer sha256:...`. */
  what: string;
  /** Expected size (from the descriptor). */
  size: number;
  /** GETs the blob; from `offset` with a Range request when `offset > 0` (416 must be passed through). */
  open(offset: number): Promise<Fetched>;
  retry: RetryPolicy;
  /** Aborts waits between tries (the source was closed). */
  signal?: AbortSignal;
  /** Called once when the stream ends: finished, failed or cancelled. */
  onEnd(): void;
}

/** Interruptions, in all, before a download is given up even though it progresses. */
const MAX_RESUMES = 100;

/** Statistics of one download, for tests and diagnostics. */
export interface ResumeStats {
  /** Range requests made after an interruption. */
  resumes: number;
  /** Times the server ignored Range and the blob was fetched from the start again. */
  restarts: number;
}

/** The blob's bytes as a stream that resumes after interruptions. */
export function resumableBlobStream(blob: ResumableBlob, stats?: ResumeStats): ReadableStream<Uint8Array> {
  let current: Fetched | undefined;
  let delivered = 0;
  let skip = 0;
  let failures = 0; // interruptions in a row without progress
  let interruptions = 0;
  let ended = false;
  const end = () => {
    if (!ended) {
      ended = true;
      blob.onEnd();
    }
  };

  const connect = async (): Promise<Fetched> => {
    const f = await blob.open(delivered);
    if (f.status === 416) {
      f.cancel();
      throw new SizeMismatchError(blob.what, blob.size, delivered);
    }
    if (delivered > 0 && f.status === 206) {
      const start = /^bytes (\d+)-/.exec(f.headers.get("content-range") ?? "")?.[1];
      if (Number(start) !== delivered) {
        f.cancel();
        throw new TransportError(
          `${blob.what}: asked to resume at byte ${delivered}, the server sent a range starting at ${start ?? "?"}`,
        );
      }
      if (stats) stats.resumes++;
      skip = 0;
    } else {
      if (delivered > 0 && stats) stats.restarts++;
      skip = delivered; // the whole blob again: drop what already went downstream
    }
    return f;
  };

  const interrupted = async (cause: unknown): Promise<void> => {
    current?.cancel();
    current = undefined;
    failures++;
    interruptions++;
    if (failures >= blob.retry.attempts || interruptions > MAX_RESUMES) {
      const detail = failureText(cause);
      throw new TransportError(
        `${blob.what}: download failed after ${delivered} of ${blob.size} bytes (${interruptions} interruptions): ${detail}`,
      );
    }
    await sleep(backoffDelay(blob.retry, failures), blob.signal);
  };

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          current ??= await connect();
          let r: ReadableStreamReadResult<Uint8Array>;
          try {
            r = await current.read();
          } catch (e) {
            if (!isRetryable(e)) throw e;
            await interrupted(e);
            continue;
          }
          if (r.done) {
            if (delivered >= blob.size) {
              current = undefined;
              end();
              controller.close();
              return;
            }
            await interrupted(`the connection closed early`);
            continue;
          }
          let chunk = r.value;
          if (skip > 0) {
            const n = Math.min(skip, chunk.length);
            skip -= n;
            chunk = chunk.subarray(n);
            if (chunk.length === 0) continue;
          }
          delivered += chunk.length;
          failures = 0;
          controller.enqueue(chunk);
          return;
        }
      } catch (e) {
        current?.cancel();
        current = undefined;
        end();
        throw e instanceof DeltashipError || !(e instanceof Error)
          ? e
          : new TransportError(`${blob.what}: download failed after ${delivered} bytes: ${failureText(e)}`);
      }
    },
    cancel() {
      current?.cancel();
      current = undefined;
      end();
    },
  });
}
