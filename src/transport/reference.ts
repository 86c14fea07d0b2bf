/**
 * Transport references as users write them (`oci:DIR[:REF]`,
 * `oci-archive:FILE[:REF]`, `docker://...`), parsed and opened as sources.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { DockerSource } from "./docker/source.ts";
import { OciLayoutSource } from "./oci.ts";
import type { ImageSource } from "./source.ts";

/** A parsed layout reference: transport, path, and optional tag or digest. */
export interface LayoutRef {
  transport: "oci" | "oci-archive";
  path: string;
  ref?: string;
}

/** A parsed transport reference. */
export type TransportRef = LayoutRef | { transport: "docker"; reference: string };

/** Parses `oci:DIR[:REF]`, `oci-archive:FILE[:REF]` or `docker://REFERENCE`. */
export function parseTransportRef(s: string): TransportRef {
  if (s.startsWith("docker://")) return { transport: "docker", reference: s.slice("docker://".length) };
  const m = /^(oci|oci-archive):(.*)$/.exec(s);
  if (!m) {
    throw new UsageError(
      `invalid source ${
        JSON.stringify(s)
      }: expected oci:DIR[:REF], oci-archive:FILE[:REF] or docker://REGISTRY/REPO[:TAG]`,
    );
  }
  const transport = m[1] as LayoutRef["transport"];
  const rest = m[2];
  const colon = rest.indexOf(":");
  const path = colon < 0 ? rest : rest.slice(0, colon);
  const ref = colon < 0 ? undefined : rest.slice(colon + 1);
  if (path === "") throw new UsageError(`invalid source ${JSON.stringify(s)}: no path`);
  if (ref === "") throw new UsageError(`invalid source ${JSON.stringify(s)}: empty reference after ':'`);
  return ref === undefined ? { transport, path } : { transport, path, ref };
}

/** Options a transport may need to open a source. */
export interface OpenOptions {
  /** Registry credentials `USER:PASS` (docker://). */
  creds?: string;
  /** HTTPS with verified certificates (true) or plain HTTP (false) (docker://); default HTTPS except for loopback hosts. */
  tlsVerify?: boolean;
  /** Most blob downloads in flight (docker://). */
  maxDownloads?: number;
  /** Environment, for credential lookup (docker://). */
  env?: Record<string, string | undefined>;
}

/** Opens the source a transport reference names. */
export async function openSource(s: string, options: OpenOptions = {}): Promise<ImageSource> {
  const ref = parseTransportRef(s);
  switch (ref.transport) {
    case "oci":
    case "oci-archive":
      return await OciLayoutSource.open(ref.path, ref.ref, ref.transport === "oci-archive");
    case "docker":
      return await DockerSource.open(ref.reference, options);
  }
}
