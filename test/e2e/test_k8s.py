#!/usr/bin/env python3
"""Kubernetes mode end to end: ocigate with a [kubernetes] section in front
of a real docker-registry, talking to the fake kube-apiserver of
test/e2e/k8sapi.py over TLS (kubeconfig with its CA and ocigate's bearer
token), pulled from with containerd's ctr and raw HTTP.

Checks: a ctr pull with a ServiceAccount token as the password works, with
exactly one TokenReview and one SubjectAccessReview for a whole multi-layer
pull and for 500 concurrent requests with a new token; a ServiceAccount of
another namespace gets 403 naming the user, verb and connector, and the pull
works once a RoleBinding is added and the denied TTL has passed; an expired
token gets 401 (also one that was cached: its exp claim caps the cache); a
rotated Secret password and a changed connector address apply without a
restart; with the API server stopped cached clients keep pulling and new
tokens get 503 with Retry-After, then everything recovers; a deleted
Connector is 404 NAME_UNKNOWN; no token reaches the log.  Also measures
requests/s on the cached path with hey (reported, not asserted).

    python3 test/e2e/test_k8s.py --ocigate build/ocigate
"""

import os
import secrets
import selectors
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
from k8sapi import FakeKubeAPI, Group, rule, ServiceAccount  # noqa: E402

NS, OTHER_NS = "team-a", "team-b"
CONN = "harbor"
OTHER_USER = "system:serviceaccount:%s:default" % OTHER_NS
DENIED_TTL = 2            # [kubernetes] sar_denied_ttl, seconds
N_LAYERS = 12
BURST = 500


def read_all_until_eof(socks, deadline):
    """Every socket's bytes up to its EOF (or up to the deadline), read
    from one thread."""
    got = [b"" for _ in socks]
    sel = selectors.DefaultSelector()
    for i, s in enumerate(socks):
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, i)
    while sel.get_map() and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
            try:
                b = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                b = b""
            if b:
                got[key.data] += b
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    return got

def k8s_ocigate(env, binary, kubeconfig, kubernetes, name="ocigate"):
    """ocigate in Kubernetes mode with an admin listener."""
    return T.Ocigate(env, binary, [], [], name=name,
                     server={"admin_listen": "127.0.0.1:0"},
                     sections={"kubernetes": dict(kubeconfig=kubeconfig,
                                                  **kubernetes)})


