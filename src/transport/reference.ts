/**
 * References as users write them, parsed in one place for every command (as
 * containers/image's `alltransports.ParseImageName` serves every transport):
 * sources `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker://...` and, where a
 * command accepts images already in the repository, `repo:NAME` /
 * `repo:@sha256:<hex>`; destinations `oci:DIR[:TAG]` and `oci-archive:FILE[:TAG]`,
 * and `docker://REGISTRY/REPO[:TAG]` where a command pushes.
 * Malformed references are {@link InvalidArgumentError}s (exit status 2).
 *
 * @module
 */
import { InvalidArgumentError, UnsupportedError } from "../errors.ts";
import type { LayoutDest } from "../oci/layout_writer.ts";
import { checkTagName } from "../oci/tag_name.ts";
import type { ConnectOptions } from "./docker/connect.ts";
import { parseDockerReference } from "./docker/reference.ts";
import { DockerSource } from "./docker/source.ts";
import { DockerTarget } from "./docker/target.ts";
import { OciLayoutSource } from "./oci.ts";
import type { ImageSource } from "./source.ts";

/** A parsed reference, with the text it was parsed from (for messages). */
export type ImageReference =
  & { text: string }
  & (
    | { transport: "oci" | "oci-archive"; path: string; ref?: string }
    | { transport: "docker"; reference: string }
    | { transport: "repo"; image: string }
  );

/** A reference to an image in a layout or a registry: what {@link openSource} opens. */
export type SourceReference = Exclude<ImageReference, { transport: "repo" }>;

/** Prefix of references to images already in the repository. */
export const REPO_PREFIX = "repo:";

const SOURCE_FORMS = "oci:DIR[:REF], oci-archive:FILE[:REF] or docker://REGISTRY/REPO[:TAG]";

/**
 * Parses a source reference. With `repo`, `repo:NAME` and `repo:@sha256:<hex>`
 * are accepted too (images already in the repository).
 */
export function parseReference(s: string, options: { repo: true }): ImageReference;
export function parseReference(s: string, options?: { repo?: false }): SourceReference;
export function parseReference(s: string, options: { repo?: boolean } = {}): ImageReference {
  if (s.startsWith("docker://")) return { text: s, transport: "docker", reference: s.slice("docker://".length) };
  if (options.repo && s.startsWith(REPO_PREFIX)) {
    const image = s.slice(REPO_PREFIX.length);
    if (image === "") {
      throw new InvalidArgumentError(`invalid image ${JSON.stringify(s)}: expected repo:NAME or repo:@sha256:<hex>`);
    }
    return { text: s, transport: "repo", image };
  }
  const m = /^(oci|oci-archive):(.*)$/.exec(s);
  if (!m) {
    const forms = options.repo ? `${SOURCE_FORMS}, or repo:NAME` : SOURCE_FORMS;
    throw new InvalidArgumentError(`invalid source ${JSON.stringify(s)}: expected ${forms}`);
  }
  const transport = m[1] as "oci" | "oci-archive";
  const rest = m[2];
  const colon = rest.indexOf(":");
  const path = colon < 0 ? rest : rest.slice(0, colon);
  const ref = colon < 0 ? undefined : rest.slice(colon + 1);
  if (path === "") throw new InvalidArgumentError(`invalid source ${JSON.stringify(s)}: no path`);
  if (ref === "") throw new InvalidArgumentError(`invalid source ${JSON.stringify(s)}: empty reference after ':'`);
  return ref === undefined ? { text: s, transport, path } : { text: s, transport, path, ref };
}

/** A registry destination, `docker://REGISTRY/REPO[:TAG]`: what {@link openTarget} opens. */
export interface RegistryDest {
  transport: "docker";
  /** The reference without `docker://`. */
  reference: string;
}

/** Where a command may write: a layout, or (for commands that push) a registry. */
export type Destination = LayoutDest | RegistryDest;

/** How {@link parseDestination} reads a destination. */
export interface DestinationOptions {
  /** The argument in messages (default "destination"). */
  what?: string;
  /** A destination without a transport prefix is an oci-archive file name (create-delta's OUT). */
  bareIsArchive?: boolean;
  /** For a `docker://` destination, say that writing this (e.g. "a delta") to a registry is not supported. */
  unsupportedRegistry?: string;
  /** Accept `docker://REGISTRY/REPO[:TAG]` (a push). */
  registry?: boolean;
}

/**
 * Parses a destination: `oci:DIR[:TAG]` or `oci-archive:FILE[:TAG]` (TAG a tag,
 * never a digest), and with `registry`, `docker://REGISTRY/REPO[:TAG]`.
 */
export function parseDestination(s: string, options: DestinationOptions & { registry: true }): Destination;
export function parseDestination(s: string, options?: DestinationOptions): LayoutDest;
export function parseDestination(s: string, options: DestinationOptions = {}): Destination {
  const what = options.what ?? "destination";
  if (s.startsWith("docker://") && options.registry) {
    const reference = s.slice("docker://".length);
    if (parseDockerReference(reference).digest) {
      throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(s)}: name a tag, not a digest`);
    }
    return { transport: "docker", reference };
  }
  if (s.startsWith("docker://") && options.unsupportedRegistry) {
    throw new UnsupportedError(
      `cannot write ${options.unsupportedRegistry} to ${s}: write it to oci:DIR or oci-archive:FILE and push that ` +
        `(e.g. with skopeo copy)`,
    );
  }
  if (!/^(oci|oci-archive):/.test(s)) {
    if (options.bareIsArchive) {
      if (s === "") throw new InvalidArgumentError(`${what} path is empty`);
      return { transport: "oci-archive", path: s };
    }
    throw new InvalidArgumentError(
      `invalid ${what} ${JSON.stringify(s)}: expected oci:DIR[:TAG] or oci-archive:FILE[:TAG]`,
    );
  }
  const ref = parseReference(s) as Extract<SourceReference, { transport: "oci" | "oci-archive" }>;
  if (ref.ref !== undefined && /^(sha256|sha512):/.test(ref.ref)) {
    throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(s)}: name a tag, not a digest`);
  }
  if (ref.ref !== undefined) checkTagName(ref.ref);
  return ref.ref === undefined
    ? { transport: ref.transport, path: ref.path }
    : { transport: ref.transport, path: ref.path, tag: ref.ref };
}

/** How to reach registries (docker://): see connect.ts. */
export type RegistryOptions = ConnectOptions;

/** Options a transport may need to open a source. */
export interface OpenOptions extends RegistryOptions {
  /** Most blob downloads in flight (docker://). */
  maxDownloads?: number;
}

/** Options to open a registry destination. */
export interface TargetOptions extends RegistryOptions {
  /** Most blob uploads in flight. */
  maxUploads?: number;
}

/** Opens the registry destination `dest` to push to. Nothing is sent yet. */
export async function openTarget(dest: RegistryDest, options: TargetOptions = {}): Promise<DockerTarget> {
  return await DockerTarget.open(dest.reference, options);
}

/** Opens the source a reference names (parsed, or as the user wrote it). */
export async function openSource(reference: string | SourceReference, options: OpenOptions = {}): Promise<ImageSource> {
  const ref = typeof reference === "string" ? parseReference(reference) : reference;
  switch (ref.transport) {
    case "oci":
    case "oci-archive":
      return await OciLayoutSource.open(ref.path, ref.ref, ref.transport === "oci-archive");
    case "docker":
      return await DockerSource.open(ref.reference, options);
  }
}
