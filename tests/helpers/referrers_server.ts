/**
 * Test helper: the referrers API of the distribution spec, and only that, in
 * front of a real registry that lacks it (distribution 2.8). Built on the fault
 * proxy: manifests pushed through it that have a `subject` are remembered and
 * their `PUT` is answered with `OCI-Subject`, as a registry with the API
 * answers; `GET /v2/NAME/referrers/DIGEST[?artifactType=T]` lists them as an
 * OCI image index (filtered, with `OCI-Filters-Applied`). Everything else goes
 * to the registry as it is.
 */
import { sha256 } from "../../src/util/digest.ts";
import { type FaultProxy, startProxy } from "./fault_proxy.ts";

/** A running referrers front. */
export interface ReferrersServer extends FaultProxy {
  /** Descriptors recorded, by `NAME subject-digest`. */
  referrers: Map<string, Record<string, unknown>[]>;
}

const INDEX = "application/vnd.oci.image.index.v1+json";

/** Starts the front before the registry at `target` (`http://HOST:PORT`). */
export function startReferrersServer(target: string): ReferrersServer {
  const referrers = new Map<string, Record<string, unknown>[]>();
  const proxy = startProxy(target, async (req, { path, forward }) => {
    const listing = /^\/v2\/(.+)\/referrers\/(sha256:[0-9a-f]{64})$/.exec(path);
    if (req.method === "GET" && listing) {
      const type = new URL(req.url).searchParams.get("artifactType");
      const all = referrers.get(`${listing[1]} ${listing[2]}`) ?? [];
      const manifests = type ? all.filter((d) => d.artifactType === type) : all;
      return new Response(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests }), {
        headers: { "content-type": INDEX, ...(type ? { "oci-filters-applied": "artifactType" } : {}) },
      });
    }
    const put = /^\/v2\/(.+)\/manifests\/[^/]+$/.exec(path);
    if (req.method !== "PUT" || !put) return await forward();
    const body = new Uint8Array(await req.arrayBuffer());
    const res = await forward({ body });
    const doc = JSON.parse(new TextDecoder().decode(body));
    if (res.status !== 201 || !doc.subject?.digest) return res;
    const key = `${put[1]} ${doc.subject.digest}`;
    const entry = {
      mediaType: req.headers.get("content-type") ?? doc.mediaType,
      digest: sha256(body),
      size: body.length,
      ...(doc.artifactType ?? doc.config?.mediaType ? { artifactType: doc.artifactType ?? doc.config.mediaType } : {}),
      ...(doc.annotations ? { annotations: doc.annotations } : {}),
    };
    referrers.set(key, [...(referrers.get(key) ?? []).filter((d) => d.digest !== entry.digest), entry]);
    const headers = new Headers(res.headers);
    headers.set("oci-subject", doc.subject.digest);
    return new Response(res.body, { status: res.status, headers });
  });
  return { ...proxy, referrers };
}
