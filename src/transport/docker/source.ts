/**
 * The `docker://` transport: an image in a registry, read over the OCI
 * distribution API. Manifests and configs are fetched whole (they are small) and
 * verified; layer blobs come as resumable streams, at most `maxDownloads` at a
 * time, and are verified by their consumer as they pass.
 *
 * @module
 */
import { DeltashipError, DigestMismatchError, FormatError, TransportError } from "../../errors.ts";
import type { Descriptor } from "../../oci/documents.ts";
import { INDEX_TYPES, MANIFEST_TYPES, MediaType } from "../../oci/media_types.ts";
import { type Digest, Hasher, parseDigest, sha256, verifyBytes } from "../../util/digest.ts";
import { Semaphore } from "../../util/semaphore.ts";
import { ellipsize } from "../../util/text.ts";
import {
  checkDocument,
  type FetchedDocument,
  type ImageSource,
  type ReferrerList,
  type ReferrerOptions,
} from "../source.ts";
import { resumableBlobStream } from "./blob_stream.ts";
import { isRetryable, type RegistryClient } from "./client.ts";
import { failureText } from "./sanitize.ts";
import { connect, type ConnectOptions } from "./connect.ts";
import { type DockerReference, parseDockerReference } from "./reference.ts";
import { listReferrers } from "./referrers.ts";
import { RegistryFacts } from "./registry_facts.ts";
import { backoffDelay, type RetryPolicy, sleep, withDeadline } from "./retry.ts";

/** How to open a registry source. */
export interface DockerSourceOptions extends ConnectOptions {
  /** Most blob bodies in flight at once (default 2). */
  maxDownloads?: number;
}

/** Every manifest type deltaship reads, in the Accept header of manifest requests. */
const MANIFEST_ACCEPT = [
  MediaType.ociManifest,
  MediaType.ociIndex,
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
].join(", ");

/** Largest manifest or index accepted (as containers/image). */
const MANIFEST_LIMIT = 4 << 20;
/** Largest config accepted. */
const CONFIG_LIMIT = 32 << 20;
/** Default for `--max-downloads`. */
export const DEFAULT_MAX_DOWNLOADS = 2;

/** An image in a registry. */
export class DockerSource implements ImageSource {
  readonly description: string;
  readonly #client: RegistryClient;
  readonly #deadlineMs: number;
  #downloads: Semaphore;
  readonly #downloadsChosen: boolean;
  readonly #retry: RetryPolicy;
  readonly #closed = new AbortController();
  readonly #scope: string;
  readonly #facts: RegistryFacts | undefined;

  private constructor(
    readonly reference: DockerReference,
    input: string,
    client: RegistryClient,
    retry: RetryPolicy,
    maxDownloads: number | undefined,
    deadlineMs: number,
    facts: RegistryFacts | undefined,
  ) {
    this.description = `docker://${input}`;
    this.#client = client;
    this.#deadlineMs = deadlineMs;
    this.#retry = retry;
    this.#downloads = new Semaphore(maxDownloads ?? DEFAULT_MAX_DOWNLOADS);
    this.#downloadsChosen = maxDownloads !== undefined;
    this.#scope = `repository:${reference.repository}:pull`;
    this.#facts = facts;
  }

  /** Opens `docker://INPUT` (INPUT without the scheme). Nothing is fetched yet. */
  static async open(input: string, options: DockerSourceOptions = {}): Promise<DockerSource> {
    const ref = parseDockerReference(input);
    const { client, retry, deadlineMs } = await connect(ref, options);
    const facts = RegistryFacts.fromEnv(options.env ?? {});
    return new DockerSource(ref, input, client, retry, options.maxDownloads, deadlineMs, facts);
  }

  /**
   * Sets how many blob bodies may be in flight when the user did not choose
   * (`--max-downloads`). Delta pulls keep one: each delta blob streams straight
   * into a rebuild, and several at once only add temporary disk and memory.
   */
  defaultMaxDownloads(n: number): void {
    if (!this.#downloadsChosen && this.#downloads.held === 0) this.#downloads = new Semaphore(n);
  }

  /** The reference's tag (`latest` when it names neither tag nor digest). */
  get tag(): string | undefined {
    return this.reference.tag;
  }

  async root(): Promise<FetchedDocument> {
    const { digest: pinned, tag, repository } = this.reference;
    const what = `${this.description}: manifest`;
    const { bytes, headers } = await this.#document(
      `/v2/${repository}/manifests/${pinned ?? tag}`,
      MANIFEST_ACCEPT,
      what,
      MANIFEST_LIMIT,
    );
    const mediaType = contentType(headers);
    if (pinned) {
      verifyBytes(what, bytes, pinned);
      return { bytes, digest: pinned, ...(mediaType ? { mediaType } : {}) };
    }
    const claimed = headers.get("docker-content-digest");
    if (claimed) {
      let algorithm;
      try {
        algorithm = parseDigest(claimed.trim()).algorithm;
      } catch {
        throw new FormatError(
          `${what}: the registry sent a malformed Docker-Content-Digest ${ellipsize(JSON.stringify(claimed), 80)}`,
        );
      }
      const h = new Hasher(algorithm);
      h.update(bytes);
      const actual = h.digest();
      if (actual !== claimed.trim()) {
        throw new DigestMismatchError(`${what} ${tag} (Docker-Content-Digest)`, claimed.trim(), actual);
      }
    }
    return { bytes, digest: sha256(bytes), ...(mediaType ? { mediaType } : {}) };
  }

