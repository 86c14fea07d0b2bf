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
import {
  type ByteRange,
  fetchRanges,
  type RangePiece,
  type RangePolicy,
  rangePolicySetting,
  type RangeStats,
  TOO_MANY_RANGES,
} from "./byte_ranges.ts";
import { isRetryable, type RegistryClient } from "./client.ts";
import { failureText } from "./sanitize.ts";
import { checkNotBlocked, connect, type ConnectOptions, deadlineSetting } from "./connect.ts";
import { type DockerReference, formatDockerReference, parseDockerReference } from "./reference.ts";
import { loadRegistriesConf, type PullSource, pullSources, type RegistriesConf } from "./registries_conf.ts";
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

/** Where a source reads from, once its manifest was found there (see {@link ImageSource.servedBy}). */
export type ServedBy = NonNullable<ImageSource["servedBy"]>;

/** The registry endpoint a source reads from, connected. */
interface Endpoint {
  /** The reference there (rewritten by registries.conf's location, when it says so). */
  ref: DockerReference;
  client: RegistryClient;
  retry: RetryPolicy;
  scope: string;
  mirror: boolean;
}

/** An image in a registry. */
export class DockerSource implements ImageSource {
  readonly description: string;
  readonly #deadlineMs: number;
  #downloads: Semaphore;
  readonly #downloadsChosen: boolean;
  readonly #closed = new AbortController();
  readonly #facts: RegistryFacts | undefined;
  /** Where the image may be read, in the order tried (registries.conf: mirrors, then the primary location). */
  readonly #sources: PullSource[];
  readonly #options: DockerSourceOptions;
  /** How byte ranges are merged and sent (`DELTASHIP_RANGE_GAP`, `DELTASHIP_RANGES_PER_REQUEST`). */
  readonly rangePolicy: RangePolicy;
  /** The endpoint chosen: the first of the sources that served the manifest (the only one, when there is one). */
  #endpoint: Endpoint | undefined;
  /** registries.conf, kept until an endpoint is chosen. */
  #conf: RegistriesConf | undefined;

  private constructor(
    /** The reference as the user wrote it (the image's name; the tag). */
    readonly reference: DockerReference,
    input: string,
    sources: PullSource[],
    options: DockerSourceOptions,
    facts: RegistryFacts | undefined,
  ) {
    this.description = `docker://${input}`;
    this.#sources = sources;
    this.#options = options;
    this.#deadlineMs = deadlineSetting(options.env ?? {});
    this.rangePolicy = rangePolicySetting(options.env ?? {});
    this.#downloads = new Semaphore(options.maxDownloads ?? DEFAULT_MAX_DOWNLOADS);
    this.#downloadsChosen = options.maxDownloads !== undefined;
    this.#facts = facts;
  }

