/**
 * Registry authentication: `WWW-Authenticate` challenges, Basic auth, and Bearer
 * tokens (anonymous or with credentials) fetched from the realm the registry
 * names, cached per scope and fetched again when the registry rejects one.
 *
 * Credentials and tokens never appear in messages: every error here names the
 * registry and where the credentials came from, and {@link Authenticator.redact}
 * scrubs any secret from text that came back from a server.
 *
 * @module
 */
import { TransportError } from "../../errors.ts";
import { type CredentialHelper, type CredentialLookup, type Credentials, isCredentials } from "./credentials.ts";
import { isLoopbackHost } from "./reference.ts";
import { ellipsize } from "../../util/text.ts";
import { registryUrl } from "./registry_url.ts";

/** One challenge of a `WWW-Authenticate` header. */
export interface Challenge {
  /** Lowercased scheme: `bearer`, `basic`, ... */
  scheme: string;
  /** Parameters by lowercased name (`realm`, `service`, `scope`, ...). */
  params: Record<string, string>;
}

/** Parses a `WWW-Authenticate` header (RFC 7235 challenges with auth-params). */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let current: Challenge | undefined;
  let i = 0;
  const s = header;
  const skip = (re: RegExp) => {
    while (i < s.length && re.test(s[i])) i++;
  };
  while (i < s.length) {
    skip(/[\s,]/);
    const token = /^[^\s,=]+/.exec(s.slice(i))?.[0];
    if (!token) {
      i++;
      continue;
    }
    i += token.length;
    skip(/[ \t]/);
    if (s[i] === "=" && current) {
      i++;
      skip(/[ \t]/);
      let value = "";
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < s.length) i++;
          value += s[i++];
        }
        i++;
      } else {
        const m = /^[^\s,]*/.exec(s.slice(i))![0];
        value = m;
        i += m.length;
      }
      current.params[token.toLowerCase()] = value;
    } else {
      current = { scheme: token.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}

/**
 * Fetches a token URL: the HTTP client's request with retries, timeouts and
 * redirects, returning the final response whatever its status.
 */
export type TokenFetch = (url: URL, headers: Headers) => Promise<Response>;

interface Token {
  value: string;
  /** Epoch milliseconds after which the token is fetched again. */
  refreshAt: number;
}

/** Shortest token lifetime assumed, as docker does (seconds). */
const MIN_TOKEN_SECONDS = 60;
const TOKEN_RESPONSE_LIMIT = 1 << 20;

/** The Authorization state for one registry: which scheme it wants, and tokens per scope. */
export class Authenticator {
  #scheme: "none" | "basic" | "bearer" = "none";
  #bearer: { realm: string; service?: string } | undefined;
  #challengeScopes = new Map<string, string>();
  #tokens = new Map<string, { promise: Promise<Token>; token?: Token }>();
  #secrets = new Set<string>();

  /**
   * `registry` names the registry in messages; `insecure` allows sending
   * credentials to a plain-HTTP token realm that is not on this machine.
   */
  readonly #credentials: Credentials | undefined;
  /** The credential helper that keeps this registry's credentials, when an auth file names one. */
  readonly #helper: CredentialHelper | undefined;

  constructor(
    readonly registry: string,
    found: CredentialLookup,
    readonly fetchToken: TokenFetch,
    readonly insecure = false,
  ) {
    const credentials = isCredentials(found) ? found : undefined;
    this.#credentials = credentials;
    this.#helper = isCredentials(found) ? undefined : found;
    if (credentials) {
      this.#secrets.add(credentials.password);
      this.#secrets.add(basicValue(credentials));
    }
  }

  /**
   * The Authorization header to send for a request in `scope` (e.g.
   * `repository:foo:pull`, or several separated by spaces), if any.
   */
  async header(scope: string): Promise<string | undefined> {
    if (this.#scheme === "basic" && this.#credentials) return `Basic ${basicValue(this.#credentials)}`;
    if (this.#scheme !== "bearer") return undefined;
    let entry = this.#tokens.get(scope);
    if (entry?.token && Date.now() >= entry.token.refreshAt) {
      this.#tokens.delete(scope);
      entry = undefined;
    }
    if (!entry) {
      const e: { promise: Promise<Token>; token?: Token } = { promise: this.#fetch(scope) };
      this.#tokens.set(scope, e);
      e.promise.then((t) => (e.token = t), () => {
        if (this.#tokens.get(scope) === e) this.#tokens.delete(scope);
      });
      entry = e;
    }
    return `Bearer ${(await entry.promise).value}`;
  }

  /**
   * Takes in a 401 answer to a request in `scope` that carried `sent`: learns the
   * scheme the registry wants and drops a rejected token, so the next
   * {@link header} can succeed. Throws when no further try can help.
   */
  unauthorized(challengeHeader: string | null, scope: string, sent: string | undefined): void {
    const challenges = parseChallenges(challengeHeader ?? "");
    const bearer = challenges.find((c) => c.scheme === "bearer" && c.params.realm);
    const basic = challenges.find((c) => c.scheme === "basic");
    if (bearer) {
      this.#scheme = "bearer";
      this.#bearer = { realm: bearer.params.realm, service: bearer.params.service };
      if (bearer.params.scope) this.#challengeScopes.set(scope, bearer.params.scope);
      // Drop the token the registry just refused (unless a newer one replaced it meanwhile).
      const entry = this.#tokens.get(scope);
      if (entry?.token && sent === `Bearer ${entry.token.value}`) this.#tokens.delete(scope);
      return;
    }
    if (basic) {
      if (!this.#credentials) throw this.#required();
      if (sent?.startsWith("Basic ")) throw this.#rejected();
      this.#scheme = "basic";
      return;
    }
    const schemes = ellipsize(challenges.map((c) => c.scheme).join(", "), 80) || "none";
    throw new TransportError(
      `${this.registry} answered 401 Unauthorized without a challenge deltaship supports (offered: ${schemes})`,
    );
  }

  /** The error for a registry that still refuses after authenticating. */
  denied(what: string): TransportError {
    if (!this.#credentials) return this.#required(what);
    return new TransportError(
      `${what}: ${this.registry} refused access with the credentials from ${this.#credentials.source} (HTTP 401): check them and the repository name`,
    );
  }

  /** Replaces every credential and token in `text` with `***`. */
  redact(text: string): string {
    let out = text;
    for (const s of this.#secrets) if (s.length >= 3) out = out.replaceAll(s, "***");
    return out;
  }

  #required(what?: string): TransportError {
    const helper = this.#helper;
    const kept = helper
      ? `; its credentials are kept by the credential helper ${helper.program} (${helper.field} in ${helper.file}), ` +
        `which deltaship cannot run (it starts no programs)`
      : "";
    return new TransportError(
      `${what ? `${what}: ` : ""}${this.registry} requires authentication${kept}: pass --creds USER:PASS, ` +
        `or log in with deltaship login ${this.registry} (or skopeo or podman login; see docs/registries.md)`,
    );
  }

  #rejected(): TransportError {
    return new TransportError(
      `authentication to ${this.registry} failed with the credentials from ${
        this.#credentials!.source
      }: check the user name and password`,
    );
  }

  async #fetch(scope: string): Promise<Token> {
    const { realm, service } = this.#bearer!;
    const url: URL = registryUrl(realm, { kind: "token realm" }, `authentication to ${this.registry}`);
    const where = `token server ${url.origin}${url.pathname}`;
    if (this.#credentials && url.protocol === "http:" && !this.insecure && !isLoopbackHost(url.host)) {
      throw new TransportError(
        `${where} is plain HTTP: refusing to send credentials there (pass --tls-verify=false to allow it)`,
      );
    }
    if (service) url.searchParams.set("service", service);
    // One `scope` parameter per scope, as docker sends them (a push that mounts needs two repositories).
    for (const s of mergeScopes(scope, this.#challengeScopes.get(scope))) url.searchParams.append("scope", s);
    const headers = new Headers({ accept: "application/json" });
    if (this.#credentials) {
      url.searchParams.set("account", this.#credentials.username);
      headers.set("authorization", `Basic ${basicValue(this.#credentials)}`);
    }
    const res = await this.fetchToken(url, headers);
    if (res.status === 401 || res.status === 403) {
      await res.body?.cancel();
      throw this.#credentials ? this.#rejected() : this.#required();
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new TransportError(`${where} answered HTTP ${res.status} ${res.statusText} to a token request`);
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      const text = await res.text();
      if (text.length > TOKEN_RESPONSE_LIMIT) throw new Error("too long");
      body = JSON.parse(text);
    } catch {
      throw new TransportError(`${where} sent a token response that is not JSON`);
    }
    const value = typeof body.token === "string" && body.token !== ""
      ? body.token
      : typeof body.access_token === "string"
      ? body.access_token
      : "";
    if (value === "") throw new TransportError(`${where} sent no token`);
    this.#secrets.add(value);
    const seconds = typeof body.expires_in === "number" && body.expires_in > MIN_TOKEN_SECONDS
      ? body.expires_in
      : MIN_TOKEN_SECONDS;
    const issued = typeof body.issued_at === "string" ? Date.parse(body.issued_at) : NaN;
    const start = Number.isNaN(issued) || issued > Date.now() ? Date.now() : issued;
    // Refresh a little early, so a token does not expire between check and use.
    return { value, refreshAt: start + seconds * 1000 - 10_000 };
  }
}

/**
 * The scopes a token is asked for: ours (what the request needs, e.g. `pull,push`)
 * with what the registry's challenge names (which may be less: a `HEAD` is
 * challenged for `pull` only), actions of the same resource joined, so one
 * token serves every request of a push.
 */
export function mergeScopes(ours: string, challenge: string | undefined): string[] {
  const actions = new Map<string, string[]>();
  for (const s of `${ours} ${challenge ?? ""}`.split(" ").filter(Boolean)) {
    const at = s.lastIndexOf(":");
    const resource = at > s.indexOf(":") ? s.slice(0, at) : s;
    const list = actions.get(resource) ?? [];
    for (const a of at > s.indexOf(":") ? s.slice(at + 1).split(",") : []) if (a && !list.includes(a)) list.push(a);
    actions.set(resource, list);
  }
  return [...actions].map(([resource, list]) => (list.length ? `${resource}:${list.join(",")}` : resource));
}

function basicValue(c: Credentials): string {
  const bytes = new TextEncoder().encode(`${c.username}:${c.password}`);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}
