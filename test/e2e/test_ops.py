#!/usr/bin/env python3
"""What an operator watches: the admin listener ([server] admin_listen) and
the service manager protocol.

ocigate in front of a docker-registry over TLS, with admin_listen on
127.0.0.1:0 and $NOTIFY_SOCKET pointing at a datagram socket of this test.
Requests of known outcome go through the client listener; then /metrics is
parsed with Prometheus' own text parser (python3-prometheus-client) and
every count must match what was sent exactly: requests per connector,
method and code, the duration histogram's count, response bytes, upstream
responses, connections. Labels stay bounded (connector ids only, never a
user or repository). /metrics is not served on the client listener;
/healthz and /readyz answer on both. The notify socket gets READY=1 with a
STATUS= naming the connector count once listening, RELOADING=1 with
MONOTONIC_USEC then READY=1 around SIGHUP, and STOPPING=1 on SIGTERM.

    python3 test/e2e/test_ops.py --ocigate build/ocigate
"""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402

NS = "team-a"
CONN = "harbor"
CONN_ID = NS + "/" + CONN
BUCKETS = ["0.001", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
           "1", "2.5", "5", "10", "30", "60", "300", "+Inf"]


class Notify:
    """A datagram socket like systemd's notify socket."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []  # (time.monotonic(), dict, raw text)

    def drain(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return
            text = data.decode()
            kv = dict(line.split("=", 1) for line in text.splitlines() if line)
            self.messages.append((time.monotonic(), kv, text))

    def wait(self, key, value, timeout=15, after=0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            for i, (_, kv, _) in enumerate(self.messages):
                if i >= after and kv.get(key) == value:
                    return i
        T.fail("no %s=%s on the notify socket within %ss; got %r"
               % (key, value, timeout, [m[2] for m in self.messages]))


class OpsTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice")
        self.bob = T.Token("bob")

    def setup(self):
        env = self.env
        self.pki = T.make_pki(env.path("pki"))
        pw = "robot-" + secrets.token_hex(8)
        self.reg = T.Registry(env, self.pki, users={"robot": pw}).start()
        self.lay = T.make_oci_layout(env.path("layout"), 256 * 1024)
        T.seed_registry(self.reg, self.lay, tags=("v1",), index_repo=None)
        self.notify = Notify(env.path("notify.sock"))
        penv = dict(os.environ, NOTIFY_SOCKET=self.notify.path)
        conns = [T.registry_connector(CONN_ID, self.reg, allow=["alice"]),
                 T.registry_connector(NS + "/other", self.reg, allow=["alice"])]
        self.og = T.Ocigate(env, self.args.ocigate, [self.alice, self.bob],
                            conns, server={"admin_listen": "127.0.0.1:0"},
                            proc_env=penv).start()
        self.admin = self.og.listeners["admin"]
        T.diag("ocigate %s admin 127.0.0.1:%d registry %s"
               % (self.og.host, self.admin, self.reg.host))

    # -- helpers ---------------------------------------------------------------

    def get(self, path, token=None, method="GET"):
        h = {"Accept": T.ACCEPT_ALL}
        if token:
            h["Authorization"] = token.basic()
        return T.request(self.og.port, method, path, h)

    def scrape(self):
        return T.scrape_metrics(self.admin)

    @staticmethod
    def family(fams, name, mtype):
        # the parser drops a counter's _total suffix from the family name
        f = fams.get(name) or fams.get(re.sub(r"_total$", "", name))
        T.expect(f is not None, "family %s missing from /metrics" % name)
        T.expect_eq(f.type, mtype, "type of " + name)
        return f

    @staticmethod
    def value(f, sample_name, **labels):
        for s in f.samples:
            if s.name == sample_name and s.labels == labels:
                return s.value
        return 0

    # -- cases -----------------------------------------------------------------

    def t_counts(self):
        before, _ = self.scrape()
        mpath = T.proxy_path(NS, CONN, "demo/app", "manifests", "v1")
        n_ok = 5
        sizes = 0
        for i in range(n_ok):
            r = self.get(mpath, self.alice)
            T.expect_status(r, 200, "manifest %d" % i)
            sizes += len(r.body)
        r = self.get(mpath, self.alice, method="HEAD")
        T.expect_status(r, 200, "HEAD manifest")
        for i in range(3):  # unknown tags: the registry's 404, relayed
            r = self.get(T.proxy_path(NS, CONN, "demo/app", "manifests",
                                      "nope%d" % i), self.alice)
            T.expect_status(r, 404, "unknown tag")
            sizes += len(r.body)
        r = self.get(mpath, self.bob)  # not on the allow list
        T.expect_status(r, 403, "bob")
        sizes += len(r.body)
        r = self.get(mpath)
        T.expect_status(r, 401, "no credentials")
        for i in range(4):
            T.expect_status(self.get("/v2/", self.alice), 200, "/v2/")

        fams, _ = self.scrape()
        req = self.family(fams, "ocigate_http_requests_total", "counter")

        def delta(sample, **labels):
            return self.delta(before, fams, sample, **labels)
        name = "ocigate_http_requests_total"
        T.expect_eq(delta(name, connector=CONN_ID, method="GET", code="200"),
                    n_ok, "GET 200 on " + CONN_ID)
        T.expect_eq(delta(name, connector=CONN_ID, method="HEAD", code="200"),
                    1, "HEAD 200")
        T.expect_eq(delta(name, connector=CONN_ID, method="GET", code="404"),
                    3, "GET 404")
        T.expect_eq(delta(name, connector=CONN_ID, method="GET", code="403"),
                    1, "GET 403")
        # 401 comes before the connector is looked up, as does /v2/
        T.expect_eq(delta(name, connector="none", method="GET", code="401"),
                    1, "GET 401 (no connector yet)")
        T.expect_eq(delta(name, connector="none", method="GET", code="200"),
                    4, "GET /v2/")
        T.expect(req is not None, "requests family")

        hist = self.family(fams, "ocigate_http_request_duration_seconds",
                           "histogram")
        h = hist.name
        T.expect_eq(delta(h + "_count", connector=CONN_ID), n_ok + 1 + 3 + 1,
                    "histogram count for " + CONN_ID)
        les = [s.labels["le"] for s in hist.samples
               if s.name == h + "_bucket" and s.labels["connector"] == CONN_ID]
        T.expect_eq([float(x) for x in les], [float(x) for x in BUCKETS],
                    "bucket bounds")
        T.expect_eq(self.value(hist, h + "_bucket", connector=CONN_ID,
                               le="+Inf"),
                    self.value(hist, h + "_count", connector=CONN_ID),
                    "+Inf bucket == count")
        T.expect(delta(h + "_sum", connector=CONN_ID) > 0, "duration sum")

        self.family(fams, "ocigate_http_response_bytes_total", "counter")
        T.expect_eq(delta("ocigate_http_response_bytes_total",
                          connector=CONN_ID), sizes,
                    "response body bytes on " + CONN_ID)

        up = self.family(fams, "ocigate_upstream_requests_total", "counter")
        T.expect(self.value(up, "ocigate_upstream_requests_total",
                            connector=CONN_ID, code="200") >= n_ok + 1,
                 "upstream 200s counted")
        T.expect(self.value(up, "ocigate_upstream_requests_total",
                            connector=CONN_ID, code="404") >= 3,
                 "upstream 404s counted")

        conn = self.family(fams, "ocigate_connections", "gauge")
        T.expect_eq(self.value(conn, "ocigate_connections"), 0,
                    "open client connections after the requests")
        bi = self.family(fams, "ocigate_build_info", "gauge")
        out = subprocess.run([self.args.ocigate, "--version"], check=True,
                             capture_output=True, text=True).stdout.split()[-1]
        T.expect_eq(self.value(bi, "ocigate_build_info", version=out), 1,
                    "build_info version")
        ac = self.family(fams, "ocigate_auth_cache_requests_total", "counter")
        T.expect_eq(sorted((s.labels["cache"], s.labels["result"])
                           for s in ac.samples if s.name.endswith("_total")),
                    [("access", "hit"), ("access", "miss"),
                     ("token", "hit"), ("token", "miss")],
                    "auth cache series")

    @staticmethod
    def delta(before, after, sample, **labels):
        """The change of one sample between two scrapes."""
        return T.metric_value(after, sample, **labels) - \
            T.metric_value(before, sample, **labels)

    def t_bytes_exact(self):
        """Body bytes of the connector's responses, exactly."""
        before, _ = self.scrape()
        rb = "ocigate_http_response_bytes_total"
        mpath = T.proxy_path(NS, "other", "demo/app", "manifests", "v1")
        total = 0
        for _ in range(3):
            r = self.get(mpath, self.alice)
            T.expect_status(r, 200, "manifest via other")
            total += len(r.body)
        r = self.get(T.proxy_path(NS, "other", "demo/app", "blobs",
                                  self.lay.big.digest), self.alice)
        T.expect_status(r, 200, "blob via other")
        total += len(r.body)
        fams, _ = self.scrape()
        self.family(fams, rb, "counter")
        T.expect_eq(self.delta(before, fams, rb, connector=NS + "/other"),
                    total, "response bytes of %s/other" % NS)

    def t_bounded_labels(self):
        for i in range(20):
            self.get(T.proxy_path(NS, CONN, "repo%d/x" % i, "manifests",
                                  "t%d" % i), self.alice)
            self.get(T.proxy_path(NS, "nosuch%d" % i, "r", "manifests", "v1"),
                     self.alice)
        _, text = self.scrape()
        values = set(re.findall(r'="([^"]*)"', text))
        for bad in ("alice", "bob", "repo", "nosuch", "demo/app",
                    self.alice.token, self.bob.token):
            hits = [v for v in values if bad in v]
            T.expect(not hits, "label value containing %r: %r" % (bad, hits))
        conns = set(re.findall(r'connector="([^"]*)"', text))
        T.expect(conns <= {CONN_ID, NS + "/other", "none"},
                 "connector labels: %r" % sorted(conns))

    def t_admin_only(self):
        r = self.get("/metrics", self.alice)
        T.expect(r.status != 200 and b"ocigate_" not in r.body,
                 "/metrics on the client listener: %s" % r.describe()[:300])
        for port, where in ((self.admin, "admin"), (self.og.port, "client")):
            for path in ("/healthz", "/readyz"):
                r = T.request(port, "GET", path)
                T.expect_eq((r.status, r.body), (200, b"ok\n"),
                            "%s on the %s listener" % (path, where))
        r = T.request(self.admin, "POST", "/metrics", body=b"x")
        T.expect_status(r, 405, "POST /metrics")
        r = T.request(self.admin, "GET", "/v2/")
        T.expect_status(r, 404, "the admin listener is not a registry")

    def t_notify_ready(self):
        i = self.notify.wait("READY", "1")
        kv = self.notify.messages[i][1]
        T.expect_eq(kv.get("STATUS"), "serving, 2 connectors",
                    "STATUS with READY=1")

    def t_notify_reload(self):
        self.notify.drain()
        start = len(self.notify.messages)
        t0 = time.monotonic()
        self.og.proc.signal(signal.SIGHUP)
        i = self.notify.wait("RELOADING", "1", after=start)
        t1 = time.monotonic()
        kv = self.notify.messages[i][1]
        usec = int(kv.get("MONOTONIC_USEC", "0"))
        T.expect(t0 * 1e6 - 1000 <= usec <= t1 * 1e6 + 1000,
                 "MONOTONIC_USEC %d not between %d and %d (CLOCK_MONOTONIC)"
                 % (usec, t0 * 1e6, t1 * 1e6))
        self.notify.wait("READY", "1", after=i + 1)
        T.wait_for(lambda: "event=reloaded" in self.og.log_text(), 10,
                   what="reloaded in the log")
        fams, _ = self.scrape()
        f = self.family(fams, "ocigate_config_reloads_total", "counter")
        T.expect_eq(self.value(f, "ocigate_config_reloads_total", result="ok"),
                    1, "reloads ok")

    def t_notify_stopping(self):
        self.notify.drain()
        start = len(self.notify.messages)
        rc = self.og.stop()
        T.expect_eq(rc, 0, "exit status")
        self.notify.wait("STOPPING", "1", after=start, timeout=5)
        self.og.assert_log_clean()


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("ops", keep=args.keep) as env:
        t = OpsTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: registry over TLS, ocigate with admin_listen and "
             "NOTIFY_SOCKET", t.setup, True),
            ("notify: READY=1 with STATUS naming 2 connectors", t.t_notify_ready),
            ("metrics: exact counts by connector, method, code; histogram; "
             "upstream; gauges (Prometheus parser)", t.t_counts),
            ("metrics: response bytes exact for manifests and a blob",
             t.t_bytes_exact),
            ("metrics: labels bounded (no users, repositories, tokens)",
             t.t_bounded_labels),
            ("/metrics only on admin_listen; /healthz and /readyz on both",
             t.t_admin_only),
            ("notify: SIGHUP -> RELOADING=1 + MONOTONIC_USEC, then READY=1",
             t.t_notify_reload),
            ("notify: SIGTERM -> STOPPING=1, clean exit", t.t_notify_stopping),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
