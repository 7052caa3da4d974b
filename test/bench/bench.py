#!/usr/bin/env python3
"""ocigate benchmark: ocigate against nginx (one worker, the equivalent
reverse proxy) and docker-registry's pull-through (proxy:) mode, all in
front of Debian's docker-registry on loopback.

    python3 test/bench/bench.py --ocigate build-release/ocigate   # full, ~15-20 min
    python3 test/bench/bench.py --smoke --ocigate build/ocigate   # < 3 min, no targets

Scenarios (see test/bench/README.md):
  1  one client pulls the 1 GiB blob (TLS registry, then static plain-HTTP upstream)
  2  1/10/100/500 concurrent clients pull the 100 MiB blob: MB/s, peak RSS
  3  manifest GET, 64 connections, fast TLS upstream: requests/s, CPU/1000 req
  4  GET /v2/ with a valid token, 64 connections, against nginx's static 200
  5  10,000 idle keep-alive client connections: ocigate RSS
  6  instructions per cached-auth manifest request (callgrind)

Every figure is taken several times with the systems alternated; the table
shows medians and the ratio ocigate/peer.  Prints TAP (one case per
scenario); a scenario that produces no numbers fails.  A missed target is
printed as "NOT MET" in the table; it does not change the exit status
unless --strict is given.
"""

import datetime
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

T = B.T
MiB = T.MiB
MB = B.MB

NS = "bench"
TLS_CONN, PLAIN_CONN, FAST_CONN = "reg", "plain", "fast"
BIG_REPO, MEDIUM_REPO = "bench/big", "bench/medium"
TAG = "v1"

# Sizes, counts and durations of the two modes.
MODES = {
    "full": dict(big=1024 * MiB, medium=100 * MiB, reps=3,
                 steps=(1, 10, 100, 500), s2_window=15,
                 wrk_connections=64, s3_seconds=20, s4_seconds=10,
                 warmup_seconds=3, idle=10000, cg=(100, 1100),
                 watchdog=3600),
    "smoke": dict(big=24 * MiB, medium=4 * MiB, reps=1,
                  steps=(1, 10), s2_window=None,
                  wrk_connections=64, s3_seconds=2, s4_seconds=2,
                  warmup_seconds=1, idle=500, cg=(5, 25),
                  watchdog=175),
}

PEER_ORDER = ["nginx", "nginx static 200", "nginx sendfile", "bare splice",
              "pull-through cold", "pull-through warm", "direct from registry",
              "direct from static upstream"]

# Targets: (row key, peer, kind, bound).  kind "ratio>=": ocigate/peer >=
# bound; "ratio<=": ocigate/peer <= bound; "abs<=": ocigate value <= bound.
TARGETS = [
    ("s1.tls", "nginx", "ratio>=", 1.3),
    ("s1.tls", "bare splice", "ratio>=", 0.95),
    ("s1.tls", "pull-through cold", "ratio>=", 1.5),
    ("s1.tls", "pull-through warm", "ratio>=", 1.5),
    ("s1.plain", "nginx", "ratio>=", 1.3),
    ("s3.rps", "nginx", "ratio>=", 1.2),
    ("s3.cpu", "nginx", "ratio<=", 1.0),
    ("s3.sys", "nginx", "ratio<=", 1.0),
    ("s4.rps", "nginx static 200", "ratio>=", 0.9),
    ("s4.cpu", "nginx static 200", "ratio<=", 1.0),
    ("s4.sys", "nginx static 200", "ratio<=", 1.0),
    ("s5.rss", None, "abs<=", 64.0),
    ("s5.rss", "nginx", "ratio<=", 1.0),
    ("s6.ir", None, "abs<=", 40000.0),
    ("s7.hit", "nginx sendfile", "ratio>=", 0.9),
    ("s7.hit", "pull-through warm", "ratio>=", 1.5),
    ("s8.up", None, "abs<=", 1.1),
]
for _n in MODES["full"]["steps"]:
    TARGETS += [("s2.mbps.%d" % _n, "nginx", "ratio>=", 1.0),
                ("s2.mbps.%d" % _n, "pull-through cold", "ratio>=", 1.5),
                ("s2.mbps.%d" % _n, "pull-through warm", "ratio>=", 1.5)]
TARGETS.append(("s2.rss.500", None, "abs<=", 64.0))


# --------------------------------------------------------------------------
# Results


class Results:
    """Raw samples: (row key, system) -> list of values, plus row labels."""

    def __init__(self):
        self.samples = {}
        self.labels = {}
        self.order = []
        self.peaks = {}   # (key, system) -> max, shown in parentheses
        self.notes = []

    def add(self, key, label, system, value):
        if key not in self.labels:
            self.labels[key] = label
            self.order.append(key)
        self.samples.setdefault((key, system), []).append(value)

    def add_peak(self, key, system, value):
        k = (key, system)
        self.peaks[k] = max(self.peaks.get(k, value), value)

    def shown(self, key, system):
        """The median, with the peak in parentheses when there is one."""
        text = fmt(self.median(key, system))
        if (key, system) in self.peaks:
            text += " (%s)" % fmt(self.peaks[(key, system)])
        return text

    def median(self, key, system):
        return B.median(self.samples.get((key, system), []))

    def systems(self, key):
        return [s for (k, s) in self.samples if k == key]

    def has(self, prefix):
        return any(k.startswith(prefix) and v
                   for (k, _), v in self.samples.items())


ROW_ORDER = ["s1.tls", "s1.cpu.tls", "s1.sys.tls", "s1.plain", "s1.cpu.plain",
             "s1.sys.plain", "s2.", "s3.rps", "s3.cpu", "s3.cpuk", "s3.cpuu", "s3.cpuw",
             "s3.sys", "s4.rps", "s4.cpu", "s4.cpuk", "s4.cpuw", "s4.sys", "s5.rss", "s5.per", "s6.", "s7.", "s8."]


def row_rank(key):
    for i, prefix in enumerate(ROW_ORDER):
        if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
            return i
    return len(ROW_ORDER)


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    if abs(v) >= 1:
        return "%.2f" % v
    return "%.3f" % v


def target_for(key, peer):
    for k, p, kind, bound in TARGETS:
        if k == key and (p == peer or (p is None and peer is None)):
            return kind, bound
    return None


def judge(kind, bound, og, peer_v):
    if og is None:
        return None
    if kind == "abs<=":
        return og <= bound
    if peer_v is None or peer_v == 0:
        return None
    ratio = og / peer_v
    return ratio >= bound if kind == "ratio>=" else ratio <= bound


def target_text(kind, bound):
    return {"ratio>=": "ratio >= %s", "ratio<=": "ratio <= %s",
            "abs<=": "ocigate <= %s"}[kind] % fmt(bound)


