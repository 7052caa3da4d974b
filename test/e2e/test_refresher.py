#!/usr/bin/env python3
"""The pull-secret refresher end to end: ocigate in Kubernetes mode with
[pull_secrets] enabled = yes, expiration = 10m against the fake
kube-apiserver (test/e2e/k8sapi.py), which grants TokenRequests only 20 s
(token_request_max_lifetime, as a real server's
--service-account-max-token-expiration may: status.expirationTimestamp is
what counts), so a refresh is due 10-16 s after each write.

Checks: a ServiceAccount annotated connectors.cpaas.io/pull-secret gets a
kubernetes.io/dockerconfigjson Secret with the owner annotation, whose
token was asked for with expirationSeconds 600 and authenticates with the
API server; a manifest pull through ocigate (curl) works with exactly the
credentials of the Secret; the Secret is rewritten with a new token before
the old one expires; a Secret of the same name that ocigate does not own is
left alone; a ServiceAccount without the annotation gets no TokenRequest;
deleting the ServiceAccount stops the TokenRequests (the Secret stays); no
token in the log; the RBAC of packaging/kubernetes/rbac-pull-secrets.yaml
is enough (the fixture enforces it).

    python3 test/e2e/test_refresher.py --ocigate build/ocigate
"""

import base64
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
from k8sapi import FakeKubeAPI, Group, rule  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
NS = "team-a"
CONN = "harbor"
PUBLIC = "ocigate.example.com:30500"
SA = "builder"
SECRET = "og-pull"
OWNER = "connectors.cpaas.io/pull-secret-owner"
LIFETIME = 20


def refresher_ocigate(env, binary, kubeconfig, name="ocigate"):
    """ocigate in Kubernetes mode with the pull-secret refresher on and the
    status writer off."""
    return T.Ocigate(env, binary, [], [], name=name,
                     server={"public_address": PUBLIC},
                     sections={"kubernetes": {"kubeconfig": kubeconfig,
                                              "namespaces": NS,
                                              "api_timeout": "3s"},
                               "status": {"enabled": "no"},
                               "pull_secrets": {"enabled": "yes",
                                                "expiration": "10m"}})


def docker_config(secret):
    """(auths dict, raw .dockerconfigjson) of a stored Secret."""
    raw = base64.b64decode(secret["data"][".dockerconfigjson"])
    return json.loads(raw)["auths"], raw


class RefresherTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.tokens = []

    def setup(self):
        env = self.env
        self.pki, self.robot_pw, self.reg = T.robot_registry(env)
        self.lay = T.make_oci_layout(env.path("layout"), 256 * 1024)
        T.seed_registry(self.reg, self.lay, tags=("v1",), index_repo=None)
        self.api = FakeKubeAPI(self.pki).start()
        api = self.api
        api.token_request_max_lifetime = LIFETIME
        api.load_manifests(os.path.join(ROOT, "packaging", "kubernetes",
                                        "rbac-pull-secrets.yaml"))
        api.add_role("connector-user",
                     [rule(["get"], ["connectors"], ["connectors.alauda.io"])],
                     namespace=NS)
        api.add_binding("connector-user", "connector-user",
                        [Group("system:serviceaccounts:" + NS)], namespace=NS)
        with open(self.pki.ca_pem, "rb") as f:
            api.add_secret(NS, "harbor-ca", {"ca.crt": f.read()})
        api.add_secret(NS, "harbor-secret",
                       {"username": "robot", "password": self.robot_pw},
                       type="cpaas.io/distribution-registry-token")
        api.add_connector(NS, CONN, self.reg.url, secret="harbor-secret",
                          ca_secret="harbor-ca")
        api.add_service_account(NS, SA, annotations={
            "connectors.cpaas.io/pull-secret": SECRET})
        api.add_service_account(NS, "plain")
        # someone else's Secret under the name an annotation asks for
        api.add_secret(NS, "theirs", {"x": "y"})
        api.add_service_account(NS, "greedy", annotations={
            "connectors.cpaas.io/pull-secret": "theirs"})
        self.theirs_rv = api.get_secret(NS, "theirs")["metadata"][
            "resourceVersion"]
        self.kubeconfig = api.write_kubeconfig(env.path("kubeconfig"))
        self.og = refresher_ocigate(env, self.args.ocigate,
                                    self.kubeconfig).start()

    # -- helpers -----------------------------------------------------------

    def wait_secret(self, pred, timeout, what):
        last = {}

        def ok():
            last["s"] = self.api.get_secret(NS, SECRET)
            return last["s"] is not None and pred(last["s"])
        T.wait_for(ok, timeout, 0.1, what)
        return last["s"]

    def check_secret(self, s, what):
        T.expect_eq(s["type"], "kubernetes.io/dockerconfigjson",
                    what + ": type")
        T.expect_eq((s["metadata"].get("annotations") or {}).get(OWNER), SA,
                    what + ": owner annotation")
        auths, _ = docker_config(s)
        T.expect_eq(sorted(auths), [PUBLIC], what + ": registries")
        a = auths[PUBLIC]
        T.expect_eq(sorted(a), ["auth", "password", "username"],
                    what + ": keys")
        T.expect_eq(a["username"], "ocigate", what + ": username")
        T.expect_eq(base64.b64decode(a["auth"]).decode(),
                    "ocigate:" + a["password"], what + ": auth")
        return a["password"]

    def api_authenticates(self, token):
        """The fixture's answer to a request with this bearer token."""
        import http.client
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.api.port, timeout=10,
            context=self.pki.ssl_context())
        try:
            conn.request("GET", "/apis/connectors.alauda.io/v1alpha1/"
                         "namespaces/%s/connectors/%s" % (NS, CONN),
                         headers={"Authorization": "Bearer " + token})
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    def curl_manifest(self, secret):
        """curl through ocigate with the Secret's own Authorization."""
        auths, _ = docker_config(secret)
        out = self.env.path("manifest.json")
        cp = subprocess.run(
            ["curl", "-sS", "-o", out, "-w", "%{http_code}",
             "-H", "Authorization: Basic " + auths[PUBLIC]["auth"],
             "-H", "Accept: " + T.ACCEPT_ALL,
             self.og.url + T.proxy_path(NS, CONN, "demo/app", "manifests",
                                        "v1")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        T.expect_eq(cp.stdout.decode(), "200",
                    "curl status (%s)" % cp.stderr.decode().strip())
        with open(out, "rb") as f:
            T.expect_eq(T.sha256_bytes(f.read()), self.lay.single.digest,
                        "manifest digest")

    # -- cases -------------------------------------------------------------

    def t_secret_created(self):
        s = self.wait_secret(lambda s: True, 15, "the pull Secret")
        self.written_at = time.time()
        tok = self.check_secret(s, "created")
        self.tokens.append(tok)
        self.rv = s["metadata"]["resourceVersion"]
        reqs = self.api.token_requests(NS, SA)
        T.expect_eq(len(reqs), 1, "TokenRequests for %s" % SA)
        T.expect_eq(reqs[0][2:4], (600, LIFETIME),
                    "expirationSeconds asked and granted")
        T.expect_eq(self.api_authenticates(tok), 200,
                    "the API server accepts the Secret's token")
        posts = [r for r in self.api.requests(status=201)
                 if r["method"] == "POST" and r["path"]
                 == "/api/v1/namespaces/%s/secrets" % NS]
        T.expect_eq(len(posts), 1, "Secret created once")

    def t_pull(self):
        self.curl_manifest(self.api.get_secret(NS, SECRET))

    def t_rewritten_before_expiry(self):
        s = self.wait_secret(
            lambda s: s["metadata"]["resourceVersion"] != self.rv,
            LIFETIME + 5, "the Secret to be rewritten")
        took = time.time() - self.written_at
        tok = self.check_secret(s, "rewritten")
        T.expect(tok != self.tokens[0], "a new token")
        T.expect(8.5 <= took <= LIFETIME - 2,
                 "rewritten %.1f s after the first write (due at 10-16 s, "
                 "expiry at %d s)" % (took, LIFETIME))
        T.expect_eq(self.api_authenticates(self.tokens[0]), 200,
                    "the old token is still valid at the rewrite")
        T.expect_eq(self.api_authenticates(tok), 200, "the new token works")
        patches = [r for r in self.api.requests()
                   if r["method"] == "PATCH" and r["path"]
                   == "/api/v1/namespaces/%s/secrets/%s" % (NS, SECRET)]
        T.expect_eq(len(patches), 1, "PATCH requests of the Secret")
        T.expect_eq(patches[0]["headers"].get("Content-Type"),
                    "application/merge-patch+json", "PATCH Content-Type")
        self.tokens.append(tok)
        self.curl_manifest(s)

    def t_foreign_secret_untouched(self):
        s = self.api.get_secret(NS, "theirs")
        T.expect_eq(s["metadata"]["resourceVersion"], self.theirs_rv,
                    "someone else's Secret unchanged")
        T.expect_eq(s["type"], "Opaque", "its type")
        T.expect_eq(len(self.api.token_requests(NS, "greedy")), 0,
                    "no token minted for a Secret that cannot be written")
        T.expect_in("event=pull_secret_conflict", self.og.proc.log_text(),
                    "the conflict is logged")
        T.expect_eq(len(self.api.token_requests(NS, "plain")), 0,
                    "no TokenRequest without the annotation")

    def t_deleted_sa_stops(self):
        self.api.delete_service_account(NS, SA)
        T.wait_for(lambda: "reason=serviceaccount_deleted"
                   in self.og.proc.log_text(), 10, 0.1,
                   "ocigate to see the deletion")
        n = len(self.api.token_requests(NS, SA))
        time.sleep(LIFETIME)   # past every refresh point of the last token
        T.expect_eq(len(self.api.token_requests(NS, SA)), n,
                    "TokenRequests after the ServiceAccount was deleted")
        T.expect(self.api.get_secret(NS, SECRET) is not None,
                 "the Secret is left in place")
        T.expect_eq(self.api_authenticates(self.tokens[-1]), 401,
                    "its token died with the ServiceAccount")

    def t_log_clean(self):
        text = self.og.proc.log_text()
        for s in self.tokens + [self.robot_pw, self.api.ocigate_token]:
            T.expect(s not in text, "a secret in the ocigate log")
        T.expect_in("event=pull_secret_written ", text, "write log lines")

    def t_sigterm(self):
        self.og.proc.terminate()
        T.expect_eq(self.og.proc.returncode(), 0, "exit status")
        T.expect_eq(self.api.errors, [], "fixture errors")


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("refresher", keep=args.keep) as env:
        t = RefresherTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: pki, registry, fake API server, ocigate", t.setup, True),
            ("annotated ServiceAccount: dockerconfigjson Secret created",
             t.t_secret_created, True),
            ("curl of a manifest with the Secret's credentials", t.t_pull),
            ("Secret rewritten with a new token before expiry",
             t.t_rewritten_before_expiry),
            ("Secret without the owner annotation left alone",
             t.t_foreign_secret_untouched),
            ("deleted ServiceAccount: no more TokenRequests",
             t.t_deleted_sa_stops),
            ("no secret in the log", t.t_log_clean),
            ("SIGTERM -> exit 0", t.t_sigterm),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
