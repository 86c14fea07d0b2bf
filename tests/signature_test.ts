import assert from "node:assert/strict";
import { DeltaAnnotation, DeltaContent } from "../src/delta/annotations.ts";
import { derToRaw } from "../src/delta/signature.ts";
import { deltaship, tempDir } from "./helpers/cli.ts";
import { keyPair, payloadFor, writeSignature } from "./helpers/cosign.ts";
import { expectCleanFailure } from "./helpers/failure.ts";
import { haveTools, run } from "./helpers/interop.ts";
import { sampleTar, writeImage } from "./helpers/oci.ts";
import { writeDelta } from "./helpers/tardiff.ts";

const OPENSSL = haveTools("signatures signed by openssl", "openssl");

/** Old and new images, the new one's signature made with `signer`, and signed and unsigned deltas. */
async function setup(dir: string) {
  const old = await writeImage(`${dir}/old`, { tag: "old", layers: [{ tar: sampleTar("a") }] });
  const target = await writeImage(`${dir}/new`, {
    tag: "new",
    layers: [{ tar: sampleTar("a") }, { tar: sampleTar("b") }],
  });
  const signer = await keyPair(`${dir}/keys`, "signer");
  const other = await keyPair(`${dir}/keys`, "other");
  await writeSignature(`${dir}/sig`, signer.key, target.manifest);
  const repo = `${dir}/maker`;
  const create = async (out: string, ...args: string[]) => {
    const r = await deltaship(repo, "create-delta", ...args, `oci:${dir}/old:old`, `oci:${dir}/new:new`, out);
    assert.equal(r.code, 0, r.stderr);
  };
  await create(`oci:${dir}/signed`, "--signature", `oci:${dir}/sig`);
  await create(`oci:${dir}/unsigned`);
  return { old, target, signer, other };
}

/** A fresh client repository holding the old image. */
async function client(dir: string, name: string): Promise<string> {
  const repo = `${dir}/${name}`;
  assert.equal((await deltaship(repo, "pull", `oci:${dir}/old:old`)).code, 0);
  return repo;
}

Deno.test({
  name:
    "signatures: create-delta --signature embeds the cosign artifact as oci-delta does; inspect tells signed from unsigned",
  ignore: !OPENSSL,
  async fn() {
    await using tmp = await tempDir();
    const { target } = await setup(tmp.path);
    const inspect = async (ref: string) =>
      JSON.parse((await deltaship(`${tmp.path}/any`, "--json", "inspect", ref)).stdout);
    const signed = await inspect(`oci:${tmp.path}/signed`);
    assert.equal(signed.signed, true);
    assert.equal(signed.target, target.manifest);
    assert.equal(signed.signatures.length, 1);
    assert.equal((await inspect(`oci:${tmp.path}/unsigned`)).signed, false);
    // The shape: the signature manifest as cosign-signature, its config and payload as cosign-signature-content.
    const raw = await deltaship(`${tmp.path}/any`, "inspect", "--manifest", `oci:${tmp.path}/signed`);
    const manifest = JSON.parse(raw.stdout);
    const sigIndex = JSON.parse(await Deno.readTextFile(`${tmp.path}/sig/index.json`)).manifests[0];
    const sigManifest = JSON.parse(await Deno.readTextFile(`${tmp.path}/sig/blobs/sha256/${sigIndex.digest.slice(7)}`));
    const entries = manifest.layers.filter((l: { annotations: Record<string, string> }) =>
      l.annotations[DeltaAnnotation.content].startsWith("cosign-")
    );
    assert.deepEqual(
      entries.map((e: { digest: string; annotations: Record<string, string> }) => [
        e.annotations[DeltaAnnotation.content],
        e.digest,
      ]),
      [
        [DeltaContent.cosignSignature, sigIndex.digest],
        [DeltaContent.cosignSignatureContent, sigManifest.config.digest],
        [DeltaContent.cosignSignatureContent, sigManifest.layers[0].digest],
      ],
    );
    const notDelta = await deltaship(`${tmp.path}/any`, "inspect", `oci:${tmp.path}/old:old`);
    assert.equal(notDelta.code, 1);
    assert.match(notDelta.stderr, /is not an oci-delta artifact; to inspect an image, pull it first/);
  },
});

