/**
 * URLs' secrets never reach a message: every URL in a runtime's or a server's
 * text is cut down to scheme, host and path, whatever the wording around it.
 */
import assert from "node:assert/strict";
import { failureText, sanitizeUrls } from "../src/transport/docker/sanitize.ts";

Deno.test("sanitize: Deno 2.9's wording of a dropped connection keeps the URL's path, never its query", () => {
  const deno29 = "error sending request from 127.0.0.1:1234 for http://h/p?sig=x (h): connection reset";
  assert.equal(sanitizeUrls(deno29), "error sending request from 127.0.0.1:1234 for http://h/p (h): connection reset");
  // As fetch() throws it: "fetch failed", the reason in `cause`.
  const thrown = new TypeError("fetch failed", { cause: new Error(deno29) });
  assert.equal(failureText(thrown), "error sending request from 127.0.0.1:1234 for http://h/p (h): connection reset");
});

Deno.test("sanitize: user info, query and fragment go, in any wording; the rest of the text stays", () => {
  const cases: [string, string][] = [
    [
      "error sending request for url (http://u:pw@h:5000/v2/a/blobs/sha256:ab?X-Amz-Signature=s3cr3t#f): client error",
      "error sending request for url (http://h:5000/v2/a/blobs/sha256:ab): client error",
    ],
    ["(https://h/p): refused", "(https://h/p): refused"],
    [
      "see HTTPS://Store.example/obj?token=s3cr3t&b=(x) and ftp://u@f/x#s3cr3t.",
      "see HTTPS://Store.example/obj and ftp://f/x",
    ],
    ["redirected to http://h?sig=s3cr3t", "redirected to http://h"],
    ["http://h/a@b/c?d=s3cr3t\nnext line", "http://h/a@b/c\nnext line"],
    ["no URL here: connection reset (os error 104)", "no URL here: connection reset (os error 104)"],
  ];
  for (const [text, want] of cases) {
    assert.equal(sanitizeUrls(text), want, text);
    assert.doesNotMatch(sanitizeUrls(text), /s3cr3t|pw@|u@/, text);
  }
  assert.equal(failureText(new Error("a\n  b http://h/p?q=s3cr3t")), "a b http://h/p");
  assert.equal(failureText("plain text"), "plain text");
});
