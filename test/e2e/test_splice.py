#!/usr/bin/env python3
"""Zero-copy bodies: a plain-HTTP upstream and a plain-HTTP client, where
ocigate moves blob bodies with splice(2) instead of through its buffers.
The bytes, the framing, keep-alive, pipelining and every failure must look
exactly as they do without it.

Real components: Debian docker-registry over plain HTTP (htpasswd), serving
the storage of the TLS registry that skopeo seeded; skopeo pulls through
ocigate. Small plain-HTTP servers of this file stand in for an upstream
that dies or stalls in the middle of a blob body, and for one that sends
with sendfile(2) as nginx does.

    python3 test/e2e/test_splice.py --ocigate build/ocigate
"""

import http.server
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
from tokenservice import Served  # noqa: E402

NS = "team-a"
PLAIN, TLS, SHORT, STALL, SENDFILE = "plain", "tls", "short", "stall", "sendfile"
BIG = 24 * T.MiB  # the big layer: a tar of this much random data
READ_TIMEOUT = SEND_TIMEOUT = 2.0
# what the broken upstreams promise and what they send
PROMISED, SENT = 8 * T.MiB, 1 * T.MiB
FAKE_DIGEST = "sha256:" + "ab" * 32


class BrokenUpstream:
    """Answers a blob GET with Content-Length PROMISED, sends SENT bytes,
    then closes (mode "short") or goes silent for 30 s (mode "stall");
    mode "sendfile" sends all PROMISED bytes of a file with sendfile(2),
    as nginx does: segments of page-cache pages, cut where the head
    ended, so some of a pipe's page slots are not full."""

    def __init__(self, mode, file=None):
        self.mode = mode
        self.file = file
        self.release = threading.Event()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                if "/blobs/" not in self.path:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(PROMISED))
                self.send_header("Docker-Content-Digest", FAKE_DIGEST)
                self.end_headers()
                if outer.mode == "sendfile":
                    self.wfile.flush()
                    with open(outer.file, "rb") as f:
                        self.connection.sendfile(f)
                    return
                self.wfile.write(b"x" * SENT)
                self.wfile.flush()
                if outer.mode == "stall":
                    outer.release.wait(30)
                self.close_connection = True

        self.served = Served(H, None)

    def start(self):
        self.served.start()
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.served.port

    def stop(self):
        self.release.set()
        self.served.stop()


