import assert from "node:assert/strict";
import { InvalidArgumentError, UnsupportedError } from "../src/errors.ts";
import { formatDockerReference, isLoopbackHost, parseDockerReference } from "../src/transport/docker/reference.ts";
import { parseReference } from "../src/transport/reference.ts";

const HEX = "a".repeat(64);

Deno.test("docker reference: Docker Hub names normalise as docker does", () => {
  assert.deepEqual(parseDockerReference("alpine"), {
    domain: "docker.io",
    host: "registry-1.docker.io",
    repository: "library/alpine",
    tag: "latest",
  });
  assert.deepEqual(parseDockerReference("docker.io/alpine:3.20"), {
    domain: "docker.io",
    host: "registry-1.docker.io",
    repository: "library/alpine",
    tag: "3.20",
  });
  assert.equal(parseDockerReference("index.docker.io/library/alpine").domain, "docker.io");
  assert.equal(parseDockerReference("user/app").repository, "user/app");
  assert.equal(parseDockerReference("user/app").host, "registry-1.docker.io");
  // a first component without '.', ':' or "localhost" is a path, not a host
  assert.equal(parseDockerReference("team/sub/app:v1").repository, "team/sub/app");
  assert.equal(formatDockerReference(parseDockerReference("alpine")), "docker.io/library/alpine:latest");
});

Deno.test("docker reference: hosts, ports, tags and digests", () => {
  assert.deepEqual(parseDockerReference("127.0.0.1:5000/a/b:v1.2-rc_3"), {
    domain: "127.0.0.1:5000",
    host: "127.0.0.1:5000",
    repository: "a/b",
    tag: "v1.2-rc_3",
  });
  assert.deepEqual(parseDockerReference(`localhost/app@sha256:${HEX}`), {
    domain: "localhost",
    host: "localhost",
    repository: "app",
    digest: `sha256:${HEX}`,
  });
  const both = parseDockerReference(`quay.io/org/app:v1@sha256:${HEX}`);
  assert.equal(both.tag, "v1");
  assert.equal(both.digest, `sha256:${HEX}`);
  assert.equal(parseDockerReference("[::1]:5000/app").host, "[::1]:5000");
  assert.equal(parseDockerReference("Registry.Example.COM/app").domain, "Registry.Example.COM");
  assert.equal(parseDockerReference("my-registry.local:443/a__b/c.d/e-f--g").repository, "a__b/c.d/e-f--g");
  assert.equal(parseDockerReference(`app:${"t".repeat(128)}`).tag, "t".repeat(128));
  assert.equal(parseDockerReference("app:_x").tag, "_x");
});

Deno.test("docker reference: bad references are usage errors that say what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["", /empty reference/],
    ["Alpine", /must be lowercase/],
    ["quay.io/Org/app", /must be lowercase/],
    ["quay.io/", /no repository name/],
    ["quay.io/app:", /invalid tag ""/],
    ["app:-bad", /invalid tag/],
    ["app:.bad", /invalid tag/],
    [`app:${"t".repeat(129)}`, /invalid tag/],
    ["app:a/b", /invalid registry host "app:a"/],
    ["quay.io/a//b", /empty path component/],
    ["quay.io/-a", /invalid repository path component "-a"/],
    ["quay.io/a_", /invalid repository path component/],
    ["quay.io/a___b", /invalid repository path component/],
    ["exa_mple.com/app", /invalid repository path component|invalid registry host/],
    ["-bad.com/app", /invalid registry host/],
    ["host.com:port/app", /invalid registry host/],
    ["app@sha256:abc", /malformed sha256 digest/],
    [`app@sha256:${"A".repeat(64)}`, /malformed sha256 digest/],
    ["app@nodigest", /malformed digest/],
    ["app@", /malformed digest/],
    [`quay.io/${"a".repeat(250)}`, /longer than 255/],
  ];
  for (const [input, message] of cases) {
    assert.throws(
      () => parseDockerReference(input),
      (e: unknown) => {
        assert.ok(e instanceof InvalidArgumentError, `${input}: ${e}`);
        assert.match(e.message, message, input);
        assert.match(e.message, /^invalid reference "docker:\/\//);
        return true;
      },
    );
  }
  assert.throws(() => parseDockerReference(`app@md5:${"a".repeat(32)}`), UnsupportedError);
});

Deno.test("docker reference: loopback hosts reached over plain HTTP", () => {
  for (const h of ["localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:443", "[::1]:5000", "[::1]"]) {
    assert.ok(isLoopbackHost(h), h);
  }
  for (const h of ["registry-1.docker.io", "127.0.0.256", "128.0.0.1:5000", "10.0.0.1", "localhost.example.com"]) {
    assert.ok(!isLoopbackHost(h), h);
  }
});

Deno.test("transport reference: docker:// keeps the reference for the docker transport", () => {
  assert.deepEqual(parseReference("docker://127.0.0.1:5000/app:v1"), {
    text: "docker://127.0.0.1:5000/app:v1",
    transport: "docker",
    reference: "127.0.0.1:5000/app:v1",
  });
});
