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

/** Writes a CA and a server certificate for IP 127.0.0.1 into `dir`. */
export async function makeServerCertificate(dir: string): Promise<ServerCertificate> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const ca = `${dir}/ca.pem`;
  const certificate = `${dir}/server.pem`;
  const key = `${dir}/server-key.pem`;
  await run(
    "openssl",
    "req",
    "-x509",
    ...ec,
    "-keyout",
    `${dir}/ca-key.pem`,
    "-out",
    ca,
    "-days",
    "2",
    "-subj",
    "/CN=deltaship test CA",
  );
  await run("openssl", "req", ...ec, "-keyout", key, "-out", `${dir}/server.csr`, "-subj", "/CN=127.0.0.1");
  await Deno.writeTextFile(`${dir}/server.ext`, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
  await run(
    "openssl",
    "x509",
    "-req",
    "-in",
    `${dir}/server.csr`,
    "-CA",
    ca,
    "-CAkey",
    `${dir}/ca-key.pem`,
    "-CAcreateserial",
    "-out",
    certificate,
    "-days",
    "2",
    "-extfile",
    `${dir}/server.ext`,
  );
  return { ca, certificate, key };
}

/**
 * Writes a self-signed certificate for IP 127.0.0.1 as `openssl req -x509`
 * makes one (basicConstraints CA:TRUE), and its key, into `dir`.
 */
export async function makeSelfSignedCertificate(dir: string): Promise<{ certificate: string; key: string }> {
  const certificate = `${dir}/self.pem`;
  const key = `${dir}/self-key.pem`;
  await run(
    "openssl",
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    key,
    "-out",
    certificate,
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  );
  return { certificate, key };
}

/** Writes a client certificate and key signed by the CA of {@link makeServerCertificate} in `dir`. */
export async function makeClientCertificate(dir: string): Promise<{ certificate: string; key: string }> {
  const certificate = `${dir}/client.pem`;
  const key = `${dir}/client-key.pem`;
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", "req", ...ec, "-keyout", key, "-out", `${dir}/client.csr`, "-subj", "/CN=deltaship client");
  await Deno.writeTextFile(`${dir}/client.ext`, "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n");
  await run(
    "openssl",
    "x509",
    "-req",
    "-in",
    `${dir}/client.csr`,
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
    `${dir}/client.ext`,
  );
  return { certificate, key };
}
