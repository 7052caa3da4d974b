#!/usr/bin/env python3
"""Hostile clients against ocigate in front of a TLS docker-registry:

- clients that pipeline requests for 20 s without reading a byte (local
  404s, 401s, authenticated GET /v2/, proxied manifests, blobs): ocigate's
  VmRSS stays under 32 MiB, the access log stops growing once the kernel's
  buffers are full, and when the clients finally read (after
  shutdown(SHUT_WR)) every response is there and correct;
- ocigate under `ulimit -n 128` with 300 connections: it does not spin on
  EMFILE (CPU time and accept_error lines stay small), warns at start that
  the limit cannot hold max_connections, keeps serving the connections it
  has, and answers /healthz once the connections are gone;
- half-closing clients: a complete request followed by shutdown(SHUT_WR)
  gets its whole response (GET /v2/, a proxied manifest, a blob), then the
  connection closes; a request cut short by EOF gets no response.

    python3 test/e2e/test_hostile_client.py --ocigate build/ocigate
"""

import hashlib
import os
import re
import resource
import select
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402

NS, CONN = "team-a", "registry"
# The ASan test setup raises it (shadow memory and quarantine are not ours).
RSS_LIMIT_MIB = int(os.environ.get("OCIGATE_TEST_RSS_LIMIT_MIB", "32"))
PIPELINE_SECONDS = 20.0
# Small client socket buffers, so that what the kernel can hold for a
# non-reading client is known (no autotuning) and fills quickly.
CLIENT_BUF = 64 * 1024
BODY_BUFFER = 256 * 1024        # ocigate's default [server] body_buffer
FD_LIMIT = 128
FD_CONNECTIONS = 300


def tcp_wmem_max():
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * T.MiB


def parse_responses(data):
    """Content-Length framed responses back to back in data: a list of
    (status, {lowercase name: value}, body); trailing bytes are an error."""
    out = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        T.expect(end >= 0, "response %d: no end of head in %r"
                 % (len(out), data[pos:pos + 200]))
        lines = data[pos:end].decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
        T.expect(m, "response %d: bad status line %r" % (len(out), lines[0]))
        headers = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            headers[k.strip().lower()] = v.strip()
        T.expect("content-length" in headers, "response %d has no "
                 "Content-Length: %r" % (len(out), lines))
        n = int(headers["content-length"])
        body = data[end + 4:end + 4 + n]
        T.expect(len(body) == n, "response %d: body cut at %d of %d bytes"
                 % (len(out), len(body), n))
        out.append((int(m.group(1)), headers, body))
        pos = end + 4 + n
    return out


class LogCounter:
    """Counts access lines per client port in ocigate's log, reading only
    what was appended since the last call (the old code wrote gigabytes)."""

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.rest = b""
        self.per_port = {}
        self.accept_errors = 0

    def update(self):
        with open(self.path, "rb") as f:
            f.seek(self.off)
            while True:
                chunk = f.read(8 * T.MiB)
                if not chunk:
                    break
                self.off += len(chunk)
                data = self.rest + chunk
                cut = data.rfind(b"\n") + 1
                self.rest = data[cut:]
                for m in re.finditer(rb"event=access .*?peer=127\.0\.0\.1:(\d+)",
                                     data[:cut]):
                    port = int(m.group(1))
                    self.per_port[port] = self.per_port.get(port, 0) + 1
                self.accept_errors += data[:cut].count(b"event=accept_error")
        return self

    def lines(self, port):
        return self.per_port.get(port, 0)


