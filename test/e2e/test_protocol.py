#!/usr/bin/env python3
"""HTTP/1.1 behaviour of ocigate's client side with raw sockets: keep-alive,
pipelining, HEAD, malformed requests, header and idle timeouts, graceful
shutdown during a slow download, and --check-config.

    python3 test/e2e/test_protocol.py --ocigate build/ocigate
"""

import errno
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402

NS, CONN = "team-a", "registry"
HEADER_TIMEOUT = 2.0
IDLE_TIMEOUT = 2.0
SHUTDOWN_TIMEOUT = 3.0


class ProtocolTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice")
        self.bob = T.Token("bob")

    def setup(self):
        self.w = T.World(self.env)
        self.lay = self.w.layout
        conn = T.registry_connector("%s/%s" % (NS, CONN), self.w.registry,
                                    allow=["alice"])
        self.og = T.Ocigate(self.env, self.args.ocigate, [self.alice, self.bob], [conn],
                            server={"header_timeout": "%gs" % HEADER_TIMEOUT,
                                    "idle_timeout": "%gs" % IDLE_TIMEOUT,
                                    "shutdown_timeout": "%gs" % SHUTDOWN_TIMEOUT}
                            ).start()

    # -- helpers -------------------------------------------------------------

    def path(self, repo, kind, ref):
        return T.proxy_path(NS, CONN, repo, kind, ref)

    def req(self, method, path, headers=None):
        h = {"Authorization": self.alice.basic()}
        h.update(headers or {})
        return T.build_request(method, path, self.og.host, h)

    def conn(self):
        return T.RawConn(self.og.port, timeout=15)

    # -- connection reuse ----------------------------------------------------

    def t_keepalive(self):
        with self.conn() as c:
            c.send(self.req("GET", "/v2/"))
            r1 = c.read_response()
            T.expect_status(r1, 200, "first request")
            c.send(self.req("GET", self.path("demo/app", "manifests", "v1"),
                            {"Accept": T.MEDIA_OCI_MANIFEST}))
            r2 = c.read_response()
            T.expect_status(r2, 200, "second request on the same connection")
            T.expect_eq(T.sha256_bytes(r2.body), self.lay.single.digest,
                        "manifest digest")
            T.expect(not c.closed_within(0.3),
                     "connection closed after two keep-alive requests")

    def t_token_per_request(self):
        """ocigate keeps the hash of a connection's last Authorization
        value: every request must still be judged on its own token."""
        manifest = self.path("demo/app", "manifests", "v1")
        forged = self.alice.token[:-1] + ("0" if self.alice.token[-1] != "0" else "1")
        steps = [
            ("alice", self.alice.basic(), 200),
            ("bob (valid token, not allowed on the connector)", self.bob.basic(), 403),
            ("alice's token with its last byte changed", "Bearer " + forged, 401),
            ("alice again", self.alice.basic(), 200),
            ("alice as Bearer", self.alice.bearer(), 200),
            ("no Authorization", None, 401),
            ("alice once more", self.alice.basic(), 200),
        ]
        with self.conn() as c:
            for what, auth, want in steps:
                h = {"Accept": T.MEDIA_OCI_MANIFEST}
                if auth:
                    h["Authorization"] = auth
                c.send(T.build_request("GET", manifest, self.og.host, h))
                r = c.read_response()
                T.expect_status(r, want, "same connection, %s" % what)
                T.expect((r.header("connection") or "").lower() != "close",
                         "connection closed after: %s" % what)

    def t_pipelined(self):
        big = self.lay.big
        reqs = [
            ("GET", "/v2/", {}),
            ("HEAD", self.path("demo/app", "blobs", big.digest), {}),
            ("GET", self.path("demo/app", "tags", "list"), {}),
            ("GET", self.path("demo/multi", "manifests", "v1"),
             {"Accept": T.ACCEPT_ALL}),
            ("GET", self.path("demo/app", "manifests", "v1"),
             {"Accept": T.ACCEPT_ALL}),
        ]
        with self.conn() as c:
            c.send(b"".join(self.req(m, p, h) for m, p, h in reqs))
            rs = [c.read_response(m) for m, _, _ in reqs]
        T.expect_status(rs[0], 200, "pipelined #1 GET /v2/")
        T.expect_eq(rs[0].json(), {}, "pipelined #1 body")
        T.expect_status(rs[1], 200, "pipelined #2 HEAD blob")
        T.expect_eq(rs[1].header("Content-Length"), str(big.size),
                    "pipelined #2 Content-Length")
        T.expect_status(rs[2], 200, "pipelined #3 tags/list")
        T.expect_eq(rs[2].json().get("tags"), ["v1", "v2", "v3"],
                    "pipelined #3 tags")
        T.expect_status(rs[3], 200, "pipelined #4 index")
        T.expect_eq(T.sha256_bytes(rs[3].body), self.lay.index.digest,
                    "pipelined #4 digest")
        T.expect_status(rs[4], 200, "pipelined #5 manifest")
        T.expect_eq(T.sha256_bytes(rs[4].body), self.lay.single.digest,
                    "pipelined #5 digest")

    def t_head_no_body(self):
        big = self.lay.big
        with self.conn() as c:
            for p in (self.path("demo/app", "blobs", big.digest),
                      self.path("demo/app", "manifests", "v1")):
                c.send(self.req("HEAD", p, {"Accept": T.ACCEPT_ALL}))
                r = c.read_response("HEAD")
                T.expect_status(r, 200, "HEAD " + p)
                T.expect(r.header("Content-Length") not in (None, "0"),
                         "HEAD %s has no Content-Length" % p)
                c.sock.settimeout(0.5)
                try:
                    extra = c.sock.recv(4096)
                except socket.timeout:
                    extra = None
                T.expect(extra is None and c.buf == b"",
                         "bytes after the HEAD response: %r"
                         % ((c.buf + (extra or b""))[:100],))

    # -- malformed requests --------------------------------------------------

    def malformed(self, raw, allowed):
        """Send raw bytes; expect one of the allowed statuses, then close."""
        raw = raw.replace("{HOST}", self.og.host).replace(
            "{AUTH}", "Authorization: " + self.alice.basic())
        with self.conn() as c:
            try:
                c.send(raw)
            except OSError as e:  # it may close before reading everything
                T.diag("  send: %s" % e)
            try:
                r = c.read_response()
            except T.TestFailure as e:
                T.fail("no response to %r...: %s" % (raw[:80], e))
            if r.status not in allowed:
                T.fail("expected status %s, got:\n%s" % (sorted(allowed),
                                                         r.describe()))
            T.expect(c.closed_within(3),
                     "connection still open 3s after a %d for a malformed "
                     "request" % r.status)

    def malformed_cases(self):
        base = "GET /v2/ HTTP/1.1\r\nHost: {HOST}\r\n{AUTH}\r\n"
        return [
            ("bare CR inside the header block",
             base + "X-A: 1\rX-B: 2\r\n\r\n", {400}),
            ("bare LF line ending",
             base + "X-A: 1\nX-B: 2\r\n\r\n", {400}),
            ("obs-fold continuation line",
             base + "X-A: 1\r\n  folded\r\n\r\n", {400}),
            ("Content-Length with Transfer-Encoding",
             base + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
             "0\r\n\r\n", {400}),
            ("two different Content-Length",
             base + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", {400}),
            ("space before the colon",
             base + "X-A : 1\r\n\r\n", {400}),
            ("HTTP/1.1 without Host",
             "GET /v2/ HTTP/1.1\r\n{AUTH}\r\n\r\n", {400}),
            ("HTTP/2.0 request line",
             "GET /v2/ HTTP/2.0\r\nHost: {HOST}\r\n{AUTH}\r\n\r\n", {400, 505}),
            ("20 KB header field",
             base + "X-Big: " + "a" * 20480 + "\r\n\r\n", {431}),
            ("NUL in a header value",
             base + "X-A: a\x00b\r\n\r\n", {400}),
            ("garbage request line",
             "HELLO\r\nHost: {HOST}\r\n\r\n", {400}),
            ("unsupported Transfer-Encoding",
             "POST /v2/ HTTP/1.1\r\nHost: {HOST}\r\n{AUTH}\r\n"
             "Transfer-Encoding: gzip\r\n\r\n", {400, 501}),
        ]

    def t_tls_probe(self):
        # skopeo and docker try https:// first on an "insecure" registry; a
        # proxy that waits for a request line on a ClientHello stalls every
        # pull by header_timeout.
        ctx = T.ssl.SSLContext(T.ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = T.ssl.CERT_NONE
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.og.port), 10) as s:
            try:
                with ctx.wrap_socket(s, server_hostname="127.0.0.1"):
                    T.fail("TLS handshake succeeded on the plain-HTTP port")
            except (T.ssl.SSLError, OSError):
                pass
        took = time.monotonic() - t0
        T.diag("  handshake failed after %.2fs" % took)
        T.expect(took < 1.0, "TLS ClientHello answered after %.2fs, not at "
                 "once (header_timeout is %gs)" % (took, HEADER_TIMEOUT))

    # -- timeouts ------------------------------------------------------------

    def _time_to_close(self, c, t0, limit, feed=None):
        """Seconds from t0 until the peer closes c; feed(i) returns a byte to
        send each second (slowloris) or None."""
        i = 0
        while time.monotonic() - t0 < limit:
            if feed is not None:
                try:
                    c.send(feed(i))
                except OSError:
                    return time.monotonic() - t0
                i += 1
            if c.closed_within(1.0 if feed else limit):
                return time.monotonic() - t0
        return None

    def _expect_closed(self, took, lo, hi, what):
        if took is None:
            T.fail("%s: still open after %.0fs" % (what, hi))
        T.diag("  closed after %.2fs" % took)
        T.expect(lo <= took <= hi, "%s: closed after %.2fs, expected %.1f-%.1fs"
                 % (what, took, lo, hi))

    def t_slowloris(self):
        rest = "Host: %s\r\nX-Slow: %s\r\n\r\n" % (self.og.host, "z" * 60)
        with self.conn() as c:
            t0 = time.monotonic()
            c.send("GET /v2/ HTTP/1.1\r\n")
            took = self._time_to_close(c, t0, 10,
                                       feed=lambda i: rest[i % len(rest)])
        self._expect_closed(took, HEADER_TIMEOUT - 0.5, HEADER_TIMEOUT + 2.5,
                            "slowloris (1 header byte/s)")

    def t_silent(self):
        with self.conn() as c:
            t0 = time.monotonic()
            took = self._time_to_close(c, t0, 10)
        self._expect_closed(took, min(HEADER_TIMEOUT, IDLE_TIMEOUT) - 0.5,
                            max(HEADER_TIMEOUT, IDLE_TIMEOUT) + 2.5,
                            "connection that never sends a byte")

    def t_idle(self):
        with self.conn() as c:
            c.send(self.req("GET", "/v2/"))
            T.expect_status(c.read_response(), 200, "GET /v2/")
            t0 = time.monotonic()
            took = self._time_to_close(c, t0, 10)
        self._expect_closed(took, IDLE_TIMEOUT - 0.5, IDLE_TIMEOUT + 2.5,
                            "idle keep-alive connection")

    # -- --check-config ------------------------------------------------------

    def t_check_config(self):
        rc = self.og.check_config(self.og.config)
        T.expect_eq(rc.returncode, 0, "--check-config on the running config "
                    "(output: %r)" % (rc.stdout + rc.stderr))
        cases = [
            ("no-equals.conf",
             "[server]\nlisten = 127.0.0.1:0\nthis line has no equals sign\n", 3),
            ("bad-port.conf",
             "[server]\nlisten = 127.0.0.1:99999\n", 2),
            ("bad-duration.conf",
             "[server]\nlisten = 127.0.0.1:0\n\nheader_timeout = soon\n", 4),
            ("bad-connector.conf",
             "[server]\nlisten = 127.0.0.1:0\n[auth]\ntokens_file = %s\n"
             '[connector "team-a/x"]\naddress = ftp://example.com\n'
             % self.og.tokens_file, 6),
        ]
        bad = []
        for name, text, line in cases:
            p = self.env.path(name)
            with open(p, "w") as f:
                f.write(text)
            cp = self.og.check_config(p)
            out = (cp.stdout + cp.stderr).decode("utf-8", "replace")
            want = "%s:%d:" % (p, line)
            if cp.returncode != 1 or want not in out:
                bad.append("%s: exit %d, output %r (want exit 1 and %r)"
                           % (name, cp.returncode, out.strip(), want))
        T.expect(not bad, "\n".join(bad))

    # -- graceful shutdown ---------------------------------------------------

    def t_sigterm_during_download(self):
        big = self.lay.big
        url = self.og.url + self.path("demo/app", "blobs", big.digest)
        out = self.env.path("slow-blob.bin")
        curl = T.spawn_curl(self.env, "curl-slow",
                            ["--limit-rate", "5M", "-o", out,
                             "-u", "x:" + self.alice.token, url])
        T.wait_for(lambda: os.path.exists(out) and
                   os.path.getsize(out) >= 2 * T.MiB, 30, 0.02,
                   "2 MB of the slow download")
        size_at_term = os.path.getsize(out)
        t0 = time.monotonic()
        self.og.proc.signal(T.signal.SIGTERM)

        refused = None
        while time.monotonic() - t0 < 2.0:
            try:
                s = socket.create_connection(("127.0.0.1", self.og.port), 0.5)
                s.close()
            except OSError as e:
                if e.errno == errno.ECONNREFUSED:
                    refused = time.monotonic() - t0
                    break
            time.sleep(0.05)
        rc = self.og.proc.wait(SHUTDOWN_TIMEOUT + 5)
        exit_after = time.monotonic() - t0
        crc = curl.wait(10)
        curl_after = time.monotonic() - t0
        if crc is None:
            curl.kill()
        size = os.path.getsize(out)
        T.diag("  refused after %s, ocigate exit %s after %.2fs, curl exit %s "
               "after %.2fs with %d bytes (%d at SIGTERM)"
               % ("%.2fs" % refused if refused is not None else "never", rc,
                  exit_after, crc, curl_after, size, size_at_term))
        T.expect(refused is not None and refused <= 1.0,
                 "new connections not refused within 1s of SIGTERM")
        T.expect(rc is not None, "ocigate still running %.0fs after SIGTERM"
                 % (SHUTDOWN_TIMEOUT + 5))
        T.expect_eq(rc, 0, "ocigate exit status after SIGTERM")
        T.expect(exit_after <= SHUTDOWN_TIMEOUT + 1.5,
                 "ocigate exited %.2fs after SIGTERM, shutdown_timeout is %gs"
                 % (exit_after, SHUTDOWN_TIMEOUT))
        T.expect(crc is not None, "curl did not finish after ocigate exited")
        if crc == 0:
            T.expect_eq("sha256:" + T.sha256_file(out), big.digest,
                        "curl exit 0 but wrong bytes")
        else:
            T.expect(size < big.size, "curl failed with the whole body")
            T.expect(size - size_at_term >= T.MiB,
                     "the in-flight download did not continue after SIGTERM "
                     "(%d bytes more)" % (size - size_at_term))
            T.expect(curl_after >= SHUTDOWN_TIMEOUT - 1.0,
                     "in-flight download cut %.2fs after SIGTERM, before "
                     "shutdown_timeout (%gs)" % (curl_after, SHUTDOWN_TIMEOUT))

    def t_log_clean(self):
        self.og.assert_log_clean()


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("protocol", keep=args.keep) as env:
        t = ProtocolTest(args, env)
        cases = [
            ("setup: pki, registry, seed, ocigate", t.setup, True),
            ("two requests on one keep-alive connection", t.t_keepalive),
            ("every request of a connection judged on its own token",
             t.t_token_per_request),
            ("pipelined requests answered in order", t.t_pipelined),
            ("HEAD responses carry no body", t.t_head_no_body),
        ]
        for name, raw, allowed in t.malformed_cases():
            cases.append(("malformed: %s -> %s and close"
                          % (name, "/".join(map(str, sorted(allowed)))),
                          lambda raw=raw, allowed=allowed: t.malformed(raw, allowed)))
        cases += [
            ("TLS ClientHello on the plain port rejected at once", t.t_tls_probe),
            ("slowloris cut off after header_timeout", t.t_slowloris),
            ("silent connection closed", t.t_silent),
            ("idle keep-alive closed after idle_timeout", t.t_idle),
            ("--check-config reports FILE:LINE and exits 1", t.t_check_config),
            ("SIGTERM during a slow download: refuse new, drain, exit 0",
             t.t_sigterm_during_download),
            ("ocigate log has no secrets", t.t_log_clean),
        ]
        rc = T.Tap(env).run_all(cases)
    sys.exit(rc)


if __name__ == "__main__":
    main()
