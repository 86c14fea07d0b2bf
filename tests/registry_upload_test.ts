/**
 * transport/docker/upload.ts against a small in-process registry that speaks
 * only the upload protocol, to reach the answers distribution 2.8 never gives:
 * `Range: bytes=0-N`, relative Locations, a 416 with the offset to go on from,
 * a 503 in the middle of a chunk, a session lost midway, a blob whose bytes
 * are not its digest; and the token scopes a push asks for.
 */
import assert from "node:assert/strict";
import { DigestMismatchError } from "../src/errors.ts";
import { RegistryClient } from "../src/transport/docker/client.ts";
import { mergeScopes } from "../src/transport/docker/auth.ts";
import { uploadBlob, type UploadTarget } from "../src/transport/docker/upload.ts";
import { sha256 } from "../src/util/digest.ts";
import { noise } from "./helpers/data.ts";

/** How the fake registry misbehaves. */
interface Faults {
  /** Answer the Nth PATCH (0-based) with 416 and the current Range. */
  reject416?: number;
  /** Answer the Nth PATCH with 503, after taking half of its bytes. */
  fail503?: number;
  /** Forget the session at the Nth PATCH (404 from then on). */
  lose?: number;
  /** Write Range as `bytes=0-N` (the spec's older form). */
  bytesPrefix?: boolean;
}

/** An upload-only registry: sessions in memory, relative Locations, blobs kept by digest. */
function fakeRegistry(faults: Faults) {
  const sessions = new Map<string, Uint8Array[]>();
  const blobs = new Map<string, Uint8Array>();
  const log: string[] = [];
  let patches = 0;
  let next = 0;
  const size = (id: string) => sessions.get(id)!.reduce((a, c) => a + c.length, 0);
  const range = (id: string) => `${faults.bytesPrefix ? "bytes=" : ""}0-${Math.max(0, size(id) - 1)}`;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const u = new URL(req.url);
    log.push(`${req.method} ${u.pathname.replace(/\/[0-9]+$/, "/ID")}`);
    const body = new Uint8Array(await req.arrayBuffer());
    if (req.method === "HEAD") {
      return new Response(null, { status: blobs.has(u.pathname.split("/").at(-1)!) ? 200 : 404 });
    }
    if (req.method === "POST") {
      const id = String(next++);
      sessions.set(id, []);
      return new Response(null, { status: 202, headers: { location: `/v2/app/blobs/uploads/${id}`, range: "0-0" } });
    }
    const id = u.pathname.split("/").at(-1)!;
    if (!sessions.has(id)) return new Response(null, { status: 404 });
    const location = `/v2/app/blobs/uploads/${id}?state=${size(id)}`;
    if (req.method === "GET") return new Response(null, { status: 204, headers: { location, range: range(id) } });
    if (req.method === "PATCH") {
      const n = patches++;
      if (n === faults.lose) {
        sessions.delete(id);
        return new Response(null, { status: 404 });
      }
      if (n === faults.reject416) return new Response(null, { status: 416, headers: { location, range: range(id) } });
      const start = Number(req.headers.get("content-range")?.split("-")[0]);
      assert.equal(start, size(id), "a chunk starts where the session is");
      if (n === faults.fail503) {
        sessions.get(id)!.push(body.subarray(0, body.length >> 1));
        return new Response(null, { status: 503 });
      }
      sessions.get(id)!.push(body);
      return new Response(null, {
        status: 202,
        headers: { location: `/v2/app/blobs/uploads/${id}`, range: range(id) },
      });
    }
    if (req.method === "PUT") {
      sessions.get(id)!.push(body);
      const all = new Uint8Array(size(id));
      let off = 0;
      for (const c of sessions.get(id)!) all.set(c, (off += c.length) - c.length);
      const digest = sha256(all);
      if (digest !== u.searchParams.get("digest")) return new Response(null, { status: 400 });
      blobs.set(digest, all);
      sessions.delete(id);
      return new Response(null, { status: 201, headers: { "docker-content-digest": digest } });
    }
    return new Response(null, { status: 405 });
  });
  const client = new RegistryClient({
    host: `127.0.0.1:${server.addr.port}`,
    registry: "fake",
    https: false,
    retry: { attempts: 5, baseMs: 1, maxMs: 10 },
    idleTimeoutMs: 5000,
    deadlineMs: 5000,
  });
  const target: UploadTarget = {
    client,
    repository: "app",
    scope: "repository:app:pull,push",
    retry: { attempts: 5, baseMs: 1, maxMs: 10 },
    chunkSize: 10_000,
  };
  return {
    target,
    blobs,
    log,
    [Symbol.asyncDispose]: async () => {
      client.close();
      await server.shutdown();
    },
  };
}

