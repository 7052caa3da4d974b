#!/usr/bin/env python3
"""Push through ocigate: skopeo (multi-arch index, 500 MB layer with peak RSS
sampled), raw uploads (chunked PATCH from curl, Content-Range PATCH, PUT
?digest=, monolithic POST ?digest=, cross-repository mount, upload status,
cancel), manifest PUT/DELETE, blob DELETE, Location rewriting (absolute and
relative upstream Locations), allow_push (403 for pull-only tokens), and a
push into a registry with token auth (scope pull,push).

    python3 test/e2e/test_push.py --ocigate build/ocigate
"""

import os
import re
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
from tokenservice import TokenService  # noqa: E402

NS = "team-a"
REG, REL, TOK = "reg", "rel", "tok"
BIG_SIZE = 500 * T.MiB
# ASan's shadow memory and quarantine dwarf ocigate's own use: the asan
# test setup raises the bound (see test/meson.build)
RSS_LIMIT_MIB = int(os.environ.get("OCIGATE_TEST_RSS_LIMIT_MIB", "64"))
ACCESS_RE = re.compile(r'"([A-Z]+) (/v2/\S*) HTTP/1\.[01]" (\d{3}) ')
UPLOAD_RE = r"blobs/uploads/([0-9a-f-]{36})(\?.*)?$"


def with_query(location, extra):
    return location + ("&" if "?" in location else "?") + extra