def render_table(res, header, judge_targets):
    """The Markdown table: one row per (measure, peer)."""
    out = header + [
        "",
        "| # | measure | ocigate | peer | peer value | ocigate/peer | target |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    missed = met = 0
    for key in sorted(res.order, key=row_rank):
        label = res.labels[key]
        og = res.median(key, "ocigate")
        peers = sorted((s for s in res.systems(key) if s != "ocigate"),
                       key=PEER_ORDER.index)
        rows = peers or [None]
        tgt_abs = target_for(key, None)
        for i, peer in enumerate(rows):
            pv = res.median(key, peer) if peer else None
            ratio = og / pv if og is not None and pv else None
            tgt = target_for(key, peer) if peer else None
            if tgt is None and i == 0 and tgt_abs:
                tgt = tgt_abs
            verdict = ""
            if tgt:
                if judge_targets:
                    ok = judge(tgt[0], tgt[1], og, pv)
                    verdict = "%s: %s" % (target_text(*tgt),
                                          {True: "met", False: "**NOT MET**",
                                           None: "no data"}[ok])
                    if ok is True:
                        met += 1
                    elif ok is False:
                        missed += 1
                else:
                    verdict = "%s (smoke: not judged)" % target_text(*tgt)
            og_text = res.shown(key, "ocigate")
            pv_text = res.shown(key, peer) if peer else ""
            out.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                key.split(".")[0][1:], label if i == 0 else "",
                og_text, peer or "", pv_text,
                fmt(ratio) if ratio is not None else "", verdict))
    if judge_targets:
        out.append("")
        out.append("Targets: %d met, %d not met." % (met, missed))
    if res.notes:
        out.append("")
        out.append("Notes:")
        out += ["- " + n for n in res.notes]
    return out, missed


# --------------------------------------------------------------------------
# Images


def make_single_layer_layout(dir, size, seed):
    """An OCI layout holding one linux/amd64 image (ref "bench") with one
    uncompressed tar layer of size pseudo-random bytes."""
    w = T._LayoutWriter(dir)
    layer = w.big_layer("data/blob.bin", size, seed)
    img = w.image({"architecture": "amd64", "os": "linux"}, [layer],
                  ["/bin/true"])
    top = {"schemaVersion": 2, "mediaType": T.MEDIA_OCI_INDEX,
           "manifests": [img.manifest.descriptor(annotations={
               "org.opencontainers.image.ref.name": "bench"})]}
    with open(os.path.join(dir, "index.json"), "wb") as f:
        f.write(T._json_bytes(top))
    with open(os.path.join(dir, "oci-layout"), "wb") as f:
        f.write(T._json_bytes({"imageLayoutVersion": "1.0.0"}))
    return img


def seed_image(env, registry, layout_dir, repo, img):
    user, pw = next(iter(registry.users.items()))
    T.skopeo_copy(env, "oci:%s:bench" % layout_dir,
                  "docker://%s/%s:%s" % (registry.host, repo, TAG),
                  ["--dest-cert-dir", registry.pki.certdir,
                   "--dest-creds", "%s:%s" % (user, pw)], timeout=600)
    r = registry.manifest(repo, TAG, method="HEAD")
    T.expect_eq(r.header("Docker-Content-Digest"), img.digest,
                "registry digest of %s:%s" % (repo, TAG))
    layer = img.layers[0]
    r = registry.request("HEAD", "/v2/%s/blobs/%s" % (repo, layer.digest))
    T.expect_eq(r.header("Content-Length"), str(layer.size),
                "registry size of the %s layer" % repo)


# --------------------------------------------------------------------------
# The world


