#!/usr/bin/env python3
"""The node-local blob cache ([cache] dir) with real components: a TLS +
htpasswd docker-registry whose access log counts the upstream transfers,
skopeo and ctr pulls with every digest verified, a corrupting upstream, a
second registry for the tenancy rule, restart, eviction, DELETE, and a
cache directory that turns read-only under a running ocigate.

    python3 test/e2e/test_cache.py --ocigate build/ocigate
"""

import gzip
import hashlib
import http.client
import http.server
import socket
import json
import os
import re
import resource
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402

NS = "team-a"
MiB = 1024 * 1024


def push_blob(registry, repo, data):
    """Monolithic upload straight to the registry; returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    ctx = registry.pki.ssl_context()
    path = "/v2/%s/blobs/uploads/" % repo
    conn = http.client.HTTPSConnection("127.0.0.1", registry.port, timeout=30,
                                       context=ctx)
    try:
        h = dict(registry.auth_header(path + "x/"))
        conn.request("POST", path, headers=dict(h, **{"Content-Length": "0"}))
        r = conn.getresponse()
        r.read()
        T.expect_eq(r.status, 202, "upload POST status")
        loc = r.getheader("Location")
        if loc.startswith("https://"):
            loc = "/" + loc.split("/", 3)[3]
        loc += ("&" if "?" in loc else "?") + "digest=" + digest
        conn.request("PUT", loc, body=data, headers=dict(h, **{
            "Content-Type": "application/octet-stream"}))
        r = conn.getresponse()
        r.read()
        T.expect_eq(r.status, 201, "upload PUT status")
    finally:
        conn.close()
    return digest


class SlowRegistry:
    """An anonymous TLS registry in this process that serves the blobs it is
    given slowly (64 KiB every 10 ms), with the right length and
    Docker-Content-Digest; those in corrupt get one byte flipped in the
    middle: what a bad disk or a broken CDN looks like."""

    def __init__(self, pki, blobs, corrupt=(), gzipped=()):
        self.blobs = dict(blobs)  # digest -> bytes
        self.corrupt = set(corrupt)
        self.gzipped = set(gzipped)  # sent gzip-compressed, Content-Encoding: gzip
        self.gets = 0
        self.heads = 0
        self.ranges = 0  # requests with a Range header (answered 200 in full)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                outer._serve(self, True)

            def do_HEAD(self):
                outer._serve(self, False)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # ocigate hanging up mid-body is part of the tests

        self.srv = Server(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.cert, pki.key)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.srv.daemon_threads = True
        self.port = self.srv.server_address[1]

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def start(self):
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.srv.shutdown()

    def _serve(self, h, body):
        if h.path == "/v2/":
            data, status = b"{}", 200
        else:
            digest = h.path.rsplit("/", 1)[-1]
            data = self.blobs.get(digest)
            status = 200 if data is not None else 404
            if data is None:
                data = b'{"errors":[{"code":"BLOB_UNKNOWN"}]}'
            elif not body:
                self.heads += 1
            else:
                self.gets += 1
                self.ranges += h.headers.get("Range") is not None
                if digest in self.corrupt:
                    mid = len(data) // 2
                    data = data[:mid] + bytes([data[mid] ^ 0x55]) + data[mid + 1:]
            if status == 200 and digest in self.gzipped:
                data = gzip.compress(data)
            if status == 200:
                h.send_response(200)
                if digest in self.gzipped:
                    h.send_header("Content-Encoding", "gzip")
                h.send_header("Docker-Content-Digest", digest)
                h.send_header("Content-Type", "application/octet-stream")
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                # In 64 KiB pieces, 10 ms apart: long enough for concurrent
                # requests to join the fill.
                for off in range(0, len(data) if body else 0, 65536):
                    h.wfile.write(data[off:off + 65536])
                    h.wfile.flush()
                    time.sleep(0.01)
                return
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)


class CacheTest(T.CrashGuard):
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice", groups=["devs"])
        self.dead = []
        self.others = []
        self.stopped = []  # stopped on purpose; their logs are still checked

    # -- fixture ----------------------------------------------------------

    def setup(self):
        env = self.env
        self.w = T.World(env, big_size=48 * MiB)
        self.lay = self.w.layout
        self.reg = self.w.registry
        self.reg_b = T.Registry(env, self.w.pki, users={"robot": "pw-b-" + secrets.token_hex(6)},
                                name="registry-b").start()
        self.small = [os.urandom(300 * 1024) for _ in range(4)]
        self.small_digests = [push_blob(self.reg, "demo/small", d) for d in self.small]
        self.bad_data = os.urandom(2 * MiB + 17)
        self.bad_digest = "sha256:" + hashlib.sha256(self.bad_data).hexdigest()
        # 0, 1, 5: 3 MiB; 2, 6: 12 MiB; 3: 4 MiB; 4: 8 MiB (each for one case: uncached)
        self.slow_data = ([os.urandom(3 * MiB + i) for i in range(2)] + [os.urandom(12 * MiB)]
                          + [os.urandom(4 * MiB + 3), os.urandom(8 * MiB + 5)]
                          + [os.urandom(3 * MiB + 7), os.urandom(12 * MiB + 11)])
        self.slow_digests = ["sha256:" + hashlib.sha256(d).hexdigest() for d in self.slow_data]
        blobs = dict(zip(self.slow_digests, self.slow_data))
        blobs[self.bad_digest] = self.bad_data
        self.gz_data = os.urandom(200 * 1024)
        self.gz_digest = "sha256:" + hashlib.sha256(self.gz_data).hexdigest()
        blobs[self.gz_digest] = self.gz_data
        self.corrupt = SlowRegistry(self.w.pki, blobs, corrupt=[self.bad_digest],
                                    gzipped=[self.gz_digest]).start()
        self.cache_dir = env.path("cache")
        self.og = self.start_ocigate("ocigate", self.cache_dir, tls=True)
        T.diag("ocigate on %s, registry %s, registry-b %s, corrupting %s"
               % (self.og.host, self.reg.host, self.reg_b.host, self.corrupt.url))

    def connectors(self):
        return [
            T.registry_connector("%s/a" % NS, self.reg, allow=["alice"],
                                 options={"allow_push": "alice"}),
            T.registry_connector("%s/b" % NS, self.reg_b, allow=["alice"]),
            T.registry_connector("%s/a2" % NS, self.reg, allow=["alice"]),
            T.Connector("%s/bad" % NS, self.corrupt.url, ca_file=self.w.pki.ca_pem,
                        allow=["alice"]),
        ]

    def start_ocigate(self, name, cache_dir, tls=False, preexec_fn=None, **cache):
        opts = {"dir": cache_dir}
        opts.update(cache)
        sections = {"cache": opts}
        if tls:
            sections["tls"] = {"listen": "127.0.0.1:0", "cert_file": self.w.pki.cert,
                               "key_file": self.w.pki.key}
        og = T.Ocigate(self.env, self.args.ocigate, [self.alice], self.connectors(),
                       server={"admin_listen": "127.0.0.1:0"}, name=name,
                       sections=sections, preexec_fn=preexec_fn).start()
        # The index is rebuilt on the loop after listening; until it is,
        # requests miss. The cases here want it complete.
        T.wait_for(lambda: "event=cache_open" in og.log_text() or
                   "event=cache_disabled" in og.log_text(), 30, 0.05,
                   "%s to index its cache" % name)
        return og

    def extra_ocigates(self):
        return self.others

    def after_respawn(self):
        pass

    # -- helpers ----------------------------------------------------------

    def path(self, conn, repo, kind, ref):
        return T.proxy_path(NS, conn, repo, kind, ref)

    def auth(self, extra=None):
        h = {"Authorization": self.alice.basic()}
        h.update(extra or {})
        return h

    def get(self, og, conn, repo, kind, ref, method="GET", headers=None):
        return T.request(og.port, method, self.path(conn, repo, kind, ref), self.auth(headers))

    def upstream_gets(self, registry, ref):
        """GETs for ref that reached the registry (its access log)."""
        time.sleep(0.3)  # the access log line follows the response
        return len([l for l in registry.access_lines(ref) if '"GET ' in l])

    def metrics(self, og):
        fams, _ = T.scrape_metrics(og.listeners["admin"])
        return fams

    def cached_files(self, cache_dir, digest):
        hexd = digest.split(":", 1)[1]
        found = []
        for root, _, files in os.walk(os.path.join(cache_dir, "blobs")):
            found += [os.path.join(root, f) for f in files if f == hexd]
        return found

    def stream(self, og, conn, repo, digest, headers=None, **kw):
        return T.stream_get(og.port, self.path(conn, repo, "blobs", digest), self.auth(headers),
                            timeout=120, **kw)

    def expect_blob(self, res, digest, size, what):
        T.expect(res.error is None and res.status == 200,
                 "%s: status %s error %s" % (what, res.status, res.error))
        T.expect_eq(res.nbytes, size, what + " bytes")
        T.expect_eq(res.sha256, digest, what + " sha256")

    # -- cases ------------------------------------------------------------

    def t_cold_concurrent_one_upstream_get(self):
        big = self.lay.big
        before = self.upstream_gets(self.reg, big.digest)
        T.expect_eq(before, 0, "upstream GETs of the big blob before the test")
        results = [None] * 20
        go = threading.Barrier(20)

        def pull(i):
            go.wait()
            results[i] = self.stream(self.og, "a", "demo/app", big.digest)

        threads = [threading.Thread(target=pull, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        for i, r in enumerate(results):
            T.expect(r is not None, "client %d did not finish" % i)
            self.expect_blob(r, big.digest, big.size, "cold client %d" % i)
        T.expect_eq(self.upstream_gets(self.reg, big.digest), 1,
                    "upstream GETs for 20 concurrent cold pulls")
        fams = self.metrics(self.og)
        miss = T.metric_value(fams, "ocigate_cache_requests_total", result="miss")
        follow = T.metric_value(fams, "ocigate_cache_requests_total", result="follow")
        hit = T.metric_value(fams, "ocigate_cache_requests_total", result="hit")
        T.expect_eq(miss, 1, "cache misses")
        T.expect_eq(follow + hit, 19, "followers + hits")
        T.diag("20 cold pulls: miss=%d follow=%d hit=%d" % (miss, follow, hit))
        T.expect(follow >= 1, "no request followed the fill (all came after it ended)")
        T.expect_eq(T.metric_value(fams, "ocigate_cache_upstream_transfers_saved_total"), 19,
                    "transfers saved")
        T.expect_eq(len(self.cached_files(self.cache_dir, big.digest)), 1,
                    "cache files for the big blob")

    def t_warm_hit_headers_head_range(self):
        big = self.lay.big
        before = self.upstream_gets(self.reg, big.digest)
        heads = lambda: len([l for l in self.reg.access_lines(big.digest) if '"HEAD ' in l])
        direct = self.reg.request("HEAD", "/v2/demo/app/blobs/" + big.digest)
        heads_before = heads()
        res = self.stream(self.og, "a", "demo/app", big.digest)
        self.expect_blob(res, big.digest, big.size, "warm GET")
        hdr = dict((k.lower(), v) for k, v in res.headers)
        for name in ("Docker-Content-Digest", "Content-Length", "Content-Type", "ETag"):
            T.expect_eq(hdr.get(name.lower()), direct.header(name), "hit header " + name)
        r = self.get(self.og, "a", "demo/app", "blobs", big.digest, method="HEAD")
        T.expect_status(r, 200, "HEAD hit")
        T.expect_eq(r.header("Content-Length"), str(big.size), "HEAD Content-Length")
        T.expect_eq(r.body, b"", "HEAD body")
        r = self.get(self.og, "a", "demo/app", "blobs", big.digest,
                     headers={"Range": "bytes=1000-1999"})
        T.expect_status(r, 206, "Range hit")
        T.expect_eq(r.header("Content-Range"), "bytes 1000-1999/%d" % big.size, "Content-Range")
        T.expect_eq(r.body, big.read(1000, 2000), "Range body")
        r = self.get(self.og, "a", "demo/app", "blobs", big.digest,
                     headers={"Range": "bytes=-10"})
        T.expect_status(r, 206, "suffix Range hit")
        T.expect_eq(r.body, big.read(big.size - 10), "suffix Range body")
        r = self.get(self.og, "a", "demo/app", "blobs", big.digest,
                     headers={"Range": "bytes=%d-" % big.size})
        T.expect_status(r, 416, "Range past the end")
        T.expect_eq(self.upstream_gets(self.reg, big.digest), before,
                    "upstream GETs for warm GET, HEAD and Range")
        T.expect_eq(heads(), heads_before, "upstream HEADs for the HEAD hit")

    def tls_get(self, og, conn, repo, digest, pause=None):
        """GET through the TLS listener (Connection: close), the body hashed
        as it arrives; pause: called after the head, before the body is
        read (with a small receive buffer). (status line, body bytes,
        "sha256:...")."""
        ctx = self.w.pki.ssl_context()
        raw = socket.create_connection(("127.0.0.1", og.listeners["tls"]), timeout=60)
        if pause:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
            sock.sendall(T.build_request("GET", self.path(conn, repo, "blobs", digest),
                                         "127.0.0.1", self.auth({"Connection": "close"})))
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                T.expect(chunk, "TLS: closed before the response head")
                buf += chunk
            head, _, body = buf.partition(b"\r\n\r\n")
            if pause:
                pause()
            h = hashlib.sha256(body)
            n = len(body)
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                n += len(chunk)
        return head.split(b"\r\n", 1)[0], n, "sha256:" + h.hexdigest()

    def t_hit_over_tls_listener(self):
        big = self.lay.big
        before = self.upstream_gets(self.reg, big.digest)
        status, n, sha = self.tls_get(self.og, "a", "demo/app", big.digest)
        T.expect(status.startswith(b"HTTP/1.1 200 "), "TLS hit status: %r" % status)
        T.expect_eq(n, big.size, "TLS hit bytes")
        T.expect_eq(sha, big.digest, "TLS hit sha256")
        T.expect_eq(self.upstream_gets(self.reg, big.digest), before, "upstream GETs for a TLS hit")

    def t_reload_keeps_the_cache(self):
        """SIGHUP reloads connectors and tokens; the cache and its fills stay."""
        big = self.lay.big
        before = self.upstream_gets(self.reg, big.digest)
        self.og.proc.signal(signal.SIGHUP)
        T.wait_for(lambda: "event=reloaded" in self.og.log_text(), 10, what="reloaded")
        res = self.stream(self.og, "a", "demo/app", big.digest)
        self.expect_blob(res, big.digest, big.size, "GET after SIGHUP")
        T.expect_eq(self.upstream_gets(self.reg, big.digest), before, "upstream GETs after SIGHUP")

    def t_auth_on_every_hit(self):
        big = self.lay.big
        r = T.request(self.og.port, "GET", self.path("a", "demo/app", "blobs", big.digest))
        T.expect_status(r, 401, "cached blob without credentials")
        r = T.request(self.og.port, "GET", self.path("a", "demo/app", "blobs", big.digest),
                      {"Authorization": "Bearer not-a-token"})
        T.expect_status(r, 401, "cached blob with a wrong token")

    def t_skopeo_twice_second_from_cache(self):
        img = self.lay.single
        ref = "docker://%s/namespaces/%s/connectors/a/demo/app:v1" % (self.og.host, NS)
        counts = {}
        for n in (1, 2):
            dest = self.env.path("skopeo-%d" % n)
            self.env.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests",
                          "--src-tls-verify=false", "--src-creds", "x:" + self.alice.token,
                          ref, "dir:" + dest], timeout=180)
            found = T.verify_blob_dir(dest)
            T.expect_eq(found, {b.digest for b in [img.config] + img.layers},
                        "blobs copied by skopeo, run %d" % n)
            counts[n] = {b.digest: self.upstream_gets(self.reg, b.digest)
                         for b in [img.config] + img.layers}
        T.expect_eq(counts[2], counts[1], "upstream blob GETs after the second skopeo copy")
        T.expect(all(v == 1 for v in counts[1].values()),
                 "every blob went upstream once: %s" % counts[1])

    def t_manifest_by_digest_cached_tag_not(self):
        img = self.lay.single
        accept = {"Accept": T.ACCEPT_ALL}
        for _ in range(2):
            r = self.get(self.og, "a", "demo/app", "manifests", img.digest, headers=accept)
            T.expect_status(r, 200, "manifest by digest")
            T.expect_eq(T.sha256_bytes(r.body), img.digest, "manifest by digest sha256")
        T.expect_eq(self.upstream_gets(self.reg, "/manifests/" + img.digest), 1,
                    "upstream GETs of a manifest by digest, fetched twice")
        before = self.upstream_gets(self.reg, "/manifests/v2")
        for _ in range(2):
            r = self.get(self.og, "a", "demo/app", "manifests", "v2", headers=accept)
            T.expect_status(r, 200, "manifest by tag")
        T.expect_eq(self.upstream_gets(self.reg, "/manifests/v2"), before + 2,
                    "upstream GETs of a manifest by tag, fetched twice (tags are never cached)")

    def t_corrupting_upstream_cut_and_not_cached(self):
        size = len(self.bad_data)
        fams = self.metrics(self.og)
        errs = T.metric_value(fams, "ocigate_cache_errors_total", reason="digest_mismatch")
        for n in (1, 2):
            res = self.stream(self.og, "bad", "x/y", self.bad_digest)
            T.expect_eq(res.status, 200, "corrupt blob status (headers went out)")
            T.expect(not res.complete and res.nbytes < size,
                     "corrupt blob: the client must see a cut connection, got %d of %d bytes "
                     "(complete=%s)" % (res.nbytes, size, res.complete))
            T.expect_eq(self.cached_files(self.cache_dir, self.bad_digest), [],
                        "cache files of the corrupt blob")
            T.expect_eq(self.corrupt.gets, n, "upstream GETs of the corrupt blob")
        # Five at once: one upstream GET, and not one of them gets a
        # complete-looking body (followers never get the last byte).
        results = [None] * 5
        go = threading.Barrier(5)

        def pull(i):
            go.wait()
            results[i] = self.stream(self.og, "bad", "x/y", self.bad_digest)

        threads = [threading.Thread(target=pull, args=(i,)) for i in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for i, r in enumerate(results):
            T.expect(r is not None and not r.complete and r.nbytes < size,
                     "concurrent client %d of a corrupt blob: %s bytes, complete=%s"
                     % (i, r and r.nbytes, r and r.complete))
        T.expect_eq(self.corrupt.gets, 3, "upstream GETs of the corrupt blob after 5 concurrent")
        T.expect_eq(self.cached_files(self.cache_dir, self.bad_digest), [],
                    "cache files of the corrupt blob")
        fams = self.metrics(self.og)
        T.expect_eq(T.metric_value(fams, "ocigate_cache_errors_total", reason="digest_mismatch"),
                    errs + 3, "digest_mismatch errors")
        T.expect_eq(os.listdir(os.path.join(self.cache_dir, "tmp")), [], "temp files left")

    def t_encoded_body_proxied_not_cached(self):
        """A Content-Encoding body is not the bytes the digest names: it
        goes to the client as it is (as without a cache), is not cut, and
        is not cached."""
        wire = gzip.compress(self.gz_data)
        for n in (1, 2):
            before = self.corrupt.gets
            r = self.get(self.og, "bad", "x/y", "blobs", self.gz_digest)
            T.expect_status(r, 200, "gzip-encoded blob")
            T.expect_eq(r.header("Content-Encoding"), "gzip", "Content-Encoding passed on")
            T.expect_eq(gzip.decompress(r.body), self.gz_data, "decoded body")
            T.expect_eq(len(r.body), len(wire), "encoded length")
            T.expect_eq(self.corrupt.gets, before + 1, "upstream GET, pull %d" % n)
        T.expect_eq(self.cached_files(self.cache_dir, self.gz_digest), [], "cached")

    def concurrently(self, fns):
        out = [None] * len(fns)
        go = threading.Barrier(len(fns))

        def run(i):
            go.wait()
            out[i] = fns[i]()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        return out

    def t_followers_slow_and_gone(self):
        """One fill, a follower that hangs up after 1 MiB, one that reads
        at 6 MiB/s (slower than the fill), two at full speed: everyone who
        stays gets the exact blob, one upstream GET, and it is cached."""
        digest, data = self.slow_digests[0], self.slow_data[0]
        before = self.corrupt.gets
        def pull(delay=0.0, **kw):
            def run():
                time.sleep(delay)  # the delayed ones are followers, not the fill's client
                return self.stream(self.og, "bad", "x/y", digest, **kw)
            return run

        res = self.concurrently([pull(), pull(0.05), pull(0.05, max_bytes=MiB),
                                 pull(0.05, rate=6 * MiB)])
        fams = self.metrics(self.og)
        T.diag("follows so far: %d" % T.metric_value(fams, "ocigate_cache_requests_total",
                                                       result="follow"))
        for i in (0, 1, 3):
            self.expect_blob(res[i], digest, len(data), "client %d" % i)
        T.expect(res[2] is not None and res[2].nbytes == MiB, "client that hung up")
        T.expect_eq(self.corrupt.gets, before + 1, "upstream GETs")
        T.expect_eq(len(self.cached_files(self.cache_dir, digest)), 1, "cached")

    def t_slow_first_client_does_not_pace(self):
        """The upstream is paced by the disk, not by the first client: a
        first client reading a 12 MiB blob at 1 MiB/s (small receive
        buffer, so the kernel's buffers cannot hide the pacing) does not
        hold back the followers, which finish with the fill (about 2 s at
        the front's pace); it still gets every byte."""
        digest, data = self.slow_digests[2], self.slow_data[2]
        before = self.corrupt.gets
        first = lambda: self.stream(self.og, "bad", "x/y", digest, rate=MiB,  # noqa: E731
                                    rcvbuf=64 * 1024)

        def follower():
            time.sleep(0.1)  # after the first one's request
            return self.stream(self.og, "bad", "x/y", digest)

        res = self.concurrently([first, follower, follower])
        for i, r in enumerate(res):
            self.expect_blob(r, digest, len(data), "client %d" % i)
        T.diag("first client %.1fs, followers %.1fs %.1fs"
               % (res[0].seconds, res[1].seconds, res[2].seconds))
        T.expect(max(res[1].seconds, res[2].seconds) < 0.4 * res[0].seconds,
                 "followers took %.1fs and %.1fs, the 1 MiB/s first client %.1fs"
                 % (res[1].seconds, res[2].seconds, res[0].seconds))
        T.expect_eq(self.corrupt.gets, before + 1, "upstream GETs")

    def tmp_files(self, cache_dir):
        return os.listdir(os.path.join(cache_dir, "tmp"))

    def t_leader_client_gone(self):
        """The fill does not belong to its first client: when that client
        hangs up after 1 MiB, the fill carries on with the upstream
        connection for the follower, which gets the whole blob; one
        upstream GET, and the blob is a hit afterwards."""
        digest, data = self.slow_digests[1], self.slow_data[1]
        before = self.corrupt.gets
        fams = self.metrics(self.og)
        follows = T.metric_value(fams, "ocigate_cache_requests_total", result="follow")
        hits = T.metric_value(fams, "ocigate_cache_requests_total", result="hit")
        first = lambda: self.stream(self.og, "bad", "x/y", digest, max_bytes=MiB)  # noqa: E731

        def follower():
            time.sleep(0.05)  # after the first one's request
            return self.stream(self.og, "bad", "x/y", digest)

        res = self.concurrently([first, follower])
        T.expect(res[0] is not None and res[0].nbytes == MiB, "the first client hung up after 1 MiB")
        self.expect_blob(res[1], digest, len(data), "follower of a fill whose client left")
        T.expect_eq(self.corrupt.gets, before + 1, "upstream GETs")
        fams = self.metrics(self.og)
        T.expect_eq(T.metric_value(fams, "ocigate_cache_requests_total", result="follow"),
                    follows + 1, "the second request followed the fill")
        T.expect("event=cache_fill_alone" in self.og.log_text(),
                 "no event=cache_fill_alone line (the fill did not carry on alone)")
        T.expect_eq(len(self.cached_files(self.cache_dir, digest)), 1, "cached")
        r = self.stream(self.og, "bad", "x/y", digest)
        self.expect_blob(r, digest, len(data), "next pull")
        T.expect_eq(self.corrupt.gets, before + 1, "upstream GETs after the next pull")
        fams = self.metrics(self.og)
        T.expect_eq(T.metric_value(fams, "ocigate_cache_requests_total", result="hit"),
                    hits + 1, "the next pull was a hit")
        T.expect_eq(self.tmp_files(self.cache_dir), [], "temp files left")

    def t_everyone_gone_fill_dropped(self):
        """With no client left, a fill is dropped: the first client alone
        hangs up (the fill ends with it), then a first client and its
        follower both hang up (the fill carries on for the follower, then
        ends when it leaves). Each time the upstream connection is closed,
        the temp file removed, nothing is cached, and the next pull goes
        upstream."""
        digest, data = self.slow_digests[3], self.slow_data[3]
        before = self.corrupt.gets
        r = self.stream(self.og, "bad", "x/y", digest, max_bytes=MiB)
        T.expect_eq(r.nbytes, MiB, "bytes the lone first client read before hanging up")
        T.wait_for(lambda: self.tmp_files(self.cache_dir) == [], 10, 0.05,
                   "the temp file of a fill whose only client left to go")
        T.expect_eq(self.cached_files(self.cache_dir, digest), [], "cached after the lone client left")
        ended = self.og.log_text().count("reason=no_client_left")

        first = lambda: self.stream(self.og, "bad", "x/y", digest, max_bytes=MiB)  # noqa: E731

        def follower():
            time.sleep(0.05)
            return self.stream(self.og, "bad", "x/y", digest, max_bytes=2 * MiB)

        res = self.concurrently([first, follower])
        T.expect(res[0] is not None and res[0].nbytes == MiB and
                 res[1] is not None and res[1].nbytes == 2 * MiB,
                 "both clients hung up (after 1 and 2 MiB)")
        T.wait_for(lambda: self.og.log_text().count("reason=no_client_left") > ended, 10, 0.05,
                   "event=cache_fill_end reason=no_client_left after the follower left")
        T.wait_for(lambda: self.tmp_files(self.cache_dir) == [], 10, 0.05,
                   "the temp file of a fill whose clients all left to go")
        T.expect_eq(self.cached_files(self.cache_dir, digest), [], "cached after everyone left")
        T.expect_eq(self.corrupt.gets, before + 2, "upstream GETs (one per fill)")
        r = self.stream(self.og, "bad", "x/y", digest)
        self.expect_blob(r, digest, len(data), "next pull")
        T.expect_eq(self.corrupt.gets, before + 3, "the next pull went upstream")

    def t_exit_while_fill_alone(self):
        """ocigate forced to exit (a second SIGTERM) while a fill carries on
        alone for a slow follower: the follower is cut, and the process
        exits cleanly (exit status 0; under ASan no leak and no
        use-after-free: the fill, its upstream connection and temp file
        are released in order)."""
        d = self.env.path("cache-exit")
        og = self.start_ocigate("ocigate-exit", d)
        self.stopped.append(og)
        digest, data = self.slow_digests[2], self.slow_data[2]
        first = threading.Thread(
            target=lambda: self.stream(og, "bad", "x/y", digest, max_bytes=MiB))
        out = {}

        def follower():
            time.sleep(0.05)
            out["r"] = self.stream(og, "bad", "x/y", digest, rate=2 * MiB)

        second = threading.Thread(target=follower)
        first.start()
        second.start()
        T.wait_for(lambda: "event=cache_fill_alone" in og.log_text(), 20, 0.05,
                   "the fill to carry on alone")
        og.proc.signal(signal.SIGTERM)
        T.wait_for(lambda: "event=shutdown " in og.log_text(), 10, 0.05, "shutdown logged")
        og.proc.signal(signal.SIGTERM)
        rc = og.proc.wait(30)
        first.join(30)
        second.join(60)
        T.expect_eq(rc, 0, "exit status after a forced shutdown with a fill alone")
        r = out.get("r")
        T.expect(r is not None and not r.complete and r.nbytes < len(data),
                 "follower at exit: %s bytes, complete=%s" % (r and r.nbytes, r and r.complete))
        T.expect_eq(self.cached_files(d, digest), [], "cache files after the exit")
        T.expect_eq(self.tmp_files(d), [], "temp files after the exit")

    def t_disk_full_mid_fill(self):
        """A cache write that fails mid-fill (a 4 MiB file size limit:
        EFBIG, SIGXFSZ ignored) degrades: the first client gets the whole
        8 MiB blob, the rest from the upstream; its follower is cut (it has
        headers and no other source); the error is counted, nothing stays
        in the cache dir, and the next pull is proxied too."""
        d = self.env.path("cache-fsize")
        limit = 4 * MiB

        def fsize():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        og = self.start_ocigate("ocigate-fsize", d, tls=True, preexec_fn=fsize)
        self.others.append(og)
        digest, data = self.slow_digests[4], self.slow_data[4]
        before = self.corrupt.gets

        # Over TLS (file bytes are queued a little at a time), not reading
        # until the disk failed: behind the fill then, so it reads the
        # file's part first, then the upstream's.
        def degraded():
            T.wait_for(lambda: "event=cache_fill_degraded" in og.log_text(), 20, 0.05,
                       "event=cache_fill_degraded")

        def first():
            status, n, sha = self.tls_get(og, "bad", "x/y", digest, pause=degraded)
            res = T.StreamResult()
            res.status = int(status.split()[1])
            res.nbytes, res.sha256, res.complete = n, sha, n == len(data)
            return res

        def follower():
            time.sleep(0.05)
            return self.stream(og, "bad", "x/y", digest)

        res = self.concurrently([first, follower])
        T.expect(og.proc.alive(), "ocigate died on a write past RLIMIT_FSIZE")
        self.expect_blob(res[0], digest, len(data), "first client of a fill the disk cut")
        T.expect(res[1] is not None and not res[1].complete and res[1].nbytes < len(data),
                 "follower of a fill the disk cut: %s bytes, complete=%s"
                 % (res[1] and res[1].nbytes, res[1] and res[1].complete))
        m = re.search(r"event=cache_fill_degraded .*in_file=(\d+) sent=(\d+)", og.log_text())
        T.expect(m, "cache_fill_degraded logged")
        T.expect(int(m.group(2)) < int(m.group(1)),
                 "the first client was not behind the file when the disk failed (%s)" % m.group(0))
        fams = self.metrics(og)
        T.expect_eq(T.metric_value(fams, "ocigate_cache_errors_total", reason="write"), 1,
                    "write errors counted")
        T.expect_eq(self.cached_files(d, digest), [], "cache files of the blob")
        T.expect_eq(self.tmp_files(d), [], "temp files left")
        r = self.stream(og, "bad", "x/y", digest)
        self.expect_blob(r, digest, len(data), "next pull (the disk still fails)")
        fams = self.metrics(og)
        T.expect_eq(T.metric_value(fams, "ocigate_cache_errors_total", reason="write"), 2,
                    "write errors counted after the next pull")
        T.expect_eq(self.corrupt.gets, before + 2, "upstream GETs")
        T.expect_eq(self.tmp_files(d), [], "temp files left after the next pull")
        T.expect_eq(T.metric_value(fams, "ocigate_cache_entries"), 0, "entries")

    def t_followers_one_descriptor_each(self):
        """Followers that read slower than the fill queue what it writes
        as it comes (64 KiB every 10 ms here): every queued range refers to
        one descriptor per response, so 8 clients of a 12 MiB blob fit in
        an open-files limit of 128 with room to spare, and all get the
        exact blob. (With a descriptor per range, a slow follower's queue
        held one per 64 KiB: 192 for this blob.)"""
        limit = 128

        def nofile():
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        og = self.start_ocigate("ocigate-fds", self.env.path("cache-fds"), preexec_fn=nofile)
        self.others.append(og)
        digest, data = self.slow_digests[6], self.slow_data[6]
        fds, done = [], threading.Event()

        def sample():
            while not done.is_set():
                try:
                    fds.append(len(os.listdir("/proc/%d/fd" % og.pid)))
                except OSError:
                    pass
                time.sleep(0.02)

        def pull(delay=0.0, **kw):
            def run():
                time.sleep(delay)  # after the first client's request: followers
                return self.stream(og, "bad", "x/y", digest, **kw)
            return run

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            res = self.concurrently([pull()] + [pull(0.1)] * 2 +
                                    [pull(0.1, rate=3 * MiB, rcvbuf=64 * 1024)] * 5)
        finally:
            done.set()
            sampler.join(10)
        for i, r in enumerate(res):
            self.expect_blob(r, digest, len(data), "client %d" % i)
        peak = max(fds) if fds else 0
        T.diag("8 clients of a 12 MiB fill: peak %d open descriptors (limit %d)" % (peak, limit))
        T.expect(fds, "no descriptor count sampled")
        T.expect(peak <= 64, "peak open descriptors %d, more than 64 for 8 clients" % peak)
        T.expect("Too many open files" not in og.log_text(), "EMFILE in the log")
        fams = self.metrics(og)
        T.expect_eq(T.metric_value(fams, "ocigate_cache_requests_total", result="miss"), 1,
                    "cache misses")

    def t_head_and_range_during_fill(self):
        """While a fill is in flight, HEAD and single-range GETs of the
        blob are answered from it (headers from the fill, range bytes from
        the file; the last byte of a range once the blob is verified), not
        from the upstream: one upstream GET, no HEAD, no ranged GET."""
        digest, data = self.slow_digests[5], self.slow_data[5]
        gets, heads, ranges = self.corrupt.gets, self.corrupt.heads, self.corrupt.ranges
        size = len(data)
        path = self.path("bad", "x/y", "blobs", digest)

        def later(fn):
            def run():
                time.sleep(0.1)  # while the fill (about 0.5 s) is in flight
                return fn()
            return run

        req = lambda method, hdr=None: (  # noqa: E731
            time.monotonic(), T.request(self.og.port, method, path, self.auth(hdr)), time.monotonic())
        res = self.concurrently([
            lambda: self.stream(self.og, "bad", "x/y", digest),
            later(lambda: req("HEAD")),
            later(lambda: req("GET", {"Range": "bytes=1000-1999"})),
            later(lambda: req("GET", {"Range": "bytes=-10"})),
            later(lambda: req("GET", {"Range": "bytes=%d-" % size})),
        ])
        self.expect_blob(res[0], digest, size, "the fill's client")
        _, r, _ = res[1]
        T.expect_status(r, 200, "HEAD during the fill")
        T.expect_eq(r.header("Content-Length"), str(size), "HEAD Content-Length")
        T.expect_eq(r.header("Docker-Content-Digest"), digest, "HEAD Docker-Content-Digest")
        T.expect_eq(r.body, b"", "HEAD body")
        _, r, _ = res[2]
        T.expect_status(r, 206, "Range during the fill")
        T.expect_eq(r.header("Content-Range"), "bytes 1000-1999/%d" % size, "Content-Range")
        T.expect_eq(r.body, data[1000:2000], "Range body")
        _, r, _ = res[3]
        T.expect_status(r, 206, "suffix Range during the fill")
        T.expect_eq(r.body, data[-10:], "suffix Range body")
        _, r, _ = res[4]
        T.expect_status(r, 416, "Range past the end during the fill")
        T.diag("fill %.2fs; HEAD answered after %.2fs, first range after %.2fs"
               % (res[0].seconds, res[1][2] - res[1][0], res[2][2] - res[2][0]))
        T.expect_eq(self.corrupt.gets, gets + 1, "upstream GETs")
        T.expect_eq(self.corrupt.heads, heads, "upstream HEADs")
        T.expect_eq(self.corrupt.ranges, ranges, "upstream ranged GETs")
        T.expect_eq(len(self.cached_files(self.cache_dir, digest)), 1, "cached")

    def t_other_registry_never_gets_the_cached_copy(self):
        big = self.lay.big
        T.expect(self.cached_files(self.cache_dir, big.digest), "big blob cached via a")
        r = self.get(self.og, "b", "demo/app", "blobs", big.digest)
        T.expect_status(r, 404, "cached digest through connector b on a registry without it")
        r = self.get(self.og, "b", "demo/app", "blobs", big.digest, method="HEAD")
        T.expect_status(r, 404, "HEAD of it through b")
        T.expect_eq(self.upstream_gets(self.reg_b, big.digest), 1,
                    "registry b was asked (the cache did not answer for it)")

    def t_same_registry_other_connector_fills_its_own_copy(self):
        """A copy is served only through the connector that fetched it:
        another connector on the same registry may hold a credential that
        cannot read the repository, so it asks the registry itself."""
        big = self.lay.big
        T.expect_eq(len(self.cached_files(self.cache_dir, big.digest)), 1,
                    "copies of the big blob before (via a)")
        before = self.upstream_gets(self.reg, big.digest)
        res = self.stream(self.og, "a2", "demo/app", big.digest)
        self.expect_blob(res, big.digest, big.size, "big blob via a2")
        T.expect_eq(self.upstream_gets(self.reg, big.digest), before + 1,
                    "registry GETs of the blob via a2 (not served from a's copy)")
        T.expect_eq(len(self.cached_files(self.cache_dir, big.digest)), 2,
                    "copies of the big blob after a2's fill")
        res = self.stream(self.og, "a2", "demo/app", big.digest)
        self.expect_blob(res, big.digest, big.size, "big blob via a2 again")
        T.expect_eq(self.upstream_gets(self.reg, big.digest), before + 1,
                    "registry GETs after a2's second GET (its own copy)")

    def t_delete_drops_the_cached_copy(self):
        digest, data = self.small_digests[3], self.small[3]
        res = self.stream(self.og, "a", "demo/small", digest)
        self.expect_blob(res, digest, len(data), "small blob")
        T.expect_eq(len(self.cached_files(self.cache_dir, digest)), 1, "cached before DELETE")
        r = self.get(self.og, "a", "demo/small", "blobs", digest, method="DELETE")
        T.expect_status(r, 202, "DELETE through ocigate")
        T.expect_eq(self.cached_files(self.cache_dir, digest), [], "cache files after DELETE")
        r = self.get(self.og, "a", "demo/small", "blobs", digest)
        T.expect_status(r, 404, "GET after DELETE")

    def t_restart_keeps_the_cache(self):
        big = self.lay.big
        stray = os.path.join(self.cache_dir, "tmp", "left-over.1.1")
        with open(stray, "wb") as f:
            f.write(b"partial")
        rc = self.og.stop()
        T.expect_eq(rc, 0, "ocigate exit status on SIGTERM")
        self.stopped.append(self.og)
        self.og = self.start_ocigate("ocigate-restarted", self.cache_dir)
        T.expect(not os.path.exists(stray), "a temp file of a previous run was not removed")
        before = self.upstream_gets(self.reg, big.digest)
        res = self.stream(self.og, "a", "demo/app", big.digest)
        self.expect_blob(res, big.digest, big.size, "GET after restart")
        T.expect_eq(self.upstream_gets(self.reg, big.digest), before,
                    "upstream GETs after restart")
        fams = self.metrics(self.og)
        T.expect_eq(T.metric_value(fams, "ocigate_cache_requests_total", result="hit"), 1,
                    "hits after restart")
        T.expect(T.metric_value(fams, "ocigate_cache_bytes") >= big.size, "ocigate_cache_bytes")

    def t_eviction_past_max_size(self):
        d = self.env.path("cache-small")
        og = self.start_ocigate("ocigate-evict", d, max_size="1m", min_free="0%")
        self.others.append(og)
        dg = self.small_digests
        # 3 x (300 KiB + a 512-byte head) fit in 1 MiB, a 4th does not.
        for i in (0, 1, 2, 0):
            res = self.stream(og, "a", "demo/small", dg[i])
            self.expect_blob(res, dg[i], len(self.small[i]), "small blob %d" % i)
        before = {x: self.upstream_gets(self.reg, x) for x in dg[:3]}
        extra = os.urandom(300 * 1024)
        ed = push_blob(self.reg, "demo/small", extra)
        res = self.stream(og, "a", "demo/small", ed)
        self.expect_blob(res, ed, len(extra), "fourth small blob")
        T.expect_eq(self.cached_files(d, dg[1]), [], "least recently used blob (1) evicted")
        for i in (0, 2):
            T.expect_eq(len(self.cached_files(d, dg[i])), 1, "blob %d kept" % i)
        total = sum(os.path.getsize(os.path.join(r, f))
                    for r, _, fs in os.walk(os.path.join(d, "blobs")) for f in fs)
        T.expect(total <= MiB, "cache files take %d bytes, max_size is 1m" % total)
        res = self.stream(og, "a", "demo/small", dg[0])
        self.expect_blob(res, dg[0], len(self.small[0]), "kept blob")
        res = self.stream(og, "a", "demo/small", dg[1])
        self.expect_blob(res, dg[1], len(self.small[1]), "evicted blob")
        T.expect_eq(self.upstream_gets(self.reg, dg[0]), before[dg[0]], "kept blob: no upstream")
        T.expect_eq(self.upstream_gets(self.reg, dg[1]), before[dg[1]] + 1,
                    "evicted blob: upstream again")
        fams = self.metrics(og)
        T.expect(T.metric_value(fams, "ocigate_cache_evictions_total") >= 1, "evictions metric")
        big = self.lay.big
        res = self.stream(og, "a", "demo/app", big.digest)
        self.expect_blob(res, big.digest, big.size, "blob bigger than max_size (proxied)")
        T.expect_eq(self.cached_files(d, big.digest), [], "blob bigger than max_size cached")

    def t_read_only_dir_ctr_pull_still_works(self):
        d = self.env.mkdir("cache-ro")
        og = self.start_ocigate("ocigate-ro", d)
        self.others.append(og)
        subprocess.run(["mount", "--bind", d, d], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", d], check=True)
            T.expect(not os.access(os.path.join(d, "tmp"), os.W_OK) or
                     self._cannot_write(os.path.join(d, "tmp")), "the cache dir is still writable")
            cd = T.Containerd(self.env).start()
            hosts = cd.hosts_dir(og.host, og.url)
            ref = "%s/namespaces/%s/connectors/a/demo/app:v1" % (og.host, NS)
            cd.pull(ref, hosts, user="x:" + self.alice.token)
            T.expect_eq(cd.images().get(ref, (None, None))[1], self.lay.single.digest,
                        "ctr image digest through a read-only cache")
            fams = self.metrics(og)
            T.expect(T.metric_value(fams, "ocigate_cache_errors_total", reason="open") >= 1,
                     "open errors counted")
            T.expect_eq(T.metric_value(fams, "ocigate_cache_entries"), 0, "entries")
            logged = [l for l in og.log_text().splitlines() if "event=cache_error" in l]
            T.expect(1 <= len(logged) <= 2, "cache_error lines (once per kind): %d" % len(logged))
        finally:
            subprocess.run(["umount", d], check=False)
        og2 = self.start_ocigate("ocigate-ro-start", os.path.join(d, "sub"))
        self.others.append(og2)
        subprocess.run(["mount", "--bind", d, d], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", d], check=True)
            og3 = self.start_ocigate("ocigate-ro-start2", os.path.join(d, "nope"))
            self.others.append(og3)
            T.expect("event=cache_disabled" in og3.log_text(), "cache_disabled logged")
            res = self.stream(og3, "a", "demo/app", self.lay.single.config.digest)
            T.expect_eq(res.status, 200, "pull with a cache dir that cannot be created")
            T.expect_eq(res.sha256, self.lay.single.config.digest, "its sha256")
        finally:
            subprocess.run(["umount", d], check=False)

    def t_index_rss_10000_entries(self):
        """The index holds metadata, never contents: 10,000 cached entries
        (files in the cache's own format) cost a few MiB of RSS."""
        full = self.env.path("cache-10k")
        d = os.path.join(full, "blobs", "0" * 32, "sha256")
        os.makedirs(d)
        head = b'OGC1\napplication/vnd.oci.image.layer.v1.tar+gzip\n"etag"\n'
        head += b"\0" * (512 - len(head))
        for i in range(10000):
            body = b"%d" % i
            with open(os.path.join(d, hashlib.sha256(body).hexdigest()), "wb") as f:
                f.write(head + body)
        empty = self.start_ocigate("ocigate-empty-index", self.env.path("cache-0"))
        big = self.start_ocigate("ocigate-10k-index", full)
        self.others += [empty, big]
        T.expect("entries=10000 " in big.log_text(), "10,000 entries indexed at start")
        time.sleep(0.5)
        delta = big.rss_kib() - empty.rss_kib()
        T.diag("VmRSS with 10,000 cached entries: %d KiB more than with none" % delta)
        T.expect(delta < 6 * 1024, "10,000 index entries cost %d KiB of RSS" % delta)

    def _cannot_write(self, d):
        try:
            with open(os.path.join(d, "probe"), "wb"):
                pass
        except OSError:
            return True
        os.unlink(os.path.join(d, "probe"))
        return False

    def t_logs_clean(self):
        for og in [self.og] + self.dead + self.others + self.stopped:
            og.assert_log_clean()
            bad = [l for l in og.log_text().splitlines()
                   if "Sanitizer" in l or "runtime error" in l or "Assertion" in l]
            T.expect(not bad, "%s log:\n%s" % (og.name, "\n".join(bad[:5])))


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("cache", keep=args.keep) as env:
        t = CacheTest(args, env)
        tap = T.Tap(env)
        cases = [
            ("cold: 20 concurrent GETs of one blob = 1 upstream GET", t.t_cold_concurrent_one_upstream_get),
            ("warm hit: registry headers, HEAD and Range from the file, no upstream", t.t_warm_hit_headers_head_range),
            ("hit over the TLS listener (file mapped, not sendfile)", t.t_hit_over_tls_listener),
            ("SIGHUP keeps the cache", t.t_reload_keeps_the_cache),
            ("auth runs on every hit", t.t_auth_on_every_hit),
            ("skopeo copy twice: second run's blobs all from the cache", t.t_skopeo_twice_second_from_cache),
            ("manifests by digest cached, tags never", t.t_manifest_by_digest_cached_tag_not),
            ("corrupting upstream: connection cut, nothing cached", t.t_corrupting_upstream_cut_and_not_cached),
            ("Content-Encoding body: proxied, not cut, not cached", t.t_encoded_body_proxied_not_cached),
            ("followers: slow, gone mid-body, fast; one upstream GET", t.t_followers_slow_and_gone),
            ("a slow first client does not pace the fill", t.t_slow_first_client_does_not_pace),
            ("first client gone mid-fill: the fill carries on for its follower", t.t_leader_client_gone),
            ("every client gone: the fill is dropped, temp file removed", t.t_everyone_gone_fill_dropped),
            ("exit while a fill carries on alone: clean", t.t_exit_while_fill_alone),
            ("disk full mid-fill: the first client gets the blob from upstream", t.t_disk_full_mid_fill),
            ("HEAD and Range during a fill: answered from it, not upstream", t.t_head_and_range_during_fill),
            ("slow followers: one descriptor per response, 8 clients under a 128-file limit",
             t.t_followers_one_descriptor_each),
            ("tenancy: a digest cached via registry A is not served via B", t.t_other_registry_never_gets_the_cached_copy),
            ("tenancy: another connector on the same registry fills its own copy",
             t.t_same_registry_other_connector_fills_its_own_copy),
            ("DELETE through ocigate drops the cached copy", t.t_delete_drops_the_cached_copy),
            ("restart keeps the cache, removes temp files", t.t_restart_keeps_the_cache),
            ("eviction past max_size, LRU order", t.t_eviction_past_max_size),
            ("read-only cache dir: ctr pull still works", t.t_read_only_dir_ctr_pull_still_works),
            ("index RSS with 10,000 cached entries", t.t_index_rss_10000_entries),
            ("logs clean", t.t_logs_clean),
        ]
        rc = tap.run_all([("setup: pki, two registries, corrupting front, ocigate", t.setup, True)]
                         + [(n, t.guard(f)) for n, f in cases]
                         + [("no crash", t.t_no_crash)])
    sys.exit(rc)


if __name__ == "__main__":
    main()
