/** `util/crc64.ts`: the CRC-64/ISO tar-split records, against Go's check value and the bitwise definition. */
import assert from "node:assert/strict";
import { Crc64 } from "../src/util/crc64.ts";
import { noise } from "./helpers/chunked.ts";
import { crc64 } from "./helpers/crc64.ts";

Deno.test("crc64: CRC-64/ISO has Go's check value, in one piece or several", () => {
  const check = new TextEncoder().encode("123456789");
  assert.equal(crc64(check), "b90956c775a41001");
  for (const data of [check, noise(100_003, 11)]) {
    const c = new Crc64();
    c.update(data.subarray(0, 5));
    c.update(data.subarray(5));
    assert.equal(Buffer.from(c.sum()).toString("hex"), crc64(data));
  }
});