class World:
    """Registries (TLS+auth seeded, TLS without auth on the same storage,
    pull-through), the fast static upstreams (TLS manifests, plain-HTTP
    blobs), the bare TLS relay, nginx, ocigate."""

    def __init__(self, env, args, mode):
        self.env = env
        self.args = args
        self.mode = mode
        self.notes = []
        self.restarts = 0

    # -- setup ------------------------------------------------------------

    def setup(self):
        env = self.env
        self.pki = T.make_pki(env.path("pki"))
        self.user, self.password = "robot", "upw-" + secrets.token_hex(12)
        users = {self.user: self.password}
        self.upstream_auth = T.basic_auth(self.user, self.password)
        self.reg = B.BenchRegistry(env, self.pki, users=users,
                                   name="registry-tls").start()
        self.images = {}
        for repo, size, seed in ((BIG_REPO, self.mode["big"], 1),
                                 (MEDIUM_REPO, self.mode["medium"], 2)):
            d = env.path("layout-" + repo.replace("/", "-"))
            t0 = time.monotonic()
            img = make_single_layer_layout(d, size, seed)
            seed_image(env, self.reg, d, repo, img)
            # the registry has it now: give the disk space back
            shutil.rmtree(d, ignore_errors=True)
            self.images[repo] = img
            T.diag("  seeded %s: %d-byte layer %s (%.1fs)"
                   % (repo, img.layers[0].size, img.layers[0].digest[:19],
                      time.monotonic() - t0))
        self.reg_open = None
        self.pt = self.start_pull_through()
        self.manifest = self.reg.manifest(MEDIUM_REPO, TAG,
                                          accept=T.MEDIA_OCI_MANIFEST)
        self.fast = self.start_fast_upstream()
        self.fast_plain = self.start_fast_plain_upstream()
        self.bare = self.start_baresplice()
        self.nginx = self.start_nginx()
        self.token = T.Token("bench-user")
        self.client_auth = {"Authorization": self.token.basic()}
        self.og = self.start_ocigate()

    def start_pull_through(self):
        """docker-registry in proxy: mode.  Against the Basic-auth upstream
        first; distribution 2.8 cannot authenticate to it (its proxy only
        does the token flow), so then against a TLS upstream without auth on
        the same storage."""
        ca_env = {"SSL_CERT_FILE": self.pki.ca_pem}
        pt = B.BenchRegistry(self.env, self.pki, name="pull-through-basic",
                             tls=False, proc_env=ca_env,
                             proxy={"remoteurl": self.reg.url,
                                    "username": self.user,
                                    "password": self.password}).start()
        cfg = self.images[MEDIUM_REPO].config
        r = pt.request("GET", "/v2/%s/blobs/%s" % (MEDIUM_REPO, cfg.digest))
        if r.status == 200:
            self.notes.append("pull-through: distribution 2.8 authenticated "
                              "to the Basic-auth upstream")
            return pt
        why = "authentication required" if b"authentication required" in \
            (r.body + pt.proc.log_text().encode()) else "status %d" % r.status
        pt.proc.terminate()
        self.notes.append(
            "pull-through: distribution 2.8 in proxy mode fails against the "
            "Basic-auth upstream (HTTP %d, \"%s\"): it is given an "
            "unauthenticated TLS upstream registry with the same content "
            "(same binary, same storage)" % (r.status, why))
        self.reg_open = B.BenchRegistry(self.env, self.pki, users=None,
                                        name="registry-open",
                                        storage=self.reg.storage).start()
        pt = B.BenchRegistry(self.env, self.pki, name="pull-through",
                             tls=False, proc_env=ca_env,
                             proxy={"remoteurl": self.reg_open.url}).start()
        r = pt.request("GET", "/v2/%s/blobs/%s" % (MEDIUM_REPO, cfg.digest))
        T.expect_eq(r.status, 200, "pull-through GET of a small blob")
        return pt

    def start_fast_upstream(self):
        """nginx over TLS serving the medium image's manifest with the
        registry's headers; checks the connector's Authorization."""
        d = self.env.mkdir("fast-upstream-data")
        path = os.path.join(d, "manifest.json")
        with open(path, "wb") as f:
            f.write(self.manifest.body)
        digest = self.manifest.header("Docker-Content-Digest")
        ctype = self.manifest.header("Content-Type")
        tls = ("ssl;\n"
               "    ssl_certificate %s;\n"
               "    ssl_certificate_key %s;\n"
               "    ssl_session_cache shared:fast:1m;\n"
               "    add_header Docker-Distribution-Api-Version registry/2.0;"
               % (self.pki.cert, self.pki.key))
        conf = self.static_server(tls, (
            "    location = /v2/%(repo)s/manifests/%(tag)s {\n"
            "      default_type %(ctype)s;\n"
            "      add_header Docker-Content-Digest %(digest)s;\n"
            "      add_header Docker-Distribution-Api-Version registry/2.0;\n"
            "      add_header Etag '\"%(digest)s\"';\n"
            "      alias %(path)s;\n"
            "    }\n" % {"repo": MEDIUM_REPO, "tag": TAG, "ctype": ctype,
                         "digest": digest, "path": path}))
        return B.Nginx(self.env, "fast-upstream", conf).start()

    def static_server(self, listen_extra, locations):
        """An nginx server block of a static upstream: it answers only the
        connector's Authorization, and GET /v2/ like a registry."""
        return ("  server {\n"
                "    listen 127.0.0.1:@PORT@ %s\n"
                "    access_log off;\n"
                "    etag off;\n"
                "    if ($http_authorization != \"%s\") { return 401; }\n"
                "    location = /v2/ {\n"
                "      default_type application/json;\n"
                "      return 200 '{}';\n"
                "    }\n%s"
                "  }\n" % (listen_extra, self.upstream_auth, locations))

    def registry_blob_file(self, repo):
        """The registry's own file for a blob (its filesystem driver's
        layout): served as it is by the static plain upstream."""
        hexd = self.blob(repo).digest.split(":", 1)[1]
        path = os.path.join(self.reg.storage, "docker", "registry", "v2",
                            "blobs", "sha256", hexd[:2], hexd, "data")
        T.expect_eq(os.path.getsize(path), self.blob(repo).size,
                    "size of the registry's file for %s" % repo)
        return path

    def start_fast_plain_upstream(self):
        """nginx over plain HTTP serving the blobs from the registry's
        files (sendfile) with the registry's headers; checks the
        connector's Authorization: the plain-HTTP blob rows then measure
        the proxies, not docker-registry."""
        locations = "".join(
            "    location = /v2/%(repo)s/blobs/%(digest)s {\n"
            "      add_header Docker-Content-Digest %(digest)s;\n"
            "      add_header Docker-Distribution-Api-Version registry/2.0;\n"
            "      alias %(path)s;\n"
            "    }\n" % {"repo": repo, "digest": self.blob(repo).digest,
                         "path": self.registry_blob_file(repo)}
            for repo in (BIG_REPO, MEDIUM_REPO))
        return B.Nginx(self.env, "fast-plain-upstream",
                       self.static_server(";", locations)).start()

    @property
    def fast_plain_url(self):
        return "http://" + self.fast_plain.host

    def start_baresplice(self):
        """The bare libevent relay (test/bench/baresplice.c) in front of
        the TLS registry: the reference for the TLS blob rows."""
        host, port = self.reg.host.rsplit(":", 1)
        proc = self.env.spawn("baresplice", [self.args.baresplice, host, port,
                                             self.pki.ca_pem])

        def listening():
            m = re.search(r"^listening (\d+)$", proc.log_text(), re.M)
            if not m and not proc.alive():
                T.fail("bench_baresplice exited: %s" % proc.log_text())
            return int(m.group(1)) if m else None
        self.bare_port = T.wait_for(listening, 10, 0.05,
                                    "bench_baresplice to listen")
        return proc

    def start_nginx(self):
        ka = self.args.upstream_keepalive
        conf = (B.nginx_upstream("reg_tls", self.reg.host, ka)
                + B.nginx_upstream("static_plain", self.fast_plain.host, ka)
                + B.nginx_upstream("fast", self.fast.host, ka)
                + "  server {\n    listen 127.0.0.1:@PORT@;\n"
                "    location = /v2/ {\n"
                "      default_type application/json;\n"
                "      return 200 '{}';\n"
                "    }\n"
                + B.nginx_location("/v2/namespaces/%s/connectors/%s/"
                                   % (NS, TLS_CONN), "https://reg_tls/v2/",
                                   self.reg.host, self.upstream_auth,
                                   self.pki.ca_pem)
                + B.nginx_location("/v2/namespaces/%s/connectors/%s/"
                                   % (NS, PLAIN_CONN), "http://static_plain/v2/",
                                   self.fast_plain.host, self.upstream_auth)
                + B.nginx_location("/v2/namespaces/%s/connectors/%s/"
                                   % (NS, FAST_CONN), "https://fast/v2/",
                                   self.fast.host, self.upstream_auth,
                                   self.pki.ca_pem)
                + "  }\n")
        return B.Nginx(self.env, "nginx", conf).start()

    def restart(self, system):
        """A fresh ocigate (new port) or nginx (same port) process."""
        if system == "ocigate":
            self.og.stop()
            # a log of its own: start() finds the port in the log
            self.restarts += 1
            self.og = self.start_ocigate(name="ocigate-%d" % self.restarts)
        else:
            self.nginx.stop()
            self.nginx.start()

    def connectors(self):
        allow = [self.token.user]
        mk = lambda name, reg_url: T.Connector(  # noqa: E731
            "%s/%s" % (NS, name), reg_url, username=self.user,
            password=self.password, ca_file=self.pki.ca_pem, allow=allow)
        return [mk(TLS_CONN, self.reg.url), mk(PLAIN_CONN, self.fast_plain_url),
                mk(FAST_CONN, "https://" + self.fast.host)]

    def ocigate_server_opts(self):
        return {"max_connections": str(self.mode["idle"] * 2),
                "idle_timeout": "600s"}

    def ocigate_upstream_opts(self):
        return {"pool_max_idle": str(self.args.upstream_keepalive)}

    def start_ocigate(self, binary=None, name="ocigate", timeout=10):
        og = T.Ocigate(self.env, binary or self.args.ocigate, [self.token],
                       self.connectors(), server=self.ocigate_server_opts(),
                       upstream=self.ocigate_upstream_opts(), name=name)
        og.start(timeout=timeout)
        r = T.request(og.port, "GET", "/v2/", self.client_auth)
        T.expect_status(r, 200, "ocigate GET /v2/ with the bench token")
        return og

    # -- URLs ---------------------------------------------------------------

    def blob(self, repo):
        return self.images[repo].layers[0]

    def proxy_path(self, conn, repo, kind, ref):
        return T.proxy_path(NS, conn, repo, kind, ref)

    def blob_url(self, system, repo, conn=TLS_CONN):
        d = self.blob(repo).digest
        if system == "ocigate":
            return "http://%s%s" % (self.og.host,
                                    self.proxy_path(conn, repo, "blobs", d))
        if system == "nginx":
            return "http://%s%s" % (self.nginx.host,
                                    self.proxy_path(conn, repo, "blobs", d))
        if system == "pull-through":
            return "%s/v2/%s/blobs/%s" % (self.pt.url, repo, d)
        if system == "direct":
            base = self.reg.url if conn == TLS_CONN else self.fast_plain_url
            return "%s/v2/%s/blobs/%s" % (base, repo, d)
        if system == "bare splice":
            return "http://127.0.0.1:%d/v2/%s/blobs/%s" % (self.bare_port,
                                                          repo, d)
        raise AssertionError(system)

    def client_headers(self, system):
        """What each client sends: the ocigate token (nginx ignores it and
        injects the connector's), the registry's credentials when direct,
        nothing to the unauthenticated pull-through."""
        if system in ("ocigate", "nginx"):
            return self.client_auth
        if system in ("direct", "bare splice"):
            return {"Authorization": self.upstream_auth}
        return {}

    def pid(self, system):
        return {"ocigate": lambda: self.og.pid,
                "nginx": lambda: self.nginx.pid,
                "bare splice": lambda: self.bare.pid,
                "pull-through": lambda: self.pt.pid}[system]()