class SpliceTest(T.CrashGuard):
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice")
        self.dead = []

    def setup(self):
        self.w = T.World(self.env, big_size=BIG)
        self.lay = self.w.layout
        reg = self.w.registry
        self.plain = T.Registry(self.env, self.w.pki, users=reg.users,
                                name="registry-plain", tls=False,
                                storage=reg.storage).start()
        self.short = BrokenUpstream("short").start()
        self.stall = BrokenUpstream("stall").start()
        body = self.env.path("sendfile-body")
        with open(body, "wb") as f:
            f.write(os.urandom(PROMISED))
        self.sendfile = BrokenUpstream("sendfile", body).start()
        self.og = self.start_ocigate("ocigate", True)

    def start_ocigate(self, name, splice):
        conns = [
            T.registry_connector("%s/%s" % (NS, PLAIN), self.plain, ["alice"]),
            T.registry_connector("%s/%s" % (NS, TLS), self.w.registry, ["alice"]),
            T.Connector("%s/%s" % (NS, SHORT), self.short.url, allow=["alice"]),
            T.Connector("%s/%s" % (NS, STALL), self.stall.url, allow=["alice"]),
            T.Connector("%s/%s" % (NS, SENDFILE), self.sendfile.url, allow=["alice"]),
        ]
        return T.Ocigate(self.env, self.args.ocigate, [self.alice], conns, name=name,
                         server={"admin_listen": "127.0.0.1:0",
                                 "send_timeout": "%gs" % SEND_TIMEOUT},
                         upstream={"read_timeout": "%gs" % READ_TIMEOUT,
                                   "splice": "yes" if splice else "no"},
                         sections={"log": {"level": "debug"}}).start()

    # -- helpers -------------------------------------------------------------

    def path(self, conn, kind, ref, repo="demo/app"):
        return T.proxy_path(NS, conn, repo, kind, ref)

    def req(self, path, headers=None, og=None):
        h = {"Authorization": self.alice.basic()}
        h.update(headers or {})
        return T.build_request("GET", path, (og or self.og).host, h)

    def spliced(self, og=None):
        fams, _ = T.scrape_metrics((og or self.og).listeners["admin"])
        return (T.metric_value(fams, "ocigate_spliced_bodies_total"),
                T.metric_value(fams, "ocigate_spliced_bytes_total"))

    def get_big(self, c, what, og=None):
        big = self.lay.big
        c.send(self.req(self.path(PLAIN, "blobs", big.digest), og=og))
        r = c.read_response()
        T.expect_status(r, 200, what)
        T.expect_eq(int(r.header("Content-Length")), big.size, what + ": Content-Length")
        T.expect_eq(T.sha256_bytes(r.body), big.digest, what + ": digest of the body")
        return r

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.og.pid))

    def raw_get(self, conn, limit, rcvbuf=None):
        """Sends a blob GET and reads until EOF or limit bytes: (head, body
        bytes, closed by the peer)."""
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(20)
        s.connect(("127.0.0.1", self.og.port))
        s.sendall(self.req(self.path(conn, "blobs", FAKE_DIGEST)))
        data = b""
        closed = False
        while len(data) < limit:
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        return head.decode("latin-1"), len(body), closed

    # -- cases ---------------------------------------------------------------

    def t_big_blob(self):
        n0, b0 = self.spliced()
        with T.RawConn(self.og.port, timeout=60) as c:
            self.get_big(c, "blob through the plain connector")
        n1, b1 = self.spliced()
        T.expect_eq(n1 - n0, 1, "bodies spliced for one big blob")
        # what came with the response head went through the buffers
        size = self.lay.big.size
        T.expect(size - 256 * 1024 <= b1 - b0 <= size,
                 "spliced bytes %d for a %d-byte blob" % (b1 - b0, size))
        line = [l for l in self.og.log_text().splitlines()
                if "event=access" in l and self.lay.big.digest in l][-1]
        T.expect_in("bytes=%d " % size, line, "access log of the spliced blob")

    def t_keepalive_pipelined(self):
        n0, _ = self.spliced()
        big = self.lay.big
        blob = self.req(self.path(PLAIN, "blobs", big.digest))
        manifest = self.req(self.path(PLAIN, "manifests", "v1"),
                            {"Accept": T.MEDIA_OCI_MANIFEST})
        with T.RawConn(self.og.port, timeout=60) as c:
            c.send(blob + manifest + blob)
            for i in range(2):
                r = c.read_response()
                T.expect_status(r, 200, "pipelined blob %d" % i)
                T.expect_eq(T.sha256_bytes(r.body), big.digest, "pipelined blob %d digest" % i)
                if i == 0:
                    m = c.read_response()
                    T.expect_status(m, 200, "manifest pipelined after a spliced blob")
                    T.expect_eq(T.sha256_bytes(m.body), self.lay.single.digest,
                                "manifest digest")
            self.get_big(c, "a fourth request on the same connection")
            T.expect(not c.closed_within(0.3), "connection closed after spliced bodies")
        n1, _ = self.spliced()
        T.expect_eq(n1 - n0, 3, "bodies spliced on one keep-alive connection")

    def t_range(self):
        big = self.lay.big
        lo, hi = 1000, 5 * T.MiB
        n0, _ = self.spliced()
        with T.RawConn(self.og.port, timeout=60) as c:
            c.send(self.req(self.path(PLAIN, "blobs", big.digest),
                            {"Range": "bytes=%d-%d" % (lo, hi)}))
            r = c.read_response()
        T.expect_status(r, 206, "range of the big blob")
        T.expect_eq(r.body, big.read(lo, hi + 1), "range bytes")
        T.expect_eq(self.spliced()[0] - n0, 1, "bodies spliced for a 5 MiB range")

    def t_small_and_tls_not_spliced(self):
        n0, b0 = self.spliced()
        with T.RawConn(self.og.port, timeout=60) as c:
            c.send(self.req(self.path(PLAIN, "blobs", self.lay.single.config.digest)))
            r = c.read_response()
            T.expect_status(r, 200, "config blob")
            T.expect_eq(T.sha256_bytes(r.body), self.lay.single.config.digest, "config digest")
            c.send(self.req(self.path(TLS, "blobs", self.lay.big.digest)))
            r = c.read_response()
            T.expect_status(r, 200, "big blob through the TLS connector")
            T.expect_eq(T.sha256_bytes(r.body), self.lay.big.digest, "digest via TLS upstream")
        T.expect_eq(self.spliced(), (n0, b0), "spliced counters after a small blob and a TLS upstream")

    def t_skopeo(self):
        dest = self.env.path("skopeo-out")
        T.skopeo_copy(self.env, "docker://%s/namespaces/%s/connectors/%s/demo/app:v1"
                      % (self.og.host, NS, PLAIN), "oci:%s:v1" % dest,
                      ["--src-tls-verify=false", "--src-creds", "x:" + self.alice.token])
        img = self.lay.single
        found = T.verify_blob_dir(os.path.join(dest, "blobs", "sha256"))
        T.expect_eq(found, {b.digest for b in img.blobs()},
                    "blobs skopeo pulled through the plain connector, verified")

    def t_client_gone(self):
        big = self.lay.big
        with T.RawConn(self.og.port, timeout=60) as c:
            self.get_big(c, "warm-up")
        base = self.fds()
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", self.og.port), timeout=20)
            s.sendall(self.req(self.path(PLAIN, "blobs", big.digest)))
            got = 0
            while got < 2 * T.MiB:
                got += len(s.recv(1 << 16))
            s.close()
        T.wait_for(lambda: self.fds() <= base, 10, 0.1,
                   "descriptors back to %d after 5 clients hung up mid-body" % base)
        with T.RawConn(self.og.port, timeout=60) as c:
            self.get_big(c, "a pull after the hang-ups")

    def t_slow_client(self):
        big = self.lay.big
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", self.og.port))
        s.sendall(self.req(self.path(PLAIN, "blobs", big.digest)))
        t0 = time.monotonic()
        conn_id = None

        def cut():
            nonlocal conn_id
            m = re.findall(r"event=conn_close conn=(\d+) .*reason=send_timeout",
                           self.og.log_text())
            conn_id = m[-1] if m else None
            return conn_id is not None
        T.wait_for(cut, SEND_TIMEOUT + 15, 0.2, "a send_timeout close of the stalled reader")
        took = time.monotonic() - t0
        s.close()
        T.expect(took >= SEND_TIMEOUT - 0.2, "cut after %.1fs, before send_timeout" % took)

    def t_paused_client_no_spin(self):
        """A client stops reading mid-body: once the kernel's buffers and
        the pipe are full, the relay waits for the client. An upstream that
        sends with sendfile (nginx) fills the pipe's page slots before its
        bytes; the relay then waited for the upstream, readable all along,
        and spun at 100 % CPU until the client read again."""
        n0, _ = self.spliced()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(30)
        s.connect(("127.0.0.1", self.og.port))
        s.sendall(self.req(self.path(SENDFILE, "blobs", FAKE_DIGEST)))
        data = b""
        while len(data) < 512 * 1024:
            data += s.recv(1 << 16)
        time.sleep(0.3)  # the buffers and the pipe fill
        c0 = T.cpu_seconds(self.og.pid)
        time.sleep(1.0)  # the whole pause stays under send_timeout (2 s)
        spent = T.cpu_seconds(self.og.pid) - c0
        T.diag("ocigate CPU during the pause: %.2f s" % spent)
        head, _, body = data.partition(b"\r\n\r\n")
        n = len(body)
        while n < PROMISED:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            n += len(chunk)
        s.close()
        T.expect(head.startswith(b"HTTP/1.1 200"), "status: %r" % head[:40])
        T.expect_eq(n, PROMISED, "body bytes read after the pause")
        T.expect_eq(self.spliced()[0] - n0, 1, "the sendfile upstream's body was spliced")
        T.expect(spent < 0.15, "ocigate spent %.2f CPU seconds while its client paused "
                 "for 1 s mid-body" % spent)

    def t_upstream_dies(self):
        head, n, closed = self.raw_get(SHORT, PROMISED + 1000)
        T.expect(head.startswith("HTTP/1.1 200"), "status of the short body: %r" % head[:40])
        T.expect_in("Content-Length: %d" % PROMISED, head, "promised length forwarded")
        T.expect(closed, "client connection closed")
        T.expect_eq(n, SENT, "bytes the client got before the cut")
        T.expect(re.search(r"event=upstream_error .*connector=%s/%s reason=upstream_closed"
                           % (NS, SHORT), self.og.log_text()),
                 "upstream_closed logged")

    def t_upstream_stalls(self):
        t0 = time.monotonic()
        head, n, closed = self.raw_get(STALL, PROMISED + 1000)
        took = time.monotonic() - t0
        self.stall.release.set()
        T.expect(head.startswith("HTTP/1.1 200"), "status of the stalled body")
        T.expect(closed and n == SENT, "client cut after %d bytes (closed %s)" % (n, closed))
        T.expect(READ_TIMEOUT - 0.2 <= took <= READ_TIMEOUT + 10,
                 "cut after %.1fs (read_timeout %gs)" % (took, READ_TIMEOUT))
        T.expect(re.search(r"event=upstream_error .*connector=%s/%s reason=upstream_read_timeout"
                           % (NS, STALL), self.og.log_text()),
                 "upstream_read_timeout logged")

    def t_splice_off(self):
        og = self.start_ocigate("ocigate-nosplice", False)
        try:
            with T.RawConn(og.port, timeout=60) as c:
                self.get_big(c, "blob with splice = no", og=og)
            T.expect_eq(self.spliced(og), (0, 0), "spliced counters with splice = no")
        finally:
            og.stop()

    def t_log_clean(self):
        self.og.assert_log_clean()

    def extra_cleanup(self):
        for s in (getattr(self, "short", None), getattr(self, "stall", None),
                  getattr(self, "sendfile", None)):
            if s:
                s.stop()


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("splice", keep=args.keep) as env:
        t = SpliceTest(args, env)
        g = t.guard
        cases = [
            ("setup: pki, TLS registry, plain registry on its storage, ocigate", t.setup, True),
            ("24 MiB layer spliced: bytes, length, counters, access log", g(t.t_big_blob)),
            ("keep-alive and pipelining around spliced bodies", g(t.t_keepalive_pipelined)),
            ("Range request spliced", g(t.t_range)),
            ("a client that pauses mid-body costs no CPU while it pauses",
             g(t.t_paused_client_no_spin)),
            ("small bodies and TLS upstreams go through the buffers",
             g(t.t_small_and_tls_not_spliced)),
            ("skopeo pulls through the plain connector", g(t.t_skopeo)),
            ("clients hanging up mid-body leak nothing", g(t.t_client_gone)),
            ("a client that stops reading is cut after send_timeout", g(t.t_slow_client)),
            ("upstream closing mid-body: short body, connection cut", g(t.t_upstream_dies)),
            ("upstream stalling mid-body: cut after read_timeout", g(t.t_upstream_stalls)),
            ("splice = no relays through the buffers", g(t.t_splice_off)),
            ("ocigate log has no secrets", t.t_log_clean),
            ("ocigate did not crash", t.t_no_crash),
        ]
        try:
            rc = T.Tap(env).run_all(cases)
        finally:
            t.extra_cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    main()
