#!/usr/bin/env python3
"""Pulls through ocigate with real clients (skopeo, containerd/ctr, raw HTTP)
from a real TLS + htpasswd registry, checking every digest end to end.

    python3 test/e2e/test_pull.py --ocigate build/ocigate
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402

NS, CONN = "team-a", "registry"


class PullTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice", groups=["devs"])

    # -- fixture ----------------------------------------------------------

    def setup(self):
        env = self.env
        self.w = T.World(env)
        self.lay = self.w.layout
        self.stub = T.StubRegistry(self.w.pki, {
            self.w.upstream_user: self.w.upstream_password},
            {"demo/paged": ["v1", "v2", "v3"]}).start()
        conns = [
            T.registry_connector("%s/%s" % (NS, CONN), self.w.registry,
                                 allow=["alice"]),
            T.Connector("%s/paged" % NS, self.stub.url,
                        username=self.w.upstream_user,
                        password=self.w.upstream_password,
                        ca_file=self.w.pki.ca_pem, allow=["alice"]),
        ]
        self.og = T.Ocigate(env, self.args.ocigate, [self.alice], conns).start()
        self.cd = T.Containerd(env).start()
        self.hosts = self.cd.hosts_dir(self.og.host, self.og.url)
        T.diag("ocigate on %s, registry on %s, snapshotter %s"
                     % (self.og.host, self.w.registry.host, self.cd.snapshotter))

    # -- helpers ----------------------------------------------------------

    def path(self, repo, kind, ref, conn=CONN):
        return T.proxy_path(NS, conn, repo, kind, ref)

    def image_ref(self, repo, tag):
        return "%s/namespaces/%s/connectors/%s/%s:%s" % (self.og.host, NS, CONN,
                                                         repo, tag)

    def get(self, path, headers=None, method="GET"):
        h = {"Authorization": self.alice.basic()}
        h.update(headers or {})
        r = T.request(self.og.port, method, path, h)
        T.expect(r.header("WWW-Authenticate") is None or r.status == 401,
                 "%s %s: upstream WWW-Authenticate leaked:\n%s"
                 % (method, path, r.describe()))
        return r

    def skopeo(self, args, timeout=180):
        return self.env.run(["skopeo", "--insecure-policy"] + args,
                            timeout=timeout)

    def docker_ref(self, repo, tag):
        return "docker://" + self.image_ref(repo, tag)

    # -- cases ------------------------------------------------------------

    def t_version_check(self):
        r = self.get("/v2/")
        T.expect_status(r, 200, "GET /v2/")
        T.expect_eq(r.json(), {}, "GET /v2/ body")

    def t_skopeo_inspect(self):
        cp = self.skopeo(["inspect", "--tls-verify=false", "--creds",
                          "x:" + self.alice.token,
                          self.docker_ref("demo/app", "v1")])
        info = json.loads(cp.stdout)
        img = self.lay.single
        T.expect_eq(info.get("Digest"), img.digest, "skopeo inspect Digest")
        T.expect_eq(info.get("Layers"), [l.digest for l in img.layers],
                    "skopeo inspect Layers")
        T.expect_eq(info.get("Architecture"), "amd64", "Architecture")
        cp = self.skopeo(["inspect", "--raw", "--tls-verify=false", "--creds",
                          "x:" + self.alice.token,
                          self.docker_ref("demo/app", "v1")])
        T.expect_eq(T.sha256_bytes(cp.stdout), img.digest,
                    "sha256 of skopeo inspect --raw")

    def t_skopeo_copy_dir(self):
        dest = self.env.path("copy-dir")
        self.skopeo(["copy", "--quiet", "--preserve-digests",
                     "--src-tls-verify=false", "--src-creds",
                     "x:" + self.alice.token,
                     self.docker_ref("demo/app", "v1"), "dir:" + dest])
        img = self.lay.single
        with open(os.path.join(dest, "manifest.json"), "rb") as f:
            manifest = f.read()
        upstream = self.w.registry.manifest("demo/app", "v1",
                                            method="HEAD")
        T.expect_eq(T.sha256_bytes(manifest),
                    upstream.header("Docker-Content-Digest"),
                    "sha256 of copied manifest vs registry Docker-Content-Digest")
        found = T.verify_blob_dir(dest)
        T.expect_eq(found, {b.digest for b in [img.config] + img.layers},
                    "blobs copied to dir:")

    def t_skopeo_copy_index(self):
        dest = self.env.path("copy-oci")
        self.skopeo(["copy", "--quiet", "--all", "--preserve-digests",
                     "--src-tls-verify=false", "--src-creds",
                     "x:" + self.alice.token,
                     self.docker_ref("demo/multi", "v1"),
                     "oci:%s:multi" % dest])
        found = T.verify_blob_dir(os.path.join(dest, "blobs", "sha256"))
        want = {self.lay.index.digest}
        for img in self.lay.platforms.values():
            want |= {b.digest for b in img.blobs()}
        T.expect_eq(found, want, "blobs copied to oci:")
        with open(os.path.join(dest, "index.json")) as f:
            top = json.load(f)
        upstream = self.w.registry.manifest("demo/multi", "v1", method="HEAD")
        T.expect_eq([m["digest"] for m in top["manifests"]],
                    [upstream.header("Docker-Content-Digest")],
                    "index digest in copied oci layout vs registry")

    def t_ctr_pull_single(self):
        ref = self.image_ref("demo/app", "v1")
        self.cd.pull(ref, self.hosts, user="x:" + self.alice.token)
        img = self.lay.single
        T.expect_eq(self.cd.images().get(ref),
                    (T.MEDIA_OCI_MANIFEST, img.digest), "ctr images ls " + ref)
        missing = {b.digest for b in img.blobs()} - self.cd.content()
        T.expect_eq(missing, set(), "blobs missing from ctr content ls")

    def t_ctr_pull_index(self):
        ref = self.image_ref("demo/multi", "v1")
        self.cd.pull(ref, self.hosts, user="x:" + self.alice.token)
        T.expect_eq(self.cd.images().get(ref),
                    (T.MEDIA_OCI_INDEX, self.lay.index.digest),
                    "ctr images ls " + ref)
        content = self.cd.content()
        amd, arm = self.lay.platforms["amd64"], self.lay.platforms["arm64"]
        missing = ({self.lay.index.digest} | {b.digest for b in amd.blobs()}) - content
        T.expect_eq(missing, set(), "index/amd64 blobs missing from content")
        T.expect(arm.layers[0].digest not in content,
                 "arm64 layer was fetched for a default-platform pull")

    def t_ctr_pull_arm64(self):
        ref = self.image_ref("demo/multi", "v1")
        self.cd.pull(ref, self.hosts, user="x:" + self.alice.token,
                     platform="linux/arm64")
        arm = self.lay.platforms["arm64"]
        T.expect_eq(self.cd.images().get(ref),
                    (T.MEDIA_OCI_INDEX, self.lay.index.digest),
                    "ctr images ls " + ref)
        missing = {b.digest for b in arm.blobs()} - self.cd.content()
        T.expect_eq(missing, set(), "arm64 blobs missing from content")

    def _head_then_get(self, path, headers):
        """HEAD on a keep-alive connection, then GET /v2/ on the same one:
        any body bytes after the HEAD response would garble the second."""
        h = {"Authorization": self.alice.basic()}
        h.update(headers)
        with T.RawConn(self.og.port) as c:
            c.send(T.build_request("HEAD", path, self.og.host, h))
            head = c.read_response("HEAD")
            c.send(T.build_request("GET", "/v2/", self.og.host,
                                   {"Authorization": self.alice.basic()}))
            nxt = c.read_response("GET")
        T.expect_status(nxt, 200, "GET /v2/ after HEAD on the same connection"
                        " (stray body bytes?)")
        return head

    def t_head_manifest(self):
        head = self._head_then_get(self.path("demo/app", "manifests", "v1"),
                                   {"Accept": T.ACCEPT_ALL})
        up = self.w.registry.manifest("demo/app", "v1", method="HEAD")
        T.expect_status(head, 200, "HEAD manifest")
        for h in ("Content-Length", "Docker-Content-Digest", "Content-Type"):
            T.expect_eq(head.header(h), up.header(h), "HEAD manifest " + h)
        T.expect_eq(head.header("Docker-Content-Digest"), self.lay.single.digest,
                    "HEAD manifest digest")

    def t_head_blob(self):
        big = self.lay.big
        reg = self.w.registry
        gets = len(reg.access_lines('"GET /v2/demo/app/blobs/' + big.digest))
        heads = len(reg.access_lines('"HEAD /v2/demo/app/blobs/' + big.digest))
        head = self._head_then_get(self.path("demo/app", "blobs", big.digest), {})
        # a HEAD must stay a HEAD upstream (rate limits, 100 MB for nothing)
        T.wait_for(lambda: len(reg.access_lines(
            '"HEAD /v2/demo/app/blobs/' + big.digest)) > heads, 5, 0.05,
            "the registry to log the forwarded HEAD")
        T.expect_eq(len(reg.access_lines('"GET /v2/demo/app/blobs/' + big.digest)),
                    gets, "GETs of the blob the registry saw for one HEAD")
        up = self.w.registry.request("HEAD", "/v2/demo/app/blobs/" + big.digest)
        T.expect_status(head, 200, "HEAD blob")
        T.expect_eq(head.header("Content-Length"), str(big.size),
                    "HEAD blob Content-Length")
        T.expect_eq(head.header("Content-Length"), up.header("Content-Length"),
                    "HEAD blob Content-Length vs registry")
        T.expect_eq(head.header("Docker-Content-Digest"),
                    up.header("Docker-Content-Digest"),
                    "HEAD blob Docker-Content-Digest vs registry")

    def t_range(self):
        big = self.lay.big
        r = self.get(self.path("demo/app", "blobs", big.digest),
                     {"Range": "bytes=1000-1999"})
        T.expect_status(r, 206, "Range GET")
        T.expect_eq(r.header("Content-Range"), "bytes 1000-1999/%d" % big.size,
                    "Content-Range")
        T.expect_eq(len(r.body), 1000, "Range body length")
        T.expect(r.body == big.read(1000, 2000),
                 "Range body differs from bytes 1000-1999 of the blob")

    def t_full_blob(self):
        big = self.lay.big
        res = T.stream_get(self.og.port,
                           self.path("demo/app", "blobs", big.digest),
                           {"Authorization": self.alice.basic()})
        T.expect(res.error is None, "blob GET: %s" % res.error)
        T.expect_eq(res.status, 200, "blob GET status")
        T.expect_eq(res.sha256, big.digest, "sha256 of the streamed blob")
        T.diag("  100 MB blob in %.2fs (%.0f MB/s)"
                     % (res.seconds, big.size / res.seconds / 1e6))

    def t_tags_list(self):
        r = self.get(self.path("demo/app", "tags", "list"))
        T.expect_status(r, 200, "tags/list")
        T.expect_eq(r.json().get("tags"), ["v1", "v2", "v3"], "tags")

    def t_tags_pagination(self):
        # distribution 2.8 ignores ?n=, so this connector is the stub upstream
        prefix = "/v2/namespaces/%s/connectors/paged/demo/paged/tags/list?" % NS
        path = self.path("demo/paged", "tags", "list?n=1", conn="paged")
        seen = []
        for i in range(4):
            r = self.get(path)
            T.expect_status(r, 200, "GET " + path)
            seen += r.json().get("tags", [])
            link = r.header("Link")
            if len(seen) == 3:
                T.expect_eq(link, None, "Link on the last page")
                break
            T.expect(link is not None, "no Link header on page %d:\n%s"
                     % (i + 1, r.describe()))
            T.expect(link.startswith("<" + prefix) and
                     link.endswith('>; rel="next"'),
                     "Link not rewritten to the proxy path: %r" % link)
            path = link[1:link.index(">")]
        T.expect_eq(seen, ["v1", "v2", "v3"], "tags collected over pages")
        auths = {req[2].get("Authorization") for req in self.stub.requests
                 if "tags/list" in req[1]}
        want = T.basic_auth(self.w.upstream_user, self.w.upstream_password)
        T.expect_eq(auths, {want}, "Authorization the upstream received")
        for method, p, headers in self.stub.requests:
            for v in headers.values():
                T.expect(self.alice.token not in v,
                         "client token forwarded upstream in %s %s" % (method, p))

    def t_accept_index(self):
        path = self.path("demo/multi", "manifests", "v1")
        idx = self.lay.index.digest
        variants = [
            ("one Accept header", [("Accept", T.ACCEPT_ALL)]),
            ("one Accept line per type",
             [("Accept", m) for m in (T.MEDIA_DOCKER_MANIFEST, T.MEDIA_DOCKER_LIST,
                                      T.MEDIA_OCI_MANIFEST, T.MEDIA_OCI_INDEX)]),
            ("containerd style with */*",
             [("Accept", ", ".join([T.MEDIA_DOCKER_MANIFEST, T.MEDIA_DOCKER_LIST,
                                    T.MEDIA_OCI_MANIFEST, T.MEDIA_OCI_INDEX,
                                    "*/*"]))]),
            ("index only", [("Accept", T.MEDIA_OCI_INDEX)]),
        ]
        for name, accept in variants:
            r = T.request(self.og.port, "GET", path,
                          [("Authorization", self.alice.basic())] + accept)
            T.expect_status(r, 200, name)
            T.expect_eq(r.header("Content-Type"), T.MEDIA_OCI_INDEX,
                        name + ": Content-Type")
            T.expect_eq(r.header("Docker-Content-Digest"), idx,
                        name + ": Docker-Content-Digest")
            T.expect_eq(T.sha256_bytes(r.body), idx, name + ": sha256(body)")

    def t_upstream_errors_pass_through(self):
        zero = "sha256:" + "0" * 64
        cases = [("demo/app", "manifests", "nosuchtag"),
                 ("demo/app", "blobs", zero),
                 ("demo/nosuchrepo", "manifests", "v1"),
                 ("demo/app", "referrers", self.lay.single.digest)]
        for repo, kind, ref in cases:
            up = self.w.registry.request("GET", "/v2/%s/%s/%s" % (repo, kind, ref),
                                         {"Accept": T.ACCEPT_ALL})
            r = self.get(self.path(repo, kind, ref), {"Accept": T.ACCEPT_ALL})
            what = "GET %s/%s/%s" % (repo, kind, ref)
            T.expect_eq(r.status, up.status, what + ": status vs registry's")
            if up.status >= 400 and up.error_code():
                T.expect_eq(r.error_code(), up.error_code(),
                            what + ": error code vs registry's")

    def t_bearer(self):
        r = self.get("/v2/", {"Authorization": self.alice.bearer()})
        T.expect_status(r, 200, "GET /v2/ with Bearer")
        r = self.get(self.path("demo/app", "manifests", "v1"),
                     {"Authorization": self.alice.bearer(),
                      "Accept": T.MEDIA_OCI_MANIFEST})
        T.expect_status(r, 200, "manifest with Bearer")
        T.expect_eq(T.sha256_bytes(r.body), self.lay.single.digest,
                    "sha256 of manifest fetched with Bearer")

    def t_sigterm(self):
        rc = self.og.stop(timeout=15)
        T.expect_eq(rc, 0, "ocigate exit status after SIGTERM")

    def t_log_clean(self):
        self.og.assert_log_clean()


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("pull", keep=args.keep) as env:
        t = PullTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: pki, registry, seed, ocigate, containerd", t.setup, True),
            ("GET /v2/ -> 200 {}", t.t_version_check),
            ("skopeo inspect through ocigate", t.t_skopeo_inspect),
            ("skopeo copy image to dir:, digests verified", t.t_skopeo_copy_dir),
            ("skopeo copy --all index to oci:, digests verified",
             t.t_skopeo_copy_index),
            ("ctr pull single-platform image", t.t_ctr_pull_single),
            ("ctr pull index, default platform", t.t_ctr_pull_index),
            ("ctr pull index --platform linux/arm64", t.t_ctr_pull_arm64),
            ("HEAD manifest: headers equal registry's, no body", t.t_head_manifest),
            ("HEAD blob: headers equal registry's, no body", t.t_head_blob),
            ("Range bytes=1000-1999 -> 206 and exactly those bytes", t.t_range),
            ("GET 100 MB blob, sha256 verified", t.t_full_blob),
            ("tags/list", t.t_tags_list),
            ("tags/list?n=1 pagination with rewritten Link", t.t_tags_pagination),
            ("index manifest with several Accept forms", t.t_accept_index),
            ("upstream 404s (tag, blob, repo, referrers) pass through",
             t.t_upstream_errors_pass_through),
            ("Bearer token works", t.t_bearer),
            ("SIGTERM -> exit 0", t.t_sigterm),
            ("ocigate log has no token or upstream password", t.t_log_clean),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
