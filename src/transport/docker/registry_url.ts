/**
 * URLs a registry hands us: an upload's `Location`, a referrers page's
 * `Link: <…>; rel="next"`, a redirect's `Location`, a token realm. Every one is
 * checked here, by {@link registryUrl}, before anything is sent to it:
 *
 * - resolved against the URL of the answer that named it (a realm must be absolute);
 * - `http:` or `https:` only: never `file:`, `data:` or anything else fetch() would open;
 * - no user info (`user:pass@`): credentials come from the user, never from a URL;
 * - on the registry's own origin (scheme, host and port), unless the protocol lets
 *   the registry send us elsewhere: a redirect (blob storage, a CDN) or a token realm.
 *
 * What comes out is a {@link RegistryUrl}, the only kind of absolute URL the
 * HTTP client accepts. Credentials (Authorization, Basic or Bearer) go only to
 * the origin they are for ({@link sendsCredentials}): the registry's, or the
 * token realm's for the Basic credentials a token request carries; never on a
 * redirect to another origin. Foreign-layer URLs in descriptors (`urls`) are
 * never followed: blobs come from the registry.
 *
 * @module
 */
import { TransportError } from "../../errors.ts";

/** An absolute http(s) URL that {@link registryUrl} checked (or one built from the registry's origin). */
export type RegistryUrl = URL & { readonly __registryUrl: unique symbol };

/** Where a URL came from, and so where it may lead. */
export type UrlRule =
  /** Kinds that must stay on the registry's origin: `base` is the answer's URL. */
  | { kind: "upload Location" | "next-page Link"; base: URL; origin: string }
  /** A redirect may lead to another origin (blob storage); credentials do not follow it there. */
  | { kind: "redirect"; base: URL }
  /** A token server may be anywhere; it must be named by an absolute URL. */
  | { kind: "token realm" };

/** A URL from a registry that deltaship will not follow. */
export class RegistryUrlError extends TransportError {}

/** Longest scheme quoted in a message (the URL parser allows only `[a-z0-9+.-]` there). */
const SCHEME_SHOWN = 24;

/**
 * Checks `value`, a URL a registry sent (see the module comment for the
 * rules), and returns it resolved. `what` names the request it came with.
 */
export function registryUrl(value: string, rule: UrlRule, what: string): RegistryUrl {
  const said = `${what}: the registry's ${rule.kind}`;
  let url: URL;
  try {
    url = new URL(value.trim(), "base" in rule ? rule.base : undefined);
  } catch {
    throw new RegistryUrlError(`${said} is not ${"base" in rule ? "a URL" : "an absolute URL"}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    const scheme = url.protocol.length > SCHEME_SHOWN ? `${url.protocol.slice(0, SCHEME_SHOWN)}...` : url.protocol;
    throw new RegistryUrlError(`${said} has the scheme ${scheme}; only http and https URLs are followed`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new RegistryUrlError(`${said} has user info in it; refused`);
  }
  if ("origin" in rule && url.origin !== rule.origin) {
    throw new RegistryUrlError(`${said} is on ${url.origin}, not on the registry (${rule.origin}); refused`);
  }
  return url as RegistryUrl;
}

/** The URL of `path` (absolute, starting with `/`) on the registry at `origin`. */
export function pathUrl(path: string, origin: string): RegistryUrl {
  if (!path.startsWith("/") || path.startsWith("//")) throw new TypeError(`not a path on the registry: ${path}`);
  return new URL(path, origin) as RegistryUrl;
}

/** `url` with the query parameter `name` set to `value`: the same origin and path. */
export function withParam(url: RegistryUrl, name: string, value: string): RegistryUrl {
  const copy = new URL(url);
  copy.searchParams.set(name, value);
  return copy as RegistryUrl;
}

/** True when a request to `url` may carry the credentials meant for `origin`. */
export function sendsCredentials(url: URL, origin: string): boolean {
  return url.origin === origin;
}