  /**
   * Opens `docker://INPUT` (INPUT without the scheme). Nothing is fetched yet
   * (but see `connect` for insecure registries); with mirrors configured, the
   * manifest's fetch chooses the endpoint.
   */
  static async open(input: string, options: DockerSourceOptions = {}): Promise<DockerSource> {
    const ref = parseDockerReference(input);
    const env = options.env ?? {};
    const conf = await loadRegistriesConf(env, options.registriesConf);
    const source = new DockerSource(ref, input, pullSources(conf, ref), options, RegistryFacts.fromEnv(env));
    if (source.#sources.length === 1) source.#endpoint = await source.#connect(source.#sources[0], conf);
    else source.#conf = conf;
    return source;
  }

  /** Connects to one pull source. */
  async #connect(source: PullSource, conf: RegistriesConf): Promise<Endpoint> {
    const ref = source.reference;
    checkNotBlocked(conf, `${ref.domain}/${ref.repository}`);
    const target = {
      domain: ref.domain,
      host: ref.host,
      repository: ref.repository,
      insecure: source.endpoint.insecure,
      logicalDomain: this.reference.domain,
    };
    const { client, retry } = await connect(target, this.#options);
    return { ref, client, retry, scope: `repository:${ref.repository}:pull`, mirror: source.mirror };
  }

  /** The endpoint to read from; with several to try, the one that serves the manifest. */
  async #chosen(): Promise<Endpoint> {
    if (!this.#endpoint) await this.root();
    return this.#endpoint!;
  }

  /** Where the image was found: the registry reference that answered, and whether it is a mirror. */
  get servedBy(): ServedBy | undefined {
    const e = this.#endpoint;
    if (!e) return undefined;
    const reference = formatDockerReference(e.ref);
    return { reference, mirror: e.mirror, asNamed: reference === formatDockerReference(this.reference) };
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

  /**
   * The manifest or index the reference names. With mirrors, each endpoint is
   * tried in turn and the first that serves it is kept for everything after;
   * when all fail, the primary location's error is reported, naming what each
   * mirror answered (as containers/image's `newImageSource`).
   */
  async root(): Promise<FetchedDocument> {
    if (this.#endpoint) return await this.#rootAt(this.#endpoint);
    const failures: { ref: DockerReference; error: unknown }[] = [];
    for (const source of this.#sources) {
      let endpoint: Endpoint | undefined;
      try {
        endpoint = await this.#connect(source, this.#conf!);
        const doc = await this.#rootAt(endpoint);
        this.#endpoint = endpoint;
        this.#conf = undefined;
        return doc;
      } catch (e) {
        endpoint?.client.close();
        if (this.#closed.signal.aborted) throw e;
        failures.push({ ref: source.reference, error: e });
      }
    }
    const primary = failures.pop()!.error;
    const tried = failures.map((f) => `${formatDockerReference(f.ref)}: ${errorLine(f.error)}`).join("; ");
    if (primary instanceof DeltashipError) {
      primary.message = `${primary.message} (mirrors also failed: ${tried})`;
      throw primary;
    }
    throw new TransportError(`${this.description}: ${errorLine(primary)} (mirrors also failed: ${tried})`);
  }

  /** The manifest the reference names, fetched from `endpoint`. */
  async #rootAt(endpoint: Endpoint): Promise<FetchedDocument> {
    const { digest: pinned, tag, repository } = endpoint.ref;
    const what = `${this.description}: manifest`;
    const { bytes, headers } = await this.#document(
      endpoint,
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
    const endpoint = await this.#chosen();
    const { bytes } = await this.#document(
      endpoint,
      `/v2/${endpoint.ref.repository}/${isManifest ? "manifests" : "blobs"}/${desc.digest}`,
      isManifest ? MANIFEST_ACCEPT : undefined,
      what,
      limit,
      signal,
    );
    return checkDocument(what, bytes, desc);
  }

  async blob(desc: Descriptor): Promise<ReadableStream<Uint8Array>> {
    const endpoint = await this.#chosen();
    const release = await this.#downloads.acquire();
    if (this.#closed.signal.aborted) {
      release();
      throw new TransportError(`${this.description}: source closed`);
    }
    const what = `${this.description}: blob ${desc.digest}`;
    const path = `/v2/${endpoint.ref.repository}/blobs/${desc.digest}`;
    return resumableBlobStream({
      what,
      size: desc.size,
      open: (offset) =>
        endpoint.client.get(path, {
          what,
          scope: endpoint.scope,
          headers: offset > 0 ? { range: `bytes=${offset}-` } : undefined,
          pass: [416],
        }),
      retry: endpoint.retry,
      signal: this.#closed.signal,
      onEnd: release,
    });
  }

  /**
   * Byte ranges of a blob (see byte_ranges.ts), one request at a time, within
   * the download slots blobs share.
   */
  async *blobRanges(desc: Descriptor, ranges: readonly ByteRange[], stats?: RangeStats): AsyncGenerator<RangePiece> {
    const endpoint = await this.#chosen();
    const release = await this.#downloads.acquire();
    try {
      const what = `${this.description}: blob ${desc.digest}`;
      const path = `/v2/${endpoint.ref.repository}/blobs/${desc.digest}`;
      const source = {
        what,
        size: desc.size,
        attempts: endpoint.retry.attempts,
        open: (range: string) =>
          endpoint.client.get(path, {
            what,
            scope: endpoint.scope,
            headers: { range },
            signal: this.#closed.signal,
            pass: TOO_MANY_RANGES,
          }),
      };
      yield* fetchRanges(source, ranges, this.rangePolicy, stats);
    } finally {
      release();
    }
  }

  /**
   * The referrers of `subject` of `artifactType`, listed by the endpoint that
   * serves the image (a mirror, when one does): the referrers API, else the fallback tag.
   */
  async referrers(subject: Digest, artifactType: string, options?: ReferrerOptions): Promise<ReferrerList> {
    const endpoint = await this.#chosen();
    const access = {
      client: endpoint.client,
      repository: endpoint.ref.repository,
      scope: endpoint.scope,
      deadlineMs: this.#deadlineMs,
      ...(this.#facts ? { facts: { store: this.#facts, registry: endpoint.ref.host } } : {}),
    };
    return await listReferrers(access, subject, artifactType, this.description, options);
  }

  close(): Promise<void> {
    this.#closed.abort(new TransportError(`${this.description}: source closed`));
    this.#endpoint?.client.close();
    return Promise.resolve();
  }

  /**
   * GETs a small document whole, trying again when the body is cut off, all
   * within the document deadline (a body trickled a byte at a time never
   * trips the idle timeout), or until `stop` aborts.
   */
  #document(
    endpoint: Endpoint,
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
        const f = await endpoint.client.get(path, {
          what,
          scope: endpoint.scope,
          headers: accept ? { accept } : undefined,
          signal: request,
        });
        try {
          return { bytes: await f.bytes(limit, what), headers: f.headers };
        } catch (e) {
          if (!isRetryable(e) || attempt >= endpoint.retry.attempts) {
            if (e instanceof DeltashipError) throw e;
            throw new TransportError(`${what}: download failed: ${failureText(e)}`);
          }
          await sleep(backoffDelay(endpoint.retry, attempt), signal);
        }
      }
    });
  }
}

/** An error's message, for a list of what mirrors answered. */
function errorLine(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The media type of a response, without parameters. */
function contentType(headers: Headers): string | undefined {
  const t = headers.get("content-type")?.split(";")[0].trim();
  return t ? t : undefined;
}
