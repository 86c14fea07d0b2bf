/**
 * Test helper: a Bearer token issuer for a registry configured with
 * `auth: token:`. It listens on 127.0.0.1, checks Basic credentials, and signs
 * JWTs (ES256) with a key whose self-signed certificate (made with openssl) the
 * registry trusts through `rootcertbundle`; the token header carries the
 * certificate in `x5c`, which is how the registry finds the signing key.
 */
import { Buffer } from "node:buffer";
import { createPrivateKey, sign } from "node:crypto";
import { selfSign } from "./certs.ts";

/** One token request the issuer answered. */
export interface TokenRequest {
  scopes: string[];
  service: string | null;
  account: string | null;
  /** The user the credentials proved, or undefined (anonymous or wrong). */
  user?: string;
  status: number;
}

/** A running issuer. */
export interface TokenIssuer extends AsyncDisposable {
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate bundle the registry must trust. */
  certPath: string;
  requests: TokenRequest[];
  /** The registry config's `auth` section for this issuer. */
  registryAuth(): Record<string, unknown>;
  close(): Promise<void>;
}

/** Who may do what. */
export interface IssuerOptions {
  /** user name → password; these users get every action they ask for. */
  users: Record<string, string>;
  /** Repositories anyone (no credentials) may pull. */
  publicRepos?: string[];
}

const b64url = (bytes: Uint8Array | string) =>
  (typeof bytes === "string" ? Buffer.from(bytes) : Buffer.from(bytes)).toString("base64url");

/** Creates a key and certificate in `dir` and starts the issuer. */
export async function startTokenIssuer(dir: string, options: IssuerOptions): Promise<TokenIssuer> {
  const keyPath = `${dir}/issuer-key.pem`;
  const certPath = `${dir}/issuer-cert.pem`;
  await selfSign(keyPath, certPath, "/CN=deltaship-test-issuer");
  const key = createPrivateKey(await Deno.readTextFile(keyPath));
  const certDer = (await Deno.readTextFile(certPath)).replace(/-----[A-Z ]+-----/g, "").replace(/\s+/g, "");
  const service = "deltaship-test-registry";
  const issuer = "deltaship-test-issuer";
  const requests: TokenRequest[] = [];

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const u = new URL(req.url);
    const scopes = u.searchParams.getAll("scope").flatMap((s) => s.split(" ")).filter(Boolean);
    const entry: TokenRequest = {
      scopes,
      service: u.searchParams.get("service"),
      account: u.searchParams.get("account"),
      status: 200,
    };
    requests.push(entry);
    const auth = req.headers.get("authorization");
    if (auth !== null) {
      const m = /^Basic (.+)$/.exec(auth);
      const decoded = m ? atob(m[1]) : "";
      const colon = decoded.indexOf(":");
      const user = decoded.slice(0, colon);
      if (colon < 0 || !(user in options.users) || options.users[user] !== decoded.slice(colon + 1)) {
        entry.status = 401;
        return Response.json({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }, { status: 401 });
      }
      entry.user = user;
    }
    const access = scopes.map((scope) => {
      const [type, name, actions] = scope.split(":");
      const granted = entry.user !== undefined
        ? actions.split(",")
        : options.publicRepos?.includes(name)
        ? actions.split(",").filter((a) => a === "pull")
        : [];
      return { type, name, actions: granted };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "ES256", x5c: [certDer] };
    const claims = {
      iss: issuer,
      sub: entry.user ?? "",
      aud: service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: crypto.randomUUID(),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign("sha256", Buffer.from(signingInput), { key, dsaEncoding: "ieee-p1363" });
    const token = `${signingInput}.${b64url(signature)}`;
    return Response.json({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
  });
  const realm = `http://127.0.0.1:${server.addr.port}/token`;
  const close = () => server.shutdown();
  return {
    realm,
    service,
    issuer,
    certPath,
    requests,
    registryAuth: () => ({ token: { realm, service, issuer, rootcertbundle: certPath } }),
    close,
    [Symbol.asyncDispose]: close,
  };
}
