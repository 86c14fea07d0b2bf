/**
 * `login` and `logout`: credentials checked against the registry, then kept
 * in (or removed from) the auth file podman and skopeo write
 * (credentials.ts's `primaryAuthFile`), in the layout they write it: JSON
 * indented with tabs, `auths` keys in order, each entry `{"auth":
 * base64(USER:PASS)}`; other content of the file is kept. The file is
 * replaced atomically (a new file renamed over it), mode 0600, its directory
 * made 0700 when missing, as containers/image's `modifyJSON` does.
 *
 * @module
 */
import { FileSystemError, NotFoundError, UnsupportedError } from "../../errors.ts";
import { writeAll } from "../../util/fs.ts";
import { connect, type ConnectOptions, targetOf } from "./connect.ts";
import { type Credentials, readAuthFile } from "./credentials.ts";
import type { RegistryKey } from "./reference.ts";
import { loadRegistriesConf } from "./registries_conf.ts";

/**
 * Checks that `credentials` let us into the registry of `key`: `GET /v2/`
 * authenticated as the registry asks (a Bearer token without a scope, or
 * Basic), as containers/image's `CheckAuth` does.
 */
export async function checkLogin(key: RegistryKey, credentials: Credentials, options: ConnectOptions): Promise<void> {
  const env = options.env ?? {};
  const conf = await loadRegistriesConf(env, options.registriesConf);
  const target = targetOf(
    { domain: key.domain, host: key.host, repository: key.key.split("/").slice(1).join("/") },
    conf,
  );
  const { client } = await connect(target, {
    ...options,
    creds: `${credentials.username}:${credentials.password}`,
    credsOption: credentials.source,
  });
  try {
    const f = await client.request("/v2/", { what: `login to ${key.domain}`, scope: "" });
    f.cancel();
  } finally {
    client.close();
  }
}

/** Stores `credentials` under `key` in the auth file `path`. */
export async function storeCredentials(path: string, key: string, credentials: Credentials): Promise<void> {
  await editAuthFile(path, key, (auths) => {
    const bytes = new TextEncoder().encode(`${credentials.username}:${credentials.password}`);
    auths[key] = { auth: btoa(String.fromCharCode(...bytes)) };
  });
}

/**
 * Removes the entry for `key` (or for Docker Hub under its other name) from
 * the auth file `path`; a {@link NotFoundError} when there is none.
 */
export async function removeCredentials(path: string, key: string): Promise<void> {
  await editAuthFile(path, key, (auths) => {
    const hub = key === "docker.io" ? "index.docker.io" : key === "index.docker.io" ? "docker.io" : undefined;
    const found = Object.hasOwn(auths, key) ? key : hub !== undefined && Object.hasOwn(auths, hub) ? hub : undefined;
    if (found === undefined) throw new NotFoundError(`not logged in to ${key}: ${path} has no entry for it`);
    delete auths[found];
  });
}

/** Reads the auth file, lets `edit` change its `auths`, and writes it back atomically. */
async function editAuthFile(path: string, key: string, edit: (auths: Record<string, unknown>) => void): Promise<void> {
  const existing = await readAuthFile(path);
  const helper = existing?.credHelpers[key.split("/")[0]];
  if (typeof helper === "string" && helper !== "") {
    throw new UnsupportedError(
      `credentials for ${key} are kept by the credential helper docker-credential-${helper} (credHelpers in ` +
        `${path}), which deltaship cannot run (it starts no programs): use that helper's own tools, or --authfile FILE`,
    );
  }
  const doc = existing?.doc ?? {};
  const auths = { ...(existing?.auths ?? {}) };
  edit(auths);
  const { auths: _, credHelpers, ...rest } = doc;
  const sorted = (o: Record<string, unknown>) => Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
  const out: Record<string, unknown> = { auths: sorted(auths) };
  if (credHelpers !== undefined && Object.keys(credHelpers as object).length > 0) {
    out.credHelpers = sorted(credHelpers as Record<string, unknown>);
  }
  Object.assign(out, rest);
  await writeAtomically(path, new TextEncoder().encode(JSON.stringify(out, null, "\t")));
}

/** Replaces `path` with `bytes`: a new file (mode 0600) in the same directory, synced, renamed over it. */
async function writeAtomically(path: string, bytes: Uint8Array): Promise<void> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const name = path.slice(path.lastIndexOf("/") + 1);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const temp = `${dir}/.${name}.${crypto.randomUUID()}.tmp`;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
    try {
      await writeAll(file, bytes);
      await file.syncData();
    } finally {
      file.close();
    }
    await Deno.chmod(temp, 0o600); // whatever the umask left
    await Deno.rename(temp, path);
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    // The runtime's wording names the temporary file: only its reason is kept.
    const reason = e instanceof Error ? e.message.replace(/:\s*\w+\s+'[^']*'.*$/, "") : String(e);
    const code = e instanceof Error ? e.name : "Error";
    throw new FileSystemError(`cannot write the auth file ${path}: ${reason}`, path, code, { cause: e });
  }
}
