/**
 * `deltaship pull SOURCE [NAME]`: fetch an image (or apply a delta) into the repository.
 *
 * @module
 */
import { hostPlatform, parsePlatform } from "../../oci/platform.ts";
import { pull } from "../../ops/pull.ts";
import { checkOciTag } from "../../oci/tag_name.ts";
import { openSource } from "../../transport/reference.ts";
import { UsageError } from "../../errors.ts";
import { defineCommand } from "../command.ts";
import { readVerifyKey, VERIFY_KEY_OPTION } from "../signature_options.ts";
import { formatBytes, plural, shortDigest } from "../format.ts";
import { memoryPlan } from "../../ops/memory_plan.ts";
import {
  MAX_LAYER_SIZE_OPTION,
  maxLayerSize,
  MEMORY_LIMIT_OPTION,
  memoryLimit,
  SOURCE_OPTIONS,
  sourceOpenOptions,
} from "../transport_options.ts";

export const pullCommand = defineCommand({
  name: "pull",
  summary: "Pull an image into the repository",
  usage: "SOURCE [NAME]",
  description: `
SOURCE is oci:DIR[:REF], oci-archive:FILE[:REF] or
docker://[HOST[:PORT]/]REPO[:TAG|@DIGEST]. For layouts, REF is a tag
(org.opencontainers.image.ref.name) or a manifest digest; without REF the layout
must hold exactly one manifest. The image is tagged NAME, which defaults to REF
(or the layout entry's own tag, or the registry reference's tag).

Registry credentials come from --creds, else from --authfile FILE or
$REGISTRY_AUTH_FILE, else from the first auth file with an entry for the image:
$XDG_RUNTIME_DIR/containers/auth.json (without XDG_RUNTIME_DIR:
/run/containers/UID/auth.json), ~/.config/containers/auth.json,
~/.docker/config.json, ~/.dockercfg (see deltaship login). TLS follows certs.d
and --tls-verify; registries.conf's mirrors are tried before the registry, and
the one that serves the image is also where deltas are looked up
(docs/registries.md).

Layers already in the repository are not fetched again; pulling an image
already present only updates the tag.

From an image index the platform of this machine is chosen, or --platform; an
index without it fails, naming the platforms it offers. With --platform, a
single image (no index) whose config names another platform fails too.

When SOURCE names an oci-delta artifact (artifactType
application/vnd.io.github.containers.oci-delta.v1), the delta is applied
instead: the source image it was made from (found by its config digest) must be
in the repository; changed layers are rebuilt from their tar-diffs in parallel
(--jobs) and checked against their diff_ids, and the result is the target image
with its exact manifest and config. NAME defaults as for any pull.

From a registry, a pull of an image looks for deltas published to it (its
referrers of the oci-delta type: the referrers API, else the sha256-<hex>
fallback tag) that start from an image the repository holds, and applies the
one with the fewest bytes to download. When none fits, or applying it fails,
the full image is pulled, with one line saying why. --delta never does not
look; --delta require fails instead of pulling the full image.

A zstd:chunked layer (its TOC named by its annotations) is pulled partially
from a registry: its TOC and tar-split are fetched by Range, files the
repository already holds (by SHA-256) are reused, only the others' frames are
fetched, and the layer is rebuilt and checked against its diff_id. When the
registry ignores Range, the TOC is missing or bad, or the rebuilt layer does
not match, that layer's whole blob is fetched, with one line saying why.
--partial never fetches whole blobs. Between a delta and partial layers, the
one with fewer bytes to download is chosen.

With --verify-key KEY.pub a delta must embed a cosign signature of its target
that verifies with that ECDSA P-256 public key (PEM, as cosign writes it);
otherwise the pull fails before anything is stored. Without it, signatures are
carried but not required.`,
  examples: [
    "deltaship pull oci:./layout:v1 app",
    "deltaship pull oci-archive:image.tar  # a layout holding exactly one manifest",
    "deltaship pull oci:./layout:sha256:4f3c…  # by manifest digest",
    "deltaship pull docker://quay.io/org/app:v2  # from a registry",
    "deltaship pull docker://localhost:5000/app@sha256:4f3c…",
    "deltaship pull docker://alpine  # docker.io/library/alpine:latest",
    "deltaship pull --creds user:token docker://registry.example.com/team/app:v3",
    "deltaship pull --tls-verify=false docker://10.0.0.5:5000/app:v1  # no certificate check (or plain HTTP)",
    "deltaship pull --max-downloads 4 docker://ghcr.io/org/app@sha256:4f3c…",
    "deltaship pull oci:./app-update app  # an oci-delta: rebuilds the new image from the old one",
    "deltaship pull --verify-key cosign.pub docker://registry.example/app:v1-to-v2 app",
  ],
  operands: ["source", "word"],
  options: [
    { name: "platform", type: "string", arg: "OS/ARCH[/VARIANT]", help: "platform to pick from an index" },
    { name: "name", type: "string", arg: "NAME", help: "tag for the image (same as the NAME argument)" },
    {
      name: "delta",
      type: "string",
      arg: "auto|never|require",
      help: "docker://: use a delta published for the image (default auto: when one fits, else the full image)",
    },
    {
      name: "partial",
      type: "string",
      arg: "auto|never",
      help: "docker://: fetch only the missing files of zstd:chunked layers (default auto: when it saves bytes)",
    },
    VERIFY_KEY_OPTION,
    MAX_LAYER_SIZE_OPTION,
    MEMORY_LIMIT_OPTION,
    ...SOURCE_OPTIONS,
  ],
  args: { min: 1, max: 2 },
  async run(ctx, args, values) {
    if (args[1] !== undefined && values.name !== undefined && args[1] !== values.name) {
      throw new UsageError("pull: NAME given twice (argument and --name) with different values");
    }
    const name = args[1] ?? values.name;
    if (name !== undefined) checkOciTag(name);
    const openOptions = sourceOpenOptions(values, ctx.io.env);
    const layerLimit = maxLayerSize(values, ctx.io.env);
    const memory = memoryPlan(memoryLimit(values, ctx.io.env), ctx.jobs);
    const platform = values.platform ? parsePlatform(values.platform) : hostPlatform();
    const delta = values.delta ?? "auto";
    if (delta !== "auto" && delta !== "never" && delta !== "require") {
      throw new UsageError(`--delta must be auto, never or require, got ${JSON.stringify(delta)}`);
    }
    const partial = values.partial ?? "auto";
    if (partial !== "auto" && partial !== "never") {
      throw new UsageError(`--partial must be auto or never, got ${JSON.stringify(partial)}`);
    }
    const verifyKey = await readVerifyKey(values["verify-key"]);
    const repo = await ctx.repo({ write: true, create: true });
    using _lock = await repo.lock(false);
    const source = await openSource(args[0], openOptions);
    try {
      const result = await pull(repo, source, {
        platform,
        requirePlatform: values.platform !== undefined,
        jobs: memory.jobs,
        sourceMemory: memory.sourceMemory,
        memoryLimit: memory.limit,
        name,
        progress: ctx.progress(),
        maxLayerSize: layerLimit,
        delta,
        partial,
        onNote: (line) => ctx.note(line),
        verifyKey,
      });
      ctx.endProgress();
      const served = source.servedBy;
      if (ctx.json) return void await ctx.printJson(served ? { ...result, servedBy: served } : result);
      const label = result.name ?? `@${result.manifest}`;
      if (served && !served.asNamed) {
        // registries.conf sent the pull elsewhere: say where blobs and delta lookups went.
        await ctx.print(`from ${served.mirror ? "mirror " : ""}docker://${served.reference}`);
      }
      if (result.alreadyPresent) {
        await ctx.print(`${label}: already present`);
      } else if (result.delta) {
        const d = result.delta;
        const kinds = [
          `${d.layersRebuilt} rebuilt`,
          ...(d.layersImported ? [`${d.layersImported} shipped whole`] : []),
          `${result.layersSkipped} already present`,
        ];
        const found = result.discovery
          ? ` ${shortDigest(d.manifest)}, found by the ${
            result.discovery.via === "api" ? "referrers API" : "referrers tag"
          }`
          : "";
        await ctx.print(
          `Pulled ${label} from delta${found} (${plural(result.layersFetched + result.layersSkipped, "layer")}: ${
            kinds.join(", ")
          })`,
        );
        const saved = d.imageSize > 0 ? ` (${Math.floor(100 * (1 - result.bytesFetched / d.imageSize))}% saved)` : "";
        await ctx.print(
          `fetched ${formatBytes(result.bytesFetched)} of delta instead of ${
            formatBytes(d.imageSize)
          } for the full image${saved}`,
        );
      } else {
        await ctx.print(
          `Pulled ${label} (${
            plural(result.layersFetched, "layer")
          } fetched, ${result.layersSkipped} already present, ${formatBytes(result.bytesFetched)})`,
        );
      }
      for (const l of result.layers ?? []) {
        if (l.way !== "partial") continue;
        await ctx.print(
          `layer ${shortDigest(l.digest)}: partial, ${l.reusedFiles} of ${l.files} files reused${
            l.reusedChunks ? ` (and ${l.reusedChunks} chunks of others)` : ""
          }, fetched ${formatBytes(l.fetched)} of ${formatBytes(l.size)} (${
            Math.floor(100 * (1 - l.fetched / l.size))
          }% saved)`,
        );
      }
      await ctx.print(`manifest ${result.manifest}\nconfig   ${result.config}`);
      if (!result.name) await ctx.note(`untagged; name it with: deltaship tag @${shortDigest(result.manifest)} NAME`);
    } finally {
      await source.close();
    }
  },
});