class Pipeliner:
    """One connection that sends the same request over and over without
    reading, then half-closes and reads everything."""

    def __init__(self, name, port, request, check, local=True):
        self.name = name
        self.local = local          # answered without the registry
        self.request = request
        self.check = check          # fn(status, headers, body) -> error or None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_BUF)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_BUF)
        self.sock.connect(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.data = b""
        self.read_error = None

    def pump(self, deadline):
        batch = memoryview(self.request * 64)
        self.sock.setblocking(False)
        while time.monotonic() < deadline:
            _, w, _ = select.select([], [self.sock], [], 0.2)
            if not w:
                continue
            try:
                self.sent += self.sock.send(batch[self.sent % len(batch):])
            except BlockingIOError:
                pass

    @property
    def requests(self):
        return -(-self.sent // len(self.request))

    def _read_all(self):
        parts = []
        try:
            while True:
                b = self.sock.recv(1 << 20)
                if not b:
                    break
                parts.append(b)
        except OSError as e:
            self.read_error = "%s after %d bytes" % (e, sum(map(len, parts)))
        self.data = b"".join(parts)

    def finish(self):
        """Completes the last request, half-closes, reads until EOF."""
        self.sock.setblocking(True)
        self.sock.settimeout(60)
        reader = threading.Thread(target=self._read_all, daemon=True)
        reader.start()
        left = (-self.sent) % len(self.request)
        if left:
            self.sock.sendall(self.request[len(self.request) - left:])
        self.sock.shutdown(socket.SHUT_WR)
        return reader

    def verify(self):
        T.expect(self.read_error is None, "%s: %s" % (self.name,
                                                      self.read_error))
        resps = parse_responses(self.data)
        T.expect_eq(len(resps), self.requests, "%s: responses for %d "
                    "pipelined requests" % (self.name, self.requests))
        for i, (status, headers, body) in enumerate(resps):
            err = self.check(status, headers, body)
            T.expect(err is None, "%s: response %d of %d: %s"
                     % (self.name, i, len(resps), err))
        return resps

    def close(self):
        self.sock.close()


def expect_error_body(want_status, want_code):
    def check(status, headers, body):
        if status != want_status:
            return "status %d, want %d" % (status, want_status)
        if ('"code":"%s"' % want_code).encode() not in body:
            return "body %r has no error code %s" % (body[:200], want_code)
        if want_status == 401 and not headers.get(
                "www-authenticate", "").startswith("Basic realm="):
            return "401 without a Basic challenge: %r" % headers
        return None
    return check


def expect_digest(digest):
    def check(status, headers, body):
        if status != 200:
            return "status %d: %r" % (status, body[:200])
        got = "sha256:" + hashlib.sha256(body).hexdigest()
        return None if got == digest else "body digest %s, want %s" % (
            got, digest)
    return check


def expect_exact(want_status, want_body):
    def check(status, headers, body):
        if status != want_status or body != want_body:
            return "got %d %r, want %d %r" % (status, body[:200], want_status,
                                              want_body)
        return None
    return check


class HostileClientTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice")

    def setup(self):
        self.w = T.World(self.env, big_size=8 * T.MiB)
        self.lay = self.w.layout
        self.conn = T.registry_connector("%s/%s" % (NS, CONN), self.w.registry,
                                         allow=["alice"])
        self.og = T.Ocigate(self.env, self.args.ocigate, [self.alice],
                            [self.conn]).start()
        r = T.request(self.og.port, "GET", "/v2/",
                      {"Authorization": self.alice.basic()})
        T.expect_status(r, 200, "GET /v2/")
        self.small = self.lay.single.layers[0]
        T.diag("  RSS after start: %.1f MiB; small blob %d bytes"
               % (self.og.rss_kib() / 1024, self.small.size))

    def path(self, kind, ref):
        return T.proxy_path(NS, CONN, "demo/app", kind, ref)

    def req(self, method, path, headers=None, auth=True):
        h = {"Authorization": self.alice.basic()} if auth else {}
        h.update(headers or {})
        return T.build_request(method, path, self.og.host, h)

    # -- pipelining without reading ------------------------------------------

    def pipeliners(self):
        port = self.og.port
        return [
            Pipeliner("local 404", port, self.req("GET", "/nothing/here", auth=False),
                      expect_error_body(404, "NAME_UNKNOWN")),
            Pipeliner("unauthenticated GET /v2/", port,
                      self.req("GET", "/v2/", auth=False),
                      expect_error_body(401, "UNAUTHORIZED")),
            Pipeliner("authenticated GET /v2/", port, self.req("GET", "/v2/"),
                      expect_exact(200, b"{}")),
            Pipeliner("proxied manifest", port,
                      self.req("GET", self.path("manifests", "v1"),
                               {"Accept": T.MEDIA_OCI_MANIFEST}),
                      expect_digest(self.lay.single.digest), local=False),
            Pipeliner("proxied blob", port,
                      self.req("GET", self.path("blobs", self.small.digest)),
                      expect_digest(self.small.digest), local=False),
        ]

    def t_pipeline_run(self):
        self.pipes = self.pipeliners()
        self.log = LogCounter(self.og.log_path)
        deadline = time.monotonic() + PIPELINE_SECONDS
        threads = [threading.Thread(target=p.pump, args=(deadline,),
                                    daemon=True) for p in self.pipes]
        with T.RssSampler(self.og.pid) as s:
            for t in threads:
                t.start()
            time.sleep(PIPELINE_SECONDS - 5)
            self.log.update()
            self.lines_before = {p.port: self.log.lines(p.port)
                                 for p in self.pipes}
            for t in threads:
                t.join(PIPELINE_SECONDS)
            self.log.update()
            self.lines_after = {p.port: self.log.lines(p.port)
                                for p in self.pipes}
        self.rss_peak = s.peak_kib
        self.rss_samples = s.samples
        T.expect(all(p.sent > 0 for p in self.pipes), "a client sent nothing")

    def t_pipeline_rss(self):
        hwm = T.vm_hwm_kib(self.og.pid)
        T.diag("  peak VmRSS %.1f MiB over %d samples, VmHWM %.1f MiB "
               "(limit %d MiB)" % (self.rss_peak / 1024, self.rss_samples,
                                   hwm / 1024, RSS_LIMIT_MIB))
        T.expect(self.rss_samples > 0, "no RSS samples")
        T.expect(self.rss_peak < RSS_LIMIT_MIB * 1024, "peak VmRSS %.1f MiB "
                 ">= %d MiB" % (self.rss_peak / 1024, RSS_LIMIT_MIB))
        T.expect(hwm < RSS_LIMIT_MIB * 1024, "VmHWM %.1f MiB >= %d MiB"
                 % (hwm / 1024, RSS_LIMIT_MIB))

    def t_pipeline_log(self):
        """The old code answered ~100k local requests a second, forever."""
        # What can be answered while nobody reads: the responses ocigate
        # keeps (body_buffer) plus what the kernel holds on both ends.
        # The shortest response here, the authenticated GET /v2/, is 119
        # bytes.
        bound = (tcp_wmem_max() + 2 * CLIENT_BUF + 2 * BODY_BUFFER) // 119 + 100
        bad = []
        for p in self.pipes:
            before, after = self.lines_before[p.port], self.lines_after[p.port]
            T.diag("  %-26s %8d requests sent, %6d access lines at %.0fs, "
                   "%6d at %.0fs (bound %d)" % (p.name, p.requests, before,
                                                PIPELINE_SECONDS - 5, after,
                                                PIPELINE_SECONDS, bound))
            if after > bound:
                bad.append("%s: %d access lines > %d" % (p.name, after, bound))
            # Proxied requests are paced by the registry (tens of ms each
            # on a shared machine): the kernel's buffers may still be
            # filling after 20 s, so only the bound applies to them.
            if p.local and after - before > max(50, after // 10):
                bad.append("%s: still answering while the client reads "
                           "nothing: %d -> %d access lines in the last 5 s"
                           % (p.name, before, after))
        T.expect(not bad, "\n".join(bad))

    def t_pipeline_read(self):
        readers = [p.finish() for p in self.pipes]
        for r in readers:
            r.join(120)
        try:
            for p in self.pipes:
                resps = p.verify()
                T.diag("  %-26s %d responses, %d bytes, all correct"
                       % (p.name, len(resps), len(p.data)))
        finally:
            for p in self.pipes:
                p.close()
        self.log.update()
        bad = ["%s: %d access lines for %d requests"
               % (p.name, self.log.lines(p.port), p.requests)
               for p in self.pipes if self.log.lines(p.port) != p.requests]
        T.expect(not bad, "one access line per request:\n" + "\n".join(bad))

    # -- half-close ------------------------------------------------------------

    def half_close(self, data):
        """Sends data, shuts down the sending side, reads until EOF."""
        with socket.create_connection(("127.0.0.1", self.og.port),
                                      timeout=30) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            parts = []
            while True:
                b = s.recv(1 << 20)
                if not b:
                    break
                parts.append(b)
        return b"".join(parts)

    def check_half_close(self, what, data, check, n=1):
        resps = parse_responses(self.half_close(data))
        T.expect_eq(len(resps), n, "%s: responses after shutdown(SHUT_WR)"
                    % what)
        for status, headers, body in resps:
            err = check(status, headers, body)
            T.expect(err is None, "%s: %s" % (what, err))

    def t_half_close_local(self):
        self.check_half_close("GET /v2/", self.req("GET", "/v2/"),
                              expect_exact(200, b"{}"))
        self.check_half_close("unauthenticated GET /v2/",
                              self.req("GET", "/v2/", auth=False),
                              expect_error_body(401, "UNAUTHORIZED"))

    def t_half_close_manifest(self):
        self.check_half_close("manifest", self.req(
            "GET", self.path("manifests", "v1"), {"Accept": T.MEDIA_OCI_MANIFEST}),
            expect_digest(self.lay.single.digest))

    def t_half_close_blob(self):
        big = self.lay.big
        self.check_half_close("%d-byte blob" % big.size,
                              self.req("GET", self.path("blobs", big.digest)),
                              expect_digest(big.digest))

    def t_half_close_pipelined(self):
        reqs = [self.req("GET", self.path("manifests", "v1"),
                         {"Accept": T.MEDIA_OCI_MANIFEST}),
                self.req("GET", self.path("blobs", self.small.digest))]
        resps = parse_responses(self.half_close(b"".join(reqs) * 3))
        T.expect_eq(len(resps), 6, "responses to 6 pipelined requests "
                    "followed by shutdown(SHUT_WR)")
        for i, (status, headers, body) in enumerate(resps):
            want = self.lay.single.digest if i % 2 == 0 else self.small.digest
            err = expect_digest(want)(status, headers, body)
            T.expect(err is None, "response %d: %s" % (i, err))

    def t_half_close_cut(self):
        """EOF inside a request head or body: no response, the connection
        closes (nothing waits for the rest)."""
        head = self.req("GET", "/v2/")
        t0 = time.monotonic()
        got = self.half_close(head[:len(head) // 2])
        T.expect_eq(got, b"", "response to half a request head")
        put = self.req("PUT", self.path("manifests", "cut"),
                       {"Content-Type": T.MEDIA_OCI_MANIFEST,
                        "Content-Length": "1000"})
        got = self.half_close(put + b"{" * 10)
        T.expect(not got.startswith(b"HTTP/1.1 2"),
                 "a cut request body was answered with success: %r"
                 % got[:200])
        T.expect(time.monotonic() - t0 < 20, "EOF inside a request did not "
                 "close the connection promptly")

    # -- out of file descriptors -------------------------------------------------

    def t_fd_exhaustion(self):
        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < FD_CONNECTIONS + 100:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (min(hard, FD_CONNECTIONS + 200), hard))
        og = T.Ocigate(self.env, self.args.ocigate, [self.alice], [self.conn],
                       name="ocigate-fds", preexec_fn=limit).start()
        self.og_fds = og
        socks = []
        try:
            for _ in range(FD_CONNECTIONS):
                socks.append(socket.create_connection(("127.0.0.1", og.port),
                                                      timeout=10))
            time.sleep(1.0)
            cpu0, t0 = T.cpu_seconds(og.pid), time.monotonic()
            time.sleep(4.0)
            cpu = T.cpu_seconds(og.pid) - cpu0
            wall = time.monotonic() - t0
            log = LogCounter(og.log_path).update()
            T.diag("  %d connections under ulimit -n %d: %.2f s CPU in %.1f s, "
                   "%d accept_error lines" % (FD_CONNECTIONS, FD_LIMIT, cpu,
                                              wall, log.accept_errors))
            T.expect(cpu < 0.5, "ocigate used %.2f s of CPU in %.1f s while "
                     "out of file descriptors" % (cpu, wall))
            T.expect(0 < log.accept_errors <= 3, "%d accept_error lines in "
                     "the log (want 1 to 3)" % log.accept_errors)
            # The connections it holds are still served.
            socks[0].sendall(T.build_request("GET", "/healthz", og.host))
            socks[0].settimeout(10)
            T.expect(socks[0].recv(4096).startswith(b"HTTP/1.1 200 "),
                     "an accepted connection got no /healthz answer while "
                     "the process is out of descriptors")
        finally:
            for s in socks:
                s.close()

        def healthy():
            try:
                r = T.request(og.port, "GET", "/healthz", timeout=2)
                return r.status == 200
            except (OSError, T.TestFailure):
                return False
        T.wait_for(healthy, 20, 0.2, "/healthz after the connections closed")
        r = T.request(og.port, "GET", "/v2/",
                      {"Authorization": self.alice.basic()})
        T.expect_status(r, 200, "GET /v2/ after the connections closed")
        T.expect(re.search(r"event=fd_limit .*limit=%d " % FD_LIMIT, og.log),
                 "no fd_limit warning at start under ulimit -n %d:\n%s"
                 % (FD_LIMIT, og.log[-2000:]))
        T.expect_eq(og.stop(), 0, "exit status after SIGTERM")

    def t_still_serving(self):
        r = T.request(self.og.port, "GET", self.path("manifests", "v1"),
                      {"Authorization": self.alice.basic(),
                       "Accept": T.MEDIA_OCI_MANIFEST})
        T.expect_status(r, 200, "manifest after the hostile clients")
        T.expect_eq(self.og.stop(), 0, "exit status after SIGTERM")
        self.og.assert_log_clean()


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("hostile_client", keep=args.keep) as env:
        t = HostileClientTest(args, env)
        rc = T.Tap(env).run_all([
            ("setup: pki, registry, seed, ocigate", t.setup, True),
            ("5 clients pipeline for %ds without reading" % PIPELINE_SECONDS,
             t.t_pipeline_run, True),
            ("... ocigate's VmRSS stays under %d MiB" % RSS_LIMIT_MIB,
             t.t_pipeline_rss),
            ("... the access log stops growing while nobody reads",
             t.t_pipeline_log),
            ("... after SHUT_WR every response arrives, correct, then EOF",
             t.t_pipeline_read),
            ("half-close: GET /v2/ (200 and 401) answered", t.t_half_close_local),
            ("half-close: proxied manifest answered", t.t_half_close_manifest),
            ("half-close: 8 MiB blob answered in full", t.t_half_close_blob),
            ("half-close: 6 pipelined requests answered", t.t_half_close_pipelined),
            ("half-close: EOF inside a request closes without an answer",
             t.t_half_close_cut),
            ("ulimit -n %d, %d connections: no spin, few log lines, /healthz "
             "after" % (FD_LIMIT, FD_CONNECTIONS), t.t_fd_exhaustion),
            ("still serving, exit 0, log clean", t.t_still_serving),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
