/**
 * Platforms (`os/arch[/variant]`): the host's, parsing `--platform`, and choosing
 * one manifest from an index.
 *
 * @module
 */
import { InvalidArgumentError, NotFoundError } from "../errors.ts";
import type { Descriptor, Index, Platform } from "./documents.ts";

const GO_ARCH: Record<string, string> = { x86_64: "amd64", aarch64: "arm64" };

/** The platform of the machine deltaship runs on, in OCI (Go) names. */
export function hostPlatform(): Platform {
  const architecture = GO_ARCH[Deno.build.arch] ?? Deno.build.arch;
  return { os: Deno.build.os, architecture, ...(architecture === "arm64" ? { variant: "v8" } : {}) };
}

/** Parses `os/arch[/variant]`. */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
    throw new InvalidArgumentError(
      `invalid platform ${JSON.stringify(s)}: expected os/arch[/variant], e.g. linux/arm64`,
    );
  }
  const [os, architecture, variant] = parts;
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Formats a platform as `os/arch[/variant]`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

function normalVariant(p: Platform): string | undefined {
  if (p.variant) return p.variant;
  if (p.architecture === "arm64") return "v8";
  return undefined;
}

/** True when an index entry's platform satisfies the wanted one (variant only when wanted). */
export function platformMatches(have: Platform, want: Platform): boolean {
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  const wantVariant = want.variant;
  if (!wantVariant) return true;
  return normalVariant(have) === normalVariant(want);
}

/**
 * Picks the entry of `index` for `want`. Entries without a platform (attestations,
 * artifacts) are never picked. With several matches, one whose variant equals the
 * wanted one exactly wins, else the first.
 */
export function selectPlatform(index: Index, want: Platform, what: string): Descriptor {
  const candidates = index.manifests.filter((m) => m.platform && platformMatches(m.platform, want));
  if (candidates.length > 0) {
    return candidates.find((m) => normalVariant(m.platform!) === normalVariant(want)) ?? candidates[0];
  }
  const available = index.manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform!));
  throw new NotFoundError(
    `${what} has no image for platform ${formatPlatform(want)}; available: ${
      available.length ? [...new Set(available)].join(", ") : "none"
    } (choose one with --platform)`,
  );
}

/**
 * The platform an image's config names (`os`, `architecture`, `variant`), or
 * undefined when it names none (a config of another kind, or one without).
 */
export function configPlatform(config: unknown): Platform | undefined {
  if (typeof config !== "object" || config === null) return undefined;
  const { os, architecture, variant } = config as Record<string, unknown>;
  if (typeof os !== "string" || typeof architecture !== "string" || os === "" || architecture === "") return undefined;
  return typeof variant === "string" && variant !== "" ? { os, architecture, variant } : { os, architecture };
}

/**
 * Checks that a single image (reached without an index), whose config names
 * `have`, is for the platform asked for with --platform: as podman, a pull
 * for another platform fails rather than storing an image that will not run.
 */
export function checkImagePlatform(have: Platform | undefined, want: Platform, what: string): void {
  if (have === undefined || platformMatches(have, want)) return;
  throw new NotFoundError(
    `${what} is a single image for platform ${formatPlatform(have)}, not ${
      formatPlatform(want)
    } (it has no index offering others; pull it with --platform ${formatPlatform(have)})`,
  );
}
