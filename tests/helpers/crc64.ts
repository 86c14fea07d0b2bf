/** Test helper: CRC-64/ISO computed the slow, obvious way, to check the fast one against. */

/** CRC-64/ISO a bit at a time (Go's `crc64.Checksum(b, crc64.MakeTable(crc64.ISO))`), as hex. */
export function crc64(b: Uint8Array): string {
  let crc = 0xffffffffffffffffn;
  for (const byte of b) {
    crc ^= BigInt(byte);
    for (let k = 0; k < 8; k++) crc = crc & 1n ? (crc >> 1n) ^ 0xd800000000000000n : crc >> 1n;
  }
  return (crc ^ 0xffffffffffffffffn).toString(16).padStart(16, "0");
}