const data = noise(45_000, 3); // 4 full chunks of 10000, the rest in the closing PUT
const digest = sha256(data);

/** Uploads `data` with the digest known or not; returns the outcome. */
function upload(target: UploadTarget, known: boolean) {
  const chunks = () => Promise.resolve([data.subarray(0, 12_345), data.subarray(12_345)]);
  return uploadBlob(target, { what: "blob", ...(known ? { digest, size: data.length } : {}), open: chunks });
}

Deno.test("upload: chunks with Content-Range, the rest in the PUT; relative Locations; bytes=0-N ranges", async () => {
  for (const bytesPrefix of [false, true]) {
    await using reg = fakeRegistry({ bytesPrefix });
    const up = await upload(reg.target, false);
    assert.deepEqual([up.digest, up.size, up.outcome, up.resumes, up.restarts], [
      digest,
      data.length,
      "uploaded",
      0,
      0,
    ]);
    assert.deepEqual(reg.blobs.get(digest), data);
    assert.deepEqual(reg.log, [
      "POST /v2/app/blobs/uploads/",
      ...Array(4).fill("PATCH /v2/app/blobs/uploads/ID"),
      "PUT /v2/app/blobs/uploads/ID",
    ]);
    // Known digest: asked first, and skipped the second time.
    reg.log.length = 0;
    assert.equal((await upload(reg.target, true)).outcome, "exists");
    assert.deepEqual(reg.log, [`HEAD /v2/app/blobs/${digest}`]);
  }
});

Deno.test("upload: a 416 or a 503 midway goes on from the offset the registry has", async () => {
  {
    await using reg = fakeRegistry({ reject416: 2 });
    const up = await upload(reg.target, true);
    assert.equal(up.resumes, 1);
    assert.deepEqual(reg.blobs.get(digest), data);
  }
  {
    // The registry kept half of the chunk it answered 503 to: the status says so and the other half follows.
    await using reg = fakeRegistry({ fail503: 1 });
    const up = await upload(reg.target, true);
    assert.equal(up.resumes, 1);
    assert.deepEqual(reg.blobs.get(digest), data);
    const i = reg.log.indexOf("GET /v2/app/blobs/uploads/ID");
    assert.ok(i > 0, reg.log.join(", "));
    assert.equal(reg.log[i + 1], "PATCH /v2/app/blobs/uploads/ID");
  }
});

Deno.test("upload: a lost session starts the blob over; bytes that are not the digest are refused", async () => {
  {
    await using reg = fakeRegistry({ lose: 2 });
    const up = await upload(reg.target, true);
    assert.equal(up.restarts, 1);
    assert.deepEqual(reg.blobs.get(digest), data);
    assert.equal(reg.log.filter((l) => l.startsWith("POST")).length, 2);
  }
  {
    await using reg = fakeRegistry({});
    const wrong = `sha256:${"0".repeat(64)}`;
    await assert.rejects(
      uploadBlob(reg.target, { what: "blob X", digest: wrong, size: data.length, open: () => Promise.resolve([data]) }),
      (e: unknown) => e instanceof DigestMismatchError && /blob X: digest mismatch/.test(e.message),
    );
    assert.equal(reg.blobs.size, 0, "nothing published");
    assert.equal(reg.log.at(-1), "DELETE /v2/app/blobs/uploads/ID", "the session is cancelled");
  }
});

Deno.test("token scopes: a push asks for pull,push whatever a HEAD's challenge names; a mount adds its source", () => {
  assert.deepEqual(mergeScopes("repository:a/b:pull,push", "repository:a/b:pull"), ["repository:a/b:pull,push"]);
  assert.deepEqual(mergeScopes("repository:a:pull", undefined), ["repository:a:pull"]);
  assert.deepEqual(
    mergeScopes("repository:copy:pull,push repository:app:pull", "repository:copy:push"),
    ["repository:copy:pull,push", "repository:app:pull"],
  );
});
