/**
 * TLS material for a registry, from a certificates directory as
 * containers-certs.d(5) lays it out and containers/image reads it
 * (docker/docker_client.go `dockerCertDir`, pkg/tlsclientconfig; commit in
 * docs/design.md, "TLS"): `--cert-dir DIR`, else the first of
 * `~/.config/containers/certs.d/HOST[:PORT]`, `/etc/containers/certs.d/HOST[:PORT]`
 * and `/etc/docker/certs.d/HOST[:PORT]` that exists (HOST as the reference
 * names the registry). In it, every `*.crt` is a CA certificate trusted in
 * addition to the system's; `NAME.cert` with `NAME.key` is a client
 * certificate (Deno's HTTP client presents one: the first pair by name).
 *
 * @module
 */
import { FormatError, InvalidArgumentError } from "../../errors.ts";
import { type Env, homeDir, readConfigText, systemPath } from "./host_config.ts";

/** What a certificates directory holds. */
export interface TlsFiles {
  /** The directory read. */
  dir: string;
  /** CA certificates (PEM), each file's text. */
  caCerts: string[];
  /** A client certificate and its key (PEM), when the directory has one. */
  client?: { cert: string; key: string };
}

/** Most entries read from a certificates directory. */
const MAX_ENTRIES = 256;

/**
 * The certificates directory for the registry `host` (`host[:port]` as the
 * reference names it): `certDir` when given (it must exist), else the first
 * per-host directory that exists; undefined when there is none.
 */
export async function certsDirFor(env: Env, host: string, certDir?: string): Promise<string | undefined> {
  if (certDir !== undefined) {
    if (!(await isDirectory(certDir))) throw new InvalidArgumentError(`--cert-dir ${certDir}: no such directory`);
    return certDir;
  }
  const home = homeDir(env);
  const bases = [
    ...(home ? [`${home}/.config/containers/certs.d`] : []),
    systemPath(env, "/etc/containers/certs.d"),
    systemPath(env, "/etc/docker/certs.d"),
  ];
  for (const base of bases) {
    if (await isDirectory(`${base}/${host}`)) return `${base}/${host}`;
  }
  return undefined;
}

/** Reads the certificates of `dir` (see the module comment). */
export async function readCertsDir(dir: string): Promise<TlsFiles> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (names.length >= MAX_ENTRIES) {
      throw new FormatError(`certificates directory ${dir} has more than ${MAX_ENTRIES} entries`);
    }
    names.push(e.name);
  }
  names.sort();
  const files: TlsFiles = { dir, caCerts: [] };
  const read = async (name: string) => {
    const text = await readConfigText(`${dir}/${name}`, "certificate file");
    if (text === undefined) throw new FormatError(`certificate file ${dir}/${name} went away while it was read`);
    return text;
  };
  for (const name of names) {
    if (name.endsWith(".crt")) files.caCerts.push(await read(name));
    const base = name.endsWith(".cert") ? name.slice(0, -5) : name.endsWith(".key") ? name.slice(0, -4) : undefined;
    if (base === undefined) continue;
    const cert = `${base}.cert`;
    const key = `${base}.key`;
    if (!names.includes(cert) || !names.includes(key)) {
      throw new FormatError(
        name === cert
          ? `client certificate ${dir}/${cert} has no key ${key} beside it (CA certificates end in .crt)`
          : `key ${dir}/${key} has no client certificate ${cert} beside it`,
      );
    }
    if (name === cert && !files.client) files.client = { cert: await read(cert), key: await read(key) };
  }
  return files;
}

/** An HTTP client that trusts `tls`'s CA certificates and presents its client certificate (the runtime's defaults without). */
export function httpClientFor(tls: TlsFiles | undefined): Deno.HttpClient {
  try {
    return Deno.createHttpClient({ caCerts: tls?.caCerts ?? [], ...tls?.client });
  } catch (e) {
    throw new InvalidArgumentError(
      `certificates in ${tls?.dir}: ${e instanceof Error ? e.message : String(e)} ` +
        `(*.crt: CA certificates, NAME.cert and NAME.key: a client certificate, all PEM)`,
    );
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return false;
    if (e instanceof Deno.errors.PermissionDenied) return false; // as containers/image: skipped
    throw e;
  }
}
