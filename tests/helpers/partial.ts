/**
 * Test helper for partial pulls: two versions of an image whose big layer
 * changes in 1% of its files, pushed by deltaship as zstd:chunked to a real
 * registry; blobs and manifests uploaded as they are (hostile variants); and
 * what a byte-counting proxy saw of blob requests.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { runCli } from "./cli.ts";
import { noise } from "./chunked.ts";
import { writeImage } from "./oci.ts";
import type { LoggedRequest } from "./fault_proxy.ts";
import { buildTar, type TarSpec } from "./tar.ts";

/** `sha256:<hex>` of bytes. */
export const sha = (b: Uint8Array): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** The files of the big layer, version 1 or 2 (2 changes `changed` of them). */
export function bigLayerEntries(files: number, size: number, version: 1 | 2, changed: number[]): TarSpec[] {
  const out: TarSpec[] = [{ path: "data/", type: "dir" }];
  for (let i = 0; i < files; i++) {
    const seed = version === 2 && changed.includes(i) ? 100_000 + i : i + 1;
    out.push({ path: `data/f${String(i).padStart(4, "0")}.bin`, content: noise(size, seed), mtime: 1_700_000_000 });
  }
  out.push({ path: "data/link", type: "symlink", linkname: "f0000.bin" });
  return out;
}

/** Files, file size and changed files of the test image (1% changed). */
export const TEST_IMAGE = { files: 300, size: 48 * 1024, changed: [17, 123, 250] };

/**
 * Writes versions 1 and 2 of the test image (a small gzip layer, the big one),
 * pulls them into `repo` (as `app-v1`, `app-v2`) and pushes both to
 * `docker://HOST/partial/app:vN` as zstd:chunked; returns the pushed manifests.
 */
export async function pushTwoVersions(
  tmp: string,
  repo: string,
  host: string,
  image = TEST_IMAGE,
): Promise<{ v1: string; v2: string }> {
  const out: Record<string, string> = {};
  for (const v of [1, 2] as const) {
    await writeImage(`${tmp}/src${v}`, {
      tag: `v${v}`,
      layers: [
        { tar: buildTar([{ path: "etc/", type: "dir" }, { path: "etc/os-release", content: "ID=test\n" }]) },
        { tar: buildTar(bigLayerEntries(image.files, image.size, v, image.changed)), compression: "zstd" },
      ],
    });
    const pull = await runCli(["--repo", repo, "-q", "pull", `oci:${tmp}/src${v}:v${v}`, `app-v${v}`]);
    assert.equal(pull.code, 0, pull.stderr);
    const push = await runCli([
      "--repo",
      repo,
      "--json",
      "push",
      `app-v${v}`,
      `docker://${host}/partial/app:v${v}`,
      "--compression",
      "zstd:chunked",
    ]);
    assert.equal(push.code, 0, push.stderr);
    out[`v${v}`] = JSON.parse(push.stdout).manifest;
  }
  return { v1: out.v1, v2: out.v2 };
}

/** Body bytes the proxy sent for blob GETs, and the blob requests with a Range header. */
export function blobTraffic(requests: LoggedRequest[]): { bytes: number; ranged: number; requests: number } {
  const blobs = requests.filter((r) => r.method === "GET" && r.path.includes("/blobs/"));
  return {
    bytes: blobs.reduce((n, r) => n + r.bytesOut, 0),
    ranged: blobs.filter((r) => r.range !== null).length,
    requests: blobs.length,
  };
}

/** Uploads a blob to `registry` (`http://HOST`) in repository `name`, monolithically. */
export async function uploadBlob(registry: string, name: string, bytes: Uint8Array): Promise<string> {
  const digest = sha(bytes);
  const start = await fetch(`${registry}/v2/${name}/blobs/uploads/`, { method: "POST" });
  await start.body?.cancel();
  assert.equal(start.status, 202);
  const location = new URL(start.headers.get("location")!, registry);
  location.searchParams.set("digest", digest);
  const put = await fetch(location, { method: "PUT", body: bytes as Uint8Array<ArrayBuffer> });
  await put.body?.cancel();
  assert.equal(put.status, 201);
  return digest;
}

/** Puts a manifest (its exact bytes) under `tag`; returns its digest. */
export async function uploadManifest(registry: string, name: string, tag: string, bytes: Uint8Array): Promise<string> {
  const res = await fetch(`${registry}/v2/${name}/manifests/${tag}`, {
    method: "PUT",
    headers: { "content-type": "application/vnd.oci.image.manifest.v1+json" },
    body: bytes as Uint8Array<ArrayBuffer>,
  });
  await res.body?.cancel();
  assert.equal(res.status, 201, `manifest PUT: ${res.status}`);
  return sha(bytes);
}

/** GETs a registry document or blob whole. */
export async function getBytes(url: string, accept?: string): Promise<Uint8Array> {
  const res = await fetch(url, accept ? { headers: { accept } } : {});
  assert.equal(res.status, 200, `GET ${url}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}
