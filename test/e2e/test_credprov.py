#!/usr/bin/env python3
"""ocigate-credential-provider end to end: the kubelet's side of a pull
without a pull secret.  The plugin is run as the kubelet runs it (the args
of packaging/kubelet/credential-provider-config.yaml, a
CredentialProviderRequest on stdin) with a ServiceAccount token the fake
kube-apiserver of test/e2e/k8sapi.py minted for the audience "ocigate";
containerd's ctr then pulls through ocigate in Kubernetes mode with the
user name and password the plugin printed, as the kubelet would hand them
to the runtime.

Checks: the shipped CredentialProviderConfig has the fields the kubelet
needs (tokenAttributes with serviceAccountTokenAudience, requireServiceAccount,
cacheType) and its args are accepted by the plugin; the response is a
CredentialProviderResponse for exactly the proxy address, with the token as
password and a cacheDuration below the token's remaining life (and within
--max-cache-duration); a real ctr pull with those credentials gets the
image, with one TokenReview for the audience "ocigate"; a token for another
audience is refused by ocigate; a missing token (what a kubelet without
tokenAttributes sends) and malformed stdin give a clear message on stderr,
nothing on stdout and exit status 1; a bad command line exits 2; no token
appears on stderr.

    python3 test/e2e/test_credprov.py --ocigate build/ocigate \\
        [--credprov build/ocigate-credential-provider]
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
from k8sapi import FakeKubeAPI, ServiceAccount, rule, yaml_load_all  # noqa: E402
from test_k8s import k8s_ocigate  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBELET_CONFIG = os.path.join(ROOT, "packaging", "kubelet",
                              "credential-provider-config.yaml")
NS, CONN, SA = "team-a", "harbor", "puller"
AUDIENCE = "ocigate"
API_VERSION = "credentialprovider.kubelet.k8s.io/v1"
PROG = "ocigate-credential-provider"


def go_duration_seconds(s):
    """"1h2m3s" -> 3723 (the subset the plugin writes)."""
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(\d+)s", s)
    T.expect(m is not None, "cacheDuration %r is a Go duration" % s)
    h, mi, se = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + se


def request(token=None, image="x/y", annotations=None, **extra):
    r = {"apiVersion": API_VERSION, "kind": "CredentialProviderRequest",
         "image": image}
    if token is not None:
        r["serviceAccountToken"] = token
    if annotations is not None:
        r["serviceAccountAnnotations"] = annotations
    r.update(extra)
    return json.dumps(r).encode()


class CredprovTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.tokens = []

    # -- fixture ----------------------------------------------------------

    def setup(self):
        env = self.env
        T.expect(os.access(self.args.credprov, os.X_OK),
                 "%s is an executable (build it first)" % self.args.credprov)
        self.pki, self.robot_pw, self.reg = T.robot_registry(env)
        self.lay = T.make_oci_layout(env.path("layout"), 2 * T.MiB)
        T.seed_registry(self.reg, self.lay, tags=("v1",), index_repo=None)

        self.api = FakeKubeAPI(self.pki).start()
        api = self.api
        api.add_role("connector-user",
                     [rule(["get"], ["connectors"], ["connectors.alauda.io"])],
                     namespace=NS)
        api.add_binding("connector-user", "connector-user",
                        [ServiceAccount(NS, SA)], namespace=NS)
        with open(self.pki.ca_pem, "rb") as f:
            ca = f.read()
        api.add_secret(NS, "harbor-secret",
                       {"username": "robot", "password": self.robot_pw},
                       type="cpaas.io/distribution-registry-token")
        api.add_secret(NS, "harbor-ca", {"ca.crt": ca})
        api.add_connector(NS, CONN, self.reg.url, secret="harbor-secret",
                          ca_secret="harbor-ca")
        self.kubeconfig = api.write_kubeconfig(env.path("kubeconfig"))
        # TokenReview with spec.audiences = [ocigate]: only tokens the
        # kubelet requested for this plugin's audience pass.
        self.og = k8s_ocigate(env, self.args.ocigate, self.kubeconfig,
                              {"audiences": AUDIENCE,
                               "api_timeout": "2s"}).start()
        tok = self.sa_token()
        T.wait_for(lambda: T.request(self.og.port, "GET", self.og_path(),
                                     {"Authorization": T.basic_auth("x", tok),
                                      "Accept": T.ACCEPT_ALL}).status != 503,
                   15, 0.1, "ocigate to list the connectors")
        self.cd = T.Containerd(env).start()
        self.hosts = self.cd.hosts_dir(self.og.host, self.og.url)
        self.args_from_config = self.kubelet_args()
        T.diag("ocigate %s, registry %s, API server %s, plugin args %s"
               % (self.og.host, self.reg.host, api.url, self.args_from_config))

    def sa_token(self, audiences=(AUDIENCE,), expires_in=3600):
        """A token as the kubelet requests it for a Pod of SA."""
        tok = self.api.mint_service_account_token(
            NS, SA, audiences=list(audiences), expires_in=expires_in,
            pod=("app-0", "6c1a3c7e-51a4-4f0e-9a43-0d1f2b3c4d5e"))
        self.tokens.append(tok)
        return tok

    def og_path(self):
        return T.proxy_path(NS, CONN, "demo/app", "manifests", "v1")

    def image_ref(self):
        return "%s/namespaces/%s/connectors/%s/demo/app:v1" % (
            self.og.host, NS, CONN)

    def kubelet_args(self):
        """The shipped provider's args, with the proxy address pointed at
        this ocigate."""
        (cfg,) = yaml_load_all(open(KUBELET_CONFIG).read(), KUBELET_CONFIG)
        (prov,) = cfg["providers"]
        args = list(prov["args"])
        i = args.index("--proxy")
        args[i + 1] = self.og.host
        return args

    def plugin(self, stdin, args=None, check_clean=True):
        cp = T.run_tool([self.args.credprov] + (self.args_from_config
                                                if args is None else args),
                        input=stdin, check=False, timeout=30)
        if check_clean:
            err = cp.stderr.decode("utf-8", "replace")
            for tok in self.tokens:
                T.expect(tok not in err, "a token on the plugin's stderr")
        return cp

    def expect_refused(self, cp, rc, msg, what):
        T.expect_eq(cp.returncode, rc, "exit status, " + what)
        T.expect_eq(cp.stdout, b"", "stdout, " + what)
        T.expect_in(msg, cp.stderr.decode("utf-8", "replace"),
                    "stderr, " + what)

    # -- cases ------------------------------------------------------------

    def t_shipped_config(self):
        (cfg,) = yaml_load_all(open(KUBELET_CONFIG).read(), KUBELET_CONFIG)
        T.expect_eq((cfg["apiVersion"], cfg["kind"]),
                    ("kubelet.config.k8s.io/v1", "CredentialProviderConfig"),
                    "config identity")
        (prov,) = cfg["providers"]
        T.expect_eq(prov["name"], PROG, "provider name = executable name")
        T.expect_eq(prov["apiVersion"], API_VERSION, "provider apiVersion")
        T.expect(prov.get("matchImages"), "matchImages")
        T.expect(prov.get("defaultCacheDuration"), "defaultCacheDuration")
        ta = prov["tokenAttributes"]
        T.expect_eq((ta["serviceAccountTokenAudience"],
                     ta["requireServiceAccount"], ta["cacheType"]),
                    (AUDIENCE, True, "ServiceAccount"), "tokenAttributes")
        proxy = prov["args"][prov["args"].index("--proxy") + 1]
        T.expect_eq(prov["matchImages"], [proxy],
                    "matchImages is the proxy address of --proxy")
        # the shipped args themselves are accepted
        tok = self.sa_token()
        cp = self.plugin(request(tok), args=prov["args"])
        T.expect_eq(cp.returncode, 0, "exit status with the shipped args (%s)"
                    % cp.stderr.decode().strip())
        T.expect_eq(list(json.loads(cp.stdout)["auth"]), [proxy],
                    "auth key with the shipped args")

    def t_response(self):
        tok = self.sa_token(expires_in=3600)
        cp = self.plugin(request(tok, image=self.image_ref(),
                                 annotations={"example.com/x": "y"}))
        T.expect_eq(cp.returncode, 0, "exit status (%s)"
                    % cp.stderr.decode().strip())
        T.expect_eq(cp.stderr, b"", "stderr")
        resp = json.loads(cp.stdout)
        T.expect_eq((resp["apiVersion"], resp["kind"], resp["cacheKeyType"]),
                    (API_VERSION, "CredentialProviderResponse", "Registry"),
                    "response identity")
        T.expect_eq(resp["auth"], {self.og.host: {"username": "ocigate",
                                                  "password": tok}},
                    "auth")
        # --max-cache-duration 30m in the shipped config caps an hour's token
        T.expect_eq(go_duration_seconds(resp["cacheDuration"]), 1800,
                    "cacheDuration of a one-hour token")
        self.creds = resp["auth"][self.og.host]

    def t_short_token(self):
        """A token with 400 s left: cached 400 - 300 (margin) = 100 s or a
        second less, never past the token's end."""
        tok = self.sa_token(expires_in=400)
        cp = self.plugin(request(tok))
        T.expect_eq(cp.returncode, 0, "exit status")
        secs = go_duration_seconds(json.loads(cp.stdout)["cacheDuration"])
        T.expect(98 <= secs <= 100, "cacheDuration %ds for 400s left" % secs)
        tok = self.sa_token(expires_in=200)
        cp = self.plugin(request(tok))
        T.expect_eq(json.loads(cp.stdout)["cacheDuration"], "0s",
                    "cacheDuration for a token inside the margin")

    def t_ctr_pull(self):
        c = self.creds
        ref = self.image_ref()
        self.api.reset_counters()
        self.cd.pull(ref, self.hosts, user="%s:%s" % (c["username"],
                                                      c["password"]))
        T.expect_eq(self.cd.images().get(ref, (None, None))[1],
                    self.lay.single.digest, "pulled image digest")
        missing = [b.digest for b in self.lay.single.blobs()
                   if b.digest not in self.cd.content()]
        T.expect_eq(missing, [], "layers missing after ctr pull")
        T.expect_eq(self.api.tokenreview_count(c["password"]), 1,
                    "TokenReviews for the whole pull")

    def t_wrong_audience(self):
        """A token for the API server's audience (a mounted Pod token, say)
        is not accepted: only the kubelet's "ocigate" tokens are."""
        tok = self.sa_token(audiences=("https://kubernetes.default.svc",))
        cp = self.plugin(request(tok))
        T.expect_eq(cp.returncode, 0, "the plugin passes any token on")
        c = json.loads(cp.stdout)["auth"][self.og.host]
        r = T.request(self.og.port, "GET", self.og_path(),
                      {"Authorization": T.basic_auth(c["username"],
                                                     c["password"]),
                       "Accept": T.ACCEPT_ALL})
        T.expect_eq(r.status, 401, "ocigate status for a token of another "
                    "audience")

    def t_missing_token(self):
        for what, body in (("no serviceAccountToken", request()),
                           ("empty serviceAccountToken", request("")),
                           ("null serviceAccountToken",
                            request(serviceAccountToken=None))):
            cp = self.plugin(body)
            self.expect_refused(cp, 1, PROG + ": the request has no "
                                "serviceAccountToken: give this provider "
                                "tokenAttributes", what)

    def t_malformed(self):
        tok = self.sa_token()
        good = request(tok)
        cases = [
            ("empty stdin", b"", "the request is empty"),
            ("YAML instead of JSON", b"apiVersion: " + API_VERSION.encode()
             + b"\nkind: CredentialProviderRequest\n", "the request is not JSON"),
            ("truncated", good[:-5], "the request is not JSON"),
            ("trailing garbage", good + b"}", "the request is not JSON"),
            ("binary", os.urandom(64) + b"\x00", "the request is not JSON"),
            ("an array", b"[" + good + b"]",
             "the request must be a JSON object (got array)"),
            ("v1beta1", good.replace(b'/v1"', b'/v1beta1"'),
             'apiVersion "credentialprovider.kubelet.k8s.io/v1beta1" is not '
             'supported'),
            ("wrong kind", good.replace(b"CredentialProviderRequest",
                                        b"CredentialProviderResponse"),
             "kind is not CredentialProviderRequest"),
            ("no image", request(tok, image=None),
             "image is missing, empty or not a string"),
            ("token with a newline", request(tok + "\n"),
             "serviceAccountToken holds a space, control or non-ASCII "
             "character"),
            ("2 MiB of spaces", b" " * (2 << 20),
             "the request is larger than 1048576 bytes"),
        ]
        for what, body, msg in cases:
            cp = self.plugin(body)
            self.expect_refused(cp, 1, PROG + ": malformed "
                                "CredentialProviderRequest: " + msg, what)

    def t_command_line(self):
        cp = self.plugin(b"", args=[])
        self.expect_refused(cp, 2, "--proxy HOST[:PORT] is required",
                            "without --proxy")
        cp = self.plugin(b"", args=["--proxy", "https://%s" % self.og.host])
        self.expect_refused(cp, 2, "without scheme, user or path",
                            "--proxy with a scheme")
        cp = self.plugin(b"", args=["--proxy", "og:5000",
                                    "--max-cache-duration", "soon"])
        self.expect_refused(cp, 2, "'soon' is not a duration", "bad duration")
        cp = self.plugin(b"", args=["--proxy", "og:5000", "--cache-key-type",
                                    "Pod"])
        self.expect_refused(cp, 2, "--cache-key-type must be Registry or Image",
                            "bad cache key type")
        cp = self.plugin(b"", args=["--help"])
        T.expect_eq(cp.returncode, 0, "--help exit status")
        T.expect_in(b"Usage: " + PROG.encode(), cp.stdout, "--help output")
        cp = self.plugin(b"", args=["--version"])
        T.expect_eq(cp.returncode, 0, "--version exit status")
        T.expect(cp.stdout.startswith(PROG.encode() + b" "), "--version output")
        # Image cache key, on request
        cp = self.plugin(request(self.sa_token()),
                         args=self.args_from_config + ["--cache-key-type",
                                                       "Image"])
        T.expect_eq(json.loads(cp.stdout)["cacheKeyType"], "Image",
                    "--cache-key-type Image")

    def t_log_clean(self):
        log = self.og.log_text()
        for s in self.tokens + [self.robot_pw]:
            if s in log:
                T.fail("secret %s... in the ocigate log" % s[:8])


