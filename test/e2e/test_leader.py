#!/usr/bin/env python3
"""Leader election end to end: ocigate replicas in Kubernetes mode against
the fake kube-apiserver (test/e2e/k8sapi.py, which stores
coordination.k8s.io/v1 Leases with resourceVersion conflicts) and a real
docker-registry, [status] probe_interval = 1s, lease_duration = 4s,
renew_deadline = 3s, retry_period = 500ms.

Every replica has its own bearer token (same ServiceAccount user), so the
fake API server's request log tells which replica sent what.  Checks:

  - two replicas: one holds the Lease (identity and transitions logged),
    only it sends Connector status PATCHes, the other logs who holds it;
  - SIGKILL of the holder: the other takes over no earlier than the old
    renewTime + lease_duration and within lease_duration + retry_period
    (plus a margin for the shared machine), leaseTransitions + 1, and then
    writes the status;
  - the holder loses the API server for its Lease only (its Lease requests
    fail, its status PATCHes would still go through): it stops leading
    within renew_deadline of its last successful renew, before its Lease
    could be taken over, and no status PATCH of it comes after the new
    holder's first; no two writers at once;
  - SIGTERM of the holder releases the Lease (empty holderIdentity): the
    standby takes over at once, without waiting for the lease to expire.

    python3 test/e2e/test_leader.py --ocigate build/ocigate
"""

import os
import re
import secrets
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
import k8sapi as K  # noqa: E402
from k8sapi import FakeKubeAPI  # noqa: E402

NS = "team-a"
CONN = "harbor"
PUBLIC = "ocigate.example.com:30500"
STATUS_TYPE = "cpaas.io/distribution-registry-token"
LEASE_NS = K.OCIGATE_NAMESPACE    # the kubeconfig context's namespace
LEASE = "ocigate"
DURATION, DEADLINE, RETRY = 4.0, 3.0, 0.5
MARGIN = 2.0                      # a shared, loaded test machine
STATUS_PATH = ("/apis/connectors.alauda.io/v1alpha1/namespaces/%s/connectors/"
               "%s/status" % (NS, CONN))
LEASE_PATH = ("/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s"
              % (LEASE_NS, LEASE))
ACQUIRED_RE = re.compile(r"event=leader_acquired .*identity=(\S+) "
                         r"transitions=(\d+)")


class Replica(T.Ocigate):
    """ocigate with [kubernetes] (its own kubeconfig and token) and the
    short lease timings above."""

    def __init__(self, env, binary, kubeconfig, token, name):
        T.Ocigate.__init__(
            self, env, binary, [], [], name=name,
            server={"admin_listen": "127.0.0.1:0", "public_address": PUBLIC},
            upstream={"connect_timeout": "2s", "read_timeout": "3s"},
            sections={"kubernetes": {
                "kubeconfig": kubeconfig, "api_timeout": "2s",
                "lease_duration": "%ds" % DURATION,
                "renew_deadline": "%ds" % DEADLINE,
                "retry_period": "%dms" % (RETRY * 1000)},
                "status": {"probe_interval": "1s"}})
        self.token = token

    def leader_metrics(self):
        """(ocigate_leader's identity label and value, acquired_total,
        lease transitions) from /metrics on the admin listener."""
        fams, _ = T.scrape_metrics(self.listeners["admin"])
        (s,) = fams["ocigate_leader"].samples
        return (s.labels["identity"], s.value,
                T.metric_value(fams, "ocigate_leader_acquired_total"),
                T.metric_value(fams, "ocigate_lease_transitions"))

    def acquired(self):
        """[(identity, transitions)] of its leader_acquired lines."""
        return [(m.group(1), int(m.group(2)))
                for m in ACQUIRED_RE.finditer(self.log_text())]


class LeaderTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.replicas = {}
        self.bad = False          # the Secret currently has a wrong password

    def setup(self):
        env = self.env
        self.pki, self.robot_pw, self.reg = T.robot_registry(env)
        self.api = FakeKubeAPI(self.pki).start()
        with open(self.pki.ca_pem, "rb") as f:
            self.api.add_secret(NS, "harbor-ca", {"ca.crt": f.read()})
        self.api.add_secret(NS, "harbor-secret",
                            {"username": "robot", "password": self.robot_pw},
                            type=STATUS_TYPE)
        self.api.add_connector(NS, CONN, self.reg.url, secret="harbor-secret",
                               ca_secret="harbor-ca")
        self.a = self.start_replica("a")
        self.b = self.start_replica("b")

    def start_replica(self, name):
        token = self.api.add_token(
            "tok-%s-%s" % (name, secrets.token_hex(16)), K.OCIGATE_USER,
            groups=self.api._sa_groups(K.OCIGATE_NAMESPACE))
        kc = self.api.write_kubeconfig(self.env.path("kubeconfig-" + name),
                                       user_token=token)
        r = Replica(self.env, self.args.ocigate, kc, token,
                    "ocigate-" + name).start()
        self.replicas[token] = r
        return r

    # -- helpers -----------------------------------------------------------

    def who(self, rec):
        auth = rec["headers"].get("Authorization") or ""
        r = self.replicas.get(auth[len("Bearer "):])
        return r.name if r else "?"

    def status_patches(self, replica=None, ok_only=True):
        return [r for r in self.api.requests()
                if r["method"] == "PATCH" and r["path"] == STATUS_PATH
                and (not ok_only or r["status"] == 200)
                and (replica is None or self.who(r) == replica.name)]

    def lease_writes(self, replica):
        """Successful PUT/POST of the Lease by replica (times)."""
        return [r["time"] for r in self.api.requests()
                if r["method"] in ("PUT", "POST") and r["status"] in (200, 201)
                and r["path"].startswith(LEASE_PATH.rsplit("/", 1)[0])
                and self.who(r) == replica.name]

    def lease(self):
        return (self.api.get_lease(LEASE_NS, LEASE) or {}).get("spec") or {}

    def wait_holder(self, candidates, timeout):
        """The replica among candidates that logged leader_acquired with the
        identity the Lease names."""
        found = {}

        def ok():
            holder = self.lease().get("holderIdentity")
            for r in candidates:
                if holder and any(i == holder for i, _ in r.acquired()):
                    found["r"] = r
                    return True
            return False
        T.wait_for(ok, timeout, 0.05, "a holder among %s"
                   % [r.name for r in candidates])
        return found["r"]

    def toggle(self):
        """Change the Secret's password: the leader's status writer turns
        AuthReady False / True, one status PATCH per toggle."""
        self.bad = not self.bad
        self.api.update_secret(NS, "harbor-secret",
                               {"username": "robot",
                                "password": "wrong" if self.bad
                                else self.robot_pw}, type=STATUS_TYPE)
        return "False" if self.bad else "True"

    def wait_auth(self, want, timeout=15):
        def ok():
            st = (self.api.get_connector(NS, CONN) or {}).get("status") or {}
            return any(c.get("type") == "AuthReady" and c.get("status") == want
                       for c in st.get("conditions") or [])
        T.wait_for(ok, timeout, 0.1, "AuthReady %s" % want)

    # -- cases -------------------------------------------------------------

    def t_one_holder(self):
        holder = self.wait_holder([self.a, self.b], 15)
        other = self.b if holder is self.a else self.a
        self.wait_auth("True")
        for _ in range(2):
            self.wait_auth(self.toggle())
        time.sleep(1.5)
        spec = self.lease()
        T.expect_eq(sorted(spec), ["acquireTime", "holderIdentity",
                                   "leaseDurationSeconds", "leaseTransitions",
                                   "renewTime"], "Lease spec fields")
        T.expect_eq(spec["leaseDurationSeconds"], int(DURATION),
                    "leaseDurationSeconds")
        T.expect_eq(other.acquired(), [], "the standby never led")
        T.expect_eq(len(holder.acquired()), 1, "the holder acquired once")
        T.expect_eq(holder.acquired()[0][0], spec["holderIdentity"],
                    "logged identity = holderIdentity")
        T.expect(K.parse_microtime(spec["renewTime"])
                 > K.parse_microtime(spec["acquireTime"]), "renewed since")
        T.expect_in('event=lease_holder lease=%s/%s holder="%s"'
                    % (LEASE_NS, LEASE, spec["holderIdentity"]),
                    other.log_text(), "the standby logs the holder")
        T.expect(len(self.status_patches(holder)) >= 3,
                 "the holder wrote status (%d PATCHes)"
                 % len(self.status_patches(holder)))
        T.expect_eq(self.status_patches(other, ok_only=False), [],
                    "status PATCH requests of the standby")
        T.expect_eq(holder.leader_metrics(),
                    (spec["holderIdentity"], 1, 1, spec["leaseTransitions"]),
                    "the holder's ocigate_leader, acquired, transitions")
        ident, leading, acquired, _ = other.leader_metrics()
        T.expect(ident != spec["holderIdentity"], "the standby's own identity")
        T.expect_eq((leading, acquired), (0, 0), "the standby's metrics")
        T.expect_eq(self.api.request_count("create", "leases") +
                    self.api.request_count("update", "leases") > 0, True,
                    "Lease writes seen")
        self.holder, self.standby = holder, other

    def t_kill_holder(self):
        old, new = self.holder, self.standby
        transitions = self.lease()["leaseTransitions"]
        old.proc.signal(signal.SIGKILL)
        old.proc.wait(10)
        killed = time.time()
        last_renew = max(self.lease_writes(old))
        took = self.wait_holder([new], DURATION + RETRY + MARGIN + 5)
        T.expect(took is new, "the standby took over")
        first = min(t for t in self.lease_writes(new) if t > last_renew)
        T.diag("takeover %.2fs after SIGKILL, %.2fs after the last renew"
               % (first - killed, first - last_renew))
        T.expect(first - last_renew >= DURATION - 0.05,
                 "no takeover before renewTime + lease_duration (%.2fs)"
                 % (first - last_renew))
        T.expect(first - killed <= DURATION + RETRY + MARGIN,
                 "takeover within lease_duration + retry_period (+%.0fs "
                 "margin): %.2fs" % (MARGIN, first - killed))
        T.expect_eq(self.lease()["leaseTransitions"], transitions + 1,
                    "leaseTransitions + 1")
        T.expect_eq(new.acquired()[-1][1], transitions + 1,
                    "transitions in the new holder's log")
        T.expect_eq(new.leader_metrics()[1:],
                    (1, 1, transitions + 1),
                    "the new holder's ocigate_leader, acquired, transitions")
        before = len(self.status_patches(new))
        self.wait_auth(self.toggle())
        T.expect(len(self.status_patches(new)) > before,
                 "the new holder writes status")
        # a fresh standby for the next case
        self.c = self.start_replica("c")
        time.sleep(1)
        T.expect_eq(self.c.acquired(), [], "the new standby does not lead")
        self.holder, self.standby = new, self.c

    def t_holder_loses_api(self):
        old, new = self.holder, self.standby
        # the holder's Lease requests fail from now on; its status PATCHes
        # would still reach the API server
        cut = time.time()
        self.api.fail_next("/leases", 503, times=100000, token=old.token)
        deadline = time.monotonic() + DURATION + DEADLINE + MARGIN + 10
        took = None
        while time.monotonic() < deadline:
            # keep the status changing, so that whoever leads writes
            self.toggle()
            time.sleep(0.7)
            if new.acquired():
                took = time.time()
                break
        T.expect(took is not None, "the standby took over")
        for _ in range(3):
            self.toggle()
            time.sleep(0.7)
        self.wait_auth("False" if self.bad else "True")
        self.api.clear_failures()
        last_renew = max(t for t in self.lease_writes(old) if t <= cut + 1)
        first_new = min(self.lease_writes(new))
        old_writes = [r["time"] for r in self.status_patches(old)
                      if r["time"] > cut]
        new_writes = [r["time"] for r in self.status_patches(new)]
        T.diag("last renew %.2fs before the cut; old holder's last status "
               "write %.2fs after it; new holder acquired %.2fs after it"
               % (cut - last_renew,
                  (max(old_writes) - last_renew) if old_writes else -1,
                  first_new - last_renew))
        T.expect(old_writes, "the old holder wrote status after the cut, "
                 "while it still led")
        T.expect(max(old_writes) <= last_renew + DEADLINE + 0.5,
                 "the old holder stopped writing within renew_deadline of "
                 "its last renew (%.2fs)" % (max(old_writes) - last_renew))
        T.expect(first_new >= last_renew + DURATION - 0.05,
                 "takeover no earlier than renewTime + lease_duration")
        T.expect(new_writes and max(old_writes) < min(new_writes),
                 "no two writers at once: old last %.2f < new first %.2f"
                 % (max(old_writes), min(new_writes) if new_writes else 0))
        T.expect(re.search(r"event=leader_lost lease=%s/%s identity=\S+ "
                           r'reason="no successful renew for '
                           r'renew_deadline=3000ms"' % (LEASE_NS, LEASE),
                           old.log_text()), "leader_lost logged")
        T.expect_eq(len(self.status_patches(old, ok_only=False))
                    - len([r for r in self.status_patches(old, ok_only=False)
                           if r["time"] <= max(old_writes)]), 0,
                    "no status PATCH request from the old holder since")
        self.holder, self.standby = new, old

    def t_release_on_sigterm(self):
        old, new = self.holder, self.standby
        n_before = len(new.acquired())
        transitions = self.lease()["leaseTransitions"]
        old.proc.terminate()
        T.expect_eq(old.proc.returncode(), 0, "exit status")
        stopped = time.time()
        T.expect_in("event=lease_released lease=%s/%s" % (LEASE_NS, LEASE),
                    old.log_text(), "release logged")
        T.wait_for(lambda: len(new.acquired()) > n_before,
                   RETRY + MARGIN + 2, 0.05, "the standby takes over")
        took = time.time()
        T.diag("takeover %.2fs after the holder exited" % (took - stopped))
        T.expect(took - stopped < DURATION - 0.5,
                 "taken over before the lease would have expired (%.2fs)"
                 % (took - stopped))
        T.expect_eq(self.lease()["leaseTransitions"], transitions + 1,
                    "leaseTransitions + 1")
        self.wait_auth(self.toggle())

    def t_log_clean(self):
        for tok, r in self.replicas.items():
            text = r.log_text()
            for s in (self.robot_pw, tok):
                T.expect(s not in text, "a secret in the %s log" % r.name)
        T.expect(not self.api.errors, "fixture errors: %r" % self.api.errors)


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("leader", keep=args.keep) as env:
        t = LeaderTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: pki, registry, fake API server, two replicas", t.setup,
             True),
            ("two replicas: one holder, only it writes status",
             t.t_one_holder, True),
            ("SIGKILL of the holder: takeover after expiry, in time",
             t.t_kill_holder, True),
            ("holder loses the API server: stops before takeover",
             t.t_holder_loses_api, True),
            ("SIGTERM releases the Lease: immediate takeover",
             t.t_release_on_sigterm),
            ("no secret in the logs, no fixture error", t.t_log_clean),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
