/**
 * Test helper: a real registry (Debian's `docker-registry`, the CNCF
 * distribution registry) on 127.0.0.1 at a free port, with its config and
 * storage in a temporary directory, stopped and removed on dispose. Also: pushing
 * OCI layouts into it with skopeo. Reusable by benchmarks and delta tests.
 */
import { run } from "./interop.ts";

/** A running registry. */
export interface Registry extends AsyncDisposable {
  /** `127.0.0.1:PORT`, as docker:// references name it. */
  host: string;
  port: number;
  /** `http://127.0.0.1:PORT` (`https://` with TLS). */
  url: string;
  /** The temporary directory holding config, storage and log. */
  dir: string;
  /** The filesystem storage root (blobs under `docker/registry/v2/blobs`). */
  storage: string;
  /** The registry's log so far. */
  log(): Promise<string>;
  /** Stops the registry (idempotent); the directory is removed unless `keep`. */
  stop(keep?: boolean): Promise<void>;
}

/** How to start a registry. */
export interface RegistryOptions {
  /** The config's `auth` section, e.g. `{ htpasswd: { realm, path } }` or `{ token: {...} }`. */
  auth?: Record<string, unknown>;
  /** Storage root to use instead of a fresh one (to share blobs between registries). */
  storage?: string;
  /** Parent for the temporary directory. */
  tmpRoot?: string;
  /**
   * Serve HTTPS with this certificate and key (PEM files); `ca` is trusted to
   * reach it (a self-signed certificate is its own); with `clientCa`, clients
   * must present a certificate signed by it.
   */
  tls?: { certificate: string; key: string; ca: string; clientCa?: string };
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Starts `docker-registry serve CONFIG` and waits until `/v2/` answers. */
export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  const dir = await Deno.makeTempDir({ prefix: "deltaship-registry-", dir: options.tmpRoot });
  const storage = options.storage ?? `${dir}/storage`;
  await Deno.mkdir(storage, { recursive: true });
  let lastError: unknown;
  for (let tries = 0; tries < 5; tries++) {
    try {
      return await launch(dir, storage, freePort(), options);
    } catch (e) {
      lastError = e; // most likely the port was taken meanwhile
    }
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  throw lastError;
}

async function launch(dir: string, storage: string, port: number, options: RegistryOptions): Promise<Registry> {
  const config = {
    version: "0.1",
    log: { level: "warn", formatter: "text", accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: storage },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: {
      addr: `127.0.0.1:${port}`,
      secret: "deltaship-test-secret",
      ...(options.tls
        ? {
          tls: {
            certificate: options.tls.certificate,
            key: options.tls.key,
            ...(options.tls.clientCa ? { clientcas: [options.tls.clientCa] } : {}),
          },
        }
        : {}),
    },
    ...(options.auth ? { auth: options.auth } : {}),
  };
  const configPath = `${dir}/config-${port}.yml`;
  await Deno.writeTextFile(configPath, JSON.stringify(config, null, 2)); // JSON is YAML
  const logPath = `${dir}/registry-${port}.log`;
  const logFile = await Deno.open(logPath, { write: true, create: true, truncate: true });
  const child = new Deno.Command("docker-registry", {
    args: ["serve", configPath],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logWriter = logFile.writable.getWriter();
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s) await logWriter.write(chunk);
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]).finally(() => logWriter.close());
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const url = `${options.tls ? "https" : "http"}://127.0.0.1:${port}`;
  const probe = Deno.createHttpClient({});
  let stopped = false;
  const stop = async (keep = false) => {
    if (!stopped) {
      stopped = true;
      if (!exited) child.kill("SIGTERM");
      await status;
      await drained.catch(() => {});
    }
    if (!keep) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  const log = () => Deno.readTextFile(logPath).catch(() => "");

  const deadline = Date.now() + 15_000;
  for (;; await new Promise((r) => setTimeout(r, 50))) {
    if (exited) {
      probe.close();
      await stop(true);
      throw new Error(`docker-registry exited at start: ${await log()}`);
    }
    try {
      if (options.tls) {
        // Listening is enough: what a TLS client makes of its certificate is what tests check.
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        break;
      }
      const res = await fetch(`${url}/v2/`, { client: probe });
      await res.body?.cancel();
      if (res.status === 200 || res.status === 401) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      probe.close();
      const text = await log();
      await stop();
      throw new Error(`docker-registry did not answer on ${url} within 15 s: ${text}`);
    }
  }
  probe.close();
  return {
    host: `127.0.0.1:${port}`,
    port,
    url,
    dir,
    storage,
    log,
    stop,
    [Symbol.asyncDispose]: () => stop(),
  };
}

/** Options for {@link pushImage}. */
export interface PushOptions {
  /** Copy every image of an index (`skopeo copy --all`). */
  all?: boolean;
  /** `USER:PASS` for the registry. */
  creds?: string;
  /** Manifest format to convert to (`v2s2`: Docker schema 2). */
  format?: "oci" | "v2s2";
  /** Layer compression to recompress to (`--dest-compress-format`). */
  compressFormat?: "zstd:chunked";
}

/** Pushes `source` (e.g. `oci:DIR:TAG`) to `docker://HOST/REPO:TAG` with skopeo over plain HTTP. */
export async function pushImage(source: string, dest: string, options: PushOptions = {}): Promise<void> {
  await run(
    "skopeo",
    "--insecure-policy",
    "copy",
    "--quiet",
    "--dest-tls-verify=false",
    ...(options.all ? ["--all"] : []),
    ...(options.creds ? ["--dest-creds", options.creds] : []),
    ...(options.format ? ["--format", options.format] : []),
    ...(options.compressFormat ? ["--dest-compress-format", options.compressFormat] : []),
    source,
    dest,
  );
}

/** Copies `source` (`docker://HOST/REPO:TAG`, plain HTTP) out to `dest` (e.g. `oci:DIR:TAG`) with skopeo, every blob verified. */
export async function copyFromRegistry(source: string, dest: string, options: { creds?: string } = {}): Promise<void> {
  await run(
    "skopeo",
    "--insecure-policy",
    "copy",
    "--quiet",
    "--src-tls-verify=false",
    ...(options.creds ? ["--src-creds", options.creds] : []),
    source,
    dest,
  );
}

/** The path of a blob in a registry's filesystem storage. */
export function storedBlobPath(storage: string, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return `${storage}/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`;
}

/** The exact manifest bytes a registry serves for `reference` (`HOST/REPO:TAG`), read with skopeo. */
export async function rawManifest(reference: string): Promise<Uint8Array> {
  const out = await new Deno.Command("skopeo", {
    args: ["inspect", "--raw", "--tls-verify=false", `docker://${reference}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`skopeo inspect --raw ${reference}: ${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}