def main():
    def extra(ap):
        ap.add_argument("--credprov", help="path to ocigate-credential-provider "
                        "(default: next to --ocigate)")
    args = T.parse_args(__doc__, extra)
    if not args.credprov:
        args.credprov = os.path.join(os.path.dirname(args.ocigate), PROG)
    args.credprov = os.path.abspath(args.credprov)
    T.start_watchdog(args.timeout)
    with T.Env("credprov", keep=args.keep) as env:
        t = CredprovTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: pki, registry, fake API server, ocigate (audiences = "
             "ocigate), containerd", t.setup, True),
            ("the shipped CredentialProviderConfig: tokenAttributes, args "
             "the plugin accepts", t.t_shipped_config),
            ("response: auth for the proxy, token as password, cacheDuration "
             "capped", t.t_response, True),
            ("cacheDuration stays below the token's remaining life",
             t.t_short_token),
            ("ctr pull through ocigate with the plugin's credentials",
             t.t_ctr_pull),
            ("a token of another audience is refused by ocigate",
             t.t_wrong_audience),
            ("missing token: message on stderr, exit 1", t.t_missing_token),
            ("malformed stdin: message on stderr, nothing on stdout, exit 1",
             t.t_malformed),
            ("command line: --proxy required and checked, --help, --version",
             t.t_command_line),
            ("no token or password in the ocigate log", t.t_log_clean),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
