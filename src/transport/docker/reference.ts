/**
 * Registry image references (`docker://HOST[:PORT]/REPO[:TAG][@DIGEST]`), parsed
 * by the reference grammar of the distribution project and normalised as docker
 * does: a first path component is a registry only when it looks like a host
 * name (has a `.` or `:`, or is `localhost`); otherwise the image is on Docker
 * Hub, where one-component names live under `library/`.
 *
 * @module
 */
import { InvalidArgumentError, UnsupportedError } from "../../errors.ts";
import { type Digest, parseDigest } from "../../util/digest.ts";

/** A parsed, normalised registry reference. */
export interface DockerReference {
  /** The registry as named: `docker.io`, `127.0.0.1:5000`, `[::1]:5000`, `quay.io`. */
  domain: string;
  /** Host and optional port to connect to (`registry-1.docker.io` for Docker Hub). */
  host: string;
  /** Repository path inside the registry, e.g. `library/alpine`. */
  repository: string;
  /** The tag; `latest` when the reference names neither tag nor digest. */
  tag?: string;
  /** The manifest digest, when the reference pins one. */
  digest?: Digest;
}

/** Docker Hub as references name it, and the host its API is served from. */
export const DOCKER_HUB = "docker.io";
const DOCKER_HUB_API = "registry-1.docker.io";
const HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const HOST_RE = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:.]+\\])(?::([0-9]+))?$`,
);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const MAX_NAME = 255;

/**
 * Parses a reference (what follows `docker://`). Bad references are usage errors
 * that quote the reference and say what is wrong with it.
 */
export function parseDockerReference(input: string): DockerReference {
  const bad = (why: string) =>
    new InvalidArgumentError(`invalid reference ${JSON.stringify(`docker://${input}`)}: ${why}`);
  if (input === "") throw bad("empty reference (expected docker://[HOST[:PORT]/]REPO[:TAG] or ...@sha256:HEX)");

  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const d = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(d)) throw bad(`malformed digest ${JSON.stringify(d)}`);
    const algorithm = d.slice(0, d.indexOf(":"));
    if (algorithm !== "sha256" && algorithm !== "sha512") {
      throw new UnsupportedError(
        `reference ${JSON.stringify(`docker://${input}`)}: digest algorithm ${algorithm} is not supported (use sha256)`,
      );
    }
    try {
      parseDigest(d);
    } catch {
      throw bad(`malformed ${algorithm} digest ${JSON.stringify(d)}`);
    }
    digest = d;
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) {
      throw bad(
        `invalid tag ${
          JSON.stringify(tag)
        } (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')`,
      );
    }
  }
  if (rest === "") throw bad("no repository name");

  let domain = DOCKER_HUB;
  let path = rest;
  const slash = rest.indexOf("/");
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes(".") || first.includes(":") || first === "localhost" || first !== first.toLowerCase()) {
      domain = first;
      path = rest.slice(slash + 1);
    }
  }
  if (!HOST_RE.test(domain)) throw bad(`invalid registry host ${JSON.stringify(domain)}`);
  if (HUB_ALIASES.has(domain)) domain = DOCKER_HUB;
  if (domain === DOCKER_HUB && path !== "" && !path.includes("/")) path = `library/${path}`;

  if (path === "") throw bad("no repository name after the registry");
  if (path !== path.toLowerCase()) throw bad("repository name must be lowercase");
  for (const component of path.split("/")) {
    if (!PATH_COMPONENT_RE.test(component)) {
      throw bad(
        component === ""
          ? "empty path component in the repository name"
          : `invalid repository path component ${
            JSON.stringify(component)
          } (lowercase letters and digits, separated by '.', '_', '__' or '-')`,
      );
    }
  }
  if (domain.length + 1 + path.length > MAX_NAME) throw bad(`repository name longer than ${MAX_NAME} characters`);

  const host = domain === DOCKER_HUB ? DOCKER_HUB_API : domain;
  if (tag === undefined && digest === undefined) tag = "latest";
  return { domain, host, repository: path, ...(tag !== undefined ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** The canonical form of a reference: `DOMAIN/REPO[:TAG][@DIGEST]`. */
export function formatDockerReference(ref: DockerReference): string {
  return `${ref.domain}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ""}${
    ref.digest ? `@${ref.digest}` : ""
  }`;
}

/** The host part of `host[:port]` (brackets kept for IPv6). */
export function hostName(hostPort: string): string {
  if (hostPort.startsWith("[")) return hostPort.slice(0, hostPort.indexOf("]") + 1);
  const colon = hostPort.lastIndexOf(":");
  return colon < 0 ? hostPort : hostPort.slice(0, colon);
}

/** True for `localhost`, `127.0.0.0/8` and `[::1]`: registries docker reaches over plain HTTP. */
export function isLoopbackHost(hostPort: string): boolean {
  const host = hostName(hostPort).toLowerCase();
  if (host === "localhost" || host === "[::1]") return true;
  const m = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return m !== null && m.slice(1).every((n) => Number(n) <= 255);
}

/** What `login` and `logout` name: a registry, or a namespace in one (an auth file's key). */
export interface RegistryKey {
  /** The key as auth files hold it: `HOST[:PORT][/NAMESPACE...]`. */
  key: string;
  /** The registry as references name it, and the host[:port] to connect to. */
  domain: string;
  host: string;
}

/**
 * Parses `REGISTRY[/NAMESPACE...]` as login takes it (a leading `https://` or
 * `http://` is dropped, as podman does, and so are trailing slashes).
 */
export function parseRegistryKey(input: string): RegistryKey {
  const key = input.replace(/^https?:\/\//, "").replace(/\/+$/, "");
  const bad = (why: string) => new InvalidArgumentError(`invalid registry ${JSON.stringify(input)}: ${why}`);
  const [first, ...path] = key.split("/");
  if (first === "") throw bad("expected HOST[:PORT][/NAMESPACE...]");
  if (!HOST_RE.test(first)) throw bad(`invalid registry host ${JSON.stringify(first)}`);
  if (/[@]/.test(key) || path.some((c) => c.includes(":"))) {
    throw bad("name a registry or namespace, not an image tag or digest");
  }
  for (const c of path) if (!PATH_COMPONENT_RE.test(c)) throw bad(`invalid namespace component ${JSON.stringify(c)}`);
  const domain = HUB_ALIASES.has(first) ? DOCKER_HUB : first;
  return { key, domain, host: domain === DOCKER_HUB ? DOCKER_HUB_API : domain };
}