class PushTest(T.CrashGuard):
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice")
        self.bob = T.Token("bob")          # may pull, may not push
        self.locations = []                # every Location ocigate answered
        self.dead = []                     # ocigate instances that crashed

    # -- fixture ----------------------------------------------------------

    def setup(self):
        env = self.env
        self.pki = T.make_pki(env.path("pki"))
        self.lay = T.make_oci_layout(env.path("layout"), 2 * T.MiB)
        self.pw = "upw-" + secrets.token_hex(8)
        self.reg = T.Registry(env, self.pki, users={"robot": self.pw}).start()
        T.seed_registry(self.reg, self.lay, tags=("v1",), index_repo=None)
        # distribution's relativeurls: upload Locations without scheme/host
        self.rreg = T.Registry(env, self.pki, users={"robot": self.pw},
                               name="rel-registry")
        with open(self.rreg.config) as f:
            cfg = f.read()
        with open(self.rreg.config, "w") as f:
            f.write(cfg.replace("http:\n", "http:\n  relativeurls: true\n", 1))
        self.rreg.start()
        # token auth: robot may pull demo/* and push pushed/*
        self.robot_pw = "robot-" + secrets.token_hex(8)
        self.ts = TokenService(
            env, self.pki,
            users={"seeder": self.pw, "robot": self.robot_pw},
            grants={"seeder": [("*", ["pull", "push", "delete"])],
                    "robot": [("demo/*", ["pull"]),
                              ("pushed/*", ["pull", "push"])]}).start()
        self.treg = T.Registry(env, self.pki, users={"seeder": self.pw},
                               token_auth=self.ts, name="token-registry").start()
        T.seed_registry(self.treg, self.lay, tags=("v1",), index_repo=None)
        push = {"allow_push": "alice"}
        conns = [
            T.registry_connector("%s/%s" % (NS, REG), self.reg,
                                 allow=["alice", "bob"], options=push),
            T.registry_connector("%s/%s" % (NS, REL), self.rreg,
                                 allow=["alice"], options=push),
            T.Connector("%s/%s" % (NS, TOK), self.treg.url, username="robot",
                        password=self.robot_pw, ca_file=self.pki.ca_pem,
                        allow=["alice"], options=push),
        ]
        self.og = T.Ocigate(env, self.args.ocigate, [self.alice, self.bob],
                            conns).start()
        self.cd = T.Containerd(env).start()
        self.hosts = self.cd.hosts_dir(self.og.host, self.og.url)
        T.diag("ocigate %s, registry %s, relativeurls registry %s, token "
               "registry %s" % (self.og.host, self.reg.host, self.rreg.host,
                                self.treg.host))

    # -- helpers ----------------------------------------------------------

    def prefix(self, conn=REG):
        return "/v2/namespaces/%s/connectors/%s/" % (NS, conn)

    def path(self, repo, rest, conn=REG):
        return "%s%s/%s" % (self.prefix(conn), repo, rest)

    def req(self, method, path, body=b"", headers=None, token=None):
        h = {"Authorization": (token or self.alice).basic()}
        if method in ("POST", "PUT", "PATCH") and not body:
            h["Content-Length"] = "0"
        h.update(headers or {})
        r = T.request(self.og.port, method, path, h, body, timeout=60)
        loc = r.header("Location")
        if loc is not None:
            self.locations.append((method, path, r.status, loc))
        return r

    def expect_location(self, r, conn, repo, what, pattern):
        """The Location points back through ocigate, below the connector."""
        loc = r.header("Location")
        T.expect(loc is not None, "%s: no Location\n%s" % (what, r.describe()))
        want = self.path(repo, "", conn)
        T.expect(loc.startswith(want),
                 "%s: Location %r does not start with %r" % (what, loc, want))
        T.expect(re.search(pattern, loc[len(want):]) is not None,
                 "%s: Location %r does not match %r" % (what, loc, pattern))
        return loc

    def start_upload(self, repo, conn=REG, query=""):
        r = self.req("POST", self.path(repo, "blobs/uploads/" + query, conn))
        T.expect_status(r, 202, "POST %s/blobs/uploads/%s via %s"
                        % (repo, query, conn))
        loc = self.expect_location(r, conn, repo, "POST upload", UPLOAD_RE)
        uuid = re.search(UPLOAD_RE, loc).group(1)
        T.expect_eq(r.header("Docker-Upload-UUID"), uuid,
                    "Docker-Upload-UUID vs the UUID in Location")
        return loc

    def finish_upload(self, loc, repo, digest, conn=REG, body=b""):
        r = self.req("PUT", with_query(loc, "digest=" + digest), body,
                     {"Content-Type": "application/octet-stream"})
        T.expect_status(r, 201, "PUT %s?digest=" % loc[:80])
        T.expect_eq(r.header("Docker-Content-Digest"), digest,
                    "Docker-Content-Digest of the finished upload")
        self.expect_location(r, conn, repo, "PUT ?digest=",
                             r"^blobs/" + re.escape(digest) + "$")
        return r

    def head_blob(self, repo, digest, size, conn=REG):
        r = self.req("HEAD", self.path(repo, "blobs/" + digest, conn))
        T.expect_status(r, 200, "HEAD %s blob through ocigate" % repo)
        T.expect_eq(r.header("Content-Length"), str(size), "blob size")
        T.expect_eq(r.header("Docker-Content-Digest"), digest, "blob digest")

    def registry_mark(self, reg):
        return len(reg.proc.log_text().splitlines())

    def registry_access(self, reg, since, needle=""):
        out = []
        for line in reg.proc.log_text().splitlines()[since:]:
            m = ACCESS_RE.search(line)
            if m and needle in m.group(2):
                out.append((m.group(1), m.group(2), int(m.group(3))))
        return out

    def skopeo_push(self, src, repo, tag, conn=REG, extra=(), timeout=180):
        dst = "docker://%s/namespaces/%s/connectors/%s/%s:%s" % (
            self.og.host, NS, conn, repo, tag)
        return self.env.run(["skopeo", "--insecure-policy", "copy", "--quiet",
                             "--preserve-digests", "--dest-tls-verify=false",
                             "--dest-creds", "x:" + self.alice.token]
                            + list(extra) + [src, dst], timeout=timeout)

    # -- cases ------------------------------------------------------------

    def t_skopeo_index(self):
        self.skopeo_push("oci:%s:multi" % self.lay.dir, "pushed/multi", "v1",
                         extra=["--all"])
        r = self.reg.manifest("pushed/multi", "v1", method="HEAD")
        T.expect_eq(r.header("Docker-Content-Digest"), self.lay.index.digest,
                    "registry digest of the pushed index")
        for img in self.lay.platforms.values():
            for b in [img.config] + img.layers:
                up = self.reg.request("HEAD", "/v2/pushed/multi/blobs/" + b.digest)
                T.expect_eq(up.status, 200,
                            "registry HEAD pushed blob %s" % b.digest)

    def t_ctr_pull_back(self):
        ref = "%s/namespaces/%s/connectors/%s/pushed/multi:v1" % (
            self.og.host, NS, REG)
        self.cd.pull(ref, self.hosts, user="x:" + self.alice.token)
        T.expect_eq(self.cd.images().get(ref),
                    (T.MEDIA_OCI_INDEX, self.lay.index.digest), "ctr images ls")
        amd = self.lay.platforms["amd64"]
        missing = {b.digest for b in amd.blobs()} - self.cd.content()
        T.expect_eq(missing, set(), "pulled-back blobs missing from content")

    def t_big_push(self):
        t0 = time.monotonic()
        big = T.make_oci_layout(self.env.path("layout-big"), BIG_SIZE,
                                seed=500500)
        T.diag("  made a %d MB layer in %.1fs" % (BIG_SIZE // T.MiB,
                                                   time.monotonic() - t0))
        t0 = time.monotonic()
        with T.RssSampler(self.og.pid) as s:
            self.skopeo_push("oci:%s:single" % big.dir, "pushed/big", "v1",
                             timeout=200)
        wall = time.monotonic() - t0
        hwm = T.vm_hwm_kib(self.og.pid)
        T.diag("  500 MB push through ocigate: %.1fs (%.0f MB/s), peak VmRSS "
               "%.1f MiB over %d samples, VmHWM %.1f MiB"
               % (wall, big.big.size / wall / 1e6, s.peak_kib / 1024,
                  s.samples, hwm / 1024))
        r = self.reg.request("HEAD", "/v2/pushed/big/blobs/" + big.big.digest)
        T.expect_eq(r.status, 200, "registry HEAD of the 500 MB blob")
        T.expect_eq(r.header("Content-Length"), str(big.big.size),
                    "registry size of the 500 MB blob")
        r = self.reg.manifest("pushed/big", "v1", method="HEAD")
        T.expect_eq(r.header("Docker-Content-Digest"), big.single.digest,
                    "registry digest of the pushed image")
        T.expect(s.samples > 0, "no RSS samples")
        T.expect(s.peak_kib < RSS_LIMIT_MIB * 1024,
                 "peak VmRSS %.1f MiB >= %d MiB during a 500 MB push"
                 % (s.peak_kib / 1024, RSS_LIMIT_MIB))
        T.expect(hwm < RSS_LIMIT_MIB * 1024, "VmHWM %.1f MiB >= %d MiB"
                 % (hwm / 1024, RSS_LIMIT_MIB))
        # the same push straight into the registry, for comparison
        t0 = time.monotonic()
        T.skopeo_copy(self.env, "oci:%s:single" % big.dir,
                      "docker://%s/direct/big:v1" % self.reg.host,
                      ["--dest-cert-dir", self.pki.certdir, "--dest-creds",
                       "robot:" + self.pw], timeout=200)
        T.diag("  the same push straight into the registry: %.1fs"
               % (time.monotonic() - t0))
        os.unlink(big.big.path)

    def _curl_chunked_patch(self, loc, data):
        hdrs = self.env.path("patch-%s.headers" % secrets.token_hex(4))
        cp = T.run_tool(["curl", "-sS", "-X", "PATCH", "-D", hdrs,
                         "-o", "/dev/null", "-w", "%{http_code}",
                         "-H", "Authorization: " + self.alice.basic(),
                         "-H", "Transfer-Encoding: chunked",
                         "-H", "Content-Type: application/octet-stream",
                         "--data-binary", "@-", self.og.url + loc],
                        input=data, timeout=60, log=self.env.command_log)
        headers = {}
        with open(hdrs, "rb") as f:
            for line in f.read().decode("latin-1").split("\r\n")[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
        return int(cp.stdout.decode()), headers

    def t_chunked_upload(self):
        repo = "pushed/chunk"
        part1 = os.urandom(256 * 1024)
        part2 = os.urandom(3 * T.MiB + 17)
        data = part1 + part2
        digest = T.sha256_bytes(data)
        rmark = self.registry_mark(self.reg)
        loc = self.start_upload(repo)
        r = self.req("PATCH", loc, part1,
                     {"Content-Type": "application/octet-stream",
                      "Content-Range": "0-%d" % (len(part1) - 1)})
        T.expect_status(r, 202, "PATCH with Content-Length and Content-Range")
        T.expect_eq(r.header("Range"), "0-%d" % (len(part1) - 1),
                    "Range after the first PATCH")
        patch2 = self.expect_location(r, REG, repo, "PATCH 1", UPLOAD_RE)
        status, h = self._curl_chunked_patch(patch2, part2)
        T.expect_eq(status, 202, "chunked PATCH from curl: status")
        T.expect_eq(h.get("range"), "0-%d" % (len(data) - 1),
                    "Range after the chunked PATCH")
        loc = h.get("location") or ""
        T.expect(loc.startswith(self.path(repo, "blobs/uploads/")),
                 "Location after the chunked PATCH: %r" % loc)
        self.locations.append(("PATCH", "(curl)", status, loc))
        self.finish_upload(loc, repo, digest)
        self.head_blob(repo, digest, len(data))
        up = self.reg.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest))
        T.expect_eq(up.status, 200, "registry HEAD of the uploaded blob")
        # the _state query the client echoed reached the registry unchanged
        acc = self.registry_access(self.reg, rmark, "/v2/%s/blobs/uploads/" % repo)
        T.expect_eq([a[0] for a in acc], ["POST", "PATCH", "PATCH", "PUT"],
                    "upload requests the registry saw")
        T.expect(all(a[2] in (201, 202) for a in acc),
                 "registry statuses: %s" % acc)
        uuid_q = patch2[len(self.path(repo, "blobs/uploads/")):]
        T.expect_eq(acc[2][1], "/v2/%s/blobs/uploads/%s" % (repo, uuid_q),
                    "what the registry got for the chunked PATCH (the "
                    "query must be kept byte for byte)")

    def t_chunked_split(self):
        """Chunk framing cut by the network at every awkward place (inside
        the size line, between CR and LF, before the last chunk) must be
        reassembled, never taken for data."""
        repo = "pushed/split"
        data = b"hello" + os.urandom(255)
        digest = T.sha256_bytes(data)
        loc = self.start_upload(repo)
        pieces = [b"5\r\nhel", b"lo\r", b"\nf", b"f\r\n" + data[5:] + b"\r",
                  b"\n0\r\n", b"\r\n"]
        with T.RawConn(self.og.port, timeout=30) as c:
            c.send(T.build_request("PATCH", loc, self.og.host, {
                "Authorization": self.alice.basic(),
                "Content-Type": "application/octet-stream",
                "Transfer-Encoding": "chunked"}))
            for p in pieces:
                c.send(p)
                time.sleep(0.2)
            r = c.read_response("PATCH")
        T.expect_status(r, 202, "chunked PATCH sent in %d pieces" % len(pieces))
        T.expect_eq(r.header("Range"), "0-%d" % (len(data) - 1),
                    "Range after the split chunked PATCH")
        loc = self.expect_location(r, REG, repo, "split PATCH", UPLOAD_RE)
        self.finish_upload(loc, repo, digest)
        self.head_blob(repo, digest, len(data))

    def t_monolithic_post(self):
        repo = "pushed/mono"
        data = os.urandom(100 * 1024)
        digest = T.sha256_bytes(data)
        with T.RawConn(self.og.port, timeout=60) as c:
            c.send(T.build_request(
                "POST", self.path(repo, "blobs/uploads/?digest=" + digest),
                self.og.host, {"Authorization": self.alice.basic(),
                               "Content-Type": "application/octet-stream"},
                data))
            r = c.read_response("POST")
            # the body was consumed whole: the connection is still in step
            c.send(T.build_request("GET", "/v2/", self.og.host,
                                   {"Authorization": self.alice.basic()}))
            nxt = c.read_response("GET")
        T.expect_status(nxt, 200, "GET /v2/ after the POST on the same "
                        "connection")
        # distribution 2.8 ignores ?digest= on POST and answers 202 (the
        # spec allows it); a registry that takes it answers 201
        T.expect(r.status in (201, 202), "monolithic POST: status %d\n%s"
                 % (r.status, r.describe()))
        self.locations.append(("POST", "?digest=", r.status,
                               r.header("Location")))
        if r.status == 201:
            self.expect_location(r, REG, repo, "POST ?digest= 201",
                                 r"^blobs/" + re.escape(digest) + "$")
        else:
            loc = self.expect_location(r, REG, repo, "POST ?digest= 202",
                                       UPLOAD_RE)
            self.finish_upload(loc, repo, digest, body=data)
        self.head_blob(repo, digest, len(data))

    def t_mount(self):
        layer = self.lay.single.layers[0]
        # skopeo and docker name the source as they see it, through the
        # proxy: ocigate must hand the registry its own name for it.
        proxied = "namespaces/%s/connectors/%s/demo/app" % (NS, REG)
        for i, from_q in enumerate(("demo%2Fapp", "demo/app", proxied,
                                    proxied.replace("/", "%2F"))):
            repo = "pushed/mount%d" % (i + 1) if i < 2 else "pushed/mountp%d" % i
            r = self.req("POST", self.path(
                repo, "blobs/uploads/?mount=%s&from=%s" % (layer.digest, from_q)))
            T.expect_status(r, 201, "cross-repository mount from=%s" % from_q)
            self.expect_location(r, REG, repo, "mount",
                                 r"^blobs/" + re.escape(layer.digest) + "$")
            T.expect_eq(r.header("Docker-Content-Digest"), layer.digest,
                        "mounted digest")
            up = self.reg.request("HEAD", "/v2/%s/blobs/%s" % (repo, layer.digest))
            T.expect_eq(up.status, 200, "registry HEAD of the mounted blob")
        # from a repository that lacks the blob: the registry starts a normal
        # upload instead (202), still rewritten
        r = self.req("POST", self.path("pushed/mount3", "blobs/uploads/?mount=%s"
                                       "&from=demo/nothere" % layer.digest))
        T.expect_status(r, 202, "mount from a repository without the blob")
        self.expect_location(r, REG, "pushed/mount3", "mount fallback",
                             UPLOAD_RE)
        # another connector's repository cannot be mounted: a plain upload
        r = self.req("POST", self.path("pushed/mount4", "blobs/uploads/?mount=%s"
                                       "&from=namespaces/other/connectors/x/demo/app"
                                       % layer.digest))
        T.expect_status(r, 202, "mount from another connector's repository")

    def t_status_and_cancel(self):
        repo = "pushed/cancel"
        loc = self.start_upload(repo)
        data = os.urandom(1000)
        r = self.req("PATCH", loc, data,
                     {"Content-Type": "application/octet-stream"})
        T.expect_status(r, 202, "PATCH")
        loc = self.expect_location(r, REG, repo, "PATCH", UPLOAD_RE)
        uuid = re.search(UPLOAD_RE, loc).group(1)
        r = self.req("GET", loc)
        T.expect_status(r, 204, "GET upload status")
        T.expect_eq(r.header("Range"), "0-999", "Range of the upload status")
        T.expect_eq(r.header("Docker-Upload-UUID"), uuid, "Docker-Upload-UUID")
        self.expect_location(r, REG, repo, "GET upload status", UPLOAD_RE)
        r = self.req("DELETE", loc)
        T.expect_status(r, 204, "DELETE upload")
        r = self.req("GET", loc)
        T.expect_error(r, 404, "BLOB_UPLOAD_UNKNOWN", "GET a cancelled upload")

    def t_manifest_put_delete(self):
        repo = "pushed/man"
        img = self.lay.single
        for b in [img.config] + img.layers:
            r = self.req("POST", self.path(repo, "blobs/uploads/?mount=%s&from=%s"
                                           % (b.digest, "demo/app")))
            T.expect_status(r, 201, "mount %s" % b.digest)
        body = img.manifest.read()
        r = self.req("PUT", self.path(repo, "manifests/v1"), body,
                     {"Content-Type": T.MEDIA_OCI_MANIFEST})
        T.expect_status(r, 201, "PUT manifest")
        T.expect_eq(r.header("Docker-Content-Digest"), img.digest,
                    "Docker-Content-Digest of the PUT manifest")
        self.expect_location(r, REG, repo, "PUT manifest",
                             r"^manifests/" + re.escape(img.digest) + "$")
        r = self.req("GET", self.path(repo, "manifests/v1"),
                     headers={"Accept": T.ACCEPT_ALL})
        T.expect_status(r, 200, "GET the pushed manifest")
        T.expect_eq(T.sha256_bytes(r.body), img.digest, "pushed manifest bytes")
        r = self.req("DELETE", self.path(repo, "manifests/" + img.digest))
        T.expect_status(r, 202, "DELETE manifest")
        r = self.req("GET", self.path(repo, "manifests/" + img.digest),
                     headers={"Accept": T.ACCEPT_ALL})
        T.expect_status(r, 404, "GET a deleted manifest")
        T.expect_eq(r.error_code(), "MANIFEST_UNKNOWN", "error code")
        layer = img.layers[0]
        r = self.req("DELETE", self.path(repo, "blobs/" + layer.digest))
        T.expect_status(r, 202, "DELETE blob")
        up = self.reg.request("HEAD", "/v2/%s/blobs/%s" % (repo, layer.digest))
        T.expect_eq(up.status, 404, "registry HEAD of the deleted blob")

    def t_relative_location(self):
        repo = "pushed/rel"
        data = os.urandom(64 * 1024)
        digest = T.sha256_bytes(data)
        up = self.rreg.request("POST", "/v2/%s/blobs/uploads/" % repo,
                               {"Content-Length": "0"})
        T.expect(up.status == 202 and
                 (up.header("Location") or "").startswith("/v2/%s/" % repo),
                 "fixture: the relativeurls registry answers a relative "
                 "Location:\n" + up.describe())
        loc = self.start_upload(repo, conn=REL)
        status, h = self._curl_chunked_patch(loc, data)
        T.expect_eq(status, 202, "chunked PATCH via the relativeurls registry")
        loc = h.get("location") or ""
        T.expect(loc.startswith(self.path(repo, "blobs/uploads/", REL)),
                 "Location after PATCH: %r" % loc)
        self.locations.append(("PATCH", "(curl rel)", status, loc))
        self.finish_upload(loc, repo, digest, conn=REL)
        self.head_blob(repo, digest, len(data), conn=REL)

    def t_pull_only_denied(self):
        rmark = self.registry_mark(self.reg)
        layer = self.lay.single.layers[0]
        r = self.req("GET", self.path("demo/app", "manifests/v1"),
                     headers={"Accept": T.ACCEPT_ALL}, token=self.bob)
        T.expect_status(r, 200, "bob (allow, not allow_push) may pull")
        cases = [
            ("POST", "pushed/bob/blobs/uploads/", b""),
            ("POST", "pushed/bob/blobs/uploads/?digest=" + T.sha256_bytes(b"x"),
             b"x"),
            ("POST", "pushed/bob/blobs/uploads/?mount=%s&from=demo/app"
             % layer.digest, b""),
            ("PATCH", "pushed/bob/blobs/uploads/"
             "0c2f0c53-6b3b-4e53-9a6e-d6b2f0a0e0a1?_state=x", b"data"),
            ("PUT", "pushed/bob/blobs/uploads/"
             "0c2f0c53-6b3b-4e53-9a6e-d6b2f0a0e0a1?_state=x&digest="
             + T.sha256_bytes(b""), b""),
            ("DELETE", "pushed/bob/blobs/uploads/"
             "0c2f0c53-6b3b-4e53-9a6e-d6b2f0a0e0a1?_state=x", b""),
            ("PUT", "demo/app/manifests/v9", self.lay.single.manifest.read()),
            ("DELETE", "demo/app/manifests/" + self.lay.single.digest, b""),
            ("DELETE", "demo/app/blobs/" + layer.digest, b""),
        ]
        for method, rest, body in cases:
            r = self.req(method, self.prefix() + rest, body,
                         {"Content-Type": T.MEDIA_OCI_MANIFEST}, token=self.bob)
            msg = T.expect_error(r, 403, "DENIED", "bob %s %s" % (method, rest))
            T.expect_in("bob", msg, "403 message names the user")
            T.expect_in("%s/%s" % (NS, REG), msg, "403 message names the connector")
        r = self.req("POST", self.path("pushed/x", "blobs/uploads/"),
                     token=T.Token("stranger"))
        T.expect_error(r, 401, "UNAUTHORIZED", "unknown token POST")
        writes = [a for a in self.registry_access(self.reg, rmark)
                  if a[0] not in ("GET", "HEAD")]
        T.expect_eq(writes, [], "write requests that reached the registry")
        up = self.reg.manifest("demo/app", "v1", method="HEAD")
        T.expect_eq(up.header("Docker-Content-Digest"), self.lay.single.digest,
                    "demo/app:v1 untouched")

    def t_token_push(self):
        mark = self.ts.mark()
        self.skopeo_push("oci:%s:multi" % self.lay.dir, "pushed/multi", "v1",
                         conn=TOK, extra=["--all"])
        r = self.treg.manifest("pushed/multi", "v1", method="HEAD")
        T.expect_eq(r.header("Docker-Content-Digest"), self.lay.index.digest,
                    "token registry digest of the pushed index")
        scopes = self.ts.by_scope(mark)
        T.diag("  token requests for the push: %s" % scopes)
        push_scope = "repository:pushed/multi:pull,push"
        T.expect(self.ts.count(push_scope, since=mark) >= 1,
                 "no token request with scope %s: %s" % (push_scope, scopes))
        for req in self.ts.requests[mark:]:
            T.expect_eq(req.status, 200, "token service answer to %r" % req)
        # cross-repository mount: scope pull,push on the target plus pull
        # on the source
        layer = self.lay.single.layers[0]
        mark = self.ts.mark()
        r = self.req("POST", self.path("pushed/tmount", "blobs/uploads/?mount=%s"
                                       "&from=demo/app" % layer.digest, TOK))
        T.expect_status(r, 201, "cross-repository mount on the token registry")
        self.expect_location(r, TOK, "pushed/tmount", "mount",
                             r"^blobs/" + re.escape(layer.digest) + "$")
        asked = set()
        for req in self.ts.requests[mark:]:
            asked |= set(req.scopes)
        T.expect_eq(asked, {"repository:pushed/tmount:pull,push",
                            "repository:demo/app:pull"},
                    "scopes ocigate asked for a cross-repository mount")

    def t_all_locations(self):
        T.expect(len(self.locations) >= 10, "only %d Location headers seen"
                 % len(self.locations))
        bad = [l for l in self.locations if l[3] is None or not any(
            l[3].startswith(self.prefix(c)) for c in (REG, REL, TOK))]
        T.expect_eq(bad, [], "Location headers not below "
                    "/v2/namespaces/%s/connectors/NAME/" % NS)
        T.diag("  %d Location headers, all rewritten" % len(self.locations))

    # -- crash containment --------------------------------------------------

    def after_respawn(self):
        self.hosts = self.cd.hosts_dir(self.og.host, self.og.url)

    def t_log_clean(self):
        for og in self.dead + [self.og]:
            og.assert_log_clean(secrets=list(self.ts.tokens) + [self.robot_pw])


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("push", keep=args.keep) as env:
        t = PushTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: registries (basic, relativeurls, token), ocigate, "
             "containerd", t.setup, True),
            ("skopeo copy --all: push a multi-arch index through ocigate",
             t.guard(t.t_skopeo_index)),
            ("ctr pull the pushed index back, digests equal the layout",
             t.guard(t.t_ctr_pull_back)),
            ("POST, PATCH Content-Range, chunked PATCH (curl), PUT ?digest=, "
             "HEAD", t.guard(t.t_chunked_upload)),
            ("chunked PATCH with its framing split across TCP segments",
             t.guard(t.t_chunked_split)),
            ("monolithic POST ?digest=", t.guard(t.t_monolithic_post)),
            ("cross-repository mount -> 201, Location rewritten",
             t.guard(t.t_mount)),
            ("GET upload status, DELETE upload",
             t.guard(t.t_status_and_cancel)),
            ("PUT and DELETE manifest, DELETE blob",
             t.guard(t.t_manifest_put_delete)),
            ("relative upstream Location (relativeurls) rewritten",
             t.guard(t.t_relative_location)),
            ("allow but not allow_push -> 403 DENIED on every write",
             t.guard(t.t_pull_only_denied)),
            ("push and mount into a token-auth registry (scope pull,push)",
             t.guard(t.t_token_push)),
            ("%d MB single-layer push, peak RSS < %d MiB"
             % (BIG_SIZE // T.MiB, RSS_LIMIT_MIB), t.guard(t.t_big_push)),
            ("every Location points below /v2/namespaces/NS/connectors/NAME/",
             t.guard(t.t_all_locations)),
            ("ocigate never crashed", t.guard(t.t_no_crash)),
            ("no token or password in the ocigate log",
             t.guard(t.t_log_clean)),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
