#!/usr/bin/env python3
"""ocigate's memory stays bounded whatever the load: 50 concurrent pulls of
a 100 MB blob, then slow readers (1 MB/s) mixed with fast ones.  Every byte
is checked by sha256; VmRSS is sampled every 50 ms.

Idle keep-alive clients are parked (reduced to their socket) once they have
been silent for the park delay: 2,000 of them stay under a per-connection
RSS bound, a parked client that speaks again (one request, or several
pipelined in one packet) is answered on the same socket, parked clients are
closed at idle_timeout, when they half-close or reset, and at SIGTERM.

    python3 test/e2e/test_memory.py --ocigate build/ocigate
"""

import hashlib
import os
import resource
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402

NS, CONN = "team-a", "registry"
# 64 MiB is the target; the ASan test setup raises it (ASan's shadow memory
# and quarantine are not ocigate's), and the test says which limit it used.
RSS_LIMIT_MIB = int(os.environ.get("OCIGATE_TEST_RSS_LIMIT_MIB", "64"))
CONCURRENT = 50
SLOW_CLIENTS = 5
SLOW_RATE = 1000 * 1000     # bytes per second
SLOW_BYTES = 15 * T.MiB     # each slow client reads this much, ~15 s
FAST_DURING_SLOW = 10
# Parking: ocigate parks a plain-TCP client 25 ms after its last response.
PARK_WAIT = 0.3             # comfortably past the park delay
IDLE_CLIENTS = 2000
# Unparked, an idle connection costs about 2 KiB of RSS; parked, about 0.3
# (0.8 here: the clients that wait out the park delay at once weigh more
# over 2,000 connections than over the benchmark's 10,000).
# ASan's redzones and quarantine are not ocigate's: its setup raises this.
IDLE_CONN_KIB = float(os.environ.get("OCIGATE_TEST_IDLE_CONN_KIB", "1.25"))
SHORT_IDLE = 2.0            # idle_timeout of the instance that expires them
# Clients that stop reading a 100 MB pull: they share body_memory.
STALLED = 20
BUDGET = 4 * T.MiB          # body_memory of that instance
BUDGET_BODY_BUFFER = 8 * T.MiB
BUDGET_READ = 16 * T.MiB    # what each then reads, across many pauses


def read_prefix(sock, n):
    """Reads a response head and n body bytes from sock, closes it, and
    returns "sha256:..." of those bytes (or what went wrong)."""
    h = hashlib.sha256()
    try:
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = sock.recv(65536)
            if not b:
                return "closed before the head ended"
            buf += b
        head, _, body = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 "):
            return head[:100]
        got = len(body[:n])
        h.update(body[:n])
        while got < n:
            b = sock.recv(min(1 << 20, n - got))
            if not b:
                return "closed after %d of %d bytes" % (got, n)
            h.update(b)
            got += len(b)
        return "sha256:" + h.hexdigest()
    except OSError as e:
        return "%s: %s" % (type(e).__name__, e)
    finally:
        sock.close()