  /** The longest a document may take (`DELTASHIP_HTTP_DEADLINE_MS`). */
  get documentDeadlineMs(): number {
    return this.#deadlineMs;
  }

  async document(desc: Descriptor, signal?: AbortSignal): Promise<Uint8Array> {
    const isManifest = MANIFEST_TYPES.includes(desc.mediaType) || INDEX_TYPES.includes(desc.mediaType);
    const kind = isManifest ? "manifest" : "blob";
    const what = `${this.description}: ${kind} ${desc.digest}`;
    const limit = isManifest ? MANIFEST_LIMIT : CONFIG_LIMIT;
    if (desc.size > limit) {
      throw new FormatError(`${what} is ${desc.size} bytes, more than the ${limit} deltaship accepts for a document`);
    }
    const { bytes } = await this.#document(
      `/v2/${this.reference.repository}/${isManifest ? "manifests" : "blobs"}/${desc.digest}`,
      isManifest ? MANIFEST_ACCEPT : undefined,
      what,
      limit,
      signal,
    );
    return checkDocument(what, bytes, desc);
  }

  async blob(desc: Descriptor): Promise<ReadableStream<Uint8Array>> {
    const release = await this.#downloads.acquire();
    if (this.#closed.signal.aborted) {
      release();
      throw new TransportError(`${this.description}: source closed`);
    }
    const what = `${this.description}: blob ${desc.digest}`;
    const path = `/v2/${this.reference.repository}/blobs/${desc.digest}`;
    return resumableBlobStream({
      what,
      size: desc.size,
      open: (offset) =>
        this.#client.get(path, {
          what,
          scope: this.#scope,
          headers: offset > 0 ? { range: `bytes=${offset}-` } : undefined,
          pass: [416],
        }),
      retry: this.#retry,
      signal: this.#closed.signal,
      onEnd: release,
    });
  }

  /** The referrers of `subject` of `artifactType` here: the referrers API, else the fallback tag. */
  referrers(subject: Digest, artifactType: string, options?: ReferrerOptions): Promise<ReferrerList> {
    const access = {
      client: this.#client,
      repository: this.reference.repository,
      scope: this.#scope,
      deadlineMs: this.#deadlineMs,
      ...(this.#facts ? { facts: { store: this.#facts, registry: this.reference.host } } : {}),
    };
    return listReferrers(access, subject, artifactType, this.description, options);
  }

  close(): Promise<void> {
    this.#closed.abort(new TransportError(`${this.description}: source closed`));
    this.#client.close();
    return Promise.resolve();
  }

  /**
   * GETs a small document whole, trying again when the body is cut off, all
   * within the document deadline (a body trickled a byte at a time never
   * trips the idle timeout), or until `stop` aborts.
   */
  #document(
    path: string,
    accept: string | undefined,
    what: string,
    limit: number,
    stop?: AbortSignal,
  ): Promise<{ bytes: Uint8Array; headers: Headers }> {
    return withDeadline(what, this.#deadlineMs, async (deadline) => {
      const request = stop ? AbortSignal.any([deadline, stop]) : deadline;
      const signal = AbortSignal.any([this.#closed.signal, request]);
      for (let attempt = 1;; attempt++) {
        const f = await this.#client.get(path, {
          what,
          scope: this.#scope,
          headers: accept ? { accept } : undefined,
          signal: request,
        });
        try {
          return { bytes: await f.bytes(limit, what), headers: f.headers };
        } catch (e) {
          if (!isRetryable(e) || attempt >= this.#retry.attempts) {
            if (e instanceof DeltashipError) throw e;
            throw new TransportError(`${what}: download failed: ${failureText(e)}`);
          }
          await sleep(backoffDelay(this.#retry, attempt), signal);
        }
      }
    });
  }
}

/** The media type of a response, without parameters. */
function contentType(headers: Headers): string | undefined {
  const t = headers.get("content-type")?.split(";")[0].trim();
  return t ? t : undefined;
}
