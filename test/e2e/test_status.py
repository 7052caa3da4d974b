#!/usr/bin/env python3
"""Connector status end to end: ocigate in Kubernetes mode against the fake
kube-apiserver (test/e2e/k8sapi.py) and a real docker-registry with htpasswd
users, [status] probe_interval = 1s.

Checks the sequence of status patches (PATCH .../connectors/NAME/status,
application/merge-patch+json, with metadata.resourceVersion) for a connector
whose Secret is missing (SecretReady False naming it, Ready False), then
added (all True, status.proxy.httpAddress.url exact), whose registry is
killed (LivenessReady False) and restarted (True again), with
lastTransitionTime moving only on transitions; that nothing is written
while nothing changes (PATCH requests counted) though the registry keeps
being probed; that a 409 Conflict injected with fail_next is retried after
re-reading the object; wrong credentials (AuthReady False,
CredentialsRejected); an anonymous connector (SecretOptional); a class
other than oci gets no status; and two replicas writing at once produce a
single successful write per change.

    python3 test/e2e/test_status.py --ocigate build/ocigate
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
from k8sapi import FakeKubeAPI  # noqa: E402

NS = "team-a"
CONN = "harbor"
PUBLIC = "ocigate.example.com:30500"
URL = "http://%s/namespaces/%s/connectors/%s" % (PUBLIC, NS, CONN)
STATUS_TYPE = "cpaas.io/distribution-registry-token"
TYPES = ["SecretReady", "LivenessReady", "AuthReady", "Ready"]


def status_ocigate(env, binary, kubeconfig, name="ocigate"):
    """ocigate with [kubernetes] and [status] sections."""
    return T.Ocigate(env, binary, [], [], name=name,
                     server={"public_address": PUBLIC},
                     upstream={"connect_timeout": "2s", "read_timeout": "3s"},
                     sections={"kubernetes": {"kubeconfig": kubeconfig,
                                              "api_timeout": "3s"},
                               "status": {"probe_interval": "1s"}})


def conditions(obj):
    st = (obj or {}).get("status") or {}
    return {c.get("type"): c for c in st.get("conditions") or []}


class StatusTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.seen = {}    # step -> conditions, for lastTransitionTime checks

    def setup(self):
        env = self.env
        self.pki, self.robot_pw, self.reg = T.robot_registry(env)
        self.api = FakeKubeAPI(self.pki).start()
        with open(self.pki.ca_pem, "rb") as f:
            self.ca = f.read()
        self.api.add_secret(NS, "harbor-ca", {"ca.crt": self.ca})
        # the auth Secret is added by a later step
        self.api.add_connector(NS, CONN, self.reg.url, secret="harbor-secret",
                               ca_secret="harbor-ca")
        self.api.add_connector(NS, "git", "https://git.example.com",
                               class_name="git")
        self.kubeconfig = self.api.write_kubeconfig(env.path("kubeconfig"))
        self.og = status_ocigate(env, self.args.ocigate,
                                 self.kubeconfig).start()

    # -- helpers -----------------------------------------------------------

    def patches(self, name=CONN, status=None):
        """PATCH requests of the connector's status, injected failures
        (which the fixture answers before routing) included."""
        path = "/apis/connectors.alauda.io/v1alpha1/namespaces/%s/connectors/%s/status" % (NS, name)
        return [r for r in self.api.requests(status=status)
                if r["method"] == "PATCH" and r["path"] == path]

    def wait_conditions(self, want, name=CONN, timeout=20):
        """Until every type in want has the (status, reason) given."""
        last = {}

        def ok():
            last["c"] = conditions(self.api.get_connector(NS, name))
            return all(t in last["c"]
                       and (last["c"][t]["status"], last["c"][t]["reason"]) == v
                       for t, v in want.items())
        try:
            T.wait_for(ok, timeout, 0.1, "status %r" % (want,))
        except T.TestFailure:
            T.fail("status of %s/%s: %r, wanted %r"
                   % (NS, name, last.get("c"), want))
        return last["c"]

    def check_shape(self, obj, step):
        st = obj["status"]
        gen = obj["metadata"]["generation"]
        T.expect_eq(st["proxy"], {"httpAddress": {"url": URL}},
                    "%s: status.proxy" % step)
        T.expect_eq(st["observedGeneration"], gen, "%s: observedGeneration"
                    % step)
        T.expect_eq([c["type"] for c in st["conditions"]], TYPES,
                    "%s: condition types" % step)
        for c in st["conditions"]:
            T.expect_eq(sorted(c), ["lastTransitionTime", "message",
                                    "observedGeneration", "reason", "status",
                                    "type"], "%s: %s keys" % (step, c["type"]))
            T.expect_eq(c["observedGeneration"], gen, "%s: %s generation"
                        % (step, c["type"]))
            T.expect(time.strptime(c["lastTransitionTime"],
                                   "%Y-%m-%dT%H:%M:%SZ"),
                     "%s: %s time" % (step, c["type"]))

    def check_patch_requests(self):
        T.expect(self.patches(), "status PATCH requests seen")
        for r in self.patches():
            T.expect_eq(r["headers"].get("Content-Type"),
                        "application/merge-patch+json", "PATCH Content-Type")

    # -- cases -------------------------------------------------------------

    def t_secret_missing(self):
        c = self.wait_conditions({
            "SecretReady": ("False", "SecretNotFound"),
            "LivenessReady": ("Unknown", "SecretNotReady"),
            "AuthReady": ("Unknown", "SecretNotReady"),
            "Ready": ("False", "SecretNotFound")})
        T.expect_in("team-a/harbor-secret not found",
                    c["SecretReady"]["message"], "SecretReady message")
        T.expect_eq(c["Ready"]["message"], c["SecretReady"]["message"],
                    "Ready message")
        self.check_shape(self.api.get_connector(NS, CONN), "secret missing")
        self.check_patch_requests()
        self.seen["missing"] = c

    def t_secret_added(self):
        time.sleep(1.1)   # lastTransitionTime has a 1 s resolution
        self.api.add_secret(NS, "harbor-secret",
                            {"username": "robot", "password": self.robot_pw},
                            type=STATUS_TYPE)
        c = self.wait_conditions({
            "SecretReady": ("True", "SecretFound"),
            "LivenessReady": ("True", "RegistryReachable"),
            "AuthReady": ("True", "CredentialsAccepted"),
            "Ready": ("True", "")})
        obj = self.api.get_connector(NS, CONN)
        self.check_shape(obj, "secret added")
        T.expect_eq(obj["status"]["proxy"]["httpAddress"]["url"],
                    "http://ocigate.example.com:30500/namespaces/team-a/"
                    "connectors/harbor", "url")
        T.expect_eq(c["Ready"]["message"], "", "Ready message")
        for t in TYPES:
            T.expect(c[t]["lastTransitionTime"]
                     != self.seen["missing"][t]["lastTransitionTime"],
                     "%s lastTransitionTime moved" % t)
        self.seen["ready"] = c

    def t_no_writes_when_unchanged(self):
        time.sleep(1.5)   # our own write's watch event settles
        before = len(self.patches())
        T.expect(before >= 2, "status PATCHes so far: %d" % before)
        probes = len(self.reg.access_lines('"GET /v2/ '))
        time.sleep(4)
        T.expect_eq(len(self.patches()), before,
                    "PATCH requests over 4 probe intervals with no change")
        T.expect(len(self.reg.access_lines('"GET /v2/ ')) >= probes + 3,
                 "the registry was probed meanwhile (%d -> %d)"
                 % (probes, len(self.reg.access_lines('"GET /v2/ '))))
        T.expect_eq(conditions(self.api.get_connector(NS, CONN)),
                    self.seen["ready"], "status unchanged")

    def t_registry_down(self):
        self.reg.kill()
        c = self.wait_conditions({
            "SecretReady": ("True", "SecretFound"),
            "LivenessReady": ("False", "RegistryUnreachable"),
            "AuthReady": ("Unknown", "RegistryUnreachable"),
            "Ready": ("False", "RegistryUnreachable")})
        T.expect_eq(c["SecretReady"]["lastTransitionTime"],
                    self.seen["ready"]["SecretReady"]["lastTransitionTime"],
                    "SecretReady lastTransitionTime kept")
        T.expect_in("GET /v2/:", c["LivenessReady"]["message"],
                    "LivenessReady message")
        self.check_shape(self.api.get_connector(NS, CONN), "registry down")
        self.seen["down"] = c

    def t_registry_up(self):
        time.sleep(1.1)
        self.reg.restart()
        c = self.wait_conditions({
            "LivenessReady": ("True", "RegistryReachable"),
            "AuthReady": ("True", "CredentialsAccepted"),
            "Ready": ("True", "")}, timeout=30)
        T.expect_eq(c["SecretReady"]["lastTransitionTime"],
                    self.seen["ready"]["SecretReady"]["lastTransitionTime"],
                    "SecretReady lastTransitionTime kept")
        T.expect(c["LivenessReady"]["lastTransitionTime"]
                 != self.seen["down"]["LivenessReady"]["lastTransitionTime"],
                 "LivenessReady lastTransitionTime moved")

    def t_conflict_retried(self):
        time.sleep(1.5)
        inj = self.api.fail_next(r"/connectors/harbor/status$", 409,
                                 method="PATCH")
        gets = self.api.request_count(verb="get", resource="connectors")
        # wrong credentials: a change the writer must write
        self.api.update_secret(NS, "harbor-secret",
                               {"username": "robot", "password": "wrong"},
                               type=STATUS_TYPE)
        c = self.wait_conditions({
            "SecretReady": ("True", "SecretFound"),
            "LivenessReady": ("True", "RegistryReachable"),
            "AuthReady": ("False", "CredentialsRejected"),
            "Ready": ("False", "CredentialsRejected")})
        T.expect_eq(inj.hits, 1, "injected 409s answered")
        T.expect_eq(len(self.patches(status=409)), 1, "PATCHes answered 409")
        T.expect(self.api.request_count(verb="get", resource="connectors")
                 > gets, "the object was read again after the conflict")
        T.expect_in("HTTP 401 to the connector's credentials",
                    c["AuthReady"]["message"], "AuthReady message")
        self.api.update_secret(NS, "harbor-secret",
                               {"username": "robot", "password": self.robot_pw},
                               type=STATUS_TYPE)
        self.wait_conditions({"Ready": ("True", "")})

    def t_anonymous_and_other_class(self):
        self.api.add_connector(NS, "anon", self.reg.url, ca_secret="harbor-ca")
        c = self.wait_conditions({
            "SecretReady": ("True", "SecretOptional"),
            "LivenessReady": ("True", "RegistryReachable"),
            "AuthReady": ("False", "CredentialsRejected"),
            "Ready": ("False", "CredentialsRejected")}, name="anon")
        T.expect_in("without credentials", c["AuthReady"]["message"],
                    "anonymous AuthReady message")
        T.expect_eq(self.patches(name="git"), [], "PATCHes of a git connector")
        T.expect_eq(self.api.get_connector(NS, "git").get("status"), None,
                    "git connector status")

    def t_two_replicas(self):
        og2 = status_ocigate(self.env, self.args.ocigate, self.kubeconfig,
                             name="ocigate2").start()
        try:
            time.sleep(3)   # both settled: the second found nothing to write
            ok_before = len(self.patches(status=200))
            self.api.update_secret(NS, "harbor-secret",
                                   {"username": "robot", "password": "bad2"},
                                   type=STATUS_TYPE)
            self.wait_conditions({"AuthReady": ("False", "CredentialsRejected")})
            time.sleep(3)
            T.expect_eq(len(self.patches(status=200)) - ok_before, 1,
                        "successful PATCHes for one change with two replicas "
                        "(all: %r)" % [(r["status"], r["user"])
                                       for r in self.patches()[-6:]])
            self.api.update_secret(NS, "harbor-secret",
                                   {"username": "robot",
                                    "password": self.robot_pw},
                                   type=STATUS_TYPE)
            self.wait_conditions({"Ready": ("True", "")})
        finally:
            og2.proc.terminate()
        T.expect_eq(og2.proc.returncode(), 0, "second replica exit status")

    def t_log_clean(self):
        text = self.og.proc.log_text()
        for s in (self.robot_pw, self.api.ocigate_token):
            T.expect(s not in text, "a secret in the ocigate log")
        T.expect_in("event=connector_status ", text, "status log lines")

    def t_sigterm(self):
        self.og.proc.terminate()
        T.expect_eq(self.og.proc.returncode(), 0, "exit status")


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("status", keep=args.keep) as env:
        t = StatusTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: pki, registry, fake API server, ocigate", t.setup, True),
            ("Secret missing: SecretReady False naming it, Ready False",
             t.t_secret_missing),
            ("Secret added: all True, url exact, times moved", t.t_secret_added),
            ("nothing changes: probes go on, no PATCH",
             t.t_no_writes_when_unchanged),
            ("registry killed: LivenessReady False", t.t_registry_down),
            ("registry restarted: Ready True again", t.t_registry_up),
            ("409 Conflict is retried after a re-read", t.t_conflict_retried),
            ("anonymous connector; other classes get no status",
             t.t_anonymous_and_other_class),
            ("two replicas: one write per change", t.t_two_replicas),
            ("no secret in the log", t.t_log_clean),
            ("SIGTERM -> exit 0", t.t_sigterm),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