def run_threads(fns):
    results = [None] * len(fns)

    def wrap(i, fn):
        results[i] = fn()
    threads = [threading.Thread(target=wrap, args=(i, fn), daemon=True)
               for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    return threads, results


class MemoryTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice")

    def setup(self):
        self.w = T.World(self.env)
        self.big = self.w.layout.big
        conn = T.registry_connector("%s/%s" % (NS, CONN), self.w.registry,
                                    allow=["alice"])
        self.og = T.Ocigate(self.env, self.args.ocigate, [self.alice],
                            [conn]).start()
        self.blob_path = T.proxy_path(NS, CONN, "demo/app", "blobs",
                                      self.big.digest)
        r = T.request(self.og.port, "GET", "/v2/",
                      {"Authorization": self.alice.basic()})
        T.expect_status(r, 200, "GET /v2/")
        T.diag("  RSS after start: %.1f MiB" % (self.og.rss_kib() / 1024))

    def pull(self, **kw):
        return T.stream_get(self.og.port, self.blob_path,
                            {"Authorization": self.alice.basic()},
                            timeout=120, **kw)

    def check_full(self, results, what):
        bad = []
        for i, r in enumerate(results):
            if r is None:
                bad.append("%s #%d: did not finish" % (what, i))
            elif r.error or r.status != 200 or r.sha256 != self.big.digest:
                bad.append("%s #%d: status %s, %d bytes, %s, error %s"
                           % (what, i, r.status, r.nbytes, r.sha256, r.error))
        T.expect(not bad, "\n".join(bad[:10]) + (
            "\n... and %d more" % (len(bad) - 10) if len(bad) > 10 else ""))

    def report(self, sampler, wall, nbytes, what):
        hwm = T.vm_hwm_kib(self.og.pid)
        T.diag("  %s: peak VmRSS %.1f MiB over %d samples, VmHWM %.1f MiB, "
               "%.0f MB in %.1fs = %.0f MB/s"
               % (what, sampler.peak_kib / 1024, sampler.samples, hwm / 1024,
                  nbytes / 1e6, wall, nbytes / wall / 1e6))
        T.expect(sampler.samples > 0, "no RSS samples")
        T.expect(sampler.peak_kib < RSS_LIMIT_MIB * 1024,
                 "peak VmRSS %.1f MiB >= %d MiB"
                 % (sampler.peak_kib / 1024, RSS_LIMIT_MIB))
        T.expect(hwm < RSS_LIMIT_MIB * 1024, "VmHWM %.1f MiB >= %d MiB"
                 % (hwm / 1024, RSS_LIMIT_MIB))

    def t_concurrent(self):
        with T.RssSampler(self.og.pid) as s:
            t0 = time.monotonic()
            threads, results = run_threads([self.pull] * CONCURRENT)
            for t in threads:
                t.join(150)
            wall = time.monotonic() - t0
        self.check_full(results, "pull")
        self.report(s, wall, sum(r.nbytes for r in results if r), 
                    "%d concurrent pulls" % CONCURRENT)

    def t_slow_and_fast(self):
        prefix = "sha256:" + T.sha256_file(self.big.path, SLOW_BYTES)

        def slow():
            # a small receive buffer so backpressure reaches ocigate at once
            return self.pull(rate=SLOW_RATE, max_bytes=SLOW_BYTES,
                             rcvbuf=64 * 1024)
        with T.RssSampler(self.og.pid) as s:
            t0 = time.monotonic()
            slow_threads, slow_results = run_threads([slow] * SLOW_CLIENTS)
            time.sleep(1.0)
            fast_threads, fast_results = run_threads([self.pull] * FAST_DURING_SLOW)
            for t in fast_threads:
                t.join(120)
            fast_wall = time.monotonic() - t0
            T.expect(all(t.is_alive() for t in slow_threads),
                     "slow clients finished before the fast ones: not a "
                     "mixed load")
            for t in slow_threads:
                t.join(120)
            wall = time.monotonic() - t0
        self.check_full(fast_results, "fast pull")
        bad = []
        for i, r in enumerate(slow_results):
            if r is None or r.status != 200 or r.nbytes != SLOW_BYTES \
                    or r.sha256 != prefix:
                bad.append("slow #%d: %s" % (i, r and (r.status, r.nbytes,
                                                        r.error)))
        T.expect(not bad, "\n".join(bad))
        T.diag("  fast pulls done after %.1fs while slow readers ran" % fast_wall)
        nbytes = sum(r.nbytes for r in fast_results + slow_results if r)
        self.report(s, wall, nbytes, "%d slow + %d fast" % (SLOW_CLIENTS,
                                                            FAST_DURING_SLOW))

    # -- many stalled pulls share body_memory -----------------------------

    def t_body_memory(self):
        """Clients that stop reading, one after the other, hold about
        body_memory together, not body_buffer each; read again, they get
        every byte."""
        conn = T.registry_connector("%s/%s" % (NS, CONN), self.w.registry,
                                    allow=["alice"])
        og = T.Ocigate(self.env, self.args.ocigate, [self.alice], [conn],
                       name="ocigate-budget",
                       server={"admin_listen": "127.0.0.1:0",
                               "body_buffer": "%dm" % (BUDGET_BODY_BUFFER // T.MiB),
                               "body_memory": "%dm" % (BUDGET // T.MiB)}).start()
        admin = og.listeners["admin"]
        rss_before = og.rss_kib()
        socks = []

        def gauges():
            fams, _ = T.scrape_metrics(admin)
            return (T.metric_value(fams, "ocigate_body_streams"),
                    T.metric_value(fams, "ocigate_body_bytes_queued"))
        # One at a time, each filling its share before the next comes: the
        # first ones' shares are the largest, so without a cap on all the
        # queues together they would add up to several times body_memory.
        for i in range(STALLED):
            sk = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sk.settimeout(60)
            sk.connect(("127.0.0.1", og.port))
            sk.sendall(T.build_request("GET", self.blob_path, og.host,
                                       {"Authorization": self.alice.basic()}))
            socks.append(sk)
            T.wait_for(lambda: gauges()[0] == i + 1, 30,
                       what="stalled pull #%d streaming" % (i + 1))
            time.sleep(0.2)
        T.wait_for(lambda: gauges()[0] == STALLED, 30,
                   what="%d bodies streaming (ocigate_body_streams, last %r)"
                   % (STALLED, gauges()))
        # Let the registry fill whatever ocigate and the kernel will take.
        queued = []
        for _ in range(10):
            time.sleep(0.3)
            queued.append(gauges()[1])
        hwm = T.vm_hwm_kib(og.pid)
        # Past body_memory, a stream may still read one record into an
        # empty queue, plus the TLS record being decrypted.
        bound = BUDGET + STALLED * 32 * 1024
        T.diag("  %d stalled pulls: ocigate_body_bytes_queued %s (bound %d), "
               "VmHWM %.1f MiB (%.1f at the start); without the shared "
               "budget each could queue %d MiB"
               % (STALLED, queued, bound, hwm / 1024, rss_before / 1024,
                  BUDGET_BODY_BUFFER // T.MiB))
        T.expect(max(queued) > 0, "nothing queued: the clients did not stall")
        T.expect(max(queued) <= bound, "ocigate_body_bytes_queued %d > %d"
                 % (max(queued), bound))
        T.expect(hwm - rss_before < RSS_LIMIT_MIB * 1024,
                 "VmHWM grew %.1f MiB" % ((hwm - rss_before) / 1024))
        prefix = "sha256:" + T.sha256_file(self.big.path, BUDGET_READ)
        threads, results = run_threads([lambda sk=sk: read_prefix(sk, BUDGET_READ)
                                        for sk in socks])
        for t in threads:
            t.join(120)
        bad = ["client #%d: %r" % (i, r) for i, r in enumerate(results)
               if r != prefix]
        T.expect(not bad, "after the stall:\n" + "\n".join(bad[:5]))
        T.wait_for(lambda: gauges() == (0, 0), 10,
                   what="no body streaming once the clients left (last %r)"
                   % (gauges(),))
        r = T.stream_get(og.port, self.blob_path,
                         {"Authorization": self.alice.basic()}, timeout=120)
        T.expect(r.status == 200 and r.sha256 == self.big.digest,
                 "a whole pull after: %s %s %s" % (r.status, r.sha256, r.error))
        T.expect_eq(og.stop(), 0, "exit status after SIGTERM")

    # -- parked idle connections ------------------------------------------

    def start_parking(self):
        """Two more instances with a metrics listener: one with the default
        idle_timeout (the 2,000 idle clients), one with a short one and
        debug logging (expiry, clients going away)."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = IDLE_CLIENTS + 512
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (min(hard, max(need, soft)), hard))
        conn = T.registry_connector("%s/%s" % (NS, CONN), self.w.registry,
                                    allow=["alice"])
        self.op = T.Ocigate(self.env, self.args.ocigate, [self.alice], [conn],
                            name="ocigate-park",
                            server={"admin_listen": "127.0.0.1:0",
                                    "idle_timeout": "60s",
                                    "max_connections": str(2 * IDLE_CLIENTS)}
                            ).start()
        self.os = T.Ocigate(self.env, self.args.ocigate, [self.alice], [conn],
                            name="ocigate-short-idle",
                            server={"admin_listen": "127.0.0.1:0",
                                    "idle_timeout": "%gs" % SHORT_IDLE},
                            sections={"log": {"level": "debug"}}).start()
        self.idle_socks = []
        self.manifest_path = T.proxy_path(NS, CONN, "demo/app", "manifests",
                                          "v1")

    def gauges(self, og):
        fams, _ = T.scrape_metrics(og.listeners["admin"])
        return (T.metric_value(fams, "ocigate_connections"),
                T.metric_value(fams, "ocigate_parked_connections"))

    def wait_gauges(self, og, conns, parked, what):
        T.wait_for(lambda: self.gauges(og) == (conns, parked), 10,
                   what="%s: ocigate_connections %d, ocigate_parked_connections "
                   "%d (last seen %r)" % (what, conns, parked, self.gauges(og)))

    def req(self, og, method, path, headers=None):
        h = {"Authorization": self.alice.basic(), "Accept": T.ACCEPT_ALL}
        h.update(headers or {})
        return T.build_request(method, path, og.host, h)

    def parked_conn(self, og):
        """A connection that has had GET /v2/ answered and is now parked."""
        c = T.RawConn(og.port, timeout=15)
        c.send(self.req(og, "GET", "/v2/"))
        T.expect_status(c.read_response(), 200, "GET /v2/")
        time.sleep(PARK_WAIT)
        return c

    def expect_manifest(self, r, what):
        T.expect_status(r, 200, what)
        T.expect_eq(T.sha256_bytes(r.body), self.w.layout.single.digest,
                    what + ": manifest digest")

    def t_park_many(self):
        og = self.op
        req = self.req(og, "GET", "/v2/")
        # the first request sets up what every later one uses
        T.expect_status(T.request(og.port, "GET", "/v2/", {
            "Authorization": self.alice.basic()}), 200, "first GET /v2/")
        before = og.rss_kib()
        for i in range(IDLE_CLIENTS):
            c = T.RawConn(og.port, timeout=30)
            self.idle_socks.append(c)
            c.send(req)
            T.expect_status(c.read_response(), 200, "idle client #%d" % i)
        self.wait_gauges(og, IDLE_CLIENTS, IDLE_CLIENTS,
                         "%d idle clients parked" % IDLE_CLIENTS)
        after = og.rss_kib()
        per = (after - before) / float(IDLE_CLIENTS)
        T.diag("  %d parked: RSS %.1f MiB (%.1f before), %.2f KiB each "
               "(bound %.2f)" % (IDLE_CLIENTS, after / 1024.0, before / 1024.0,
                                 per, IDLE_CONN_KIB))
        T.expect(per <= IDLE_CONN_KIB, "%.2f KiB of RSS per idle connection > "
                 "%.2f" % (per, IDLE_CONN_KIB))

    def t_park_wake(self):
        og = self.op
        c = self.idle_socks[0]
        c.send(self.req(og, "GET", self.manifest_path))
        self.expect_manifest(c.read_response(), "manifest on a parked socket")
        time.sleep(PARK_WAIT)
        c.send(self.req(og, "GET", self.manifest_path))
        self.expect_manifest(c.read_response(), "manifest after parking again")
        self.wait_gauges(og, IDLE_CLIENTS, IDLE_CLIENTS,
                         "the woken client parked again")

    def t_park_pipelined(self):
        og = self.op
        c = self.idle_socks[1]
        reqs = [("GET", "/v2/"), ("GET", self.manifest_path),
                ("HEAD", self.manifest_path), ("GET", "/v2/")]
        c.send(b"".join(self.req(og, m, p) for m, p in reqs))
        rs = [c.read_response(m) for m, _ in reqs]
        T.expect_status(rs[0], 200, "pipelined #1 GET /v2/")
        self.expect_manifest(rs[1], "pipelined #2 manifest")
        T.expect_status(rs[2], 200, "pipelined #3 HEAD manifest")
        T.expect_eq(rs[2].header("Docker-Content-Digest"),
                    self.w.layout.single.digest, "pipelined #3 digest")
        T.expect_status(rs[3], 200, "pipelined #4 GET /v2/")
        T.expect_eq(rs[3].json(), {}, "pipelined #4 body")
        c.send(self.req(og, "GET", "/v2/"))
        T.expect_status(c.read_response(), 200, "one more on that socket")

    def t_park_slow_reader(self):
        """The last response is still being written when the park delay
        ends: the connection is parked once the client has read it."""
        og = self.op
        big = self.w.layout.big
        tail = 2 * T.MiB
        # A receive buffer set before connecting keeps the window, and so
        # the server's send buffer, small: the tail of the body waits in
        # ocigate's output buffer, not in the kernel.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect(("127.0.0.1", og.port))
        c = T.RawConn.__new__(T.RawConn)
        c.port, c.sock, c.buf, c.eof = og.port, s, b"", False
        self.idle_socks.append(c)
        c.send(self.req(og, "GET", T.proxy_path(NS, CONN, "demo/app", "blobs",
                                               big.digest)))
        head = c._line()
        T.expect(head.startswith("HTTP/1.1 200"), "blob: %r" % head)
        while c._line() != "":
            pass
        left = big.size - len(c.buf)
        c.buf = b""
        while left > tail:
            b = c.sock.recv(min(256 * 1024, left - tail))
            T.expect(b, "blob cut with %d bytes left" % left)
            left -= len(b)
        while left > 0:  # the tail at about 1 MB/s
            b = c.sock.recv(min(16 * 1024, left))
            T.expect(b, "blob cut with %d bytes left" % left)
            left -= len(b)
            time.sleep(0.016)
        n = len(self.idle_socks)
        self.wait_gauges(og, n, n, "the slow reader parked after its blob")
        c.send(self.req(og, "GET", "/v2/"))
        T.expect_status(c.read_response(), 200, "GET /v2/ after the blob")

    def t_park_shutdown(self):
        og = self.op
        t0 = time.monotonic()
        og.proc.signal(signal.SIGTERM)
        rc = og.proc.wait(10)
        took = time.monotonic() - t0
        T.expect_eq(rc, 0, "exit status after SIGTERM with %d parked "
                    "connections" % len(self.idle_socks))
        # shutdown_timeout is 30 s: idle connections must not wait for it
        T.expect(took < 5, "exit took %.1fs" % took)
        T.diag("  exited %.2fs after SIGTERM" % took)
        for c in self.idle_socks:
            c.close()
        T.expect_in("event=shutdown signal=15 open_connections=%d"
                    % len(self.idle_socks), og.log_text(), "log")
        og.assert_log_clean()

    def t_park_expiry(self):
        og = self.os
        conns, answered = [], []
        # staggered, so that the shared timer has to re-arm for each
        for i in range(3):
            if i:
                time.sleep(0.4)
            c = T.RawConn(og.port, timeout=15)
            c.send(self.req(og, "GET", "/v2/"))
            T.expect_status(c.read_response(), 200, "client #%d" % i)
            conns.append(c)
            answered.append(time.monotonic())
        self.wait_gauges(og, 3, 3, "three idle clients parked")
        for i, c in enumerate(conns):
            T.expect(c.closed_within(SHORT_IDLE + 3),
                     "client #%d not closed by the server" % i)
            took = time.monotonic() - answered[i]
            c.close()
            T.diag("  client #%d closed %.2fs after its response" % (i, took))
            T.expect(SHORT_IDLE - 0.3 <= took <= SHORT_IDLE + 1.5,
                     "client #%d closed %.2fs after its response, "
                     "idle_timeout %gs" % (i, took, SHORT_IDLE))
        self.wait_gauges(og, 0, 0, "expired clients gone")
        n = og.log_text().count("state=parked reason=idle_timeout")
        T.expect_eq(n, 3, "conn_close lines of parked connections at "
                    "idle_timeout")

    def t_park_client_gone(self):
        og = self.os
        half = self.parked_conn(og)
        reset = self.parked_conn(og)
        self.wait_gauges(og, 2, 2, "two idle clients parked")
        half.sock.shutdown(socket.SHUT_WR)
        T.expect(half.closed_within(3), "a parked client half-closed: the "
                 "server should close too")
        half.close()
        reset.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              struct.pack("ii", 1, 0))
        reset.close()  # RST
        self.wait_gauges(og, 0, 0, "clients that closed or reset")
        log = og.log_text()
        T.expect_in("state=parked reason=client_closed", log, "log")
        T.expect_in("state=parked reason=client_error", log, "log")
        r = T.request(og.port, "GET", "/v2/",
                      {"Authorization": self.alice.basic()})
        T.expect_status(r, 200, "still serving")
        T.expect_eq(og.stop(), 0, "exit status after SIGTERM")
        og.assert_log_clean()

    def t_still_serving(self):
        r = T.request(self.og.port, "GET", "/v2/",
                      {"Authorization": self.alice.basic()})
        T.expect_status(r, 200, "GET /v2/ after the load")
        T.diag("  RSS at the end: %.1f MiB" % (self.og.rss_kib() / 1024))
        T.expect_eq(self.og.stop(), 0, "exit status after SIGTERM")
        self.og.assert_log_clean()


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("memory", keep=args.keep) as env:
        t = MemoryTest(args, env)
        rc = T.Tap(env).run_all([
            ("setup: pki, registry, seed, ocigate", t.setup, True),
            ("%d concurrent 100 MB pulls verified, peak RSS < %d MiB"
             % (CONCURRENT, RSS_LIMIT_MIB), t.t_concurrent),
            ("%d slow readers + %d fast pulls, peak RSS < %d MiB"
             % (SLOW_CLIENTS, FAST_DURING_SLOW, RSS_LIMIT_MIB), t.t_slow_and_fast),
            ("%d stalled pulls hold about body_memory, then read on "
             "correctly" % STALLED, t.t_body_memory),
            ("still serving, exit 0, log clean", t.t_still_serving),
            ("parking: two more instances", t.start_parking, True),
            ("%d idle clients parked, < %.2f KiB RSS each"
             % (IDLE_CLIENTS, IDLE_CONN_KIB), t.t_park_many, True),
            ("a parked client's next request answered on its socket",
             t.t_park_wake),
            ("pipelined requests in one packet wake a parked client, all "
             "answered", t.t_park_pipelined),
            ("a client that reads its last response slowly is parked "
             "once it has", t.t_park_slow_reader),
            ("SIGTERM with %d parked clients: prompt exit, all closed"
             % IDLE_CLIENTS, t.t_park_shutdown),
            ("parked clients closed at idle_timeout, each on time",
             t.t_park_expiry),
            ("parked clients that half-close or reset are cleaned up",
             t.t_park_client_gone),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
