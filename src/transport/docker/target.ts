/**
 * The write side of the `docker://` transport: a repository of a registry that
 * blobs and manifests are pushed to. Blobs go through upload.ts (at most
 * `maxUploads` at a time), manifests are `PUT` last by the caller, and a
 * manifest with a `subject` is kept discoverable: by the registry itself when it
 * answers with `OCI-Subject` (it has the referrers API), else in the fallback
 * index tagged after the subject (referrers.ts).
 *
 * @module
 */
import { DigestMismatchError, InvalidArgumentError, TransportError } from "../../errors.ts";
import { type Descriptor, EMPTY_CONFIG, type Manifest } from "../../oci/documents.ts";
import { type Digest, sha256 } from "../../util/digest.ts";
import { Semaphore } from "../../util/semaphore.ts";
import type { RegistryClient } from "./client.ts";
import { envSetting, type SettingRange } from "../../util/settings.ts";
import { connect, type ConnectOptions, targetOf } from "./connect.ts";
import { type DockerReference, parseDockerReference } from "./reference.ts";
import { addToFallbackIndex, type RepositoryAccess } from "./referrers.ts";
import { RegistryFacts } from "./registry_facts.ts";
import { loadRegistriesConf } from "./registries_conf.ts";
import type { RetryPolicy } from "./retry.ts";
import {
  blobExists,
  type BlobUpload,
  DEFAULT_CHUNK_SIZE,
  uploadBlob,
  type UploadedBlob,
  type UploadTarget,
} from "./upload.ts";

/** How to open a registry destination. */
export interface DockerTargetOptions extends ConnectOptions {
  /** Most blob uploads in flight at once (default {@link DEFAULT_MAX_UPLOADS}). */
  maxUploads?: number;
}

/** Default for `--max-uploads`. */
export const DEFAULT_MAX_UPLOADS = 2;
/** `DELTASHIP_UPLOAD_CHUNK_SIZE`: each upload in flight holds one chunk. */
const CHUNK_SIZE_RANGE: SettingRange = { min: 1024, max: 256 << 20, unit: "bytes" };

/** A manifest in the registry. */
export interface PushedManifest {
  digest: Digest;
  size: number;
  /** The `OCI-Subject` the registry answered with (it has the referrers API), if any. */
  ociSubject?: string;
}

/**
 * How a manifest with a subject is discoverable: listed by the registry's
 * referrers API, added to the subject's fallback index, or found there already.
 */
export type ReferrerRecord = "referrers-api" | "fallback-tag" | "fallback-tag-present";

/** A repository of a registry, pushed to. */
export class DockerTarget {
  readonly description: string;
  readonly #client: RegistryClient;
  readonly #uploads: Semaphore;
  readonly #upload: UploadTarget;
  readonly #access: RepositoryAccess;

