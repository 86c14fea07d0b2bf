/**
 * When and how long to wait before trying a registry request again: bounded
 * attempts, exponential backoff with jitter, and the server's `Retry-After`;
 * and the total deadline of a document.
 *
 * @module
 */
import { TransportError } from "../../errors.ts";

/** How often and how patiently to retry. */
export interface RetryPolicy {
  /** Tries in all, the first included. */
  attempts: number;
  /** Delay before the second try; doubled for each further one. */
  baseMs: number;
  /** Longest delay between tries (also caps `Retry-After`). */
  maxMs: number;
}

/** The default: 5 tries, 250 ms doubling, at most 30 s apart. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, baseMs: 250, maxMs: 30_000 };

/** The delay before try `attempt + 1` after `attempt` failed tries (1-based), with ±25% jitter. */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(exp * (0.75 + Math.random() * 0.5));
}

/**
 * Milliseconds a `Retry-After` header asks to wait (delta-seconds or an HTTP
 * date), capped at `maxMs`; undefined when absent or unreadable.
 */
export function retryAfterMs(header: string | null, maxMs: number, now = Date.now()): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const when = Date.parse(text);
    if (Number.isNaN(when)) return undefined;
    ms = Math.max(0, when - now);
  }
  return Math.min(ms, maxMs);
}

/** Waits `ms`, or until `signal` aborts (then rejects with its reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs `work` with a signal that aborts after `ms`; then fails with a one-line
 * TransportError naming `what` and the deadline, whatever `work` was doing
 * (waiting for a response, reading a trickling body, sleeping between tries).
 */
export async function withDeadline<T>(what: string, ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new TransportError(
        `${what}: not received within the deadline of ${ms / 1000} s (DELTASHIP_HTTP_DEADLINE_MS changes it)`,
      );
      controller.abort(err);
      reject(err);
    }, ms);
  });
  try {
    return await Promise.race([work(controller.signal), expired]);
  } finally {
    clearTimeout(timer);
  }
}
