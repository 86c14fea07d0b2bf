/**
 * Test helper: a throwaway certificate authority and a server certificate for
 * 127.0.0.1 signed by it (with openssl), for HTTPS registries in tests.
 */
import { run } from "./interop.ts";

/** PEM files: the CA certificate to trust, and the server's certificate and key. */
export interface ServerCertificate {
  ca: string;
  certificate: string;
  key: string;
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/**
 * Writes a new P-256 key to `key` and a certificate for `subject` signed with
 * it to `certificate` (`openssl req -x509`, valid 2 days); `extra` are more
 * `openssl req` arguments.
 */
export async function selfSign(key: string, certificate: string, subject: string, ...extra: string[]): Promise<void> {
  await run(
    "openssl",
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    key,
    "-out",
    certificate,
    "-days",
    "2",
    "-subj",
    subject,
    ...extra,
  );
}

/**
 * Writes `DIR/NAME.pem` and its key `DIR/NAME-key.pem`, for `subject` with the
 * extensions `ext`, signed by the CA of {@link makeServerCertificate} in `dir`.
 */
async function signedByCa(
  dir: string,
  name: string,
  subject: string,
  ext: string,
): Promise<{ certificate: string; key: string }> {
  const certificate = `${dir}/${name}.pem`;
  const key = `${dir}/${name}-key.pem`;
  await run("openssl", "req", ...EC_KEY, "-keyout", key, "-out", `${dir}/${name}.csr`, "-subj", subject);
  await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
  await run(
    "openssl",
    "x509",
    "-req",
    "-in",
    `${dir}/${name}.csr`,
    "-CA",
    `${dir}/ca.pem`,
    "-CAkey",
    `${dir}/ca-key.pem`,
    "-CAcreateserial",
    "-out",
    certificate,
    "-days",
    "2",
    "-extfile",
    `${dir}/${name}.ext`,
  );
  return { certificate, key };
}

/** Writes a CA and a server certificate for IP 127.0.0.1 into `dir`. */
export async function makeServerCertificate(dir: string): Promise<ServerCertificate> {
  const ca = `${dir}/ca.pem`;
  await selfSign(`${dir}/ca-key.pem`, ca, "/CN=deltaship test CA");
  const server = await signedByCa(
    dir,
    "server",
    "/CN=127.0.0.1",
    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
  );
  return { ca, ...server };
}

/**
 * Writes a self-signed certificate for IP 127.0.0.1 as `openssl req -x509`
 * makes one (basicConstraints CA:TRUE), and its key, into `dir`.
 */
export async function makeSelfSignedCertificate(dir: string): Promise<{ certificate: string; key: string }> {
  const certificate = `${dir}/self.pem`;
  const key = `${dir}/self-key.pem`;
  await selfSign(key, certificate, "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1");
  return { certificate, key };
}

/** Writes a client certificate and key signed by the CA of {@link makeServerCertificate} in `dir`. */
export function makeClientCertificate(dir: string): Promise<{ certificate: string; key: string }> {
  return signedByCa(dir, "client", "/CN=deltaship client", "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
}
