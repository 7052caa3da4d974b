#!/usr/bin/env python3
"""The image-rewrite admission webhook end to end: ocigate in Kubernetes
mode against the fake kube-apiserver of test/e2e/k8sapi.py, with a
[webhook] section serving HTTPS on a certificate from ocitest.make_pki.
AdmissionReviews (the recorded ones of test/unit/data/admission) are
posted with http.client over TLS, as the API server would.

Checks: images on the connector's registry are rewritten (tags, digests,
ports, Docker Hub short names, all three container lists) and others left
alone, by a JSONPatch that yields exactly the expected images when applied;
Pods without the label are allowed untouched without any API call; a
malformed annotation, a missing connector, a connector of another class are
refused with a message naming the problem; a Connector created later is
used as soon as the watch delivers it; a connector whose Secret is missing
still gets its images rewritten; reviews share a kept-alive connection;
wrong method, path, Content-Type, oversized and malformed bodies get
405/404/415/413/400; replacing the certificate files switches new
connections to the new certificate without a restart, and a broken pair
keeps the old one; inject = no refuses Pods asking for injection with
"connector proxy injection is disabled"; a peer pipelining /healthz
without reading leaves VmRSS bounded and gets every answer; SIGTERM exits 0.

    python3 test/e2e/test_webhook.py --ocigate build/ocigate
"""

import base64
import copy
import http.client
import json
import os
import select
import shutil
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
from k8sapi import FakeKubeAPI  # noqa: E402

NS = "team-a"
PUBLIC = "ocigate.example.com:5000"
PX = PUBLIC + "/namespaces/team-a/connectors/"
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit",
                    "data", "admission")
D64 = "sha256:4b1c5d6e7f80912a3b4c5d6e7f80912a3b4c5d6e7f80912a3b4c5d6e7f80912a"
MAX_BODY = 65536
# The ASan test setup raises it (shadow memory and quarantine are not ours).
RSS_LIMIT_MIB = int(os.environ.get("OCIGATE_TEST_RSS_LIMIT_MIB", "32"))
PIPELINE_SECONDS = 8.0


def load(name):
    with open(os.path.join(DATA, name)) as f:
        return json.load(f)


