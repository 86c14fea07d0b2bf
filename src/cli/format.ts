/**
 * Human-readable formatting for command output: sizes, rates, digests, tables.
 *
 * @module
 */

/** Formats a byte count with a decimal unit (kB, MB, GB), as container tools do. */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let v = n;
  let u = -1;
  do {
    v /= 1000;
    u++;
  } while (v >= 1000 && u < units.length - 1);
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[u]}`;
}

/** Shortens a digest to `sha256:` plus 12 hex digits. */
export function shortDigest(d: string): string {
  const i = d.indexOf(":");
  return d.slice(0, i + 13);
}

/** Lays out rows as left-aligned columns separated by two spaces. */
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)));
  return all.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join("  ")).join(
    "\n",
  );
}

/** "1 layer", "2 layers". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