Deno.test({
  name:
    "signatures: --verify-key accepts a good signature and refuses tampered, wrong-key, other-image and unsigned deltas, repository unchanged",
  ignore: !OPENSSL,
  async fn() {
    await using tmp = await tempDir();
    const { old, target, signer, other } = await setup(tmp.path);
    const good = await client(tmp.path, "good");
    const r = await deltaship(good, "--json", "pull", "--verify-key", signer.pub, `oci:${tmp.path}/signed`, "new");
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.manifest, target.manifest);
    assert.deepEqual([out.delta.signed, out.delta.verified], [true, true]);
    // Without --verify-key, signatures are carried but not required.
    const plain = await client(tmp.path, "plain");
    const p = JSON.parse((await deltaship(plain, "--json", "pull", `oci:${tmp.path}/unsigned`)).stdout);
    assert.deepEqual([p.manifest, p.delta.signed, p.delta.verified], [target.manifest, false, undefined]);

    // Deltas with a signature that is wrong in each way, made by hand beside the real one.
    const embed = async (name: string, sig: Awaited<ReturnType<typeof writeSignature>>) => {
      const dir = `${tmp.path}/${name}`;
      await Deno.mkdir(`${dir}/blobs/sha256`, { recursive: true });
      await run("cp", "-r", `${tmp.path}/${name}-sig/blobs/sha256/.`, `${dir}/blobs/sha256/`);
      await writeDelta(dir, {
        source: old,
        target,
        targetDir: `${tmp.path}/new`,
        layers: ["reused", "original"],
        mutate: (m) =>
          m.layers.push(
            {
              mediaType: "application/vnd.oci.image.manifest.v1+json",
              digest: sig.manifest,
              size: sig.manifestSize,
              annotations: { [DeltaAnnotation.content]: "cosign-signature" },
            },
            {
              mediaType: "application/vnd.oci.image.config.v1+json",
              ...sig.config,
              annotations: { [DeltaAnnotation.content]: "cosign-signature-content" },
            },
            {
              mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
              digest: sig.payload.digest,
              size: sig.payload.size,
              annotations: { [DeltaAnnotation.content]: "cosign-signature-content" },
            },
          ),
      });
      return `oci:${dir}`;
    };
    const tampered = await embed(
      "tampered",
      await writeSignature(`${tmp.path}/tampered-sig`, signer.key, target.manifest, {
        payload: payloadFor(target.manifest, "registry.example/evil"),
        signed: payloadFor(target.manifest),
      }),
    );
    const otherImage = await embed(
      "other-image",
      await writeSignature(`${tmp.path}/other-image-sig`, signer.key, old.manifest),
    );
    const bad = await client(tmp.path, "bad");
    const verify = (key: string, delta: string, message: RegExp) =>
      expectCleanFailure(bad, ["pull", "--verify-key", key, delta, "new"], message);
    await verify(
      other.pub,
      `oci:${tmp.path}/signed`,
      /no embedded signature verifies: the signature of payload sha256:[0-9a-f]{64} does not verify with the key given\n$/,
    );
    await verify(
      signer.pub,
      tampered,
      /no embedded signature verifies: the signature of payload sha256:[0-9a-f]{64} does not verify with the key given\n$/,
    );
    await verify(
      signer.pub,
      otherImage,
      new RegExp(`the signature is for manifest ${old.manifest}, but the delta's target is ${target.manifest}\n$`),
    );
    await verify(signer.pub, `oci:${tmp.path}/unsigned`, /embeds no signature, and --verify-key requires one\n$/);
    // Keys that cannot be used, and an image that is not a delta.
    await Deno.writeTextFile(`${tmp.path}/junk.pub`, "not a key\n");
    await verify(
      `${tmp.path}/junk.pub`,
      `oci:${tmp.path}/signed`,
      /^deltaship: --verify-key ".*junk.pub" is not a PEM public key/,
    );
    await run("openssl", "genrsa", "-out", `${tmp.path}/rsa.key`, "2048");
    await run("openssl", "rsa", "-in", `${tmp.path}/rsa.key`, "-pubout", "-out", `${tmp.path}/rsa.pub`);
    await verify(`${tmp.path}/rsa.pub`, `oci:${tmp.path}/signed`, /is not an ECDSA P-256 public key\n$/);
    await verify(
      `${tmp.path}/missing.pub`,
      `oci:${tmp.path}/signed`,
      /cannot read the --verify-key file ".*missing.pub": no such file\n$/,
    );
    await verify(
      signer.pub,
      `oci:${tmp.path}/new:new`,
      /is not an oci-delta artifact: --verify-key checks the signature a delta embeds\n$/,
    );

    // apply-delta: the same check, and nothing written to DEST on failure.
    const applied = await deltaship(
      bad,
      "--json",
      "apply-delta",
      "--verify-key",
      signer.pub,
      `oci:${tmp.path}/signed`,
      `oci:${tmp.path}/out`,
    );
    assert.equal(applied.code, 0, applied.stderr);
    assert.equal(JSON.parse(applied.stdout).targetManifest, target.manifest);
    const refused = await deltaship(
      bad,
      "apply-delta",
      "--verify-key",
      other.pub,
      `oci:${tmp.path}/signed`,
      `oci:${tmp.path}/out2`,
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /does not verify with the key given\n$/);
    assert.equal(await Deno.stat(`${tmp.path}/out2`).catch(() => null), null);
  },
});