def pod_images(review):
    """[(json pointer, image or None)] of the review's Pod."""
    spec = review["request"]["object"]["spec"]
    out = []
    for lst in ("containers", "initContainers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(lst) or []):
            out.append(("/spec/%s/%d/image" % (lst, i), c.get("image")))
    return out


def apply_patch(review, patch):
    """Applies "replace" operations to a copy of the Pod; every path must
    name an image it has."""
    pod = copy.deepcopy(review["request"]["object"])
    for op in patch:
        T.expect_eq(op.get("op"), "replace", "patch operation")
        parts = op["path"].lstrip("/").split("/")
        T.expect_eq(len(parts), 4, "patch path %s" % op["path"])
        T.expect(parts[0] == "spec" and parts[3] == "image",
                 "patch path %s is not an image" % op["path"])
        c = pod["spec"][parts[1]][int(parts[2])]
        T.expect("image" in c, "patch replaces a missing image at %s" % op["path"])
        c["image"] = op["value"]
    return pod


def webhook_ocigate(env, binary, kubeconfig, webhook, name="ocigate"):
    """ocigate in Kubernetes mode with a [webhook] section; start() waits
    for the webhook's port (webhook_port)."""
    return T.Ocigate(env, binary, [], [], name=name,
                     server={"public_address": PUBLIC},
                     sections={"kubernetes": {"kubeconfig": kubeconfig},
                               # The status writer's own API traffic would
                               # blur the count of requests the webhook
                               # makes (none for unlabelled Pods).
                               "status": {"enabled": "no"},
                               "webhook": dict(listen="127.0.0.1:0",
                                               **webhook)})


class WebhookTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env

    # -- fixture ----------------------------------------------------------

    def setup(self):
        env = self.env
        self.pki = T.make_pki(env.path("pki"))
        self.pki2 = T.make_pki(env.path("pki2"), cn="ocigate-test-2")
        self.certs = env.mkdir("webhook-certs")
        self.cert = os.path.join(self.certs, "tls.crt")
        self.key = os.path.join(self.certs, "tls.key")
        shutil.copy(self.pki.cert, self.cert)
        shutil.copy(self.pki.key, self.key)

        self.api = FakeKubeAPI(self.pki).start()
        api = self.api
        api.add_secret(NS, "harbor-secret", {"username": "robot", "password": "pw"},
                       type="cpaas.io/distribution-registry-token")
        api.add_connector(NS, "harbor", "https://harbor.example.com",
                          secret="harbor-secret")
        api.add_connector(NS, "local", "http://reg.local:5000")
        api.add_connector(NS, "hub", "https://index.docker.io")
        api.add_connector(NS, "git", "https://github.com", class_name="git")
        api.add_connector(NS, "nosecret", "https://harbor.example.com",
                          secret="missing-secret")
        self.kubeconfig = api.write_kubeconfig(env.path("kubeconfig"))
        self.og = webhook_ocigate(env, self.args.ocigate, self.kubeconfig,
                                  {"cert_file": self.cert, "key_file": self.key,
                                   "max_body": str(MAX_BODY)}).start()
        T.wait_for(self.synced, 15, 0.1, "the webhook to see the connectors")
        T.diag("ocigate %s, webhook port %d, API server %s"
               % (self.og.host, self.og.webhook_port, api.url))

    def synced(self):
        r = self.review(load("rewrite_basic.json"))
        return r["response"]["allowed"]

    # -- helpers ----------------------------------------------------------

    def connect(self, cafile=None, port=None):
        ctx = ssl.create_default_context(cafile=cafile or self.pki.ca_pem)
        return http.client.HTTPSConnection("127.0.0.1", port or self.og.webhook_port,
                                           timeout=10, context=ctx)

    def post(self, body, conn=None, path="/mutate?timeout=10s",
             ctype="application/json", method="POST", port=None):
        own = conn is None
        conn = conn or self.connect(port=port)
        try:
            conn.request(method, path, body=body,
                         headers={"Content-Type": ctype} if ctype else {})
            resp = conn.getresponse()
            return resp.status, resp.read(), dict(resp.getheaders())
        finally:
            if own:
                conn.close()

    def review(self, review, conn=None, port=None):
        status, body, hdrs = self.post(json.dumps(review).encode(), conn=conn,
                                       port=port)
        T.expect_eq(status, 200, "webhook status (body %r)" % body[:300])
        T.expect_in("application/json", hdrs.get("Content-Type", ""),
                    "response Content-Type")
        out = json.loads(body)
        T.expect_eq(out.get("apiVersion"), "admission.k8s.io/v1", "apiVersion")
        T.expect_eq(out.get("kind"), "AdmissionReview", "kind")
        T.expect_eq(out["response"]["uid"], review["request"]["uid"], "uid echoed")
        return out

    def expect_images(self, name, want):
        """Reviews data file name; the patched Pod has exactly want."""
        rv = load(name)
        out = self.review(rv)["response"]
        T.expect(out["allowed"] is True, "%s allowed: %r" % (name, out))
        pod = rv["request"]["object"]
        if "patch" in out:
            T.expect_eq(out.get("patchType"), "JSONPatch", "%s patchType" % name)
            patch = json.loads(base64.b64decode(out["patch"], validate=True))
            pod = apply_patch(rv, patch)
        got = [img for _, img in pod_images({"request": {"object": pod}})]
        T.expect_eq(got, want, "%s images after the patch" % name)
        return out

    def expect_refused(self, review, code, message):
        out = self.review(review)["response"]
        T.expect(out["allowed"] is False, "refused: %r" % out)
        T.expect("patch" not in out, "no patch with a refusal")
        T.expect_eq(out["status"]["code"], code, "status.code")
        T.expect_in(message, out["status"]["message"], "status.message")
        return out

    # -- cases ------------------------------------------------------------

    def t_rewrite(self):
        self.expect_images("rewrite_basic.json",
                           [PX + "harbor/oci-connector-demo:v1",
                            "docker.io/library/busybox:1.36"])
        self.expect_images("rewrite_all_lists.json",
                           [PX + "harbor/team/app@" + D64,
                            PX + "harbor/team/app:v2@" + D64,
                            PX + "harbor/tools/migrate",
                            "quay.io/prometheus/busybox:latest",
                            PX + "harbor/debug/shell:1"])

    def t_ports_and_docker_hub(self):
        self.expect_images("port.json",
                           [PX + "local/a/b:1", "reg.local/a/b:1",
                            "reg.local:5001/a/b:1", PX + "local/c"])
        self.expect_images("dockerhub.json",
                           [PX + "hub/library/nginx", PX + "hub/library/nginx:1.25",
                            PX + "hub/bitnami/redis:7", PX + "hub/library/alpine@" + D64,
                            PX + "hub/x/y:z", "quay.io/a/b", "localhost/nginx"])
        out = self.expect_images("no_match.json",
                                 ["quay.io/a/b:1", "example.com/harbor.example.com/x"])
        T.expect("patch" not in out, "no patch when no image matches")
        T.expect_in("nothing was rewritten", " ".join(out.get("warnings", [])),
                    "a warning says nothing matched")

    def t_untouched_without_api_calls(self):
        before = self.api.request_count()
        for name in ("no_label.json", "label_false.json", "annotation_only.json"):
            out = self.expect_images(name, ["harbor.example.com/app:v1"])
            T.expect("patch" not in out, "%s: no patch" % name)
        T.expect_eq(self.api.request_count(), before,
                    "API requests while reviewing Pods without the label")

    def t_refusals(self):
        self.expect_refused(load("label_no_annotation.json"), 400,
                            "but no annotation connectors.cpaas.io/connector")
        self.expect_refused(load("annotation_no_slash.json"), 400,
                            'connectors.cpaas.io/connector="harbor" is malformed')
        self.expect_refused(load("connector_missing.json"), 404,
                            "connector team-a/nope (annotation "
                            "connectors.cpaas.io/connector) does not exist")
        self.expect_refused(load("connector_not_oci.json"), 403,
                            'connector team-a/git has class "git", not "oci"')
        self.expect_refused(load("image_uppercase.json"), 400,
                            "repository name must be lowercase")
        # the proxy's digest grammar (util/names.h): a reference it would
        # answer 404 to is not written into the pod
        for bad in ("@SHA256:" + D64[7:], "@sha256:" + D64[7:].upper(), "@sha256:" + D64[7:39]):
            review = load("image_uppercase.json")
            c = review["request"]["object"]["spec"]["containers"][1]
            c["image"] = "harbor.example.com/team/app" + bad
            self.expect_refused(review, 400, "bad digest")

    def t_secret_missing_still_rewritten(self):
        rv = load("rewrite_basic.json")
        rv["request"]["object"]["metadata"]["annotations"][
            "connectors.cpaas.io/connector"] = "team-a/nosecret"
        out = self.review(rv)["response"]
        T.expect(out["allowed"] is True, "allowed: %r" % out)
        pod = apply_patch(rv, json.loads(base64.b64decode(out["patch"])))
        T.expect_eq([i for _, i in pod_images({"request": {"object": pod}})],
                    [PX + "nosecret/oci-connector-demo:v1",
                     "docker.io/library/busybox:1.36"], "images")

    def t_connector_created_later(self):
        rv = load("rewrite_basic.json")
        rv["request"]["object"]["metadata"]["annotations"][
            "connectors.cpaas.io/connector"] = "team-a/late"
        self.expect_refused(rv, 404, "connector team-a/late")
        self.api.add_connector(NS, "late", "https://harbor.example.com")

        def allowed():
            return self.review(rv)["response"]["allowed"]
        T.wait_for(allowed, 10, 0.1, "the new connector to be used")
        self.api.delete_connector(NS, "late")
        T.wait_for(lambda: not allowed(), 10, 0.1, "the deleted connector to be refused")

    def t_chunked(self):
        body = json.dumps(load("rewrite_basic.json")).encode()
        conn = self.connect()
        try:
            conn.request("POST", "/mutate", body=iter([body[:100], body[100:]]),
                         headers={"Content-Type": "application/json"},
                         encode_chunked=True)
            resp = conn.getresponse()
            T.expect_eq(resp.status, 200, "chunked AdmissionReview")
            out = json.loads(resp.read())["response"]
        finally:
            conn.close()
        pod = apply_patch(load("rewrite_basic.json"), json.loads(base64.b64decode(out["patch"])))
        T.expect_eq(pod["spec"]["containers"][0]["image"], PX + "harbor/oci-connector-demo:v1",
                    "image")

    def t_manifest(self):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import k8sapi as K
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                            "packaging", "kubernetes", "webhook.yaml")
        with open(path) as f:
            docs = [d for d in K.yaml_load_all(f.read(), path) if d]
        T.expect_eq([d["kind"] for d in docs], ["MutatingWebhookConfiguration", "Service"],
                    "kinds")
        wh = docs[0]["webhooks"][0]
        T.expect_eq(wh["objectSelector"], {"matchLabels": {
            "connectors.cpaas.io/proxy-inject": "true"}}, "objectSelector")
        T.expect_eq(wh["rules"][0]["operations"], ["CREATE"], "operations")
        T.expect_eq(wh["rules"][0]["resources"], ["pods"], "resources")
        T.expect_eq(wh["admissionReviewVersions"], ["v1"], "admissionReviewVersions")
        T.expect_eq(wh["sideEffects"], "None", "sideEffects")
        T.expect_eq(wh["failurePolicy"], "Fail", "failurePolicy")
        T.expect(1 <= int(wh["timeoutSeconds"]) <= 30, "timeoutSeconds")
        svc = wh["clientConfig"]["service"]
        T.expect_eq((svc["name"], svc["path"]), (docs[1]["metadata"]["name"], "/mutate"),
                    "service and path")
        T.expect_eq(docs[1]["spec"]["ports"][0]["port"], svc["port"], "service port")

    def t_keep_alive(self):
        conn = self.connect()
        try:
            for name in ("rewrite_basic.json", "no_label.json", "connector_missing.json",
                         "dockerhub.json"):
                self.review(load(name), conn=conn)
        finally:
            conn.close()
        T.expect_eq(self.og.log_text().count("event=webhook_close"), 0,
                    "debug close lines (log level info)")

    def t_http_errors(self):
        body = json.dumps(load("rewrite_basic.json")).encode()
        st, b, _ = self.post(body, method="PUT")
        T.expect_eq(st, 405, "PUT /mutate")
        st, b, _ = self.post(body, path="/validate")
        T.expect_eq(st, 404, "POST /validate")
        st, b, _ = self.post(body, ctype="text/plain")
        T.expect_eq(st, 415, "text/plain body")
        st, b, _ = self.post(body, ctype=None)
        T.expect_eq(st, 415, "no Content-Type")
        st, b, _ = self.post(b'{"kind":"AdmissionReview",')
        T.expect_eq(st, 400, "truncated JSON")
        T.expect_in(b"AdmissionReview", b, "400 body says why")
        st, b, _ = self.post(json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode())
        T.expect_eq(st, 400, "not an AdmissionReview")
        big = load("rewrite_basic.json")
        big["request"]["object"]["metadata"]["annotations"]["pad"] = "x" * MAX_BODY
        st, b, _ = self.post(json.dumps(big).encode())
        T.expect_eq(st, 413, "body over max_body")
        st, b, _ = self.post(None, path="/healthz", method="GET", ctype=None)
        T.expect_eq((st, b), (200, b"ok\n"), "GET /healthz")
        # still serving after all that
        self.expect_images("rewrite_basic.json",
                           [PX + "harbor/oci-connector-demo:v1",
                            "docker.io/library/busybox:1.36"])

    def handshake_ok(self, cafile):
        conn = self.connect(cafile=cafile)
        try:
            conn.connect()
            return True
        except ssl.SSLError:
            return False
        finally:
            conn.close()

    def t_pipelined_healthz(self):
        """A peer that pipelines GET /healthz without reading: the webhook
        stops reading once answers pile up (VmRSS stays bounded), and every
        answer is there when the peer reads."""
        batch = 64  # requests per TLS write
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * batch
        ok = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
              b"Content-Length: 3\r\n\r\nok\n")
        ctx = ssl.create_default_context(cafile=self.pki.ca_pem)
        raw = socket.create_connection(("127.0.0.1", self.og.webhook_port), timeout=10)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        s.setblocking(False)
        sent, got = 0, bytearray()
        pending = False  # an SSL write must be retried with the same bytes
        deadline = time.monotonic() + PIPELINE_SECONDS
        with T.RssSampler(self.og.pid) as rss:
            while time.monotonic() < deadline:
                select.select([], [s], [], 0.2)
                try:
                    s.send(req)
                    sent += batch
                    pending = False
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pending = True
        try:
            end = time.monotonic() + 60
            while (pending or len(got) < sent * len(ok)) and time.monotonic() < end:
                if pending:
                    try:
                        s.send(req)
                        sent += batch
                        pending = False
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        pass
                select.select([s], [], [], 0.2)
                try:
                    while True:
                        b = s.recv(1 << 20)
                        if not b:
                            T.fail("the webhook closed after %d of %d answers"
                                   % (len(got) // len(ok), sent))
                        got += b
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
        finally:
            s.close()
        T.diag("  %d pipelined requests, peak VmRSS %.1f MiB (limit %d MiB)"
               % (sent, rss.peak_kib / 1024, RSS_LIMIT_MIB))
        T.expect(rss.samples > 0, "no RSS samples")
        T.expect(rss.peak_kib < RSS_LIMIT_MIB * 1024, "peak VmRSS %.1f MiB >= %d MiB"
                 % (rss.peak_kib / 1024, RSS_LIMIT_MIB))
        T.expect(bytes(got) == ok * sent, "%d bytes of answers for %d requests, want %d "
                 "identical 200 ok answers" % (len(got), sent, sent))

    def t_cert_reload(self):
        T.expect(self.handshake_ok(self.pki.ca_pem), "first certificate served")
        T.expect(not self.handshake_ok(self.pki2.ca_pem), "second CA not trusted yet")
        old = self.connect()
        old.connect()
        # as a Secret volume does: new files, then one rename each
        for src, dst in ((self.pki2.cert, self.cert), (self.pki2.key, self.key)):
            shutil.copy(src, dst + ".new")
            os.replace(dst + ".new", dst)
        T.wait_for(lambda: self.handshake_ok(self.pki2.ca_pem), 10, 0.2,
                   "the new certificate to be served")
        T.expect(not self.handshake_ok(self.pki.ca_pem), "old certificate no longer served")
        T.expect_in("event=webhook_cert_reloaded", self.og.log_text(), "reload logged")
        # a connection made before the switch keeps working
        self.review(load("no_label.json"), conn=old)
        old.close()
        # a broken pair is refused and the working one kept
        with open(self.cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        T.wait_for(lambda: "event=webhook_cert_reload_failed" in self.og.log_text(), 10,
                   0.2, "the broken certificate to be reported")
        T.expect(self.handshake_ok(self.pki2.ca_pem), "previous pair still served")
        shutil.copy(self.pki.cert, self.cert)
        shutil.copy(self.pki.key, self.key)
        T.wait_for(lambda: self.handshake_ok(self.pki.ca_pem), 10, 0.2,
                   "the first certificate to come back")

    def t_inject_disabled(self):
        og = webhook_ocigate(self.env, self.args.ocigate, self.kubeconfig,
                             {"cert_file": self.cert, "key_file": self.key,
                              "inject": "no"}, name="ocigate-noinject").start()
        try:
            out = self.review(load("rewrite_basic.json"), port=og.webhook_port)["response"]
            T.expect(out["allowed"] is False, "refused with inject = no")
            T.expect_eq(out["status"]["message"], "connector proxy injection is disabled",
                        "status.message")
            out = self.review(load("no_label.json"), port=og.webhook_port)["response"]
            T.expect(out["allowed"] is True and "patch" not in out,
                     "Pods without the label still allowed")
        finally:
            T.expect_eq(og.stop(), 0, "exit status of the inject = no instance")

    def t_sigterm(self):
        rc = self.og.stop()
        T.expect_eq(rc, 0, "ocigate exit status after SIGTERM")
        log = self.og.log_text()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            T.expect(bad not in log, "%s report in the ocigate log" % bad)


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("webhook", keep=args.keep) as env:
        t = WebhookTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("setup: pki, fake API server, ocigate with [webhook]", t.setup, True),
            ("images on the connector's registry rewritten, others kept", t.t_rewrite),
            ("ports, Docker Hub short names, no match", t.t_ports_and_docker_hub),
            ("Pods without the label: untouched, no API call",
             t.t_untouched_without_api_calls),
            ("malformed annotation, missing connector, not oci, bad image: refused",
             t.t_refusals),
            ("connector with a missing Secret: still rewritten",
             t.t_secret_missing_still_rewritten),
            ("a Connector created later is used, a deleted one refused",
             t.t_connector_created_later),
            ("several reviews on one kept-alive connection", t.t_keep_alive),
            ("chunked request body", t.t_chunked),
            ("packaging/kubernetes/webhook.yaml matches the webhook", t.t_manifest),
            ("405, 404, 415, 400, 413, /healthz", t.t_http_errors),
            ("/healthz pipelined for %gs without reading: RSS < %d MiB, every "
             "answer arrives" % (PIPELINE_SECONDS, RSS_LIMIT_MIB), t.t_pipelined_healthz),
            ("certificate files replaced: new certificate without restart",
             t.t_cert_reload),
            ("inject = no refuses Pods asking for injection", t.t_inject_disabled),
            ("SIGTERM -> exit 0, no sanitizer report", t.t_sigterm),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
