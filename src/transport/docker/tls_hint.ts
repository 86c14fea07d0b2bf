/**
 * What to do about a failed TLS handshake, in one clause of an error line,
 * from the runtime's wording of the failure (rustls's, or node:https's for
 * insecure registries): trust a CA in certs.d, reissue a certificate rustls
 * refuses, reach a plain-HTTP registry, present a client certificate.
 *
 * @module
 */
import type { TlsFiles } from "./certs_dir.ts";

/** fetch() failures that are about TLS (certificates, or TLS spoken to a plain-HTTP server). */
export const TLS_FAILURE = /certificate|tls|handshake|corrupt message|InvalidContentType|wrong version number/i;

/**
 * What to do about a failed TLS handshake with `at`, from the runtime's
 * wording of it (rustls's, or node:https's for insecure registries).
 */
export function tlsHint(text: string, at: URL, tls: TlsFiles | undefined, https: boolean): string {
  const host = at.host;
  const skip = "or pass --tls-verify=false (no certificate check)";
  const trusted = tls?.caCerts.length ? ` (the CA certificates of ${tls.dir} were trusted)` : "";
  if (/InvalidContentType|corrupt message|wrong version number/i.test(text)) {
    return `; ${host} does not speak TLS there: pass --tls-verify=false to reach it over plain HTTP ` +
      `(or set insecure = true for it in registries.conf)`;
  }
  if (/CaUsedAsEndEntity/i.test(text)) {
    return `; ${host}'s certificate is a CA certificate used as its own (as openssl req -x509 makes them), which ` +
      `Deno's TLS library (rustls) refuses even when it is trusted: issue the registry a certificate signed by a ` +
      `CA (basicConstraints CA:FALSE) and trust that CA in /etc/containers/certs.d/${host}/, ${skip}`;
  }
  if (/UnknownIssuer|self.signed|unable to get local issuer/i.test(text)) {
    return `; ${host}'s certificate is not signed by a CA trusted here${trusted}: put the CA certificate in ` +
      `/etc/containers/certs.d/${host}/ca.crt (or a directory passed as --cert-dir), ${skip}`;
  }
  if (/NotValidForName|altname|does not match/i.test(text)) {
    return `; ${host}'s certificate does not name ${at.hostname}: reach the registry by a name its certificate has, ${skip}`;
  }
  if (/Expired|NotValidYet/i.test(text)) {
    return `; ${host}'s certificate has expired or is not valid yet (check this machine's clock), ${skip}`;
  }
  if (/CertificateRequired|certificate required|bad certificate/i.test(text)) {
    return `; ${host} asks for a client certificate: put NAME.cert and NAME.key in /etc/containers/certs.d/${host}/ ` +
      `or a directory passed as --cert-dir`;
  }
  return https ? `; TLS with ${host} failed${trusted}: see --cert-dir and --tls-verify` : "";
}
