/**
 * Typed errors. Every failure a user can cause or meet is a {@link DeltashipError}:
 * its message is one line that says what went wrong, with the digest or path at
 * fault, and what to do. The CLI prints that line and exits 1 (2 for
 * {@link UsageError}); anything else is a bug and gets a stack trace.
 *
 * @module
 */

/** Base class of the errors deltaship reports to its user. */
export class DeltashipError extends Error {
  override name = "DeltashipError";
  /** Process exit status the CLI uses for this error. */
  readonly exitCode: number = 1;
}

/**
 * A value the user gave is not usable: a malformed reference, tag name or
 * platform, or a destination that cannot take the output. Thrown by any layer;
 * exit status 2, as for a usage error.
 */
export class InvalidArgumentError extends DeltashipError {
  override name = "InvalidArgumentError";
  override readonly exitCode: number = 2;
}

/** The command line itself is wrong (unknown option, missing argument). Exit status 2. Thrown only by `cli/`. */
export class UsageError extends InvalidArgumentError {
  override name = "UsageError";
}

/** Bytes did not hash to the digest that names them. */
export class DigestMismatchError extends DeltashipError {
  override name = "DigestMismatchError";
  constructor(
    readonly what: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`${what}: digest mismatch: expected ${expected}, got ${actual}`);
  }
}

/** A blob was longer or shorter than its descriptor says. */
export class SizeMismatchError extends DeltashipError {
  override name = "SizeMismatchError";
  constructor(
    readonly what: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`${what}: size mismatch: expected ${expected} bytes, got ${actual}`);
  }
}

/** Something named by the user or by a document does not exist. */
export class NotFoundError extends DeltashipError {
  override name = "NotFoundError";
}

/** Input that is not valid in its format (JSON, tar, OCI document, tar-diff). */
export class FormatError extends DeltashipError {
  override name = "FormatError";
}

/**
 * A tar-diff that cannot be applied: bad framing, a malformed or out-of-range
 * operation, or a source path the source image does not have. Carries the
 * operation's offset in the decompressed op stream and the source path involved.
 */
export class TarDiffError extends FormatError {
  override name = "TarDiffError";
  constructor(message: string, readonly offset?: number, readonly path?: string) {
    super(message);
  }
}

/**
 * A signature check failed: no signature, one that does not verify with the
 * key given, one for another image, or a key that cannot be used.
 */
export class SignatureError extends DeltashipError {
  override name = "SignatureError";
}

/** A media type deltaship does not handle. */
export class UnsupportedError extends DeltashipError {
  override name = "UnsupportedError";
}

/** A path from untrusted input would leave its root. */
export class UnsafePathError extends DeltashipError {
  override name = "UnsafePathError";
  constructor(readonly path: string, detail: string) {
    super(`unsafe path ${JSON.stringify(path)}: ${detail}`);
  }
}

/** The repository on disk is not in a state deltaship can use. */
export class RepositoryError extends DeltashipError {
  override name = "RepositoryError";
}

/** Input passed a limit set to protect the host (layer size, document size, deadline). */
export class LimitError extends DeltashipError {
  override name = "LimitError";
}

/** A network or registry failure. */
export class TransportError extends DeltashipError {
  override name = "TransportError";
}

/**
 * A file-system operation failed for a known operating-system reason (no space
 * left, a name too long, no permission, ...) on a path deltaship names. `code`
 * is the error's name (`ENOSPC`, ...); the original error is the `cause`.
 */
export class FileSystemError extends DeltashipError {
  override name = "FileSystemError";
  constructor(message: string, readonly path: string, readonly code: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * Adds context to an error on its way up: a {@link DeltashipError} becomes a new
 * error of the same class (same exit status, same fields) whose message starts
 * with `context: ` and whose `cause` is the original; anything else is returned
 * as it is. A message that already starts with the context is not prefixed twice.
 */
export function withContext(err: unknown, context: string): unknown {
  if (!(err instanceof DeltashipError)) return err;
  if (err.message.startsWith(`${context}: `) || err.message === context) return err;
  const wrapped: DeltashipError = Object.create(Object.getPrototypeOf(err));
  Object.assign(wrapped, err);
  Object.defineProperty(wrapped, "message", {
    value: `${context}: ${err.message}`,
    writable: true,
    configurable: true,
  });
  Object.defineProperty(wrapped, "cause", { value: err, writable: true, configurable: true });
  Object.defineProperty(wrapped, "stack", {
    value: `${err.name}: ${context}: ${err.message}\n${err.stack?.split("\n").slice(1).join("\n") ?? ""}`,
    writable: true,
    configurable: true,
  });
  return wrapped;
}

type ErrorClass = new (...args: never[]) => DeltashipError;
const classes: Record<string, ErrorClass> = {
  DeltashipError,
  InvalidArgumentError,
  UsageError,
  DigestMismatchError,
  SizeMismatchError,
  NotFoundError,
  FormatError,
  TarDiffError,
  UnsupportedError,
  UnsafePathError,
  RepositoryError,
  LimitError,
  TransportError,
  FileSystemError,
};

/** A structured-clone-safe form of an error, for crossing a Worker boundary. */
export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  fields: Record<string, unknown>;
}

/** Turns any thrown value into a {@link SerializedError}. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) {
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(err)) {
      if (typeof v !== "function" && typeof v !== "object") fields[k] = v;
    }
    return { name: err.name, message: err.message, stack: err.stack, fields };
  }
  return { name: "Error", message: String(err), fields: {} };
}

/** Rebuilds an error of the original class (when it is one of ours) from its serialized form. */
export function deserializeError(s: SerializedError): Error {
  const cls = classes[s.name];
  const err: Error = cls ? Object.create(cls.prototype) : new Error(s.message);
  Object.assign(err, s.fields);
  Object.defineProperty(err, "message", { value: s.message, writable: true, configurable: true });
  if (s.stack) Object.defineProperty(err, "stack", { value: s.stack, writable: true, configurable: true });
  return err;
}