class K8sTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.notes = []

    # -- fixture ----------------------------------------------------------

    def setup(self):
        env = self.env
        self.pki, self.robot_pw, self.reg = T.robot_registry(env)
        self.lay = T.make_oci_layout(env.path("layout"), 2 * T.MiB)
        T.seed_registry(self.reg, self.lay, tags=("v1",), index_repo=None)
        self.many_dir = env.path("layout-many")
        self.many = T.make_many_layer_layout(self.many_dir, N_LAYERS, label="k8s layer")
        T.skopeo_copy(env, "oci:%s:many" % self.many_dir,
                      "docker://%s/layers/many:v1" % self.reg.host,
                      ["--dest-cert-dir", self.pki.certdir, "--dest-creds",
                       "robot:" + self.robot_pw])

        self.api = FakeKubeAPI(self.pki).start()
        api = self.api
        api.add_role("connector-user",
                     [rule(["get"], ["connectors"], ["connectors.alauda.io"])],
                     namespace=NS)
        # every ServiceAccount of the namespace: each case uses its own, so
        # that the SAR cache (per user, uid, groups) starts empty for it
        api.add_binding("connector-user", "connector-user",
                        [Group("system:serviceaccounts:" + NS)], namespace=NS)
        with open(self.pki.ca_pem, "rb") as f:
            ca = f.read()
        api.add_secret(NS, "harbor-secret",
                       {"username": "robot", "password": self.robot_pw},
                       type="cpaas.io/distribution-registry-token")
        api.add_secret(NS, "harbor-ca", {"ca.crt": ca})
        api.add_connector(NS, CONN, self.reg.url, secret="harbor-secret",
                          ca_secret="harbor-ca")
        # classes other than oci are not served
        api.add_connector(NS, "git", "https://git.example.com",
                          class_name="git")
        self.kubeconfig = api.write_kubeconfig(env.path("kubeconfig"))
        self.og = k8s_ocigate(env, self.args.ocigate, self.kubeconfig,
                              {"sar_denied_ttl": "%ds" % DENIED_TTL,
                               "api_timeout": "5s"}).start()
        self.wait_synced()
        self.cd = T.Containerd(env).start()
        self.hosts = self.cd.hosts_dir(self.og.host, self.og.url)
        T.diag("ocigate %s, registry %s, API server %s"
               % (self.og.host, self.reg.host, api.url))

    def wait_synced(self, timeout=15):
        """Until the first list arrived, requests get 503."""
        tok = self.new_token()

        def synced():
            r = self.get(tok, "demo/app", "manifests", "v1")
            return r.status != 503
        T.wait_for(synced, timeout, 0.1, "ocigate to list the connectors")

    # -- helpers ----------------------------------------------------------

    def new_sa(self, ns=NS):
        """A new ServiceAccount: (token, user name)."""
        name = "sa-" + secrets.token_hex(4)
        return (self.api.add_service_account_token(ns, name),
                "system:serviceaccount:%s:%s" % (ns, name))

    def new_token(self, ns=NS, **kw):
        return self.api.add_service_account_token(ns, "default", **kw)

    @staticmethod
    def basic(token):
        return T.basic_auth("anything", token)

    def get(self, token, repo, kind, ref, conn=CONN, method="GET",
            scheme="basic"):
        auth = (self.basic(token) if scheme == "basic" else "Bearer " + token)
        h = {"Authorization": auth, "Accept": T.ACCEPT_ALL}
        return T.request(self.og.port, method,
                         T.proxy_path(NS, conn, repo, kind, ref), h, timeout=30)

    def expect_manifest(self, token, what, conn=CONN):
        r = self.get(token, "demo/app", "manifests", "v1", conn=conn)
        T.expect_status(r, 200, what)
        T.expect_eq(T.sha256_bytes(r.body), self.lay.single.digest, what)
        return r

    def counts(self, token, user):
        return (self.api.tokenreview_count(token),
                self.api.sar_count(user, CONN))

    # -- cases ------------------------------------------------------------

    def t_check_config(self):
        cp = self.og.check_config(self.og.config)
        T.expect_eq(cp.returncode, 0, "--check-config exit status (%s)"
                    % cp.stderr.decode().strip())
        T.expect_in(b"Kubernetes mode", cp.stdout, "--check-config output")
        bad = self.env.path("bad-kubeconfig")
        with open(bad, "w") as f:
            f.write("apiVersion: v1\nkind: Config\nclusters:\n- name: x\n"
                    "  cluster:\n    server: https://127.0.0.1:1\n"
                    "contexts:\n- name: x\n  context:\n    cluster: x\n"
                    "    user: nobody\ncurrent-context: x\nusers: []\n")
        conf = self.env.path("bad.conf")
        with open(conf, "w") as f:
            f.write("[kubernetes]\nkubeconfig = %s\n" % bad)
        cp = self.og.check_config(conf)
        T.expect_eq(cp.returncode, 1, "--check-config with a broken kubeconfig")
        T.expect_in(b"nobody", cp.stderr, "the error names the missing user")
        conf2 = self.env.path("mixed.conf")
        with open(conf2, "w") as f:
            f.write("[auth]\ntokens_file = %s\n\n[kubernetes]\nkubeconfig = %s\n"
                    % (conf, self.kubeconfig))
        cp = self.og.check_config(conf2)
        T.expect_eq(cp.returncode, 1, "--check-config with tokens_file in "
                    "Kubernetes mode")
        T.expect_in(b"mixed.conf:2: tokens_file is not used in Kubernetes mode",
                    cp.stderr, "error message")

    def t_version_check(self):
        tok = self.new_token()
        r = T.request(self.og.port, "GET", "/v2/",
                      {"Authorization": self.basic(tok)})
        T.expect_status(r, 200, "GET /v2/ with a ServiceAccount token")
        r = T.request(self.og.port, "GET", "/v2/", {})
        T.expect_status(r, 401, "GET /v2/ without credentials")
        T.expect_in("Basic", r.header("WWW-Authenticate") or "", "challenge")

    def t_ctr_pull_counts(self):
        """A whole multi-layer pull: one TokenReview, one SAR."""
        tok, user = self.new_sa()
        ref = "%s/namespaces/%s/connectors/%s/layers/many:v1" % (
            self.og.host, NS, CONN)
        self.api.reset_counters()
        self.cd.pull(ref, self.hosts, user="anything:" + tok)
        T.expect_eq(self.cd.images().get(ref, (None, None))[1],
                    self.many.manifest.digest, "pulled image digest")
        missing = [b.digest for b in self.many.blobs()
                   if b.digest not in self.cd.content()]
        T.expect_eq(missing, [], "layers missing after ctr pull")
        T.expect_eq(self.counts(tok, user), (1, 1),
                    "(TokenReviews, SubjectAccessReviews) for a %d-layer pull"
                    % N_LAYERS)
        self.notes.append("ctr pull of %d layers: 1 TokenReview, 1 SAR"
                          % N_LAYERS)

    def t_burst(self):
        """BURST concurrent requests with one new token.

        One thread drives every connection: with a thread per client, the
        fake API server (threads in this same process) waits for the GIL
        behind hundreds of runnable clients, and its TokenReview answer
        comes later than api_timeout on a slow (sanitizer) build."""
        tok, user = self.new_sa()
        self.api.reset_counters()
        path = T.proxy_path(NS, CONN, "demo/app", "manifests", "v1")
        h = {"Authorization": self.basic(tok), "Accept": T.ACCEPT_ALL,
             "Connection": "close"}
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\n" % (path, self.og.host)
               + "".join("%s: %s\r\n" % kv for kv in h.items())
               + "\r\n").encode()
        socks = [socket.create_connection(("127.0.0.1", self.og.port),
                                          timeout=30) for _ in range(BURST)]
        t0 = time.monotonic()
        for s in socks:
            s.sendall(req)
        answers = read_all_until_eof(socks, deadline=t0 + 60)
        took = time.monotonic() - t0
        statuses = [a.split(b" ", 2)[1].decode("latin-1") if a else "no answer"
                    for a in answers]
        bad = [(st, a[-200:]) for st, a in zip(statuses, answers) if st != "200"]
        T.expect_eq(bad[:3], [], "%d of %d concurrent requests failed"
                    % (len(bad), BURST))
        tr, sar = self.counts(tok, user)
        self.notes.append("burst of %d concurrent requests with a new token: "
                          "%d TokenReview, %d SAR, %.2fs" % (BURST, tr, sar, took))
        T.diag(self.notes[-1])
        T.expect_eq((tr, sar), (1, 1),
                    "(TokenReviews, SARs) for %d concurrent requests" % BURST)

    def t_cache_metrics(self):
        """ocigate_auth_cache_requests_total follows the decision caches:
        a new ServiceAccount's first request misses both (one TokenReview,
        one SAR), the next ones hit both."""
        tok, user = self.new_sa()
        n = 5
        admin = self.og.listeners["admin"]
        before, _ = T.scrape_metrics(admin)
        for i in range(n):
            self.expect_manifest(tok, "request %d of a new ServiceAccount" % i)
        after, _ = T.scrape_metrics(admin)
        name = "ocigate_auth_cache_requests_total"
        got = {(c, res): T.metric_value(after, name, cache=c, result=res) -
               T.metric_value(before, name, cache=c, result=res)
               for c in ("token", "access") for res in ("hit", "miss")}
        T.expect_eq(got, {("token", "miss"): 1, ("token", "hit"): n - 1,
                          ("access", "miss"): 1, ("access", "hit"): n - 1},
                    "cache lookups of %d requests" % n)
        T.expect_eq((self.api.tokenreview_count(tok),
                     self.api.sar_count(user, CONN)), (1, 1),
                    "TokenReviews and SARs behind them")

    def t_other_namespace_denied_then_bound(self):
        tok = self.new_token(OTHER_NS)
        r = self.get(tok, "demo/app", "manifests", "v1")
        msg = T.expect_error(r, 403, "DENIED", "SA of another namespace")
        for part in (OTHER_USER, "get", "connectors.connectors.alauda.io",
                     '"%s"' % CONN, '"%s"' % NS):
            T.expect_in(part, msg, "the 403 message")
        self.api.add_binding("team-b-pulls", "connector-user",
                             [ServiceAccount(OTHER_NS, "default")],
                             namespace=NS)
        bound = time.monotonic()
        r = self.get(tok, "demo/app", "manifests", "v1")
        T.expect_error(r, 403, "DENIED", "within the denied TTL (cached)")
        T.expect_eq(self.api.sar_count(OTHER_USER, CONN), 1,
                    "SARs for the denied user (second one cached)")
        time.sleep(max(0.0, DENIED_TTL + 0.2 - (time.monotonic() - bound)))
        self.expect_manifest(tok, "after the RoleBinding and the denied TTL")

    def t_expired(self):
        tok = self.new_token()
        self.api.expire_token(tok)
        r = self.get(tok, "demo/app", "manifests", "v1")
        T.expect_error(r, 401, "UNAUTHORIZED", "expired token")
        T.expect_in("Basic", r.header("WWW-Authenticate") or "", "challenge")
        r = self.get("not-a-token-" + secrets.token_hex(8), "demo/app",
                     "manifests", "v1")
        T.expect_error(r, 401, "UNAUTHORIZED", "unknown token")
        # A token that expires in 2 s: its positive cache entry ends at its
        # exp claim, not after token_cache_ttl (2 min).
        short = self.new_token(expires_in=2)
        self.expect_manifest(short, "short-lived token before exp")
        time.sleep(2.3)
        r = self.get(short, "demo/app", "manifests", "v1")
        T.expect_error(r, 401, "UNAUTHORIZED", "cached token after its exp")
        T.expect_eq(self.api.tokenreview_count(short), 2,
                    "TokenReviews for the short-lived token")

    def t_rotate_secret(self):
        tok = self.new_token()
        self.expect_manifest(tok, "before the rotation")
        new_pw = "rotated-" + secrets.token_hex(8)
        self.reg.users = {"robot": new_pw}
        self.reg._write_config()
        self.reg.restart()
        r = self.get(tok, "demo/app", "manifests", "v1")
        T.expect(r.status in (401, 502), "old password after the registry "
                 "changed it: %d" % r.status)
        self.api.update_secret(NS, "harbor-secret",
                               {"username": "robot", "password": new_pw})
        self.robot_pw = new_pw

        def works():
            return self.get(tok, "demo/app", "manifests", "v1").status == 200
        T.wait_for(works, 10, 0.1, "the rotated password to apply")
        self.expect_manifest(tok, "after the rotation")
        T.expect(self.og.proc.alive(), "ocigate restarted?")

    def t_address_change(self):
        tok = self.new_token()
        self.reg2 = T.Registry(self.env, self.pki, users={"robot": self.robot_pw},
                               name="registry2").start()
        T.seed_registry(self.reg2, self.lay, tags=("v1",), index_repo=None)
        mark = len(self.reg2.access_lines("/v2/demo/app/manifests/v1"))
        spec = dict(self.api.get_connector(NS, CONN)["spec"])
        spec["address"] = self.reg2.url
        self.api.update_connector(NS, CONN, spec=spec)
        self.reg.kill()

        def moved():
            return self.get(tok, "demo/app", "manifests", "v1").status == 200
        T.wait_for(moved, 10, 0.1, "the new address to apply")
        T.wait_for(lambda: len(self.reg2.access_lines(
            "/v2/demo/app/manifests/v1")) > mark, 5, 0.05,
            "registry2 to log the request")

    def t_api_down(self):
        cached = self.new_token()
        self.expect_manifest(cached, "before the API server stops")
        fresh = self.new_token()
        self.api.stop()
        try:
            for i in range(3):
                self.expect_manifest(cached, "cached token, API server down (%d)" % i)
            r = self.get(fresh, "demo/app", "manifests", "v1")
            T.expect_error(r, 503, "UNAVAILABLE", "new token, API server down")
            T.expect(r.header("Retry-After") is not None,
                     "503 without Retry-After:\n%s" % r.describe())
            # a new connector question for the cached user is a 503 too
            r = T.request(self.og.port, "GET", "/v2/",
                          {"Authorization": self.basic(fresh)})
            T.expect_status(r, 503, "GET /v2/ with a new token, API down")
        finally:
            self.api.start()

        def back():
            return self.get(fresh, "demo/app", "manifests", "v1").status == 200
        T.wait_for(back, 15, 0.2, "ocigate to recover with the API server")

    def t_deleted_connector(self):
        tok = self.new_token()
        self.expect_manifest(tok, "before the delete")
        self.api.delete_connector(NS, CONN)

        def gone():
            return self.get(tok, "demo/app", "manifests", "v1").status == 404
        T.wait_for(gone, 10, 0.1, "the deleted connector to be 404")
        r = self.get(tok, "demo/app", "manifests", "v1")
        T.expect_error(r, 404, "NAME_UNKNOWN", "deleted connector")
        r = self.get(tok, "demo/app", "manifests", "v1", conn="git")
        T.expect_error(r, 404, "NAME_UNKNOWN", "a non-oci connector")

    def hey(self, what, token, path, method="GET"):
        """One hey run; returns its requests/s line and status counts."""
        cp = subprocess.run(["hey", "-n", "20000", "-c", "64", "-m", method,
                             "-H", "Authorization: " + self.basic(token),
                             "-H", "Accept: " + T.MEDIA_OCI_MANIFEST,
                             self.og.url + path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=150)
        out = cp.stdout.decode()
        rps = [l.split(":", 1)[1].strip() for l in out.splitlines()
               if "Requests/sec" in l]
        tail = out[out.find("Status code distribution"):].strip().splitlines()
        summary = "; ".join(l.strip() for l in tail[1:] if l.strip())
        self.notes.append("hey -n 20000 -c 64 %s: %s requests/s (%s)"
                          % (what, rps[0] if rps else "?", summary))
        T.diag(self.notes[-1])
        return out

    def t_bench_cached(self):
        """Requests/s on the cached path (reported, not asserted): GET /v2/
        (a cached TokenReview only) and HEAD of a manifest through a
        connector to a registry without auth (cached TokenReview and SAR,
        then the upstream request)."""
        if not shutil.which("hey"):
            T.fail("hey is not installed (packaging/deps.txt lists it)")
        anon = T.Registry(self.env, self.pki, users=None,
                          name="anon-registry").start()
        T.seed_registry(anon, self.lay, tags=("v1",), index_repo=None)
        self.api.add_connector(NS, "anon", anon.url, ca_secret="harbor-ca")
        tok, user = self.new_sa()
        reviewed = time.monotonic()
        T.wait_for(lambda: self.get(tok, "demo/app", "manifests", "v1",
                                    conn="anon").status == 200,
                   10, 0.1, "the anonymous connector to be served")
        self.api.reset_counters()
        self.hey("GET /v2/ (cached TokenReview)", tok, "/v2/")
        self.hey("HEAD manifest via an auth-less registry (cached TokenReview "
                 "+ SAR + upstream)", tok,
                 T.proxy_path(NS, "anon", "demo/app", "manifests", "v1"), "HEAD")
        # Cached for the whole run, unless it outlasts the TTLs (2 min
        # TokenReview, 5 min SAR: a slow sanitizer build can).
        elapsed = time.monotonic() - reviewed
        got = (self.api.tokenreview_count(), self.api.sar_count())
        most = (int(elapsed // 120), int(elapsed // 300))
        least = (int(max(elapsed - 10, 0) // 120), int(max(elapsed - 10, 0) // 300))
        T.expect(all(lo <= g <= hi for lo, g, hi in zip(least, got, most)),
                 "(TokenReviews, SARs) during %.0f s of benchmark: %s, expected "
                 "between %s and %s (one per TTL)" % (elapsed, got, least, most))

    def t_sigterm(self):
        """SIGTERM with watches open: exit 0 (under ASan: no leak, no
        report)."""
        rc = self.og.stop()
        T.expect_eq(rc, 0, "ocigate exit status after SIGTERM")
        log = self.og.log_text()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            T.expect(bad not in log, "%s report in the ocigate log" % bad)

    def t_log_clean(self):
        log = self.og.log_text()
        tokens = [t for t in self.api._tokens]  # every token the fixture knows
        for s in tokens + [self.robot_pw]:
            if s and s in log:
                T.fail("secret %s... in the ocigate log" % s[:8])
        T.expect_in("event=token_rejected", log, "401s are logged")
        T.expect_in("event=tokenreview_failed", log, "API outage is logged")


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("k8s", keep=args.keep) as env:
        t = K8sTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: pki, registry, fake API server, ocigate, containerd",
             t.setup, True),
            ("--check-config validates the kubeconfig and the mode",
             t.t_check_config),
            ("GET /v2/ with a ServiceAccount token", t.t_version_check),
            ("ctr pull, multi-layer: 1 TokenReview + 1 SAR", t.t_ctr_pull_counts),
            ("%d concurrent requests, new token: 1 TokenReview + 1 SAR" % BURST,
             t.t_burst),
            ("metrics: auth cache hits and misses match the reviews made",
             t.t_cache_metrics),
            ("other namespace: 403 naming user/verb/connector; RoleBinding "
             "works after the denied TTL", t.t_other_namespace_denied_then_bound),
            ("expired and unknown tokens: 401; exp caps the cache", t.t_expired),
            ("rotated Secret password applies without restart", t.t_rotate_secret),
            ("connector address change applies without restart",
             t.t_address_change),
            ("API server down: cached clients pull, new tokens 503 + "
             "Retry-After; recovers", t.t_api_down),
            ("deleted connector: 404 NAME_UNKNOWN", t.t_deleted_connector),
            ("requests/s on the cached path (hey)", t.t_bench_cached),
            ("SIGTERM -> exit 0, no sanitizer report", t.t_sigterm),
            ("no token or password in the ocigate log", t.t_log_clean),
        ])
        for n in t.notes:
            T.diag(n)
    sys.exit(rc)


if __name__ == "__main__":
    main()
