#!/usr/bin/env python3
"""Blob redirects (S3/CDN style) followed inside ocigate: GET, HEAD and Range
through a 30x to another host, the connector's credentials never sent there,
relative Locations, hop limit, untrusted and plain-http targets.

The upstream is test/e2e/redirector.py in front of a real TLS + htpasswd
docker-registry: blob GET/HEAD get a redirect to https://localhost:PORT
(another origin than https://127.0.0.1:PORT), everything else is proxied.

    python3 test/e2e/test_redirects.py --ocigate build/ocigate
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
from redirector import Redirector  # noqa: E402

NS, CONN, INSECURE = "team-a", "cdn", "cdn-insecure"
MAX_HOPS = 5


class RedirectTest(T.CrashGuard):
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice")
        self.og_insecure = None
        self.dead = []             # ocigate instances that crashed

    # -- fixture ----------------------------------------------------------

    def setup(self):
        env = self.env
        self.pki = T.make_pki(env.path("pki"))
        rogue = T.make_pki(env.path("rogue-pki"), cn="rogue")
        self.user, self.password = "robot", "upw-redirect-" + os.urandom(6).hex()
        self.reg = T.Registry(env, self.pki,
                              users={self.user: self.password}).start()
        self.lay = T.make_oci_layout(env.path("layout"), 8 * T.MiB)
        T.seed_registry(self.reg, self.lay)
        self.rd = Redirector(self.pki, self.reg,
                             {d: b.path for d, b in self.lay.all_blobs().items()},
                             rogue_pki=rogue).start()
        self.conn = self.connector(CONN)
        self.og = T.Ocigate(env, self.args.ocigate, [self.alice],
                            [self.conn]).start()
        T.diag("ocigate %s, front %s, cdn %s, plain %s, registry %s"
               % (self.og.host, self.rd.url, self.rd.cdn_origin,
                  self.rd.plain_origin, self.reg.host))

    def connector(self, name, **options):
        return T.Connector("%s/%s" % (NS, name), self.rd.url,
                           username=self.user, password=self.password,
                           ca_file=self.pki.ca_pem, allow=["alice"],
                           options=options)

    # -- helpers ----------------------------------------------------------

    def blob_path(self, blob, conn=CONN, repo="demo/app"):
        return T.proxy_path(NS, conn, repo, "blobs", blob.digest)

    def get(self, path, headers=None, method="GET", port=None):
        h = {"Authorization": self.alice.basic()}
        h.update(headers or {})
        return T.request(port or self.og.port, method, path, h, timeout=60)

    def expect_followed(self, r, blob, what):
        """A 200 carrying exactly the blob, no redirect left for the client."""
        T.expect_status(r, 200, what)
        T.expect_eq(r.header("Location"), None, what + ": Location to client")
        T.expect_eq(len(r.body), blob.size, what + ": body length")
        T.expect_eq(T.sha256_bytes(r.body), blob.digest, what + ": sha256")

    def cdn_hits(self, since, server="cdn"):
        return self.rd.requests(server, since)

    def expect_no_auth(self, reqs, where):
        for q in reqs:
            T.expect(q.header("Authorization") is None,
                     "%s received Authorization %r on %s %s"
                     % (where, q.header("Authorization"), q.method, q.path))
            for k, v in q.headers:
                T.expect(self.password not in v and self.alice.token not in v,
                         "%s received a credential in %s: on %s %s"
                         % (where, k, q.method, q.path))

    # -- cases ------------------------------------------------------------

    def t_fixture(self):
        """The redirector itself, without ocigate: curl follows the
        redirect (and, like ocigate must, drops Authorization on the way to
        another host)."""
        big = self.lay.big
        self.rd.mode, self.rd.status = "absolute", 307
        mark = self.rd.mark()
        out = self.env.path("fixture.bin")
        cp = T.curl(self.env, [
            "-L", "--cacert", self.pki.ca_pem, "-u",
            "%s:%s" % (self.user, self.password), "-o", out,
            "-H", "Range: bytes=1000-1999", "-w", "%{http_code} %{num_redirects}",
            "%s/v2/demo/app/blobs/%s" % (self.rd.url, big.digest)])
        T.expect_eq(cp.stdout.decode(), "206 1", "curl -L status and redirects")
        with open(out, "rb") as f:
            T.expect(f.read() == big.read(1000, 2000), "fixture served wrong bytes")
        T.expect_eq([q.server for q in self.rd.requests(since=mark)],
                    ["front", "cdn"], "fixture: who saw the request")
        self.expect_no_auth(self.cdn_hits(mark), "the cdn (curl)")

    def t_get(self):
        big = self.lay.big
        self.rd.mode, self.rd.status = "absolute", 307
        mark = self.rd.mark()
        res = T.stream_get(self.og.port, self.blob_path(big),
                           {"Authorization": self.alice.basic()}, timeout=60)
        T.expect(res.error is None, "blob GET: %s" % res.error)
        T.expect_eq(res.status, 200, "blob GET status (redirect followed)")
        T.expect_eq(res.sha256, big.digest, "sha256 of the blob")
        front = self.rd.requests("front", mark)
        T.expect_eq([(q.method, q.path) for q in front],
                    [("GET", "/v2/demo/app/blobs/" + big.digest)],
                    "requests the registry front saw")
        T.expect_eq(front[0].header("Authorization"),
                    T.basic_auth(self.user, self.password),
                    "Authorization the registry's own origin received")
        cdn = self.cdn_hits(mark)
        want = "/cdn/sha256/%s?%s" % (big.digest.split(":")[1], self.rd.query)
        T.expect_eq([(q.method, q.path) for q in cdn], [("GET", want)],
                    "requests the cdn saw (query byte for byte)")
        self.expect_no_auth(cdn, "the cdn (another host)")

    def t_head(self):
        big = self.lay.big
        self.rd.mode = "absolute"
        mark = self.rd.mark()
        path = self.blob_path(big)
        with T.RawConn(self.og.port, timeout=30) as c:
            c.send(T.build_request("HEAD", path, self.og.host,
                                   {"Authorization": self.alice.basic()}))
            head = c.read_response("HEAD")
            # stray body bytes after the HEAD would garble this one
            c.send(T.build_request("GET", "/v2/", self.og.host,
                                   {"Authorization": self.alice.basic()}))
            nxt = c.read_response("GET")
        T.expect_status(head, 200, "HEAD blob through a redirect")
        T.expect_eq(head.header("Content-Length"), str(big.size),
                    "HEAD Content-Length")
        T.expect_status(nxt, 200, "GET /v2/ after the HEAD on the same connection")
        cdn = self.cdn_hits(mark)
        T.expect_eq([q.method for q in cdn], ["HEAD"],
                    "methods the cdn saw for one HEAD (a HEAD stays a HEAD)")
        self.expect_no_auth(cdn, "the cdn")

    def t_range(self):
        big = self.lay.big
        self.rd.mode = "absolute"
        for rng, start, end in (("bytes=1000-1999", 1000, 1999),
                                ("bytes=%d-" % (big.size - 10), big.size - 10,
                                 big.size - 1)):
            mark = self.rd.mark()
            r = self.get(self.blob_path(big), {"Range": rng})
            T.expect_status(r, 206, "Range %s through a redirect" % rng)
            T.expect_eq(r.header("Content-Range"),
                        "bytes %d-%d/%d" % (start, end, big.size),
                        "Content-Range for " + rng)
            T.expect(r.body == big.read(start, end + 1),
                     "Range %s: body differs from bytes %d-%d (%d bytes)"
                     % (rng, start, end, len(r.body)))
            cdn = self.cdn_hits(mark)
            T.expect_eq([q.header("Range") for q in cdn], [rng],
                        "Range header the cdn received")
            self.expect_no_auth(cdn, "the cdn")

    def t_statuses(self):
        layer = self.lay.single.layers[0]
        try:
            for status in (301, 302, 303, 307, 308):
                self.rd.mode, self.rd.status = "absolute", status
                mark = self.rd.mark()
                r = self.get(self.blob_path(layer))
                self.expect_followed(r, layer, "GET blob after a %d" % status)
                T.expect_eq(len(self.cdn_hits(mark)), 1,
                            "cdn requests after a %d" % status)
        finally:
            self.rd.status = 307

    def t_relative(self):
        big = self.lay.big
        hexd = big.digest.split(":")[1]
        want = "/_blobstore/sha256/%s?%s" % (hexd, self.rd.query)
        for mode in ("relative", "dots"):
            self.rd.mode = mode
            mark = self.rd.mark()
            r = self.get(self.blob_path(big), {"Range": "bytes=0-99"})
            T.expect_status(r, 206, "Range GET, Location %r"
                            % self.rd.location(big.digest)[:60])
            T.expect(r.body == big.read(0, 100), "relative redirect: wrong bytes")
            store = [q for q in self.rd.requests("front", mark)
                     if q.path.startswith("/_blobstore/")]
            T.expect_eq([q.path for q in store], [want],
                        "where %r resolved to" % self.rd.location(big.digest)[:40])

    def t_chain_at_limit(self):
        layer = self.lay.single.layers[1]
        self.rd.mode, self.rd.hops = "chain", MAX_HOPS
        mark = self.rd.mark()
        r = self.get(self.blob_path(layer))
        self.expect_followed(r, layer, "GET blob after exactly %d redirects"
                             % MAX_HOPS)
        T.expect_eq(len(self.cdn_hits(mark)), MAX_HOPS,
                    "cdn requests for %d redirects" % MAX_HOPS)
        self.expect_no_auth(self.cdn_hits(mark), "the cdn")

    def t_loop(self):
        layer = self.lay.single.layers[1]
        self.rd.mode = "loop"
        mark = self.rd.mark()
        for method in ("GET", "HEAD"):
            r = self.get(self.blob_path(layer), method=method)
            T.expect_status(r, 502, "%s with an endless redirect loop" % method)
        r = self.get(self.blob_path(layer))
        msg = T.expect_error(r, 502, "UNAVAILABLE", "endless redirect loop")
        T.expect_in("%s/%s" % (NS, CONN), msg, "502 message")
        T.expect_eq(r.header("Location"), None, "Location on the 502")
        hits = self.cdn_hits(mark)
        # 3 requests; following MAX_HOPS redirects (the front's and
        # MAX_HOPS - 1 on the cdn) means at most MAX_HOPS cdn requests each
        T.expect(len(hits) <= 3 * MAX_HOPS,
                 "the cdn saw %d requests for 3 looping requests (more than "
                 "%d hops each)" % (len(hits), MAX_HOPS))
        T.diag("  cdn saw %d loop requests for 3 client requests" % len(hits))
        self.expect_no_auth(hits, "the cdn")

    def t_untrusted(self):
        layer = self.lay.single.layers[0]
        self.rd.mode = "untrusted"
        mark = self.rd.mark()
        r = self.get(self.blob_path(layer))
        msg = T.expect_error(r, 502, "UNAVAILABLE",
                             "redirect to a host with an untrusted certificate")
        T.expect_in("%s/%s" % (NS, CONN), msg, "502 message")
        for q in self.rd.requests("rogue", mark):
            T.fail("the untrusted host got an HTTP request (%s %s): TLS was "
                   "not verified" % (q.method, q.path))

    def t_http_refused(self):
        layer = self.lay.single.layers[0]
        self.rd.mode = "http"
        mark = self.rd.mark()
        r = self.get(self.blob_path(layer))
        msg = T.expect_error(r, 502, "UNAVAILABLE",
                             "redirect to plain http without allow_insecure")
        T.expect_in("%s/%s" % (NS, CONN), msg, "502 message")
        T.expect_eq(self.cdn_hits(mark, "plain"), [],
                    "requests the plain-http host got")

    def t_http_allowed(self):
        layer = self.lay.single.layers[0]
        big = self.lay.big
        self.rd.mode = "http"
        conn = self.connector(INSECURE, allow_insecure="yes")
        self.og_insecure = T.Ocigate(self.env, self.args.ocigate, [self.alice],
                                     [conn], name="ocigate-insecure").start()
        mark = self.rd.mark()
        r = self.get(self.blob_path(layer, INSECURE), port=self.og_insecure.port)
        self.expect_followed(r, layer, "GET via plain http with allow_insecure")
        res = T.stream_get(self.og_insecure.port, self.blob_path(big, INSECURE),
                           {"Authorization": self.alice.basic()}, timeout=60)
        T.expect(res.error is None and res.status == 200
                 and res.sha256 == big.digest,
                 "big blob via plain http: status %s, %s, error %s"
                 % (res.status, res.sha256, res.error))
        plain = self.cdn_hits(mark, "plain")
        T.expect_eq(len(plain), 2, "requests the plain-http host got")
        self.expect_no_auth(plain, "the plain-http host")

    def t_skopeo_copy(self):
        self.rd.mode = "absolute"
        mark = self.rd.mark()
        dest = self.env.path("copy-dir")
        ref = "docker://%s/namespaces/%s/connectors/%s/demo/app:v1" % (
            self.og.host, NS, CONN)
        self.env.run(["skopeo", "--insecure-policy", "copy", "--quiet",
                      "--preserve-digests", "--src-tls-verify=false",
                      "--src-creds", "x:" + self.alice.token, ref,
                      "dir:" + dest])
        found = T.verify_blob_dir(dest)
        img = self.lay.single
        T.expect_eq(found, {b.digest for b in [img.config] + img.layers},
                    "blobs copied to dir: (sha256 verified)")
        with open(os.path.join(dest, "manifest.json"), "rb") as f:
            T.expect_eq(T.sha256_bytes(f.read()), img.digest, "manifest digest")
        got = {q.path.split("?")[0].rsplit("/", 1)[-1]
               for q in self.cdn_hits(mark) if q.method == "GET"}
        want = {b.digest.split(":")[1] for b in [img.config] + img.layers}
        T.expect_eq(got, want, "blobs skopeo got through the cdn")
        self.expect_no_auth(self.cdn_hits(mark), "the cdn")

    def t_chunked_target(self):
        """The redirect target answers with chunked encoding, its framing
        cut across TCP segments: the client gets exactly the blob."""
        self.rd.mode, self.rd.chunked = "absolute", True
        try:
            for blob in (self.lay.single.layers[0], self.lay.big):
                res = T.stream_get(self.og.port, self.blob_path(blob),
                                   {"Authorization": self.alice.basic()},
                                   timeout=60)
                what = "GET %d-byte blob from a chunked redirect target" % blob.size
                T.expect(res.status == 200 and res.sha256 == blob.digest,
                         "%s: status %s, %d bytes, %s, error %s"
                         % (what, res.status, res.nbytes, res.sha256, res.error))
        finally:
            self.rd.chunked = False

    def t_upstream_404(self):
        self.rd.mode = "absolute"
        zero = T.Blob("sha256:" + "0" * 64, 0, "", None)
        r = self.get(self.blob_path(zero))
        T.expect_status(r, 404, "unknown blob (registry 404, no redirect)")
        T.expect_eq(r.error_code(), "BLOB_UNKNOWN", "error code")

    def t_never_auth_elsewhere(self):
        for server in ("cdn", "plain", "rogue"):
            self.expect_no_auth(self.rd.requests(server), "the %s host" % server)
        n = len(self.rd.requests("cdn")) + len(self.rd.requests("plain"))
        T.expect(n > 0, "no request reached another host at all")
        T.diag("  %d requests to other hosts, none with Authorization" % n)
        for q in self.rd.requests("front"):
            for k, v in q.headers:
                T.expect(self.alice.token not in v,
                         "client token sent upstream in %s: %s" % (k, q.path))

    # -- crash containment --------------------------------------------------

    def extra_ocigates(self):
        return [self.og_insecure] if self.og_insecure is not None else []

    def t_log_clean(self):
        for og in self.dead + [self.og]:
            og.assert_log_clean()
        if self.og_insecure is not None:
            self.og_insecure.assert_log_clean()


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("redirects", keep=args.keep) as env:
        t = RedirectTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: pki, registry, redirector, ocigate", t.setup, True),
            ("fixture: curl -L through the redirector, no ocigate",
             t.t_fixture),
            ("GET blob: 307 to another host followed, sha256 ok, no "
             "Authorization there", t.guard(t.t_get)),
            ("HEAD blob through a redirect: 200, Content-Length, HEAD upstream",
             t.guard(t.t_head)),
            ("Range through a redirect: 206, exact bytes, Range kept",
             t.guard(t.t_range)),
            ("301/302/303/307/308 all followed", t.guard(t.t_statuses)),
            ("relative Location (/path and ../path) resolved against the "
             "request URL", t.guard(t.t_relative)),
            ("exactly %d redirects followed" % MAX_HOPS,
             t.guard(t.t_chain_at_limit)),
            ("redirect loop -> 502 UNAVAILABLE naming the connector",
             t.guard(t.t_loop)),
            ("redirect to an untrusted https host -> 502",
             t.guard(t.t_untrusted)),
            ("redirect to plain http refused by default -> 502",
             t.guard(t.t_http_refused)),
            ("redirect to plain http followed with allow_insecure = yes",
             t.guard(t.t_http_allowed)),
            ("skopeo copy through redirects, digests verified",
             t.guard(t.t_skopeo_copy)),
            ("redirect target answering chunked, framing split across "
             "segments", t.guard(t.t_chunked_target)),
            ("registry 404 on a blob passes through",
             t.guard(t.t_upstream_404)),
            ("no other host ever saw Authorization or a token",
             t.guard(t.t_never_auth_elsewhere)),
            ("ocigate never crashed", t.guard(t.t_no_crash)),
            ("ocigate logs have no token or upstream password",
             t.guard(t.t_log_clean)),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