Deno.test({
  name: "signatures: create-delta refuses a signature of another image, and a signature artifact that is not one",
  ignore: !OPENSSL,
  async fn() {
    await using tmp = await tempDir();
    const { old, signer } = await setup(tmp.path);
    await writeSignature(`${tmp.path}/wrong`, signer.key, old.manifest);
    const r = await deltaship(
      `${tmp.path}/maker`,
      "create-delta",
      "--signature",
      `oci:${tmp.path}/wrong`,
      `oci:${tmp.path}/old:old`,
      `oci:${tmp.path}/new:new`,
      `oci:${tmp.path}/out`,
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`signature oci:.*/wrong signs ${old.manifest}, not the new image sha256:[0-9a-f]{64}\\n$`),
    );
    assert.equal(await Deno.stat(`${tmp.path}/out`).catch(() => null), null);
    const notSig = await deltaship(
      `${tmp.path}/maker`,
      "create-delta",
      "--signature",
      `oci:${tmp.path}/old:old`,
      `oci:${tmp.path}/old:old`,
      `oci:${tmp.path}/new:new`,
      `oci:${tmp.path}/out`,
    );
    assert.equal(notSig.code, 1);
    assert.match(notSig.stderr, /payload sha256:[0-9a-f]{64}: the signature payload is not JSON\n$/);
  },
});

Deno.test("signatures: DER ECDSA signatures become r || s, leading zeros and short integers handled", () => {
  const der = (r: number[], s: number[]) =>
    new Uint8Array([0x30, 4 + r.length + s.length, 0x02, r.length, ...r, 0x02, s.length, ...s]);
  const r = [0x00, 0x80, ...new Array(31).fill(1)], s = [5];
  const raw = derToRaw(der(r, s))!;
  assert.deepEqual([...raw.subarray(0, 32)], [0x80, ...new Array(31).fill(1)]);
  assert.deepEqual([...raw.subarray(32)], [...new Array(31).fill(0), 5]);
  assert.equal(derToRaw(new Uint8Array([0x30, 3, 2, 1, 1])), undefined);
  assert.equal(derToRaw(der(new Array(33).fill(1), s)), undefined);
});