  private constructor(
    /** The reference, its tag only when one was written. */
    readonly reference: DockerReference,
    input: string,
    client: RegistryClient,
    retry: RetryPolicy,
    deadlineMs: number,
    maxUploads: number,
    chunkSize: number,
    facts: RegistryFacts | undefined,
  ) {
    this.description = `docker://${input}`;
    this.#client = client;
    this.#uploads = new Semaphore(maxUploads);
    const scope = `repository:${reference.repository}:pull,push`;
    this.#upload = { client, repository: reference.repository, scope, retry, chunkSize };
    this.#access = {
      client,
      repository: reference.repository,
      scope,
      deadlineMs,
      ...(facts ? { facts: { store: facts, registry: reference.host } } : {}),
    };
  }

  /**
   * Opens `docker://INPUT` (INPUT without the scheme) to push to; a digest in it
   * is refused. `DELTASHIP_UPLOAD_CHUNK_SIZE` sets the bytes per upload chunk.
   */
  static async open(input: string, options: DockerTargetOptions = {}): Promise<DockerTarget> {
    const ref = parseDockerReference(input);
    if (ref.digest) {
      throw new InvalidArgumentError(
        `invalid destination ${
          JSON.stringify(`docker://${input}`)
        }: name a tag, not a digest (the digest is what the push makes)`,
      );
    }
    const colon = input.lastIndexOf(":");
    const explicitTag = colon > input.lastIndexOf("/");
    const reference = explicitTag ? ref : { ...ref, tag: undefined };
    // registries.conf's mirrors and locations are for pulls; its blocked and insecure apply here too.
    const conf = await loadRegistriesConf(options.env ?? {}, options.registriesConf);
    const { client, retry, deadlineMs } = await connect(targetOf(ref, conf), options);
    const chunk = envSetting(options.env ?? {}, "DELTASHIP_UPLOAD_CHUNK_SIZE", CHUNK_SIZE_RANGE, DEFAULT_CHUNK_SIZE);
    return new DockerTarget(
      reference,
      input,
      client,
      retry,
      deadlineMs,
      options.maxUploads ?? DEFAULT_MAX_UPLOADS,
      chunk,
      RegistryFacts.fromEnv(options.env ?? {}),
    );
  }

  /** The tag written in the reference, if any. */
  get tag(): string | undefined {
    return this.reference.tag;
  }

  /** The registry as references name it (`quay.io`, `127.0.0.1:5000`). */
  get registry(): string {
    return this.reference.domain;
  }

  /** The repository path in the registry. */
  get repository(): string {
    return this.reference.repository;
  }

  /**
   * Checks that the registry answers and lets us in, with one small request (a
   * `HEAD` of the empty JSON blob), so a push that cannot succeed fails before
   * any work is done.
   */
  async check(): Promise<void> {
    await blobExists(this.#upload, EMPTY_CONFIG.digest, this.description);
  }

  /** Puts a blob into the repository (see upload.ts), waiting for an upload slot. */
  async pushBlob(blob: BlobUpload, onBytes?: (n: number) => void): Promise<UploadedBlob> {
    const release = await this.#uploads.acquire();
    try {
      return await uploadBlob(this.#upload, blob, onBytes);
    } finally {
      release();
    }
  }

  /**
   * PUTs a manifest (or index) under `reference` (a tag, or its digest); every
   * blob it names must be pushed already. The registry's digest must be the
   * bytes' own.
   */
  async putManifest(bytes: Uint8Array, mediaType: string, reference: string): Promise<PushedManifest> {
    const digest = sha256(bytes);
    const what = `${this.description}: manifest ${digest}`;
    const f = await this.#client.request(`/v2/${this.repository}/manifests/${reference}`, {
      method: "PUT",
      what,
      scope: this.#upload.scope,
      headers: { "content-type": mediaType },
      body: bytes,
    });
    f.cancel();
    if (f.status !== 201 && f.status !== 200) {
      throw new TransportError(`${what}: PUT answered HTTP ${f.status}, expected 201 Created`);
    }
    const claimed = f.headers.get("docker-content-digest")?.trim();
    if (claimed && claimed !== digest) {
      throw new DigestMismatchError(`${what} (the registry's digest)`, digest, claimed);
    }
    const ociSubject = f.headers.get("oci-subject")?.trim();
    return { digest, size: bytes.length, ...(ociSubject ? { ociSubject } : {}) };
  }

  /**
   * Keeps a pushed manifest with a subject discoverable: nothing to do when the
   * registry said `OCI-Subject`; else its descriptor (with artifactType and
   * annotations) goes into the subject's fallback index, unless it is there.
   */
  async recordReferrer(
    pushed: PushedManifest,
    mediaType: string,
    manifest: Pick<Manifest, "artifactType" | "annotations" | "subject"> & { config?: Descriptor },
  ): Promise<ReferrerRecord> {
    if (!manifest.subject) throw new TypeError("recordReferrer: the manifest has no subject");
    if (pushed.ociSubject) {
      // The registry has the referrers API: discovery must ask it again.
      await this.#access.facts?.store.forget(this.#access.facts.registry);
      return "referrers-api";
    }
    const artifactType = manifest.artifactType ?? manifest.config?.mediaType;
    const entry: Descriptor = {
      mediaType,
      digest: pushed.digest,
      size: pushed.size,
      ...(artifactType ? { artifactType } : {}),
      ...(manifest.annotations ? { annotations: manifest.annotations } : {}),
    };
    const added = await addToFallbackIndex(this.#access, manifest.subject.digest, entry, this.description);
    return added ? "fallback-tag" : "fallback-tag-present";
  }

  /** Releases connections. */
  close(): Promise<void> {
    this.#client.close();
    return Promise.resolve();
  }
}
