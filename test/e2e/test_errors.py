#!/usr/bin/env python3
"""Every error ocigate promises, against real failing upstreams: missing or
wrong tokens, access denied, unknown connectors, invalid names (refused
before any upstream call), unreachable / untrusted / credential-rejecting
upstreams, and an upstream killed in the middle of a blob.

    python3 test/e2e/test_errors.py --ocigate build/ocigate
"""

import os
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402

NS = "team-a"

# (what, path below /v2/namespaces/team-a/connectors/CONN/, expected status
# and code). A malformed name is 400; a manifest reference that is neither a
# tag nor a digest names a manifest that cannot exist: 404 MANIFEST_UNKNOWN,
# as a registry answers. Every repository name contains "e2eprobe" so that
# any request ocigate forwarded anyway shows up in the registry's access log.
INVALID = [
    ("uppercase repository", "E2eprobe1/manifests/v1", 400, "NAME_INVALID"),
    ("'..' segment", "demo/../e2eprobe2/manifests/v1", 400, "NAME_INVALID"),
    ("'.' segment", "demo/./e2eprobe3/manifests/v1", 400, "NAME_INVALID"),
    ("%2F in repository", "demo%2Fe2eprobe4/manifests/v1", 400, "NAME_INVALID"),
    ("empty segment '//'", "demo//e2eprobe5/manifests/v1", 400, "NAME_INVALID"),
    ("bad blob digest", "e2eprobe6/blobs/sha256:abc", 400, "DIGEST_INVALID"),
    ("uppercase hex digest", "e2eprobe7/manifests/sha256:" + "AB" * 32,
     404, "MANIFEST_UNKNOWN"),
    ("tag with '!'", "e2eprobe8/manifests/bad!tag", 404, "MANIFEST_UNKNOWN"),
    ("tag of 129 characters", "e2eprobe9/manifests/" + "t" * 129, 404, "MANIFEST_UNKNOWN"),
    ("tag starting with '.'", "e2eprobe10/manifests/.hidden", 404, "MANIFEST_UNKNOWN"),
    ("uppercase digest algorithm", "e2eprobe11/manifests/SHA256:" + "ab" * 32,
     404, "MANIFEST_UNKNOWN"),
]


class ErrorsTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice")
        self.bob = T.Token("bob", groups=["others"])
        self.carol = T.Token("system:serviceaccount:team-a:default",
                             groups=["system:serviceaccounts",
                                     "system:serviceaccounts:team-a"])

    def setup(self):
        env = self.env
        self.w = T.World(env)
        self.lay = self.w.layout
        reg = self.w.registry
        self.down_port = T.free_port()
        badpass_file = env.path("badpass.txt")
        self.bad_password = "wrong-" + secrets.token_hex(8)
        with open(badpass_file, "w") as f:
            f.write(self.bad_password + "\n")
        conns = [
            T.registry_connector(NS + "/registry", reg,
                                 allow=["alice", "system:serviceaccounts:team-a"]),
            T.Connector(NS + "/down", "https://127.0.0.1:%d" % self.down_port,
                        username="robot", password=self.w.upstream_password,
                        ca_file=self.w.pki.ca_pem, allow=["alice"]),
            T.registry_connector(NS + "/untrusted", reg, allow=["alice"], ca=False),
            T.Connector(NS + "/badpass", reg.url, username=self.w.upstream_user,
                        password_file=badpass_file, ca_file=self.w.pki.ca_pem,
                        allow=["alice"]),
        ]
        self.og = T.Ocigate(env, self.args.ocigate,
                            [self.alice, self.bob, self.carol], conns).start()

    def path(self, conn, rest):
        return "/v2/namespaces/%s/connectors/%s/%s" % (NS, conn, rest)

    def get(self, path, auth=None, method="GET", headers=None):
        h = {}
        if auth:
            h["Authorization"] = auth
        h.update(headers or {})
        return T.request(self.og.port, method, path, h)

    def manifest_path(self, conn="registry"):
        return self.path(conn, "demo/app/manifests/v1")

    # -- client authentication / authorization -----------------------------

    def t_no_credentials(self):
        for p in ("/v2/", self.manifest_path()):
            r = self.get(p)
            T.expect_error(r, 401, "UNAUTHORIZED", "GET %s without credentials" % p)
            T.expect_eq(r.header("WWW-Authenticate"), 'Basic realm="ocigate"',
                        "WWW-Authenticate of GET %s" % p)

    def t_wrong_token(self):
        stranger = T.Token("stranger")  # not in tokens.csv
        for auth in (stranger.basic(), stranger.bearer()):
            for p in ("/v2/", self.manifest_path()):
                r = self.get(p, auth)
                T.expect_error(r, 401, "UNAUTHORIZED",
                               "GET %s with unknown token (%s)" % (p, auth.split()[0]))

    def t_denied(self):
        r = self.get(self.manifest_path(), self.bob.basic())
        T.expect_error(r, 403, "DENIED", "bob (not in allow) GET manifest")
        r = self.get(self.manifest_path(), self.bob.basic(), method="HEAD")
        T.expect_status(r, 403, "bob HEAD manifest")

    def t_group_allowed(self):
        r = self.get(self.manifest_path(), self.carol.bearer(),
                     headers={"Accept": T.MEDIA_OCI_MANIFEST})
        T.expect_status(r, 200, "service account allowed through its group")
        T.expect_eq(T.sha256_bytes(r.body), self.lay.single.digest,
                    "manifest digest")

    def t_unknown_connector(self):
        r = self.get(self.manifest_path("nope"), self.alice.basic())
        T.expect_error(r, 404, "NAME_UNKNOWN", "unknown connector team-a/nope")
        r = self.get("/v2/namespaces/team-b/connectors/registry/demo/app/manifests/v1",
                     self.alice.basic())
        T.expect_error(r, 404, "NAME_UNKNOWN", "unknown connector team-b/registry")

    # -- invalid names never reach an upstream -------------------------------

    def _invalid_names(self, conn):
        before = len(self.w.registry.access_lines("e2eprobe"))
        extra = [("uppercase namespace",
                  "/v2/namespaces/Team-A/connectors/%s/e2eprobe0/manifests/v1" % conn,
                  400, "NAME_INVALID"),
                 ("uppercase connector",
                  "/v2/namespaces/team-a/connectors/%s/e2eprobe0/manifests/v1"
                  % conn.capitalize(), 400, "NAME_INVALID")]
        cases = extra + [(w, self.path(conn, rest), status, code)
                         for w, rest, status, code in INVALID]
        bad = []
        for what, p, status, code in cases:
            r = self.get(p, self.alice.basic())
            got = r.error_code()
            if r.status != status or got != code:
                bad.append("%s: GET %s -> %d %s (want %d %s)"
                           % (what, p, r.status, got, status, code))
        after = self.w.registry.access_lines("e2eprobe")
        if len(after) != before:
            bad.append("the registry saw forwarded requests:\n"
                       + "\n".join(after[before:]))
        T.expect(not bad, "\n".join(bad))

    def t_invalid_names(self):
        self._invalid_names("registry")

    def t_invalid_names_dead_upstream(self):
        self._invalid_names("down")

    # -- upstream failures ----------------------------------------------------

    def t_upstream_down(self):
        r = self.get(self.manifest_path("down"), self.alice.basic())
        msg = T.expect_error(r, 502, "UNAVAILABLE", "connector with nothing listening")
        T.expect_in("team-a/down", msg, "502 message")

    def t_untrusted(self):
        r = self.get(self.manifest_path("untrusted"), self.alice.basic())
        msg = T.expect_error(r, 502, "UNAVAILABLE", "upstream cert not trusted")
        T.expect_in("team-a/untrusted", msg, "502 message")

    def t_bad_password(self):
        for method in ("GET", "HEAD"):
            r = self.get(self.manifest_path("badpass"), self.alice.basic(),
                         method=method)
            T.expect_status(r, 502, "%s with rejected upstream credentials" % method)
            T.expect_eq(r.header("WWW-Authenticate"), None,
                        "WWW-Authenticate on %s 502" % method)
        r = self.get(self.manifest_path("badpass"), self.alice.basic())
        msg = T.expect_error(r, 502, "DENIED", "rejected upstream credentials")
        T.expect_in("team-a/badpass", msg, "502 message")
        low = msg.lower()
        T.expect("credential" in low and "reject" in low,
                 "message does not say the connector's credentials were "
                 "rejected: %r" % msg)
        T.expect(self.w.registry.realm.encode() not in r.body,
                 "upstream realm leaked in the body: %r" % r.body)

    def t_upstream_killed_mid_blob(self):
        big = self.lay.big
        url = self.og.url + self.path("registry", "demo/app/blobs/" + big.digest)
        out = self.env.path("killed-blob.bin")
        curl = T.spawn_curl(self.env, "curl-killed",
                            ["--limit-rate", "5M", "-o", out,
                             "-u", "x:" + self.alice.token, url])

        def arrived():
            if not curl.alive():
                T.fail("curl ended before the registry was killed (rc %s)"
                       % curl.returncode())
            return os.path.exists(out) and os.path.getsize(out) >= 5 * T.MiB
        T.wait_for(arrived, 30, 0.02, "5 MB of the blob to arrive")
        self.w.registry.kill()
        t0 = time.monotonic()
        rc = curl.wait(30)
        if rc is None:
            curl.kill()
            T.fail("curl still running 30s after the registry was killed "
                   "(ocigate kept the client connection open)")
        size = os.path.getsize(out)
        T.diag("  curl exit %d after %.1fs, %d of %d bytes"
               % (rc, time.monotonic() - t0, size, big.size))
        T.expect(rc != 0, "curl exited 0 after the upstream died mid-body "
                 "(got %d of %d bytes)" % (size, big.size))
        T.expect(size < big.size, "full body despite the upstream dying")
        if rc != 18:
            T.diag("  note: curl exit %d, expected 18 (partial file)" % rc)

    def t_recovers_after_restart(self):
        self.w.registry.restart()
        big = self.lay.big
        url = self.og.url + self.path("registry", "demo/app/blobs/" + big.digest)
        out = self.env.path("restarted-blob.bin")
        T.curl(self.env, ["-f", "-o", out, "-u", "x:" + self.alice.token, url])
        T.expect_eq("sha256:" + T.sha256_file(out), big.digest,
                    "sha256 of the blob pulled after the registry restarted")

    def t_still_serving(self):
        r = self.get("/v2/", self.alice.basic())
        T.expect_status(r, 200, "GET /v2/ at the end")
        T.expect(self.og.proc.alive(), "ocigate died")
        rc = self.og.stop()
        T.expect_eq(rc, 0, "exit status after SIGTERM")

    def t_log_clean(self):
        self.og.assert_log_clean([self.bad_password])


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("errors", keep=args.keep) as env:
        t = ErrorsTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: pki, registry, seed, ocigate", t.setup, True),
            ("no credentials -> 401 + Basic challenge", t.t_no_credentials),
            ("unknown token -> 401 UNAUTHORIZED", t.t_wrong_token),
            ("token not in allow -> 403 DENIED", t.t_denied),
            ("allowed through a group", t.t_group_allowed),
            ("unknown connector -> 404 NAME_UNKNOWN", t.t_unknown_connector),
            ("invalid names -> 400, impossible references -> 404, registry never asked",
             t.t_invalid_names),
            ("invalid names on a dead upstream -> 400/404, not 502",
             t.t_invalid_names_dead_upstream),
            ("upstream down -> 502 naming the connector", t.t_upstream_down),
            ("untrusted upstream cert -> 502", t.t_untrusted),
            ("wrong upstream password -> 502 DENIED, no challenge leaked",
             t.t_bad_password),
            ("upstream killed mid-blob -> short body, curl fails",
             t.t_upstream_killed_mid_blob),
            ("same pull works after the registry restarts",
             t.t_recovers_after_restart),
            ("still serving, SIGTERM -> exit 0", t.t_still_serving),
            ("ocigate log has no secrets", t.t_log_clean),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