def rotate(xs, i):
    i %= len(xs)
    return list(xs[i:]) + list(xs[:i])


# --------------------------------------------------------------------------
# Scenarios


class Bench:
    def __init__(self, args, env, mode):
        self.args = args
        self.env = env
        self.mode = mode
        self.w = World(env, args, mode)
        self.res = Results()
        self.judge = not args.smoke   # smoke: no targets, errors are fatal

    def setup(self):
        self.w.setup()
        self.res.notes += self.w.notes
        self.res.notes.append(
            "pull-through warm serves the blob from its own disk over plain "
            "HTTP: a cache hit, not proxying; cold (storage wiped, process "
            "restarted) is the like-for-like proxy figure.")
        self.perf = B.perf_usable(self.env)
        if not self.perf:
            self.res.notes.append("`perf stat -e raw_syscalls:sys_enter` "
                                  "does not work here: no system call counts")

    def progress(self, msg):
        T.diag("  [%s] %s" % (time.strftime("%H:%M:%S"), msg))

    # 1 ----------------------------------------------------------------------

    def s1(self):
        w, env, res = self.w, self.env, self.res
        big = w.blob(BIG_REPO)
        what = "1 GiB blob" if self.mode["big"] >= 1024 * MiB else \
            "%d MiB blob" % (self.mode["big"] // MiB)
        gb = big.size / 1e9
        labels = {
            "s1.tls": "%s, 1 client, TLS upstream: MB/s" % what,
            "s1.plain": "%s, 1 client, plain-HTTP upstream: MB/s" % what,
            "s1.cpu.tls": "same, TLS upstream: proxy CPU seconds per GB",
            "s1.cpu.plain": "same, plain-HTTP upstream: proxy CPU seconds "
                            "per GB",
        }

        def one(system, key, peer, conn=TLS_CONN, pid=None, after=None):
            """One timed pull; records MB/s and, with pid, that process's
            CPU seconds per GB (counting what after() waits for)."""
            url = w.blob_url(system, BIG_REPO, conn)
            ca = w.pki.ca_pem if system == "direct" and conn == TLS_CONN \
                else None
            c0 = B.cpu_seconds(pid) if pid else None
            mbps = B.curl_one(env, url, big.size, w.client_headers(system),
                              ca)
            if after:
                after()
            res.add(key, labels[key], peer, mbps)
            if pid:
                cpu_key = key.replace("s1.", "s1.cpu.")
                res.add(cpu_key, labels[cpu_key], peer,
                        (B.cpu_seconds(pid) - c0) / gb)
            return mbps

        def pull_through():
            w.pt.wipe_storage()
            cold = one("pull-through", "s1.tls", "pull-through cold",
                       pid=w.pt.pid, after=lambda: w.pt.wait_stored(
                           BIG_REPO, big.digest, big.size))
            warm = one("pull-through", "s1.tls", "pull-through warm",
                       pid=w.pt.pid)
            return "cold %.0f, warm %.0f" % (cold, warm)

        def proxy(system, conn):
            key = "s1.tls" if conn == TLS_CONN else "s1.plain"
            return "%.0f" % one(system, key, system, conn, w.pid(system))

        def direct(conn):
            if conn == TLS_CONN:
                return "%.0f" % one("direct", "s1.tls", "direct from registry",
                                    conn)
            return "%.0f" % one("direct", "s1.plain",
                                "direct from static upstream", conn)

        def bare():
            return "%.0f" % one("bare splice", "s1.tls", "bare splice",
                                pid=w.bare.pid)

        tasks = [("ocigate", lambda: proxy("ocigate", TLS_CONN)),
                 ("nginx", lambda: proxy("nginx", TLS_CONN)),
                 ("bare splice", bare),
                 ("pull-through", pull_through),
                 ("direct", lambda: direct(TLS_CONN)),
                 ("ocigate plain", lambda: proxy("ocigate", PLAIN_CONN)),
                 ("nginx plain", lambda: proxy("nginx", PLAIN_CONN)),
                 ("direct plain", lambda: direct(PLAIN_CONN))]
        for rep in range(self.mode["reps"]):
            for name, fn in rotate(tasks, rep):
                self.progress("s1 rep %d %s: %s MB/s" % (rep + 1, name, fn()))
        T.expect(res.has("s1."), "scenario 1 produced no numbers")
        if self.perf:
            self.s1_syscalls(big)
        # the pull-through stays warm with the big blob; scenario 2 primes
        # the medium one

    def s1_syscalls(self, big):
        """One more pull per proxy, untimed, with perf counting the proxy's
        system calls: a figure that does not depend on the machine's load."""
        w, env, res = self.w, self.env, self.res
        for conn, key in ((TLS_CONN, "s1.sys.tls"), (PLAIN_CONN,
                                                     "s1.sys.plain")):
            for system in ("ocigate", "nginx"):
                with B.SyscallCounter(env, w.pid(system)) as sc:
                    B.curl_one(env, w.blob_url(system, BIG_REPO, conn),
                               big.size, w.client_headers(system))
                per_mb = sc.count / (big.size / MB)
                res.add(key, "same, %s upstream: proxy system calls per MB"
                        % ("TLS" if conn == TLS_CONN else "plain-HTTP"),
                        system, per_mb)
                self.progress("s1 syscalls %s %s: %d (%.1f per MB)"
                              % (system, conn, sc.count, per_mb))

    # 2 ----------------------------------------------------------------------

    def s2(self):
        w, env, res = self.w, self.env, self.res
        med = w.blob(MEDIUM_REPO)
        size_txt = "%d MiB" % (med.size // MiB)
        if self.mode["s2_window"]:
            res.notes.append(
                "scenario 2: every client starts pulling the whole blob; a "
                "pull not finished after %g s is stopped (curl --max-time), "
                "so the larger steps are measured over that window with all "
                "clients active: aggregate = bytes received by all clients / "
                "wall time from the first client's start to the last one's "
                "exit. `--s2-window 0` lets every pull finish (52 GB per "
                "system at 500 clients)." % self.mode["s2_window"])
        res.notes.append("scenario 2: VmRSS sampled every 50 ms; VmHWM "
                         "(in parentheses) is the kernel's peak, reset before "
                         "each run through /proc/PID/clear_refs, max over "
                         "runs. nginx: its worker process. Pull-through cold: "
                         "storage wiped and process restarted, so every "
                         "client is served from the upstream while one "
                         "background fetch stores the blob; warm: right "
                         "after, once the blob is in its storage.")
        starved = {}   # (peer, n) -> clients never answered
        failed = {}    # (peer, n) -> the worst run's failed transfers

        def measure(system, peer, n, rep):
            pid = w.pid(system)
            hwm_ok = B.reset_hwm(pid)
            with B.RssSampler(pid) as sampler:
                many = B.curl_many(env, w.blob_url(system, MEDIUM_REPO), n,
                                   med.size, w.client_headers(system),
                                   max_time=self.mode["s2_window"])
            hwm = B.vm_status(pid).get("VmHWM", 0) / 1024.0
            plural = "s" if n > 1 else ""
            res.add("s2.mbps.%d" % n, "%d client%s, %s blob each: aggregate "
                    "MB/s" % (n, plural, size_txt), peer, many.mbps)
            res.add("s2.rss.%d" % n, "%d client%s: peak VmRSS MiB (VmHWM)"
                    % (n, plural), peer, sampler.peak_kib / 1024.0)
            if hwm_ok:
                res.add_peak("s2.rss.%d" % n, peer, hwm)
            if many.starved:
                starved[(peer, n)] = max(starved.get((peer, n), 0),
                                         many.starved)
            if many.failed:
                prev = failed.get((peer, n), [])
                failed[(peer, n)] = max(prev, many.failed, key=len)
            self.progress("s2 n=%d rep %d %s: %.0f MB/s (%d complete, %d cut,"
                          " %d starved, %d failed, %.1fs), peak RSS %.1f MiB, "
                          "HWM %s MiB" % (
                              n, rep + 1, peer, many.mbps, many.complete,
                              many.cut, many.starved, len(many.failed),
                              many.wall, sampler.peak_kib / 1024.0,
                              "%.1f" % hwm if hwm_ok else "?"))
            if many.failed and not self.judge:
                T.fail("%s, %d clients: %d transfers failed: %s" % (
                    peer, n, len(many.failed),
                    "; ".join(sorted(set(many.failed))[:5])))

        def pull_through(n, rep):
            w.pt.wipe_storage()
            measure("pull-through", "pull-through cold", n, rep)
            w.pt.wait_stored(MEDIUM_REPO, med.digest, med.size)
            measure("pull-through", "pull-through warm", n, rep)

        tasks = [lambda n, rep: measure("ocigate", "ocigate", n, rep),
                 lambda n, rep: measure("nginx", "nginx", n, rep),
                 pull_through]
        for n in self.mode["steps"]:
            for rep in range(self.mode["reps"]):
                for fn in rotate(tasks, rep + n):
                    fn(n, rep)
        for (peer, n), k in sorted(starved.items()):
            res.notes.append("scenario 2: %s at %d clients: in one run %d "
                             "clients got no response at all within the %g s "
                             "window (counted with 0 bytes)"
                             % (peer, n, k, self.mode["s2_window"]))
        for (peer, n), bad in sorted(failed.items()):
            kinds = {}
            for b in bad:
                kinds[b] = kinds.get(b, 0) + 1
            res.notes.append("scenario 2: **%s at %d clients: in one run %d "
                             "transfers failed** (%s)" % (
                                 peer, n, len(bad), "; ".join(
                                     "%dx %s" % (v, k) for k, v in
                                     sorted(kinds.items(), key=lambda kv:
                                            -kv[1])[:4])))
        T.expect(res.has("s2."), "scenario 2 produced no numbers")

    # 3 ----------------------------------------------------------------------

    def wrk_pair(self, prefix, labels, urls, seconds, upstream_pid=None):
        """urls: system -> (url, pid, headers).  One untimed warm-up run
        per system (counting the server's system calls when perf works),
        then alternated timed runs: requests/s and the server's CPU seconds
        per 1,000 requests, and where those and the other processes' go
        (labels "cpuk", "cpuu", "cpuw": kernel, upstream, wrk)."""
        env, res = self.env, self.res
        conns = self.mode["wrk_connections"]
        for system, (url, pid, hdr) in urls.items():
            if self.perf:
                with B.SyscallCounter(env, pid) as sc:
                    r = B.wrk(env, url, conns, self.mode["warmup_seconds"], hdr)
                if r.requests:
                    res.add(prefix + ".sys", labels["sys"], system,
                            sc.count / float(r.requests))
                else:
                    # a sanitizer build under perf in a 1 s smoke warm-up
                    res.notes.append("%s: %s completed no request in the "
                                     "%g s warm-up: no system call figure"
                                     % (prefix, system,
                                        self.mode["warmup_seconds"]))
            else:
                B.wrk(env, url, conns, self.mode["warmup_seconds"], hdr)
        for rep in range(self.mode["reps"]):
            for system in rotate(list(urls), rep):
                url, pid, hdr = urls[system]
                r, cpu, split = B.wrk_measured(env, url, pid, conns, seconds,
                                               hdr, upstream_pid)
                res.add(prefix + ".rps", labels["rps"], system, r.rps)
                res.add(prefix + ".cpu", labels["cpu"], system, cpu)
                for key, part in (("cpuk", "kernel"), ("cpuu", "upstream"),
                                  ("cpuw", "wrk")):
                    if key in labels and part in split:
                        res.add(prefix + "." + key, labels[key], system,
                                split[part])
                self.progress("%s rep %d %s: %.0f req/s, %.4f CPU s/1000"
                              % (prefix, rep + 1, system, r.rps, cpu))

    def s3(self):
        w = self.w
        path = w.proxy_path(FAST_CONN, MEDIUM_REPO, "manifests", TAG)
        hdr = dict(w.client_auth)
        hdr["Accept"] = T.MEDIA_OCI_MANIFEST
        conns = self.mode["wrk_connections"]
        urls = {"ocigate": ("http://%s%s" % (w.og.host, path), w.og.pid, hdr),
                "nginx": ("http://%s%s" % (w.nginx.host, path), w.nginx.pid,
                          hdr)}
        self.wrk_pair("s3", {
            "rps": "manifest GET, %d connections, fast TLS upstream: "
                   "requests/s" % conns,
            "cpu": "same: proxy CPU seconds per 1,000 requests",
            "cpuk": "same: of which in the kernel (system time)",
            "cpuu": "same: the upstream's CPU seconds per 1,000 requests",
            "cpuw": "same: wrk's CPU seconds per 1,000 requests",
            "sys": "same: proxy system calls per request"},
            urls, self.mode["s3_seconds"], upstream_pid=w.fast.pid)
        T.expect(self.res.has("s3."), "scenario 3 produced no numbers")

    # 4 ----------------------------------------------------------------------

    def s4(self):
        w = self.w
        conns = self.mode["wrk_connections"]
        urls = {"ocigate": ("http://%s/v2/" % w.og.host, w.og.pid,
                            w.client_auth),
                "nginx static 200": ("http://%s/v2/" % w.nginx.host,
                                     w.nginx.pid, w.client_auth)}
        self.wrk_pair("s4", {
            "rps": "GET /v2/ with a valid token, %d connections: "
                   "requests/s" % conns,
            "cpu": "same: CPU seconds per 1,000 requests",
            "cpuk": "same: of which in the kernel (system time)",
            "cpuw": "same: wrk's CPU seconds per 1,000 requests",
            "sys": "same: system calls per request"},
            urls, self.mode["s4_seconds"])
        T.expect(self.res.has("s4."), "scenario 4 produced no numbers")

    # 5 ----------------------------------------------------------------------

    def s5(self):
        w, res = self.w, self.res
        n = self.mode["idle"]
        label = "%s idle keep-alive client connections: VmRSS MiB (VmHWM)" \
            % format(n, ",")
        label_per = "same: KiB of RSS per idle connection"
        res.notes.append("scenario 5: the proxy is restarted before each run "
                         "(clean heap) and answers one GET /v2/; then each of "
                         "the %d connections has one GET /v2/ answered and "
                         "stays open and idle; RSS read 1 s after the last "
                         "one opened; KiB each = (RSS with them - RSS "
                         "before) / %d. ocigate max_connections = %d, "
                         "idle_timeout = 600s; nginx worker_connections = "
                         "30000, keepalive_timeout 600s." % (n, n, 2 * n))
        for rep in range(self.mode["reps"]):
            for system in rotate(["ocigate", "nginx"], rep):
                # a fresh process: memory freed by earlier runs would
                # absorb the new connections
                w.restart(system)
                port = w.og.port if system == "ocigate" else w.nginx.port
                pid = w.pid(system)
                B.request_ok(port, "/v2/", w.client_auth)
                before = B.vm_status(pid).get("VmRSS", 0)
                socks = B.open_idle_connections(port, n, "/v2/",
                                                w.client_auth)
                try:
                    time.sleep(1.0)
                    st = B.vm_status(pid)
                    alive = B.still_open(socks)
                finally:
                    B.close_all(socks)
                T.expect(alive == n, "%s closed %d of %d idle connections"
                         % (system, n - alive, n))
                rss = st.get("VmRSS", 0) / 1024.0
                res.add("s5.rss", label, system, rss)
                res.add_peak("s5.rss", system, st.get("VmHWM", 0) / 1024.0)
                res.add("s5.per", label_per, system,
                        (st.get("VmRSS", 0) - before) / float(n))
                self.progress("s5 rep %d %s: RSS %.1f MiB with %d idle "
                              "(%.1f before)" % (rep + 1, system, rss, n,
                                                 before / 1024.0))
        T.expect(res.has("s5."), "scenario 5 produced no numbers")

    # 6 ----------------------------------------------------------------------

    def s6(self):
        w, env, res = self.w, self.env, self.res
        n1, n2 = self.mode["cg"]
        path = w.proxy_path(FAST_CONN, MEDIUM_REPO, "manifests", TAG)
        hdr = dict(w.client_auth)
        hdr["Accept"] = T.MEDIA_OCI_MANIFEST
        irs = {}
        for n in (n1, n2):
            out = env.path("callgrind.%d.out" % n)
            wrapper = env.path("callgrind-%d.sh" % n)
            with open(wrapper, "w") as f:
                f.write("#!/bin/sh\nexec valgrind --tool=callgrind "
                        "--callgrind-out-file=%s --log-file=%s.log %s \"$@\"\n"
                        % (out, out, self.args.ocigate))
            os.chmod(wrapper, 0o755)
            og = w.start_ocigate(binary=wrapper, name="ocigate-callgrind-%d"
                                 % n, timeout=120)
            try:
                B.sequential_requests(og.port, n, path, hdr)
            finally:
                rc = og.stop(timeout=120)
            T.expect_eq(rc, 0, "ocigate under callgrind: exit status")
            irs[n] = B.callgrind_ir(out)
            self.progress("s6 callgrind %d requests: Ir %d" % (n, irs[n]))
        per = (irs[n2] - irs[n1]) / float(n2 - n1)
        res.add("s6.ir", "instructions per cached-auth manifest request "
                "(callgrind, (Ir(%d) - Ir(%d)) / %d)" % (n2, n1, n2 - n1),
                "ocigate", per)
        T.expect(per > 0, "callgrind: no instructions per request")


def s7_blob_cache(b):
    """Scenario 7: a warm hit of the big blob from ocigate's blob cache
    ([cache] dir, served with sendfile) against nginx serving the same bytes
    (the registry's own data file) with sendfile, and against the
    pull-through serving it warm from its storage."""
    w, env, res = b.w, b.env, b.res
    big = w.blob(BIG_REPO)
    hexd = big.digest.split(":", 1)[1]
    data = os.path.join(w.reg.storage_dir(), "docker", "registry", "v2", "blobs",
                        "sha256", hexd[:2], hexd, "data")
    T.expect_eq(os.path.getsize(data), big.size, "registry data file size")
    files = B.Nginx(env, "nginx-files",
                    "  server {\n    listen 127.0.0.1:@PORT@;\n"
                    "    location = /blob { alias %s; }\n  }\n" % data).start()
    og = T.Ocigate(env, b.args.ocigate, [w.token], w.connectors(),
                   server=w.ocigate_server_opts(),
                   upstream=w.ocigate_upstream_opts(), name="ocigate-cache",
                   sections={"cache": {"dir": env.path("bench-cache"),
                                       "max_size": "8g", "min_free": "0%"}})
    og.start()
    og_url = "http://%s%s" % (og.host, w.proxy_path(TLS_CONN, BIG_REPO, "blobs",
                                                     big.digest))
    B.curl_one(env, og_url, big.size, w.client_auth)   # the fill
    pt_url = w.blob_url("pull-through", BIG_REPO)
    B.curl_one(env, pt_url, big.size)
    w.pt.wait_stored(BIG_REPO, big.digest, big.size)
    what = "1 GiB blob" if big.size >= 1024 * MiB else \
        "%d MiB blob" % (big.size // MiB)
    label = "%s, 1 client, warm cache hit: MB/s" % what
    cpu_label = "same: CPU seconds per GB of the serving process"
    pids = {"ocigate": og.pid, "nginx sendfile": files.pid,
            "pull-through warm": w.pt.pid}
    urls = {"ocigate": (og_url, w.client_auth),
            "nginx sendfile": ("http://%s/blob" % files.host, {}),
            "pull-through warm": (pt_url, {})}
    try:
        for rep in range(b.mode["reps"]):
            for system in rotate(list(urls), rep):
                url, headers = urls[system]
                c0 = B.cpu_seconds(pids[system])
                mbps = B.curl_one(env, url, big.size, headers)
                res.add("s7.hit", label, system, mbps)
                res.add("s7.cpu", cpu_label, system,
                        (B.cpu_seconds(pids[system]) - c0) / (big.size / 1e9))
                b.progress("s7 rep %d %s: %.0f MB/s" % (rep + 1, system, mbps))
        T.expect("event=cache_open" in og.log_text(), "ocigate-cache opened no cache")
    finally:
        og.stop()
        files.stop()
    res.notes.append("scenario 7: ocigate's hit is the %s served from "
                     "[cache] dir after one fill; nginx serves the registry's "
                     "data file of the same blob (sendfile on, 1 worker); "
                     "both from the page cache" % what)
    T.expect(res.has("s7."), "scenario 7 produced no numbers")


def s8_cold_concurrent(b):
    """Scenario 8: 100 (smoke: 10) concurrent cold pulls of the medium blob
    through an ocigate with an empty [cache] dir: upstream transfers
    (counted in the registry's access log), aggregate MB/s and peak VmRSS,
    next to nginx doing the same (one upstream transfer per client)."""
    w, env, res = b.w, b.env, b.res
    med = w.blob(MEDIUM_REPO)
    n = 10 if b.args.smoke else 100
    size_txt = "%d MiB" % (med.size // MiB)

    def registry_read():
        """Bytes the TLS registry has read (files and sockets): the bench
        registries run without an access log, and each upstream transfer
        of the blob reads it from disk once."""
        with open("/proc/%d/io" % w.reg.pid) as f:
            for line in f:
                if line.startswith("rchar:"):
                    return int(line.split()[1])
        raise AssertionError("no rchar in /proc/PID/io")

    def measure(system, rep):
        og = None
        if system == "ocigate":
            og = T.Ocigate(env, b.args.ocigate, [w.token], w.connectors(),
                           server=w.ocigate_server_opts(),
                           upstream=w.ocigate_upstream_opts(),
                           name="ocigate-cold-%d" % rep,
                           sections={"cache": {"dir": env.path("cold-cache-%d" % rep),
                                               "max_size": "8g", "min_free": "0%"}})
            og.start()
            url = "http://%s%s" % (og.host, w.proxy_path(TLS_CONN, MEDIUM_REPO, "blobs",
                                                         med.digest))
            pid = og.pid
        else:
            url, pid = w.blob_url("nginx", MEDIUM_REPO), w.nginx.pid
        before = registry_read()
        try:
            with B.RssSampler(pid) as sampler:
                many = B.curl_many(env, url, n, med.size, w.client_auth)
            transfers = round((registry_read() - before) / med.size, 1)
        finally:
            if og:
                og.stop()
        peer = "ocigate" if system == "ocigate" else "nginx"
        res.add("s8.mbps", "%d concurrent cold pulls of one %s blob, blob cache: "
                "aggregate MB/s" % (n, size_txt), peer, many.mbps)
        res.add("s8.up", "same: upstream transfers (bytes the registry read / blob size)",
                peer, transfers)
        res.add("s8.rss", "same: peak VmRSS MiB", peer, sampler.peak_kib / 1024.0)
        b.progress("s8 rep %d %s: %.0f MB/s, %d complete, %d failed, %.1f upstream "
                   "transfers, peak RSS %.1f MiB" % (rep + 1, peer, many.mbps, many.complete,
                                                 len(many.failed), transfers,
                                                 sampler.peak_kib / 1024.0))
        T.expect(not many.failed and many.complete == n,
                 "%s: %d of %d complete, failed: %s" % (peer, many.complete, n,
                                                       many.failed[:3]))
        if system == "ocigate":
            T.expect(0.9 <= transfers <= 1.1, "upstream transfers for %d cold pulls: %.1f"
                     % (n, transfers))

    for rep in range(b.mode["reps"]):
        for system in rotate(["ocigate", "nginx"], rep):
            measure(system, rep)
    T.expect(res.has("s8."), "scenario 8 produced no numbers")


def is_asan_binary(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# --------------------------------------------------------------------------
# Header


def tool_version(argv, pattern=None):
    try:
        cp = subprocess.run(argv, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (cp.stdout + cp.stderr).decode(errors="replace").strip()
    line = text.splitlines()[0] if text else "?"
    if pattern:
        m = re.search(pattern, text)
        if m:
            return m.group(1)
    return line


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def header_lines(args, mode_name, mode):
    load = os.getloadavg()
    lines = [
        "### ocigate benchmark (%s mode), %s" % (
            mode_name, datetime.datetime.now().strftime("%Y-%m-%d %H:%M")),
        "",
        "Machine: `nproc` = %d, %s, Linux %s, load average at start %.2f. "
        "Versions: %s (`%s`), %s, docker-registry %s, %s, %s." % (
            os.cpu_count(), cpu_model(), platform.release(), load[0],
            tool_version([args.ocigate, "--version"]), args.ocigate,
            tool_version(["nginx", "-v"], r"nginx version: (\S+)"),
            tool_version(["docker-registry", "--version"], r"(\d+\.\d+\S*)"),
            tool_version(["curl", "--version"], r"^(curl \S+)"),
            tool_version(["wrk", "--version"], r"^(wrk \S+)")),
        "",
        "Each figure is the median of %d runs, the systems alternated "
        "(the order rotates from run to run); ocigate/peer is the ratio of "
        "the medians. MB = 10^6 bytes, MiB = 2^20. Everything on "
        "127.0.0.1; clients: curl (blobs; `--parallel` for concurrent "
        "ones, 250 transfers per process), `wrk -t1` (requests/s)."
        % mode["reps"],
        "",
        "Setup: upstreams = docker-registry over TLS with htpasswd "
        "(blobs seeded with skopeo; TLS blob and pull rows), nginx serving "
        "the registry's blob files over plain HTTP (plain-HTTP blob rows) "
        "and the manifest over TLS (scenario 3), all checking the "
        "connector's Authorization; bare splice = test/bench/baresplice.c, "
        "a plain libevent TLS relay; nginx: 1 worker, `proxy_buffering off`, "
        "TLS verified, upstream `keepalive %d`, `proxy_connect_timeout "
        "10s` and `proxy_read_timeout 60s` (ocigate's defaults), connector "
        "Authorization injected, `/v2/namespaces/NS/connectors/NAME/` -> "
        "`/v2/`; ocigate: "
        "standalone, static token, `pool_max_idle = %d`, defaults otherwise "
        "(`body_buffer` 256k, access log on); both log one access line per "
        "request to a file." % (args.upstream_keepalive,
                                args.upstream_keepalive),
    ]
    return lines


# --------------------------------------------------------------------------
# main


def main():
    def extra(ap):
        ap.add_argument("--smoke", action="store_true",
                        help="a few seconds per scenario, small blobs, "
                        "no targets")
        ap.add_argument("--out", help="also write the table to this file "
                        "(default in full mode: bench-DATE.md next to the "
                        "ocigate binary)")
        ap.add_argument("--reps", type=int, help="runs per figure")
        ap.add_argument("--only", help="comma-separated scenario numbers, "
                        "e.g. 1,3")
        ap.add_argument("--steps", help="scenario 2's client counts, "
                        "comma-separated (default 1,10,100,500; smoke 1,10)")
        ap.add_argument("--s2-window", type=float,
                        help="scenario 2: stop each pull after this many "
                        "seconds (default 15 in full mode; 0: never)")
        ap.add_argument("--upstream-keepalive", type=int, default=64,
                        help="idle upstream connections kept by nginx "
                        "(keepalive) and ocigate (pool_max_idle)")
        ap.add_argument("--baresplice",
                        help="the bench_baresplice program (default: "
                        "test/bench_baresplice in ocigate's build directory)")
        ap.add_argument("--strict", action="store_true",
                        help="exit 1 when a target is not met")
    args = T.parse_args(__doc__.split("\n\n")[0], extra)
    if not args.baresplice:
        args.baresplice = os.path.join(os.path.dirname(args.ocigate), "test",
                                       "bench_baresplice")
    mode_name = "smoke" if args.smoke else "full"
    mode = dict(MODES[mode_name])
    if args.reps:
        mode["reps"] = args.reps
    # parse_args's default --timeout is the e2e tests' one: use the mode's
    timeout = mode["watchdog"] if args.timeout == 235 else args.timeout
    T.start_watchdog(timeout)
    B.raise_nofile(mode["idle"] * 3 + 4096)
    only = set(args.only.split(",")) if args.only else None
    if args.s2_window is not None:
        mode["s2_window"] = args.s2_window or None
    if args.steps:
        mode["steps"] = tuple(int(x) for x in args.steps.split(","))

    t_start = time.monotonic()
    with T.Env("bench", keep=args.keep) as env:
        b = Bench(args, env, mode)
        tap = T.Tap(env)
        scenarios = [
            ("1", "scenario 1: one client pulls the big blob", b.s1),
            ("2", "scenario 2: concurrent pulls of the medium blob, RSS",
             b.s2),
            ("3", "scenario 3: manifest GET at %d connections"
             % mode["wrk_connections"], b.s3),
            ("4", "scenario 4: GET /v2/ against nginx's static 200", b.s4),
            ("5", "scenario 5: %d idle keep-alive connections"
             % mode["idle"], b.s5),
            ("6", "scenario 6: callgrind instructions per request", b.s6),
            ("7", "scenario 7: warm blob-cache hit vs nginx sendfile",
             lambda: s7_blob_cache(b)),
            ("8", "scenario 8: concurrent cold pulls through the blob cache",
             lambda: s8_cold_concurrent(b)),
        ]
        if only:
            scenarios = [s for s in scenarios if s[0] in only]
        tap.plan(1 + len(scenarios))
        header = header_lines(args, mode_name, mode)
        if not tap.run("setup: pki, registries, seed, nginx, ocigate",
                       b.setup):
            for _, name, _ in scenarios:
                tap.not_ok(name, ["not run: setup failed"])
            sys.exit(tap.finish())
        for num, name, fn in scenarios:
            if num == "6" and is_asan_binary(args.ocigate):
                tap.n += 1
                print("ok %d - %s # SKIP ocigate is built with "
                      "AddressSanitizer, valgrind cannot run it"
                      % (tap.n, name), flush=True)
                continue
            tap.run(name, fn)
        elapsed = time.monotonic() - t_start
        b.res.notes.append("total run time %.0f s" % elapsed)
        table, missed = render_table(b.res, header, not args.smoke)
        text = "\n".join(table) + "\n"
        # TAP comments: meson's TAP reader warns on any other line
        T.diag("")
        for line in table:
            T.diag(line)
        out = args.out
        if out is None and not args.smoke:
            out = os.path.join(os.path.dirname(args.ocigate), "bench-%s.md"
                               % datetime.datetime.now().strftime(
                                   "%Y%m%d-%H%M%S"))
        if out:
            with open(out, "w") as f:
                f.write(text)
                f.write("\n<!-- raw samples\n%s\n-->\n" % json.dumps(
                    {"%s|%s" % k: v for k, v in b.res.samples.items()},
                    indent=1))
            print("# table written to %s" % os.path.abspath(out), flush=True)
        rc = tap.finish()
    if rc == 0 and args.strict and missed:
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
