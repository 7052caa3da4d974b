#!/usr/bin/env python3
"""Tests of the fake Kubernetes API server (k8sapi.py) over real TLS, and of
the manifests in packaging/kubernetes/: the fixture must behave like
kube-apiserver, or ocigate's Kubernetes-mode tests prove nothing.

    python3 test/e2e/test_k8sapi_fixture.py [--keep] [--timeout S]

Needs python3 and openssl only.  TAP output, exit 1 on any failure.
"""

import argparse
import base64
import glob
import gzip
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
import k8sapi as K  # noqa: E402
import kustomize as Z  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MANIFESTS = os.path.join(ROOT, "packaging", "kubernetes")

CONN = "/apis/connectors.alauda.io/v1alpha1"
TR = "/apis/authentication.k8s.io/v1/tokenreviews"
SAR = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/%s/leases"
UNAUTHORIZED = (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":'
                b'"Failure","message":"Unauthorized","reason":"Unauthorized",'
                b'"code":401}\n')


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            T.fail("not JSON: %r" % self.body[:300])


class Client:
    """http.client over TLS with one kept-alive connection."""

    def __init__(self, api, token=None, cert=None, timeout=10):
        self.api = api
        self.token = api.ocigate_token if token is None else token
        self.ctx = api.pki.ssl_context()
        if cert:
            self.ctx.load_cert_chain(*cert)
        self.timeout = timeout
        self.conn = None
        self.reused = False

    def connect(self):
        self.conn = http.client.HTTPSConnection(
            "127.0.0.1", self.api.port, timeout=self.timeout, context=self.ctx)
        return self.conn

    def req(self, method, path, body=None, headers=None, token=None):
        h = {}
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        if self.conn is None:
            self.connect()
        try:
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        except (ConnectionError, ssl.SSLEOFError,
                http.client.RemoteDisconnected):
            if not self.reused:
                self.close()
                raise
            # the server closed a kept-alive connection: what every client
            # does, send again on a new one
            self.close()
            self.connect()
            self.conn.request(method, path, body=body, headers=h)
            r = self.conn.getresponse()
        self.reused = True
        return Resp(r.status, r.getheaders(), r.read())

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.reused = False


class Stream:
    """A request on its own TLS socket whose response is read chunk by chunk,
    so that the framing of watch streams can be checked exactly.  TLS
    ragged EOFs raise (suppress_ragged_eofs=False): an abrupt close is
    visible as such."""

    def __init__(self, api, path, token=None, headers=None, timeout=10):
        raw = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
        self.sock = api.pki.ssl_context().wrap_socket(
            raw, server_hostname="127.0.0.1", suppress_ragged_eofs=False)
        self.buf = b""
        self.api = api
        self.request("GET", path, token, headers)

    def request(self, method, path, token=None, headers=None):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d"
                 % self.api.port, "Authorization: Bearer %s"
                 % (token or self.api.ocigate_token)]
        lines += ["%s: %s" % kv for kv in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.read_head()

    def _fill(self):
        b = self.sock.recv(65536)
        if not b:
            raise EOFError("clean TLS close")
        self.buf += b

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("latin-1")

    def read_head(self):
        st = self._line().split(" ", 2)
        self.status = int(st[1])
        self.headers = {}
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.gz = None
        if self.headers.get("content-encoding") == "gzip":
            self.gz = zlib.decompressobj(31)
        self.pending = b""
        self.chunks = []

    def body(self):
        n = int(self.headers["content-length"])
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def chunk(self):
        """The next chunk's data; b"" for the terminal chunk."""
        size = int(self._line().split(";")[0], 16)
        if size == 0:
            T.expect_eq(self._line(), "", "end of the terminal chunk")
            return b""
        while len(self.buf) < size + 2:
            self._fill()
        data, crlf, self.buf = (self.buf[:size], self.buf[size:size + 2],
                                self.buf[size + 2:])
        T.expect_eq(crlf, b"\r\n", "chunk terminator")
        self.chunks.append(data)
        return data

    def event(self):
        """The next watch event, or None at the terminal chunk."""
        while b"\n" not in self.pending:
            c = self.chunk()
            if c == b"":
                T.expect_eq(self.pending, b"", "bytes before the end")
                return None
            self.pending += self.gz.decompress(c) if self.gz else c
        line, _, self.pending = self.pending.partition(b"\n")
        return json.loads(line)

    def events(self, n):
        out = []
        for _ in range(n):
            ev = self.event()
            if ev is None:
                T.fail("stream ended after %d of %d events: %r" % (len(out), n,
                                                                  out))
            out.append(ev)
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def read_text(path):
    with open(path) as f:
        return f.read()


def tokenreview(token, audiences=None):
    spec = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": spec}


def sar(user, groups=(), **attrs):
    spec = {"resourceAttributes": attrs}
    if user:
        spec["user"] = user
    if groups:
        spec["groups"] = list(groups)
    return {"apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview", "spec": spec}


def conn_attrs(ns, name, verb="get", sub=None):
    a = {"namespace": ns, "verb": verb, "group": "connectors.alauda.io",
         "resource": "connectors", "name": name}
    if sub:
        a["subresource"] = sub
    return a


class FixtureTest:
    def __init__(self, env):
        self.env = env

    # ---- setup and basics

    def setup(self):
        self.pki = T.make_pki(self.env.path("pki"))
        self.api = K.FakeKubeAPI(self.pki).start()
        self.c = Client(self.api)

    def isolated(self, fn):
        """fn with the API server up and a connection of its own, whatever
        the subtest before it left behind (a failed stop/start, a
        half-read response on the shared client)."""
        def run():
            if not self.api.running:
                self.api.start()
            self.c.close()
            self.c = Client(self.api)
            fn()
        run.__name__ = fn.__name__
        return run

    def t_unauthenticated_paths(self):
        r = self.c.req("GET", "/healthz", token="")
        T.expect_eq((r.status, r.body), (200, b"ok"), "/healthz")
        r = self.c.req("GET", "/version", token="")
        T.expect_eq(r.status, 200, "/version status")
        T.expect_eq(r.json()["gitVersion"], K.K8S_VERSION, "gitVersion")

    def t_unauthorized(self):
        for tok in ("", "wrong-token"):
            r = self.c.req("GET", CONN + "/connectors", token=tok or "")
            if tok == "":
                self.c.conn.request("GET", CONN + "/connectors")
                hr = self.c.conn.getresponse()
                r = Resp(hr.status, hr.getheaders(), hr.read())
            T.expect_eq(r.status, 401, "status for token %r" % tok)
            T.expect_eq(r.body, UNAUTHORIZED, "401 body for token %r" % tok)
            T.expect_eq(r.headers["content-type"], "application/json",
                        "401 content type")
        r = self.c.req("GET", CONN + "/connectors",
                       headers={"Authorization": "Basic eDp5"})
        T.expect_eq((r.status, r.body), (401, UNAUTHORIZED), "Basic")
        tok = self.api.add_service_account_token(
            K.OCIGATE_NAMESPACE, K.OCIGATE_SA, expires_in=-5)
        r = self.c.req("GET", CONN + "/connectors", token=tok)
        T.expect_eq(r.status, 401, "expired ocigate token")
        tok = self.api.add_service_account_token(
            K.OCIGATE_NAMESPACE, K.OCIGATE_SA, audiences=["other"])
        r = self.c.req("GET", CONN + "/connectors", token=tok)
        T.expect_eq(r.status, 401, "ocigate token for another audience")
        r = self.c.req("GET", CONN + "/connectors", token="Bearer")
        T.expect_eq(r.status, 401, "token 'Bearer'")

    def t_forbidden(self):
        api = self.api
        api.remove_rbac("ClusterRoleBinding", "ocigate")
        try:
            r = self.c.req("POST", TR, tokenreview("x"))
            T.expect_eq(r.status, 403, "TokenReview without the binding")
            T.expect_eq(r.json(), {
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure",
                "message": 'tokenreviews.authentication.k8s.io is forbidden: '
                           'User "system:serviceaccount:ocigate:ocigate" '
                           'cannot create resource "tokenreviews" in API '
                           'group "authentication.k8s.io" at the cluster '
                           'scope',
                "reason": "Forbidden",
                "details": {"group": "authentication.k8s.io",
                            "kind": "tokenreviews"},
                "code": 403}, "403 Status")
            T.expect_eq(api.tokenreview_count("x"), 0,
                        "a forbidden review is not counted")
            r = self.c.req("GET", "/api/v1/namespaces/team-a/secrets/s1")
            T.expect_eq(r.json()["message"],
                        'secrets "s1" is forbidden: User '
                        '"system:serviceaccount:ocigate:ocigate" cannot get '
                        'resource "secrets" in API group "" in the namespace '
                        '"team-a"', "403 message with a name")
            T.expect_eq(r.json()["details"], {"name": "s1", "kind": "secrets"},
                        "403 details with a name")
        finally:
            api.apply(K.ocigate_rbac()[1])
        # what the ClusterRole does not grant stays forbidden
        r = self.c.req("DELETE", CONN + "/namespaces/team-a/connectors/x")
        T.expect_eq(r.status, 403, "delete connector")
        T.expect_eq(r.json()["message"],
                    'connectors.connectors.alauda.io "x" is forbidden: User '
                    '"system:serviceaccount:ocigate:ocigate" cannot delete '
                    'resource "connectors" in API group '
                    '"connectors.alauda.io" in the namespace "team-a"',
                    "403 for a verb the ClusterRole lacks")
        r = self.c.req("GET", "/api/v1/configmaps")
        T.expect_eq((r.status, r.json()["message"]),
                    (403, 'configmaps is forbidden: User '
                     '"system:serviceaccount:ocigate:ocigate" cannot list '
                     'resource "configmaps" in API group "" at the cluster '
                     'scope'), "authorization comes before routing")
        api.enforce_rbac = False
        try:
            r = self.c.req("GET", "/api/v1/configmaps")
            T.expect_eq((r.status, r.json()["message"]), (
                404, "the server could not find the requested resource"),
                "a resource the fixture does not serve")
            r = self.c.req("GET", TR)
            T.expect_eq((r.status, r.json()["reason"]),
                        (405, "MethodNotAllowed"), "GET tokenreviews")
        finally:
            api.enforce_rbac = True
        r = self.c.req("GET", "/no/such/path")
        T.expect_eq(r.status, 404, "a non-resource path")

    def t_client_cert(self):
        cert = K.make_client_cert(self.pki, "ocigate-client", K.OCIGATE_USER,
                                  ["system:serviceaccounts"])
        c = Client(self.api, token="", cert=cert)
        r = c.req("GET", CONN + "/connectors")
        T.expect_eq(r.status, 200, "list with ocigate's client certificate")
        T.expect_eq(self.api.requests(resource="connectors")[-1]["user"],
                    K.OCIGATE_USER, "user from the certificate's CN")
        other = K.make_client_cert(self.pki, "nobody", "nobody", ["devs"])
        c2 = Client(self.api, token="", cert=other)
        r = c2.req("GET", CONN + "/connectors")
        c2.close()
        T.expect_eq(r.status, 403, "a certificate user without RBAC")
        T.expect_in('User \\"nobody\\"', r.body.decode(), "403 names the CN")
        c.close()

    def t_keepalive(self):
        c = Client(self.api)
        c.req("GET", "/healthz")
        sock = c.conn.sock
        for i in range(5):
            r = c.req("GET", CONN + "/connectors")
            T.expect_eq(r.status, 200, "request %d" % i)
            T.expect(c.conn.sock is sock, "connection %d reused" % i)
        r = c.req("GET", CONN + "/namespaces/ka/connectors/nope")
        T.expect_eq(r.status, 404, "unknown connector")
        T.expect(c.conn.sock is sock, "still reused after an error")
        c.close()

    # ---- TokenReview

    def t_tokenreview_known(self):
        api = self.api
        tok = api.add_service_account_token("team-a", "default",
                                            pod=("web-0", "pod-uid-1"))
        info = api._tokens[tok]
        before = api.tokenreview_count(tok)
        r = self.c.req("POST", TR, tokenreview(tok))
        T.expect_eq(r.status, 201, "TokenReview status code")
        T.expect_eq(r.json(), {
            "kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": {"token": tok},
            "status": {
                "authenticated": True,
                "user": {
                    "username": "system:serviceaccount:team-a:default",
                    "uid": info.uid,
                    "groups": ["system:serviceaccounts",
                               "system:serviceaccounts:team-a",
                               "system:authenticated"],
                    "extra": {
                        "authentication.kubernetes.io/credential-id":
                            info.extra["authentication.kubernetes.io/credential-id"],
                        "authentication.kubernetes.io/pod-name": ["web-0"],
                        "authentication.kubernetes.io/pod-uid": ["pod-uid-1"]}},
                "audiences": [K.API_AUDIENCE]}}, "TokenReview response")
        T.expect(r.body.startswith(b'{"kind":"TokenReview","apiVersion":'
                                   b'"authentication.k8s.io/v1","metadata":'
                                   b'{"creationTimestamp":null},"spec":'),
                 "field order and compact encoding: %r" % r.body[:120])
        T.expect_eq(api.tokenreview_count(tok), before + 1, "review counted")
        # the JWT's claims say what the review says
        payload = tok.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (
            -len(payload) % 4)))
        T.expect_eq(claims["sub"], "system:serviceaccount:team-a:default",
                    "sub claim")
        T.expect_eq(claims["exp"], int(info.expires_at), "exp claim")
        T.expect_eq(claims["aud"], [K.API_AUDIENCE], "aud claim")
        # a plain token with custom user info
        api.add_token("static-1", "alice", uid="u-1", groups=["devs"],
                      extra={"scopes": ["a", "b"]})
        r = self.c.req("POST", TR, tokenreview("static-1"))
        T.expect_eq(r.json()["status"], {
            "authenticated": True,
            "user": {"username": "alice", "uid": "u-1", "groups": ["devs"],
                     "extra": {"scopes": ["a", "b"]}},
            "audiences": [K.API_AUDIENCE]}, "static token status")

    def t_tokenreview_unknown(self):
        r = self.c.req("POST", TR, tokenreview("nope"))
        T.expect_eq(r.status, 201, "status code")
        T.expect_eq(r.body, (
            b'{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1",'
            b'"metadata":{"creationTimestamp":null},"spec":{"token":"nope"},'
            b'"status":{"user":{},"error":"[invalid bearer token, square/'
            b'go-jose: error in cryptographic primitive]"}}\n'), "exact body")
        T.expect_eq(self.api.tokenreview_count("nope"), 1, "counted")
        self.api.explicit_unauthenticated = True
        try:
            r = self.c.req("POST", TR, tokenreview("nope"))
            T.expect_eq(r.json()["status"]["authenticated"], False,
                        "explicit authenticated:false")
        finally:
            self.api.explicit_unauthenticated = False
        r = self.c.req("POST", TR, {"spec": {}})
        T.expect_eq((r.status, r.json()["message"], r.json()["reason"]),
                    (400, "token is required for TokenReview in "
                     "authentication", "BadRequest"), "empty token")
        r = self.c.req("POST", TR, b"{not json")
        T.expect_eq(r.status, 400, "malformed JSON")
        r = self.c.req("POST", TR, {"kind": "SubjectAccessReview",
                                    "apiVersion": "authentication.k8s.io/v1",
                                    "spec": {"token": "x"}})
        T.expect_eq(r.status, 400, "wrong kind")
        r = self.c.req("GET", TR)
        T.expect_eq(r.status, 403, "GET (list) tokenreviews is not granted")

    def t_tokenreview_expired(self):
        api = self.api
        tok = api.add_service_account_token("team-a", "default", expires_in=60)
        T.expect_eq(self.c.req("POST", TR, tokenreview(tok)).json()["status"][
            "authenticated"], True, "valid before expiry")
        api.expire_token(tok)
        st = self.c.req("POST", TR, tokenreview(tok)).json()["status"]
        T.expect_eq(st, {"user": {}, "error": K.ERR_EXPIRED_TOKEN},
                    "expired token status")
        tok2 = api.add_service_account_token("team-a", "deleted")
        api.invalidate_token(tok2)
        st = self.c.req("POST", TR, tokenreview(tok2)).json()["status"]
        T.expect_eq(st["error"], K.ERR_INVALIDATED_TOKEN, "invalidated token")
        api.remove_token(tok2)
        st = self.c.req("POST", TR, tokenreview(tok2)).json()["status"]
        T.expect_eq(st["error"], K.ERR_UNKNOWN_TOKEN, "removed token")
        T.expect_eq(api.tokenreview_count(tok), 2, "reviews of tok")

    def t_tokenreview_audiences(self):
        api = self.api
        tok = api.add_service_account_token("team-a", "default",
                                            audiences=["ocigate", "vault"])
        r = self.c.req("POST", TR, tokenreview(tok, ["ocigate"]))
        js = r.json()
        T.expect_eq(js["spec"], {"token": tok, "audiences": ["ocigate"]},
                    "spec echoed with audiences")
        T.expect_eq(js["status"]["audiences"], ["ocigate"],
                    "status.audiences is the intersection")
        T.expect_eq(js["status"]["authenticated"], True, "authenticated")
        st = self.c.req("POST", TR, tokenreview(tok, ["registry"])).json()[
            "status"]
        T.expect_eq(st, {"user": {}, "error":
                         '[invalid bearer token, token audiences ["ocigate" '
                         '"vault"] is invalid for the target audiences '
                         '["registry"]]'}, "audience mismatch")
        st = self.c.req("POST", TR, tokenreview(tok)).json()["status"]
        T.expect_eq(st.get("authenticated"), None,
                    "no spec.audiences = the API server's, which the token "
                    "lacks")
        T.expect_in("target audiences [\"%s\"]" % K.API_AUDIENCE,
                    st["error"], "error names the API audience")

    # ---- SubjectAccessReview

    def t_sar(self):
        api = self.api
        api.add_role("connector-user", [K.rule(["get"], ["connectors"],
                                               ["connectors.alauda.io"])],
                     namespace="team-a")
        api.add_binding("alice-uses", "connector-user", [K.User("alice")],
                        namespace="team-a")

        def review(*a, **kw):
            r = self.c.req("POST", SAR, sar(*a, **kw))
            T.expect_eq(r.status, 201, "SAR status code")
            return r.json()

        js = review("alice", **conn_attrs("team-a", "harbor"))
        T.expect_eq(js, {
            "kind": "SubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": {"resourceAttributes": {
                "namespace": "team-a", "verb": "get",
                "group": "connectors.alauda.io", "resource": "connectors",
                "name": "harbor"}, "user": "alice"},
            "status": {"allowed": True,
                       "reason": 'RBAC: allowed by RoleBinding '
                                 '"alice-uses/team-a" of Role '
                                 '"connector-user" to User "alice"'}},
            "SAR via a RoleBinding")
        js = review("alice", **conn_attrs("team-b", "harbor"))
        T.expect_eq(js["status"], {"allowed": False},
                    "other namespace: denied, no reason")
        js = review("bob", **conn_attrs("team-a", "harbor"))
        T.expect_eq(js["status"], {"allowed": False}, "other user")
        js = review("alice", **conn_attrs("team-a", "harbor", verb="list"))
        T.expect_eq(js["status"]["allowed"], False, "other verb")
        # a Group through a ClusterRoleBinding, with resourceNames
        api.add_role("shared-reader", [K.rule(["get"], ["connectors"],
                                              ["connectors.alauda.io"],
                                              resource_names=["public"])])
        api.add_binding("everyone-shared", "shared-reader",
                        [K.Group("system:serviceaccounts")])
        sa = "system:serviceaccount:team-c:default"
        groups = ["system:serviceaccounts", "system:serviceaccounts:team-c",
                  "system:authenticated"]
        js = review(sa, groups, **conn_attrs("kube-public", "public"))
        T.expect_eq(js["status"], {
            "allowed": True,
            "reason": 'RBAC: allowed by ClusterRoleBinding "everyone-shared" '
                      'of ClusterRole "shared-reader" to Group '
                      '"system:serviceaccounts"'}, "Group via CRB")
        js = review(sa, groups, **conn_attrs("kube-public", "private"))
        T.expect_eq(js["status"]["allowed"], False, "resourceNames restrict")
        T.expect_eq(js["spec"]["groups"], groups, "groups echoed")
        # a ServiceAccount subject in a RoleBinding to a ClusterRole
        api.add_role("proxy-user", [K.rule(["*"], ["connectors/proxy"],
                                           ["connectors.alauda.io"])])
        api.add_binding("team-c-proxy", "proxy-user",
                        [K.ServiceAccount("team-c", "default")],
                        namespace="team-a", role_kind="ClusterRole")
        js = review(sa, **conn_attrs("team-a", "harbor", verb="*",
                                     sub="proxy"))
        T.expect_eq(js["status"]["reason"],
                    'RBAC: allowed by RoleBinding "team-c-proxy/team-a" of '
                    'ClusterRole "proxy-user" to ServiceAccount '
                    '"default/team-c"', "SA subject, subresource, verb *")
        T.expect_eq(js["spec"]["resourceAttributes"]["subresource"], "proxy",
                    "subresource echoed")
        js = review(sa, **conn_attrs("team-a", "harbor", verb="get"))
        T.expect_eq(js["status"]["allowed"], False,
                    "connectors/proxy does not grant connectors")
        js = review(sa, **conn_attrs("team-a", "harbor", verb="get",
                                     sub="status"))
        T.expect_eq(js["status"]["allowed"], False, "other subresource")
        # a ServiceAccount subject without namespace means the binding's
        api.add_binding("local-sa", "connector-user",
                        [{"kind": "ServiceAccount", "name": "builder"}],
                        namespace="team-a")
        js = review("system:serviceaccount:team-a:builder",
                    **conn_attrs("team-a", "harbor"))
        T.expect_eq(js["status"]["reason"],
                    'RBAC: allowed by RoleBinding "local-sa/team-a" of Role '
                    '"connector-user" to ServiceAccount "builder/team-a"',
                    "SA subject defaulting to the binding's namespace")
        # */subresource
        api.add_role("any-proxy", [K.rule(["get"], ["*/proxy"],
                                          ["connectors.alauda.io"])],
                     namespace="team-d")
        api.add_binding("dave", "any-proxy", [K.User("dave")],
                        namespace="team-d")
        js = review("dave", **conn_attrs("team-d", "x", sub="proxy"))
        T.expect_eq(js["status"]["allowed"], True, "*/proxy rule")
        # counters per (user, name)
        T.expect_eq(api.sar_count("alice", "harbor"), 3, "SARs alice/harbor")
        T.expect_eq(api.sar_count(sa, "public"), 1, "SARs sa/public")
        T.expect_eq(api.sar_count("nobody"), 0, "SARs nobody")
        last = api.sar_log()[-1]
        T.expect_eq((last["user"], last["allowed"]), ("dave", True),
                    "sar_log last")
        api.remove_rbac("RoleBinding", "alice-uses", "team-a")
        js = review("alice", **conn_attrs("team-a", "harbor"))
        T.expect_eq(js["status"], {"allowed": False},
                    "denied once the binding is gone")

    def t_sar_invalid(self):
        r = self.c.req("POST", SAR, sar("", **conn_attrs("a", "b")))
        T.expect_eq(r.status, 422, "SAR without user or groups")
        T.expect_eq(r.json()["message"],
                    'SubjectAccessReview.authorization.k8s.io "" is invalid: '
                    'spec.user: Invalid value: "": at least one of user or '
                    'group must be specified', "422 message")
        r = self.c.req("POST", SAR, {"spec": {"user": "a"}})
        T.expect_eq(r.status, 422, "SAR without attributes")
        r = self.c.req("POST", SAR, {"spec": {
            "user": "a", "nonResourceAttributes": {"path": "/x", "verb": "get"}}})
        T.expect_eq((r.status, r.json()["status"]), (201, {"allowed": False}),
                    "non-resource SAR")

    # ---- lists

    def t_list_shapes(self):
        api = self.api
        c = api.add_connector("shape", "harbor", "https://h.example.com",
                              secret="harbor-secret", labels={"a": "b"})
        s = api.add_secret("shape", "harbor-secret",
                           {"username": "robot$demo", "password": "pw"},
                           type="cpaas.io/distribution-registry-token")
        r = self.c.req("GET", CONN + "/namespaces/shape/connectors")
        T.expect_eq(r.status, 200, "list status")
        meta = c["metadata"]
        rv = str(api.resource_version)
        T.expect_eq(r.json(), {
            "apiVersion": "connectors.alauda.io/v1alpha1",
            "items": [{
                "apiVersion": "connectors.alauda.io/v1alpha1",
                "kind": "Connector",
                "metadata": {"creationTimestamp": meta["creationTimestamp"],
                             "generation": 1, "labels": {"a": "b"},
                             "name": "harbor", "namespace": "shape",
                             "resourceVersion": meta["resourceVersion"],
                             "uid": meta["uid"]},
                "spec": {"address": "https://h.example.com",
                         "auth": {"name": "tokenAuth",
                                  "secretRef": {"name": "harbor-secret"}},
                         "connectorClassName": "oci"}}],
            "kind": "ConnectorList",
            "metadata": {"continue": "", "resourceVersion": rv}},
            "ConnectorList")
        T.expect(r.body.startswith(
            b'{"apiVersion":"connectors.alauda.io/v1alpha1","items":[{'
            b'"apiVersion"'), "sorted keys: %r" % r.body[:80])
        T.expect(r.body.endswith(b'"kind":"ConnectorList","metadata":{'
                                 b'"continue":"","resourceVersion":"%s"}}\n'
                                 % rv.encode()), "list tail: %r" % r.body[-90:])
        r = self.c.req("GET", "/api/v1/namespaces/shape/secrets")
        sm = s["metadata"]
        want = ('{"kind":"SecretList","apiVersion":"v1","metadata":'
                '{"resourceVersion":"%s"},"items":[{"metadata":{"name":'
                '"harbor-secret","namespace":"shape","uid":"%s",'
                '"resourceVersion":"%s","creationTimestamp":"%s"},"data":'
                '{"password":"cHc=","username":"cm9ib3QkZGVtbw=="},"type":'
                '"cpaas.io/distribution-registry-token"}]}\n'
                % (rv, sm["uid"], sm["resourceVersion"],
                   sm["creationTimestamp"]))
        T.expect_eq(r.body.decode(), want, "SecretList, exact bytes")
        r = self.c.req("GET", "/api/v1/namespaces/shape/secrets/harbor-secret")
        T.expect_eq(list(r.json())[:3], ["kind", "apiVersion", "metadata"],
                    "a single Secret has kind and apiVersion first")
        r = self.c.req("GET", CONN + "/namespaces/shape/connectors/nope")
        T.expect_eq(r.json(), {
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure",
            "message": 'connectors.connectors.alauda.io "nope" not found',
            "reason": "NotFound",
            "details": {"name": "nope", "group": "connectors.alauda.io",
                        "kind": "connectors"}, "code": 404}, "404 Status")
        api.add_secret("shape", "html", {"k": "<&>"}, annotations={
            "note": "a<b&c>d"})
        r = self.c.req("GET", "/api/v1/namespaces/shape/secrets/html")
        T.expect_in(b'"note":"a\\u003cb\\u0026c\\u003ed"', r.body,
                    "Go's HTML escaping")

    def t_pagination(self):
        api = self.api
        names = [("pg-a", "c1"), ("pg-a", "c2"), ("pg-a", "c3"),
                 ("pg-b", "c1"), ("pg-b", "c2")]
        for ns, n in names:
            api.add_connector(ns, n, "https://%s.example.com" % n,
                              labels={"page": "yes"})
        path = CONN + "/connectors?labelSelector=page%3Dyes&limit=2"
        seen, pages, cont = [], 0, None
        rv0 = None
        while True:
            p = path + ("&continue=" + cont if cont else "")
            js = self.c.req("GET", p).json()
            pages += 1
            if rv0 is None:
                rv0 = js["metadata"]["resourceVersion"]
                # a change after the first page must not show up
                api.add_connector("pg-b", "c0", "https://late.example.com",
                                  labels={"page": "yes"})
                api.delete_connector("pg-b", "c2")
            T.expect_eq(js["metadata"]["resourceVersion"], rv0,
                        "every page at the first page's resourceVersion")
            seen += [(i["metadata"]["namespace"], i["metadata"]["name"])
                     for i in js["items"]]
            cont = js["metadata"]["continue"]
            if not cont:
                break
            T.expect("remainingItemCount" not in js["metadata"],
                     "no remainingItemCount with a selector")
        T.expect_eq(seen, names, "items in key order, consistent snapshot")
        T.expect_eq(pages, 3, "pages")
        # remainingItemCount without selectors, built-in list shape
        for i in range(5):
            api.add_secret("pg-s", "s%d" % i, {"k": "v"})
        js = self.c.req("GET", "/api/v1/namespaces/pg-s/secrets?limit=2").json()
        T.expect_eq(list(js["metadata"]), ["resourceVersion", "continue",
                                           "remainingItemCount"],
                    "ListMeta field order")
        T.expect_eq(js["metadata"]["remainingItemCount"], 3,
                    "remainingItemCount")
        tok = js["metadata"]["continue"]
        raw = json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
        T.expect_eq(raw, {"v": "meta.k8s.io/v1",
                          "rv": int(js["metadata"]["resourceVersion"]),
                          "start": "s1\u0000"}, "continue token content")
        js = self.c.req("GET", "/api/v1/namespaces/pg-s/secrets?limit=3&"
                        "continue=" + tok).json()
        T.expect_eq([i["metadata"]["name"] for i in js["items"]],
                    ["s2", "s3", "s4"], "last page")
        T.expect_eq(list(js["metadata"]), ["resourceVersion"],
                    "no continue on the last page of a built-in list")
        r = self.c.req("GET", "/api/v1/secrets?limit=1&continue=garbage")
        T.expect_eq(r.status, 400, "bad continue token")
        js = self.c.req("GET", "/api/v1/secrets?limit=1&resourceVersion=0"
                        ).json()
        T.expect(len(js["items"]) > 1, "resourceVersion=0 ignores limit, as "
                 "the watch cache does")

    def t_selectors(self):
        api = self.api
        api.add_secret("sel", "a", {"k": "v"}, labels={"app": "x",
                                                      "env": "prod"})
        api.add_secret("sel", "b", {"k": "v"}, labels={"app": "y"},
                       type="kubernetes.io/dockerconfigjson")
        api.add_secret("sel2", "a", {"k": "v"}, labels={"app": "x",
                                                       "env": "dev"})

        def names(q):
            r = self.c.req("GET", "/api/v1/secrets?" + q)
            T.expect_eq(r.status, 200, "status for %s" % q)
            return ["%s/%s" % (i["metadata"]["namespace"],
                               i["metadata"]["name"])
                    for i in r.json()["items"]
                    if i["metadata"]["namespace"].startswith("sel")]

        cases = [
            ("labelSelector=app%3Dx", ["sel/a", "sel2/a"]),
            ("labelSelector=app%3D%3Dx%2Cenv%3Dprod", ["sel/a"]),
            ("labelSelector=app%21%3Dx", ["sel/b"]),
            ("labelSelector=env+in+%28dev%2Cqa%29", ["sel2/a"]),
            ("labelSelector=env+notin+%28dev%29", ["sel/a", "sel/b"]),
            ("labelSelector=env", ["sel/a", "sel2/a"]),
            ("labelSelector=%21env", ["sel/b"]),
            ("fieldSelector=metadata.name%3Da", ["sel/a", "sel2/a"]),
            ("fieldSelector=metadata.namespace%3Dsel2", ["sel2/a"]),
            ("fieldSelector=metadata.name%21%3Da", ["sel/b"]),
            ("fieldSelector=type%3Dkubernetes.io/dockerconfigjson", ["sel/b"]),
            ("fieldSelector=metadata.name%3Da&labelSelector=env%3Ddev",
             ["sel2/a"]),
        ]
        for q, want in cases:
            T.expect_eq(names(q), want, q)
        r = self.c.req("GET", "/api/v1/secrets?fieldSelector=spec.x%3D1")
        T.expect_eq((r.status, r.json()["message"]),
                    (400, "field label not supported: spec.x"),
                    "unsupported field")
        r = self.c.req("GET", CONN + "/connectors?fieldSelector=type%3Dx")
        T.expect_eq(r.status, 400, "type is a Secret field only")
        r = self.c.req("GET", "/api/v1/secrets?labelSelector=a%3D%3D%3Db")
        T.expect_eq(r.status, 400, "bad label selector")

    # ---- watch

    def t_watch_order(self):
        api = self.api
        rv = api.resource_version
        w = Stream(api, CONN + "/namespaces/wt/connectors?watch=1&"
                   "resourceVersion=%d" % rv)
        try:
            T.expect_eq(w.status, 200, "watch status")
            T.expect_eq(w.headers.get("transfer-encoding"), "chunked",
                        "chunked")
            T.expect_eq(w.headers.get("content-type"), "application/json",
                        "content type")
            api.wait_watches(1, "connectors")
            a = api.add_connector("wt", "c", "https://one.example.com")
            api.add_connector("other-ns", "c", "https://x.example.com")
            b = api.update_connector("wt", "c", spec={
                "connectorClassName": "oci", "address": "https://two.example.com"})
            s = api.update_connector("wt", "c", status={
                "observedGeneration": 2, "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Ok",
                     "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z",
                     "observedGeneration": 2}]})
            d = api.delete_connector("wt", "c")
            evs = w.events(4)
            got = [(e["type"], e["object"]["metadata"]["resourceVersion"],
                    e["object"]["metadata"]["generation"]) for e in evs]
            want = [("ADDED", a["metadata"]["resourceVersion"], 1),
                    ("MODIFIED", b["metadata"]["resourceVersion"], 2),
                    ("MODIFIED", s["metadata"]["resourceVersion"], 2),
                    ("DELETED", d["metadata"]["resourceVersion"], 2)]
            T.expect_eq(got, want, "events (type, resourceVersion, generation)")
            rvs = [int(x[1]) for x in got]
            T.expect_eq(rvs, sorted(set(rvs)), "resourceVersions increase")
            T.expect_eq(evs[1]["object"]["spec"]["address"],
                        "https://two.example.com", "MODIFIED carries the spec")
            T.expect_eq(evs[2]["object"]["status"]["conditions"][0]["status"],
                        "True", "status change event")
            T.expect_eq(list(evs[0]), ["type", "object"], "event field order")
            for c in w.chunks:
                T.expect(c.endswith(b"\n") and c.count(b"\n") == 1,
                         "one event per chunk: %r" % c[:80])
        finally:
            w.close()
        # a watch from resourceVersion 0 lists first
        w = Stream(api, CONN + "/connectors?watch=true&resourceVersion=0&"
                   "fieldSelector=metadata.namespace%3Dother-ns")
        try:
            ev = w.event()
            T.expect_eq((ev["type"], ev["object"]["metadata"]["name"]),
                        ("ADDED", "c"), "synthetic ADDED for RV 0")
        finally:
            w.close()

    def t_watch_initial_events_and_bookmarks(self):
        api = self.api
        api.add_secret("bm", "s", {"k": "v"})
        api.bookmark_interval = 0.3
        try:
            w = Stream(api, "/api/v1/namespaces/bm/secrets?watch=1&"
                       "sendInitialEvents=true&resourceVersionMatch="
                       "NotOlderThan&allowWatchBookmarks=true")
            try:
                e1, e2, e3 = w.events(3)
                T.expect_eq((e1["type"], e1["object"]["kind"],
                             e1["object"]["metadata"]["name"]),
                            ("ADDED", "Secret", "s"), "initial ADDED")
                rv = str(api.resource_version)
                T.expect_eq(e2, {"type": "BOOKMARK", "object": {
                    "kind": "Secret", "apiVersion": "v1", "metadata": {
                        "resourceVersion": rv, "creationTimestamp": None,
                        "annotations": {K.INITIAL_EVENTS_END: "true"}}}},
                    "initial-events-end bookmark")
                T.expect_eq(e3, {"type": "BOOKMARK", "object": {
                    "kind": "Secret", "apiVersion": "v1", "metadata": {
                        "resourceVersion": rv, "creationTimestamp": None}}},
                    "periodic bookmark")
            finally:
                w.close()
            w = Stream(api, CONN + "/connectors?watch=1&resourceVersion=%d&"
                       "allowWatchBookmarks=true" % api.resource_version)
            try:
                ev = w.event()
                T.expect_eq(ev, {"type": "BOOKMARK", "object": {
                    "apiVersion": "connectors.alauda.io/v1alpha1",
                    "kind": "Connector",
                    "metadata": {"resourceVersion":
                                 str(api.resource_version)}}},
                    "Connector bookmark")
            finally:
                w.close()
            w = Stream(api, CONN + "/connectors?watch=1&resourceVersion=%d&"
                       "timeoutSeconds=1" % api.resource_version)
            try:
                t0 = time.monotonic()
                T.expect_eq(w.event(), None, "no bookmarks unless allowed")
                T.expect(0.8 < time.monotonic() - t0 < 3,
                         "ended after timeoutSeconds")
            finally:
                w.close()
        finally:
            api.bookmark_interval = 60

    def t_watch_timeout_keepalive(self):
        api = self.api
        w = Stream(api, CONN + "/connectors?watch=1&resourceVersion=%d&"
                   "timeoutSeconds=1" % api.resource_version)
        try:
            T.expect_eq(w.event(), None, "clean end: terminal chunk")
            w.request("GET", "/api/v1/namespaces/none/secrets")
            T.expect_eq(w.status, 200, "same connection after the watch")
            T.expect_eq(json.loads(w.body())["kind"], "SecretList",
                        "response on the kept-alive connection")
        finally:
            w.close()

    def t_watch_expired(self):
        api = self.api
        old = api.resource_version
        api.add_secret("exp", "s", {"k": "v"})
        api.compact()
        now = api.resource_version
        w = Stream(api, "/api/v1/secrets?watch=1&resourceVersion=%d" % old)
        try:
            T.expect_eq(w.status, 200, "event form: HTTP 200")
            T.expect_eq(w.event(), {"type": "ERROR", "object": {
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure",
                "message": "too old resource version: %d (%d)" % (old, now),
                "reason": "Expired", "code": 410}}, "ERROR event")
            T.expect_eq(w.event(), None, "stream ends after the error")
        finally:
            w.close()
        api.expired_watch = "http"
        try:
            w = Stream(api, "/api/v1/secrets?watch=1&resourceVersion=%d" % old)
            try:
                T.expect_eq(w.status, 410, "http form: HTTP 410")
                T.expect_eq(json.loads(w.body()), {
                    "kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure",
                    "message": "too old resource version: %d (%d)"
                               % (old, now),
                    "reason": "Expired", "code": 410}, "410 body")
            finally:
                w.close()
        finally:
            api.expired_watch = "event"
        w = Stream(api, "/api/v1/secrets?watch=1&resourceVersion=%d&"
                   "timeoutSeconds=1" % now)
        try:
            T.expect_eq(w.event(), None, "watch from the compacted RV works")
        finally:
            w.close()
        r = self.c.req("GET", "/api/v1/secrets?resourceVersion=%d&"
                       "resourceVersionMatch=Exact" % old)
        T.expect_eq((r.status, r.json()["message"]),
                    (410, "The resourceVersion for the provided list is too "
                     "old."), "Exact list before compaction")
        r = self.c.req("GET", "/api/v1/secrets?resourceVersion=%d" % (now + 50))
        T.expect_eq(r.status, 504, "a resourceVersion from the future")

    def t_continue_expired(self):
        api = self.api
        for i in range(3):
            api.add_secret("cexp", "s%d" % i, {"k": "v"})
        js = self.c.req("GET", "/api/v1/namespaces/cexp/secrets?limit=1").json()
        api.add_secret("cexp", "later", {"k": "v"})
        api.compact()
        r = self.c.req("GET", "/api/v1/namespaces/cexp/secrets?limit=1&"
                       "continue=" + js["metadata"]["continue"])
        T.expect_eq(r.status, 410, "continue after compaction")
        T.expect_eq(r.json()["reason"], "Expired", "reason")
        T.expect_eq(r.json()["message"], K.CONTINUE_TOO_OLD, "message")

    def t_watch_selector_transitions(self):
        api = self.api
        api.add_connector("tr", "c", "https://a.example.com",
                          labels={"tier": "gold"})
        w = Stream(api, CONN + "/namespaces/tr/connectors?watch=1&"
                   "resourceVersion=%d&labelSelector=tier%%3Dgold"
                   % api.resource_version)
        try:
            api.wait_watches(1, "connectors")
            api.update_connector("tr", "c", labels={"tier": "silver"})
            api.update_connector("tr", "c", labels={"tier": "gold"})
            api.add_connector("tr", "d", "https://d.example.com",
                              labels={"tier": "bronze"})
            api.delete_connector("tr", "c")
            evs = w.events(3)
            T.expect_eq([(e["type"], e["object"]["metadata"]["labels"]["tier"])
                         for e in evs],
                        [("DELETED", "gold"), ("ADDED", "gold"),
                         ("DELETED", "gold")],
                        "leaving/entering the selector")
        finally:
            w.close()
        # a watch on one object by name in the path
        api.add_connector("tr", "e", "https://e.example.com")
        w = Stream(api, CONN + "/namespaces/tr/connectors/e?watch=1&"
                   "resourceVersion=%d" % api.resource_version)
        try:
            api.wait_watches(1, "connectors")
            api.update_connector("tr", "d", labels={"x": "y"})
            api.update_connector("tr", "e", labels={"x": "y"})
            ev = w.event()
            T.expect_eq((ev["type"], ev["object"]["metadata"]["name"]),
                        ("MODIFIED", "e"), "only the named object")
        finally:
            w.close()
        T.expect_eq(api.requests(resource="connectors", verb="watch")[-1][
            "name"], "e", "request log names the watched object")

    def t_gzip(self):
        api = self.api
        for i in range(3):
            api.add_connector("gz", "c%d" % i, "https://gz%d.example.com" % i)
        plain = self.c.req("GET", CONN + "/namespaces/gz/connectors")
        T.expect("content-encoding" not in plain.headers,
                 "no gzip unless asked")
        r = self.c.req("GET", CONN + "/namespaces/gz/connectors",
                       headers={"Accept-Encoding": "gzip"})
        T.expect_eq(r.headers.get("content-encoding"), "gzip",
                    "Content-Encoding")
        T.expect_eq(int(r.headers["content-length"]), len(r.body),
                    "Content-Length of the compressed body")
        T.expect_eq(gzip.decompress(r.body), plain.body, "same list")
        r = self.c.req("GET", CONN + "/namespaces/gz/connectors",
                       headers={"Accept-Encoding": "gzip;q=0, identity"})
        T.expect("content-encoding" not in r.headers, "gzip;q=0 refused")
        r = self.c.req("GET", CONN + "/namespaces/gz/connectors/c0",
                       headers={"Accept-Encoding": "gzip"})
        T.expect("content-encoding" not in r.headers,
                 "single objects are not compressed (small)")
        w = Stream(api, CONN + "/namespaces/gz/connectors?watch=1",
                   headers={"Accept-Encoding": "gzip"})
        try:
            T.expect_eq(w.headers.get("content-encoding"), "gzip",
                        "watch Content-Encoding")
            evs = w.events(3)
            T.expect_eq([e["object"]["metadata"]["name"] for e in evs],
                        ["c0", "c1", "c2"], "gzipped initial events")
            api.wait_watches(1, "connectors")
            api.update_connector("gz", "c1", labels={"n": "1"})
            T.expect_eq(w.event()["type"], "MODIFIED",
                        "gzipped live event, flushed at once")
        finally:
            w.close()

    def t_watch_split_chunks(self):
        api = self.api
        api.watch_chunk_size = 7
        try:
            api.add_secret("split", "s", {"k": "v" * 50})
            w = Stream(api, "/api/v1/namespaces/split/secrets?watch=1")
            try:
                ev = w.event()
                T.expect_eq(ev["object"]["metadata"]["name"], "s",
                            "event reassembled")
                T.expect(len(w.chunks) > 10 and all(
                    len(c) <= 7 for c in w.chunks), "split in 7-byte chunks")
            finally:
                w.close()
        finally:
            api.watch_chunk_size = None

    def t_drop_watches(self):
        api = self.api
        w1 = Stream(api, CONN + "/connectors?watch=1&resourceVersion=%d"
                    % api.resource_version)
        w2 = Stream(api, "/api/v1/secrets?watch=1&resourceVersion=%d"
                    % api.resource_version)
        try:
            api.wait_watches(2)
            T.expect_eq(api.drop_watches("connectors"), 1, "dropped count")
            T.expect_eq(self._cut(w1), "abrupt", "connector watch cut")
            api.add_secret("drop", "s", {"k": "v"})
            T.expect_eq(w2.event()["type"], "ADDED",
                        "the secrets watch goes on")
            api.drop_watches()
            T.expect_eq(self._cut(w2), "abrupt", "secrets watch cut")
            T.wait_for(lambda: api.active_watches() == 0, 5,
                       what="no watch left")
        finally:
            w1.close()
            w2.close()

    @staticmethod
    def _cut(stream):
        """How a stream ended: "abrupt" (no terminal chunk, no TLS
        close_notify), or fail."""
        try:
            while True:
                if stream.event() is None:
                    T.fail("stream ended cleanly with a terminal chunk")
        except (ssl.SSLEOFError, ConnectionResetError):
            return "abrupt"
        except EOFError:
            T.fail("TLS closed cleanly (close_notify), expected an abrupt cut")

    # ---- failures

    def t_fail_next(self):
        api = self.api
        inj = api.fail_next(r"/connectors\b", 429, times=2)
        for i in range(2):
            r = self.c.req("GET", CONN + "/connectors")
            T.expect_eq(r.status, 429, "429 #%d" % i)
            T.expect_eq(r.headers.get("retry-after"), "1", "Retry-After")
            T.expect_eq(r.json(), {
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure",
                "message": "Too many requests, please try again later.",
                "reason": "TooManyRequests",
                "details": {"retryAfterSeconds": 1}, "code": 429}, "429 body")
        T.expect_eq(self.c.req("GET", CONN + "/connectors").status, 200,
                    "third request passes")
        T.expect_eq(inj.hits, 2, "injection hits")
        api.fail_next(r"tokenreviews", 500, method="POST")
        r = self.c.req("POST", TR, tokenreview("x"))
        T.expect_eq((r.status, r.json()["reason"]), (500, "InternalError"),
                    "500")
        T.expect_eq(self.c.req("POST", TR, tokenreview("x")).status, 201,
                    "next review works")
        api.fail_next(r"watch=", 503)
        r = self.c.req("GET", "/api/v1/secrets")
        T.expect_eq(r.status, 200, "the regex sees the query: a list passes")
        r = self.c.req("GET", "/api/v1/secrets?watch=1")
        T.expect_eq(r.status, 503, "the watch gets the 503")
        api.fail_next(r"subjectaccessreviews", "hang")
        c = Client(api, timeout=1)
        try:
            c.req("POST", SAR, sar("a", **conn_attrs("a", "b")))
            T.fail("a hung request was answered")
        except (socket.timeout, TimeoutError):
            pass
        finally:
            c.close()
        api.release_hangs()
        api.fail_next(r"secrets", "close")
        c = Client(api)
        try:
            c.req("GET", "/api/v1/secrets")
            T.fail("a closed request was answered")
        except (http.client.RemoteDisconnected, ConnectionResetError,
                ssl.SSLError, http.client.BadStatusLine):
            pass
        finally:
            c.close()
        T.expect_eq(self.c.req("GET", "/api/v1/secrets").status, 200,
                    "answers again")
        T.expect_eq(len(api.requests(verb="injected")), 6,
                    "injected requests logged")

    def t_stop_start(self):
        api = self.api
        port = api.port
        api.add_connector("ss", "c", "https://ss.example.com")
        w = Stream(api, CONN + "/connectors?watch=1&resourceVersion=%d"
                   % api.resource_version)
        c = Client(api)
        c.req("GET", "/healthz")
        try:
            api.wait_watches(1)
            api.stop()
            T.expect(not api.running, "stopped")
            T.expect_eq(self._cut(w), "abrupt", "watch cut by stop()")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                T.fail("port %d still accepts connections" % port)
            except ConnectionRefusedError:
                pass
            try:
                c.req("GET", "/healthz")
                T.fail("a kept-alive connection survived stop()")
            except (OSError, http.client.HTTPException):
                c.close()
            api.start()
            T.expect_eq(api.port, port, "same port after start()")
            r = c.req("GET", CONN + "/namespaces/ss/connectors/c")
            T.expect_eq((r.status, r.json()["spec"]["address"]),
                        (200, "https://ss.example.com"), "state kept")
        finally:
            w.close()
            c.close()
            if not api.running:
                api.start()

    # ---- writes

    def t_status_patch(self):
        api = self.api
        c = api.add_connector("st", "harbor", "https://st.example.com")
        path = CONN + "/namespaces/st/connectors/harbor/status"
        patch = {"status": {"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True", "reason": "Ok",
             "message": "", "lastTransitionTime": "2024-01-01T00:00:00Z"}],
            "proxy": {"httpAddress": {
                "url": "http://127.0.0.1:5000/namespaces/st/connectors/harbor"}}}}
        mp = {"Content-Type": "application/merge-patch+json"}
        # the shipped ClusterRole lets ocigate patch the status (its status
        # writer), not replace it
        r = self.c.req("PUT", path, json.dumps(c).encode())
        T.expect_eq(r.status, 403, "the shipped ClusterRole cannot update")
        T.expect_in('cannot update resource \\"connectors/status\\" in API '
                    'group \\"connectors.alauda.io\\" in the namespace '
                    '\\"st\\"', r.body.decode(), "403 names the subresource")
        api.add_role("status-writer", [
            K.rule(["patch", "update"], ["connectors/status", "connectors"],
                   ["connectors.alauda.io"])])
        api.add_binding("status-writer", "status-writer",
                        [K.ServiceAccount(K.OCIGATE_NAMESPACE, K.OCIGATE_SA)])
        w = Stream(api, CONN + "/namespaces/st/connectors?watch=1&"
                   "resourceVersion=%d" % api.resource_version)
        try:
            api.wait_watches(1, "connectors")
            r = self.c.req("PATCH", path, json.dumps(patch).encode(), mp)
            T.expect_eq(r.status, 200, "status merge patch")
            js = r.json()
            T.expect_eq(js["status"], patch["status"], "status stored")
            T.expect_eq(js["metadata"]["generation"], 1,
                        "generation unchanged by status")
            T.expect(int(js["metadata"]["resourceVersion"])
                     > int(c["metadata"]["resourceVersion"]), "RV bumped")
            ev = w.event()
            T.expect_eq((ev["type"], ev["object"]["metadata"][
                "resourceVersion"]), ("MODIFIED",
                                      js["metadata"]["resourceVersion"]),
                        "watch sees the status change")
            # the status path ignores spec changes, the main path ignores status
            r = self.c.req("PATCH", path, json.dumps({
                "spec": {"address": "https://evil.example.com"}}).encode(), mp)
            T.expect_eq(r.json()["spec"]["address"], "https://st.example.com",
                        "spec not changed through /status")
            T.expect_eq(r.json()["metadata"]["resourceVersion"],
                        js["metadata"]["resourceVersion"],
                        "a no-op patch keeps the RV")
            # conflicts
            stale = dict(patch, metadata={"resourceVersion":
                                          c["metadata"]["resourceVersion"]})
            r = self.c.req("PATCH", path, json.dumps(stale).encode(), mp)
            T.expect_eq(r.json(), {
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure",
                "message": 'Operation cannot be fulfilled on '
                           'connectors.connectors.alauda.io "harbor": the '
                           'object has been modified; please apply your '
                           'changes to the latest version and try again',
                "reason": "Conflict",
                "details": {"name": "harbor", "group": "connectors.alauda.io",
                            "kind": "connectors"}, "code": 409},
                "409 on a stale resourceVersion")
            obj = self.c.req("GET", CONN + "/namespaces/st/connectors/harbor"
                             ).json()
            obj["status"]["conditions"][0]["status"] = "False"
            put_stale = json.loads(json.dumps(obj))
            put_stale["metadata"]["resourceVersion"] = c["metadata"][
                "resourceVersion"]
            r = self.c.req("PUT", path, put_stale)
            T.expect_eq(r.status, 409, "PUT with a stale resourceVersion")
            r = self.c.req("PUT", path, obj)
            T.expect_eq((r.status, r.json()["status"]["conditions"][0][
                "status"]), (200, "False"), "PUT with the current RV")
            del obj["metadata"]["resourceVersion"]
            r = self.c.req("PUT", path, obj)
            T.expect_eq((r.status, r.json()["reason"]), (422, "Invalid"),
                        "PUT without resourceVersion")
            # JSON patch, and spec changes bump the generation
            r = self.c.req("PATCH", CONN + "/namespaces/st/connectors/harbor",
                           json.dumps([{"op": "replace",
                                        "path": "/spec/address",
                                        "value": "https://new.example.com"}]
                                      ).encode(),
                           {"Content-Type": "application/json-patch+json"})
            T.expect_eq((r.status, r.json()["metadata"]["generation"]),
                        (200, 2), "json-patch of the spec bumps generation")
            r = self.c.req("PATCH", CONN + "/namespaces/st/connectors/harbor",
                           b"{}", {"Content-Type":
                                   "application/strategic-merge-patch+json"})
            T.expect_eq((r.status, r.json()["reason"]),
                        (415, "UnsupportedMediaType"),
                        "strategic merge patch on a custom resource")
            evs = w.events(2)
            T.expect_eq([e["type"] for e in evs], ["MODIFIED", "MODIFIED"],
                        "PUT and json-patch events")
        finally:
            w.close()
            api.remove_rbac("ClusterRoleBinding", "status-writer")

    def t_leases(self):
        """coordination.k8s.io/v1 Lease: create, get, update with
        resourceVersion (409 on a stale one, 422 without), MicroTime
        exactly, spec validation, RBAC only in ocigate's namespace."""
        api = self.api
        ns = K.OCIGATE_NAMESPACE
        coll = LEASES % ns
        now = time.time()
        spec = {"holderIdentity": "a", "leaseDurationSeconds": 15,
                "acquireTime": K.microtime(now), "renewTime": K.microtime(now),
                "leaseTransitions": 0}
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "el", "namespace": ns}, "spec": spec}
        r = self.c.req("GET", coll + "/el")
        T.expect_eq(r.status, 404, "no Lease yet")
        T.expect_eq(r.json()["details"], {"name": "el", "group":
                    "coordination.k8s.io", "kind": "leases"}, "404 details")
        r = self.c.req("POST", coll, body)
        T.expect_eq(r.status, 201, "create")
        js = r.json()
        T.expect_eq(list(js), ["kind", "apiVersion", "metadata", "spec"],
                    "Lease field order")
        T.expect_eq((js["kind"], js["apiVersion"]),
                    ("Lease", "coordination.k8s.io/v1"), "kind/apiVersion")
        T.expect_eq(js["spec"], spec, "spec stored as sent")
        T.expect_eq(list(js["spec"]), ["holderIdentity",
                                       "leaseDurationSeconds", "acquireTime",
                                       "renewTime", "leaseTransitions"],
                    "LeaseSpec field order")
        rv1 = js["metadata"]["resourceVersion"]
        r = self.c.req("POST", coll, body)
        T.expect_eq((r.status, r.json()["reason"]), (409, "AlreadyExists"),
                    "second create: someone else won")
        upd = json.loads(json.dumps(body))
        upd["metadata"]["resourceVersion"] = rv1
        upd["spec"]["holderIdentity"] = "b"
        upd["spec"]["leaseTransitions"] = 1
        r = self.c.req("PUT", coll + "/el", upd)
        T.expect_eq(r.status, 200, "update at the current resourceVersion")
        rv2 = r.json()["metadata"]["resourceVersion"]
        T.expect(int(rv2) > int(rv1), "resourceVersion moves")
        upd["spec"]["holderIdentity"] = "c"
        r = self.c.req("PUT", coll + "/el", upd)
        T.expect_eq((r.status, r.json()["reason"]), (409, "Conflict"),
                    "update at a stale resourceVersion")
        T.expect_in("Operation cannot be fulfilled on leases."
                    "coordination.k8s.io \"el\": the object has been "
                    "modified", r.json()["message"], "409 message")
        T.expect_eq(api.get_lease(ns, "el")["spec"]["holderIdentity"], "b",
                    "the stale write changed nothing")
        del upd["metadata"]["resourceVersion"]
        r = self.c.req("PUT", coll + "/el", upd)
        T.expect_eq((r.status, r.json()["reason"]), (422, "Invalid"),
                    "update without resourceVersion")
        # MicroTime needs exactly six fraction digits, like time.Parse
        # with RFC3339Micro in the real server
        for bad in ("2024-01-01T00:00:00Z", "2024-01-01T00:00:00.123Z",
                    "yesterday"):
            b2 = json.loads(json.dumps(body))
            b2["metadata"]["name"] = "bad"
            b2["spec"]["renewTime"] = bad
            r = self.c.req("POST", coll, b2)
            T.expect_eq(r.status, 400, "renewTime %r refused" % bad)
        b2["spec"]["renewTime"] = K.microtime(now)
        b2["spec"]["leaseDurationSeconds"] = 0
        r = self.c.req("POST", coll, b2)
        T.expect_eq((r.status, r.json()["reason"]), (422, "Invalid"),
                    "leaseDurationSeconds 0 refused")
        T.expect_eq(K.parse_microtime("2023-11-15T00:13:20.000001+02:00"),
                    1700000000.000001, "MicroTime with an offset")
        # ocigate's Role covers leases in its own namespace only
        r = self.c.req("GET", LEASES % "default" + "/el")
        T.expect_eq(r.status, 403, "no Lease access outside ocigate's "
                    "namespace")
        r = self.c.req("DELETE", coll + "/el")
        T.expect_eq(r.status, 403, "the Role does not allow delete")
        # set_lease for tests; fail_next limited to one token
        api.set_lease(ns, "el", "x", renew=now - 100)
        T.expect_eq(api.get_lease(ns, "el")["spec"]["holderIdentity"], "x",
                    "set_lease")
        other = api.add_token("other-" + os.urandom(4).hex(), K.OCIGATE_USER,
                              groups=["system:serviceaccounts"])
        inj = api.fail_next("/leases/", 503, times=5, token=other)
        r = self.c.req("GET", coll + "/el")
        T.expect_eq(r.status, 200, "another token is not affected")
        r = self.c.req("GET", coll + "/el", token=other)
        T.expect_eq(r.status, 503, "the token's request is")
        T.expect_eq(inj.hits, 1, "one hit")
        api.clear_failures()

    def t_counters(self):
        api = self.api
        api.reset_counters()
        tok = api.add_service_account_token("cnt", "default")
        for _ in range(3):
            self.c.req("POST", TR, tokenreview(tok))
        self.c.req("POST", SAR, sar("system:serviceaccount:cnt:default",
                                    **conn_attrs("cnt", "harbor")))
        self.c.req("GET", CONN + "/connectors")
        self.c.req("GET", CONN + "/namespaces/cnt/connectors")
        T.expect_eq(api.tokenreview_count(tok), 3, "TokenReviews for tok")
        T.expect_eq(api.tokenreview_count(), 3, "all TokenReviews")
        T.expect_eq(api.sar_count("system:serviceaccount:cnt:default",
                                  "harbor"), 1, "SARs")
        T.expect_eq(api.request_count("list", "connectors"), 2, "lists")
        T.expect_eq(api.request_count("create", "tokenreviews"), 3,
                    "create tokenreviews")
        T.expect_eq(api.endpoint_counts(), {
            ("create", "tokenreviews"): 3,
            ("create", "subjectaccessreviews"): 1,
            ("list", "connectors"): 2}, "endpoint counts")
        log = api.requests(verb="list", resource="connectors")
        T.expect_eq([(r["namespace"], r["status"], r["user"]) for r in log],
                    [("", 200, K.OCIGATE_USER), ("cnt", 200, K.OCIGATE_USER)],
                    "request log")
        T.expect_eq(log[0]["headers"].get("Authorization"),
                    "Bearer " + api.ocigate_token, "headers are logged")

    def t_kubeconfig(self):
        path = self.api.write_kubeconfig(self.env.path("kubeconfig"))
        docs = K.yaml_load_all(read_text(path), path)
        T.expect_eq(len(docs), 1, "one document")
        kc = docs[0]
        T.expect_eq(kc["clusters"][0]["cluster"]["server"], self.api.url,
                    "server")
        T.expect_eq(kc["clusters"][0]["cluster"]["certificate-authority"],
                    self.pki.ca_pem, "CA")
        T.expect_eq(kc["users"][0]["user"]["token"], self.api.ocigate_token,
                    "token")
        T.expect_eq(kc["current-context"], "fake", "context")

    def t_standalone(self):
        state = self.env.path("state.json")
        sa_token = "sa-token-" + "x" * 20
        with open(state, "w") as f:
            json.dump({"ocigate_token": "og-token",
                       "service_accounts": [{"namespace": "oci-connector-demo",
                                             "name": "default",
                                             "token": sa_token}],
                       "settings": {"expired_watch": "http"}}, f)
        kc = self.env.path("standalone.kubeconfig")
        proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "k8sapi.py"), "--port", "0",
             "--state", state, "--pki", self.pki.dir, "--kubeconfig", kc,
             "--manifest", os.path.join(MANIFESTS, "connector-example.yaml"),
             "--manifest", os.path.join(MANIFESTS,
                                        "connector-access-example.yaml")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            url = proc.stdout.readline().decode().strip()
            T.expect(url.startswith("https://127.0.0.1:"), "URL printed: %r"
                     % url)
            port = int(url.rsplit(":", 1)[1])
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                               context=self.pki.ssl_context())
            conn.request("GET", CONN + "/connectors",
                         headers={"Authorization": "Bearer og-token"})
            r = conn.getresponse()
            js = json.loads(r.read())
            T.expect_eq((r.status, [i["metadata"]["name"]
                                    for i in js["items"]]),
                        (200, ["harbor"]), "manifest loaded")
            conn.request("POST", SAR, json.dumps(sar(
                "system:serviceaccount:oci-connector-demo:default",
                ["system:serviceaccounts",
                 "system:serviceaccounts:oci-connector-demo"],
                **conn_attrs("oci-connector-demo", "harbor"))),
                headers={"Authorization": "Bearer og-token"})
            T.expect_eq(json.loads(conn.getresponse().read())["status"][
                "allowed"], True, "RBAC from the manifest")
            conn.request("POST", TR, json.dumps(tokenreview(sa_token)),
                         headers={"Authorization": "Bearer og-token"})
            T.expect_eq(json.loads(conn.getresponse().read())["status"][
                "user"]["username"],
                "system:serviceaccount:oci-connector-demo:default",
                "service account token from the state file")
            conn.close()
            T.expect_in("token: og-token", read_text(kc), "kubeconfig")
            proc.send_signal(signal.SIGTERM)
            T.expect_eq(proc.wait(timeout=10), 0, "exit status on SIGTERM")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    # ---- YAML reader and manifests

    def t_yaml_reader(self):
        good = ("a: 1\nb: 'it''s'\nc: \"x\\ty\"\nd: [x, \"y\", 3]\ne: {}\n"
                "f:\n- g: h\n  i: [j]\n-   k\nl: |\n  line1\n    # not a "
                "comment\n  line3\nm: true # comment\nn: ~\no: -5\n"
                "p: >-\n  folded\n  text\nq: a#b\n---\n# only a comment\n"
                "---\n- x\n- - p1\n  - p2\n")
        T.expect_eq(K.yaml_load_all(good), [
            {"a": 1, "b": "it's", "c": "x\ty", "d": ["x", "y", 3], "e": {},
             "f": [{"g": "h", "i": ["j"]}, "k"],
             "l": "line1\n  # not a comment\nline3\n", "m": True, "n": None,
             "o": -5, "p": "folded text", "q": "a#b"},
            ["x", ["p1", "p2"]]], "YAML subset")
        bad = [("a: 1\na: 2\n", "duplicate key"),
               ("a:\n\tb: 1\n", "tab"),
               ("a: yes\n", "boolean in YAML 1.1"),
               ("- y\n", "boolean in YAML 1.1"),
               ("a: 0755\n", "octal"),
               ("a: &x 1\n", "anchor"),
               ("a: b: c\n", "': '"),
               ("a: 1\n  b: 2\n", "indentation"),
               ("a: [1, 2\n", "unterminated"),
               ("a: plain\n  continued\n", "multi-line")]
        for text, want in bad:
            try:
                K.yaml_load_all(text, "t.yaml")
                T.fail("accepted %r" % text)
            except K.YamlError as e:
                T.expect_in(want, str(e), "error for %r" % text)
                T.expect(str(e).startswith("t.yaml:"), "file:line in %s" % e)

    def _manifest(self, name):
        path = os.path.join(MANIFESTS, name)
        with open(path) as f:
            return K.yaml_load_all(f.read(), path)

    def t_manifests_parse(self):
        files = sorted(glob.glob(os.path.join(MANIFESTS, "*.yaml")))
        names = [os.path.basename(f) for f in files]
        for want in ("crd-connector.yaml", "rbac.yaml", "deployment.yaml",
                     "connector-example.yaml",
                     "connector-access-example.yaml"):
            T.expect_in(want, names, "manifest files")
        for f in files:
            docs = self._manifest(os.path.basename(f))
            T.expect(docs, "%s has documents" % f)
            for d in docs:
                T.expect(isinstance(d, dict) and d.get("apiVersion")
                         and d.get("kind"), "%s: apiVersion and kind" % f)
                if d["kind"] != "Kustomization":
                    T.expect(d.get("metadata", {}).get("name"),
                             "%s: %s has a name" % (f, d["kind"]))
        kust = self._manifest("kustomization.yaml")[0]
        for r in kust["resources"]:
            T.expect(os.path.exists(os.path.join(MANIFESTS, r)),
                     "kustomization resource %s exists" % r)

    def t_crd(self):
        (crd,) = self._manifest("crd-connector.yaml")
        T.expect_eq((crd["apiVersion"], crd["kind"], crd["metadata"]["name"]),
                    ("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                     "connectors.connectors.alauda.io"), "CRD identity")
        spec = crd["spec"]
        T.expect_eq((spec["group"], spec["scope"], spec["names"]["plural"],
                     spec["names"]["kind"], spec["names"]["listKind"]),
                    ("connectors.alauda.io", "Namespaced", "connectors",
                     "Connector", "ConnectorList"), "CRD names")
        (v,) = spec["versions"]
        T.expect_eq((v["name"], v["served"], v["storage"], v["subresources"]),
                    ("v1alpha1", True, True, {"status": {}}), "version")
        cols = [(c["name"], c["type"], c["jsonPath"])
                for c in v["additionalPrinterColumns"]]
        T.expect_eq(cols, [
            ("Class", "string", ".spec.connectorClassName"),
            ("Address", "string", ".spec.address"),
            ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status'),
            ("Reason", "string",
             '.status.conditions[?(@.type=="Ready")].reason'),
            ("Age", "date", ".metadata.creationTimestamp")], "printer columns")
        schema = v["schema"]["openAPIV3Schema"]
        self._structural(schema, "openAPIV3Schema")
        p = schema["properties"]
        for path in ("spec.connectorClassName", "spec.address",
                     "spec.auth.name", "spec.auth.secretRef.name",
                     "spec.caCertSecretRef.name", "status.observedGeneration",
                     "status.proxy.httpAddress.url"):
            node = {"properties": p}
            for part in path.split("."):
                T.expect(part in node.get("properties", {}),
                         "schema has %s (at %s)" % (path, part))
                node = node["properties"][part]
        cond = p["status"]["properties"]["conditions"]
        T.expect_eq(sorted(cond["items"]["properties"]), sorted([
            "type", "status", "reason", "message", "lastTransitionTime",
            "observedGeneration"]), "condition fields")
        T.expect_eq(cond["items"]["properties"]["status"]["enum"],
                    ["True", "False", "Unknown"], "condition status enum")
        # the pattern accepts what the product guide uses
        import re
        pat = re.compile(p["spec"]["properties"]["address"]["pattern"])
        for ok in ("https://harbor.example.com", "http://10.0.0.1:5000",
                   "https://r.example.com/prefix"):
            T.expect(pat.search(ok), "address pattern accepts %s" % ok)
        for bad in ("harbor.example.com", "https://u:p@h.example.com",
                    "ftp://h", "https://h/x?y"):
            T.expect(not pat.search(bad), "address pattern refuses %s" % bad)

    def _structural(self, node, where):
        """Every node typed (or explicitly untyped), properties only on
        objects, items only on arrays: a structural schema."""
        T.expect(isinstance(node, dict), "%s is a mapping" % where)
        t = node.get("type")
        T.expect(t in ("object", "array", "string", "integer", "number",
                       "boolean") or node.get(
                           "x-kubernetes-preserve-unknown-fields") or node.get(
                           "x-kubernetes-int-or-string"),
                 "%s has a type" % where)
        if "properties" in node:
            T.expect_eq(t, "object", "%s with properties" % where)
            for k, sub in node["properties"].items():
                self._structural(sub, where + "." + k)
            for r in node.get("required", []):
                T.expect_in(r, node["properties"], "%s required" % where)
        if t == "array":
            T.expect("items" in node, "%s: array with items" % where)
            self._structural(node["items"], where + "[]")
        for k in node:
            T.expect(k in ("type", "properties", "items", "required",
                           "description", "enum", "format", "pattern",
                           "minLength", "maxLength", "minimum", "maximum",
                           "x-kubernetes-list-type",
                           "x-kubernetes-list-map-keys",
                           "x-kubernetes-preserve-unknown-fields",
                           "x-kubernetes-int-or-string"),
                     "%s: unexpected schema keyword %s" % (where, k))

    def t_rbac_manifest(self):
        docs = self._manifest("rbac.yaml")
        by_kind = {d["kind"]: d for d in docs}
        T.expect_eq(sorted(by_kind), ["ClusterRole", "ClusterRoleBinding",
                                      "Namespace", "Role", "RoleBinding",
                                      "ServiceAccount"], "kinds")
        lrole, lbinding = K.ocigate_lease_rbac()
        T.expect_eq(by_kind["Role"], lrole,
                    "rbac.yaml Role = the fixture's ocigate_lease_rbac()")
        T.expect_eq(by_kind["RoleBinding"], lbinding,
                    "rbac.yaml RoleBinding = the fixture's ocigate_lease_rbac()")
        T.expect_eq((by_kind["ServiceAccount"]["metadata"]["name"],
                     by_kind["ServiceAccount"]["metadata"]["namespace"]),
                    (K.OCIGATE_SA, K.OCIGATE_NAMESPACE), "ServiceAccount")
        role, binding = K.ocigate_rbac()

        def canon(rules):
            return sorted(json.dumps(r, sort_keys=True) for r in rules)

        T.expect_eq(canon(by_kind["ClusterRole"]["rules"]),
                    canon(role["rules"]),
                    "rbac.yaml ClusterRole = the fixture's ocigate_rbac()")
        T.expect_eq(by_kind["ClusterRoleBinding"]["roleRef"],
                    binding["roleRef"], "roleRef")
        T.expect_eq(by_kind["ClusterRoleBinding"]["subjects"],
                    binding["subjects"], "subjects")
        # the shipped role, loaded into an API server, allows exactly this
        rb = K.Rbac()
        rb.apply(by_kind["ClusterRole"])
        rb.apply(by_kind["ClusterRoleBinding"])
        rb.apply(by_kind["Role"])
        rb.apply(by_kind["RoleBinding"])
        u, g = K.OCIGATE_USER, ["system:serviceaccounts"]
        allowed = [("create", "authentication.k8s.io", "tokenreviews", ""),
                   ("create", "authorization.k8s.io", "subjectaccessreviews",
                    ""),
                   ("watch", "connectors.alauda.io", "connectors", "ns"),
                   ("list", "", "secrets", ""), ("get", "", "secrets", "ns"),
                   ("get", "coordination.k8s.io", "leases", "ocigate"),
                   ("create", "coordination.k8s.io", "leases", "ocigate"),
                   ("update", "coordination.k8s.io", "leases", "ocigate")]
        denied = [("update", "coordination.k8s.io", "leases", "ns"),
                  ("delete", "coordination.k8s.io", "leases", "ocigate"),
                  ("create", "connectors.alauda.io", "connectors", "ns"),
                  ("patch", "", "secrets", "ns"), ("get", "", "configmaps", ""),
                  ("create", "authorization.k8s.io",
                   "selfsubjectaccessreviews", "")]
        for verb, grp, res, ns in allowed + denied:
            ok, _ = rb.authorize(u, g, {"verb": verb, "group": grp,
                                        "resource": res, "namespace": ns})
            T.expect_eq(ok, (verb, grp, res, ns) in allowed,
                        "%s %s.%s" % (verb, res, grp))

    def t_deployment_manifest(self):
        docs = self._manifest("deployment.yaml")
        by_kind = {d["kind"]: d for d in docs}
        T.expect_eq(sorted(by_kind), ["ConfigMap", "Deployment", "Service"],
                    "kinds")
        for d in docs:
            T.expect_eq(d["metadata"]["namespace"], "ocigate",
                        "%s namespace" % d["kind"])
        conf = by_kind["ConfigMap"]["data"]["ocigate.conf"]
        T.expect_in("\n[kubernetes]\n", conf, "Kubernetes mode section")
        T.expect_in("listen = :5000\n", conf, "listens on 5000")
        T.expect("tokens_file" not in conf, "no static tokens in k8s mode")
        dep = by_kind["Deployment"]["spec"]
        pod = dep["template"]["spec"]
        T.expect_eq(pod["serviceAccountName"], "ocigate", "ServiceAccount")
        T.expect_eq(dep["selector"]["matchLabels"],
                    dep["template"]["metadata"]["labels"], "selector")
        (ctr,) = pod["containers"]
        T.expect_eq(ctr["args"], ["--config", "/etc/ocigate/ocigate.conf"],
                    "args")
        T.expect_eq(ctr["ports"], [
            {"name": "http", "containerPort": 5000, "protocol": "TCP"},
            {"name": "webhook", "containerPort": 8443, "protocol": "TCP"},
            {"name": "admin", "containerPort": 9090, "protocol": "TCP"}],
            "ports")
        T.expect_eq((ctr["readinessProbe"]["httpGet"],
                     ctr["livenessProbe"]["httpGet"]),
                    ({"path": "/readyz", "port": "admin"},
                     {"path": "/healthz", "port": "admin"}), "probes")
        mount = ctr["volumeMounts"][0]
        T.expect_eq((mount["mountPath"], pod["volumes"][0]["configMap"]["name"]),
                    ("/etc/ocigate", by_kind["ConfigMap"]["metadata"]["name"]),
                    "config mounted from the ConfigMap")
        svc = by_kind["Service"]["spec"]
        T.expect_eq(svc["selector"], dep["selector"]["matchLabels"],
                    "Service selects the Pods")
        T.expect_eq((svc["ports"][0]["port"], svc["ports"][0]["targetPort"]),
                    (5000, "http"), "Service port")
        T.expect_in(":%d" % svc["ports"][0]["nodePort"], conf,
                    "public_address uses the nodePort")

    # ---- kustomize renderings: every object against the API's shapes

    KINDS = {
        ("v1", "Namespace"): False, ("v1", "ServiceAccount"): True,
        ("v1", "ConfigMap"): True, ("v1", "Service"): True,
        ("apps/v1", "Deployment"): True, ("apps/v1", "DaemonSet"): True,
        ("policy/v1", "PodDisruptionBudget"): True,
        ("networking.k8s.io/v1", "NetworkPolicy"): True,
        ("rbac.authorization.k8s.io/v1", "ClusterRole"): False,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): False,
        ("rbac.authorization.k8s.io/v1", "Role"): True,
        ("rbac.authorization.k8s.io/v1", "RoleBinding"): True,
        ("admissionregistration.k8s.io/v1",
         "MutatingWebhookConfiguration"): False,
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): False,
        ("cert-manager.io/v1", "Issuer"): True,
        ("cert-manager.io/v1", "Certificate"): True,
    }
    DNS1123 = __import__("re").compile(
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

    def _render(self, rel, components=()):
        """kubectl kustomize packaging/kubernetes/REL, optionally with
        components added (as a user uncommenting them would)."""
        d = os.path.join(MANIFESTS, rel)
        if components:
            tmp = self.env.mkdir("kust-" + "-".join(
                c.replace("/", "_") for c in components))
            with open(os.path.join(tmp, "kustomization.yaml"), "w") as f:
                f.write("apiVersion: kustomize.config.k8s.io/v1beta1\n"
                        "kind: Kustomization\nresources:\n  - %s\n"
                        "components:\n%s" % (d, "".join(
                            "  - %s\n" % os.path.join(MANIFESTS, c)
                            for c in components)))
            d = tmp
        return Z.render(d)

    def _check_object(self, o, where):
        key = (o.get("apiVersion"), o.get("kind"))
        T.expect(key in self.KINDS, "%s: unknown kind %r" % (where, key))
        m = o.get("metadata") or {}
        name = m.get("name") or ""
        T.expect(self.DNS1123.match(name) and len(name) <= 253,
                 "%s: metadata.name %r" % (where, name))
        T.expect_eq(bool(m.get("namespace")), self.KINDS[key],
                    "%s %s: namespaced" % (where, name))
        if self.KINDS[key]:
            T.expect_eq(m["namespace"], "ocigate", "%s %s namespace"
                        % (where, name))
        T.expect(set(o) <= {"apiVersion", "kind", "metadata", "spec", "data",
                            "rules", "roleRef", "subjects", "webhooks"},
                 "%s %s: top-level fields %s" % (where, name, sorted(o)))

    @staticmethod
    def _conf_port(conf, section, key):
        cur = None
        for line in conf.splitlines():
            line = line.split(";")[0].split("#")[0].strip()
            if line.startswith("["):
                cur = line.strip("[]")
            elif cur == section and line.split("=")[0].strip() == key:
                return int(line.split("=", 1)[1].strip().rsplit(":", 1)[1])
        T.fail("[%s] %s not in ocigate.conf" % (section, key))

    def _check_workload(self, objs, where):
        by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
        work = [o for o in objs if o["kind"] in ("Deployment", "DaemonSet")]
        T.expect_eq(len(work), 1, "%s: one workload" % where)
        w = work[0]
        spec = w["spec"]
        tpl = spec["template"]
        labels = tpl["metadata"]["labels"]
        T.expect_eq(spec["selector"]["matchLabels"], labels,
                    "%s: selector = template labels" % where)
        pod = tpl["spec"]
        T.expect(("ServiceAccount", pod["serviceAccountName"]) in by,
                 "%s: ServiceAccount exists" % where)
        psc = pod["securityContext"]
        T.expect_eq((psc["runAsNonRoot"], psc["runAsUser"],
                     psc["seccompProfile"]), (True, 65532,
                                              {"type": "RuntimeDefault"}),
                    "%s: pod securityContext" % where)
        (c,) = pod["containers"]
        sc = c["securityContext"]
        T.expect_eq((sc["runAsNonRoot"], sc["readOnlyRootFilesystem"],
                     sc["allowPrivilegeEscalation"], sc["capabilities"],
                     sc["seccompProfile"]),
                    (True, True, False, {"drop": ["ALL"]},
                     {"type": "RuntimeDefault"}),
                    "%s: container securityContext" % where)
        T.expect(c["resources"]["requests"]["cpu"]
                 and c["resources"]["requests"]["memory"]
                 and c["resources"]["limits"]["memory"],
                 "%s: resources" % where)
        T.expect_eq(c["image"], "registry.example.com/ocigate/ocigate:0.1.0",
                    "%s: image from kustomization images" % where)
        ports = {p["name"]: p for p in c["ports"]}
        T.expect_eq(len(ports), len(c["ports"]), "%s: port names unique"
                    % where)
        for n, p in ports.items():
            T.expect(len(n) <= 15 and self.DNS1123.match(n),
                     "%s: port name %r (IANA_SVC_NAME)" % (where, n))
            T.expect_eq(p["protocol"], "TCP", "%s: %s protocol" % (where, n))
        T.expect_eq((ports["http"]["containerPort"],
                     ports["webhook"]["containerPort"],
                     ports["admin"]["containerPort"]), (5000, 8443, 9090),
                    "%s: http/webhook/admin ports" % where)
        for probe, path in (("readinessProbe", "/readyz"),
                            ("livenessProbe", "/healthz")):
            T.expect_eq(c[probe]["httpGet"], {"path": path, "port": "admin"},
                        "%s: %s on the admin port" % (where, probe))
        ann = tpl["metadata"]["annotations"]
        T.expect_eq((ann["prometheus.io/scrape"], ann["prometheus.io/port"],
                     ann["prometheus.io/path"]),
                    ("true", str(ports["admin"]["containerPort"]), "/metrics"),
                    "%s: metrics annotations" % where)
        vols = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        T.expect_eq(sorted(mounts), sorted(vols), "%s: volumes mounted"
                    % where)
        T.expect(all(m.get("readOnly") for m in mounts.values()),
                 "%s: read-only mounts" % where)
        cm = by[("ConfigMap", vols["config"]["configMap"]["name"])]
        conf = cm["data"]["ocigate.conf"]
        T.expect_eq(mounts["config"]["mountPath"], os.path.dirname(
            c["args"][c["args"].index("--config") + 1]),
            "%s: --config in the ConfigMap mount" % where)
        T.expect_eq(self._conf_port(conf, "server", "listen"),
                    ports["http"]["containerPort"], "%s: listen" % where)
        T.expect_eq(self._conf_port(conf, "server", "admin_listen"),
                    ports["admin"]["containerPort"], "%s: admin_listen"
                    % where)
        T.expect_eq(self._conf_port(conf, "webhook", "listen"),
                    ports["webhook"]["containerPort"], "%s: webhook listen"
                    % where)
        tls = mounts["webhook-tls"]["mountPath"]
        T.expect_in("cert_file = %s/tls.crt\n" % tls, conf,
                    "%s: cert_file in the Secret mount" % where)
        T.expect_in("key_file = %s/tls.key\n" % tls, conf,
                    "%s: key_file in the Secret mount" % where)
        T.expect_eq(vols["webhook-tls"]["secret"]["secretName"],
                    "ocigate-webhook-tls", "%s: webhook Secret" % where)
        # Services: selector matches, targetPort names a container port
        for o in objs:
            if o["kind"] != "Service":
                continue
            sel = o["spec"]["selector"]
            T.expect(all(labels.get(k) == v for k, v in sel.items()),
                     "%s: Service %s selects the Pods"
                     % (where, o["metadata"]["name"]))
            for sp in o["spec"]["ports"]:
                tp = sp["targetPort"]
                T.expect(tp in ports if isinstance(tp, str) else
                         tp in [p["containerPort"] for p in ports.values()],
                         "%s: Service %s targetPort %r is a container port"
                         % (where, o["metadata"]["name"], tp))
        # the webhook: its Service, port and path
        mwc = by[("MutatingWebhookConfiguration", "ocigate-image-rewrite")]
        (wh,) = mwc["webhooks"]
        ref = wh["clientConfig"]["service"]
        svc = by[("Service", ref["name"])]
        T.expect_eq(ref["namespace"], svc["metadata"]["namespace"],
                    "%s: webhook Service namespace" % where)
        (sp,) = [p for p in svc["spec"]["ports"] if p["port"] == ref["port"]]
        T.expect_eq(sp["targetPort"], "webhook",
                    "%s: webhook Service port -> container port webhook"
                    % where)
        T.expect_eq((wh["sideEffects"], wh["admissionReviewVersions"],
                     ref["path"]), ("None", ["v1"], "/mutate"),
                    "%s: webhook required fields" % where)
        T.expect("caBundle" in wh["clientConfig"], "%s: caBundle" % where)
        # NetworkPolicy: the Pods, by port names they have
        (np,) = [o for o in objs if o["kind"] == "NetworkPolicy"]
        T.expect_eq(np["spec"]["podSelector"]["matchLabels"], labels,
                    "%s: NetworkPolicy selects the Pods" % where)
        np_ports = [p["port"] for r in np["spec"]["ingress"]
                    for p in r["ports"]]
        T.expect_eq(sorted(np_ports), sorted(ports),
                    "%s: NetworkPolicy opens exactly the container ports"
                    % where)
        # the Lease Role in the workload's namespace
        T.expect_eq(by[("Role", "ocigate-leader-election")]["metadata"][
            "namespace"], w["metadata"]["namespace"],
            "%s: Lease Role in ocigate's namespace" % where)
        return w, c, conf, by

    def t_kustomize(self):
        for rel, comps in (("", ()), ("", ("components/cert-manager",)),
                           ("daemonset", ())):
            where = "kustomize %s%s" % (rel or "base", "+" + ",".join(comps)
                                        if comps else "")
            objs = self._render(rel, comps)
            for o in objs:
                self._check_object(o, where)
            w, c, conf, by = self._check_workload(objs, where)
            mwc = by[("MutatingWebhookConfiguration",
                      "ocigate-image-rewrite")]
            ann = mwc["metadata"].get("annotations") or {}
            if comps:
                cert = by[("Certificate", "ocigate-webhook")]
                T.expect_eq(cert["spec"]["secretName"], "ocigate-webhook-tls",
                            "%s: Certificate writes the mounted Secret"
                            % where)
                T.expect_eq(ann.get("cert-manager.io/inject-ca-from"),
                            "ocigate/" + cert["metadata"]["name"],
                            "%s: CA injection" % where)
                T.expect_in("ocigate-webhook.ocigate.svc",
                            cert["spec"]["dnsNames"], "%s: DNS name" % where)
                T.expect(("Issuer", cert["spec"]["issuerRef"]["name"]) in by,
                         "%s: Issuer" % where)
            else:
                T.expect("cert-manager.io/inject-ca-from" not in ann,
                         "%s: no cert-manager annotation" % where)
            if rel == "daemonset":
                T.expect_eq(w["kind"], "DaemonSet", "overlay: a DaemonSet")
                http = [p for p in c["ports"] if p["name"] == "http"][0]
                T.expect_eq(http.get("hostPort"), 5000, "hostPort")
                T.expect_in("public_address = 127.0.0.1:%d\n"
                            % http["hostPort"], conf,
                            "public_address = the node-local hostPort")
                T.expect(("PodDisruptionBudget", "ocigate") not in by
                         and ("Service", "ocigate") not in by,
                         "overlay drops the PDB and the NodePort Service")
                T.expect_eq(w["spec"]["updateStrategy"]["rollingUpdate"][
                    "maxSurge"], 0, "no surge with a hostPort")
            else:
                T.expect_eq(w["kind"], "Deployment", "base: a Deployment")
                pdb = by[("PodDisruptionBudget", "ocigate")]
                T.expect_eq(pdb["spec"]["selector"]["matchLabels"],
                            w["spec"]["template"]["metadata"]["labels"],
                            "PDB selects the Pods")
                T.expect(pdb["spec"]["minAvailable"] < w["spec"]["replicas"],
                         "PDB leaves room for a drain")
                svc = by[("Service", "ocigate")]
                T.expect_in("public_address = ocigate.example.com:%d\n"
                            % svc["spec"]["ports"][0]["nodePort"], conf,
                            "public_address uses the nodePort")

    def t_webhook_cert_script(self):
        d = self.env.path("webhook-cert")
        self.env.run(["bash", os.path.join(MANIFESTS, "make-webhook-cert.sh"),
                      d])
        r = self.env.run(["openssl", "verify", "-CAfile",
                          os.path.join(d, "ca.crt"), "-purpose", "sslserver",
                          os.path.join(d, "tls.crt")], check=False)
        T.expect_eq(r.returncode, 0, "certificate verifies for serverAuth: %s"
                    % r.stdout.decode() + r.stderr.decode())
        r = self.env.run(["openssl", "x509", "-in", os.path.join(d, "tls.crt"),
                          "-noout", "-ext", "subjectAltName"])
        T.expect_in("DNS:ocigate-webhook.ocigate.svc,", r.stdout.decode(),
                    "SAN names the webhook Service")
        with open(os.path.join(d, "ca-bundle.b64")) as f, \
                open(os.path.join(d, "ca.crt"), "rb") as g:
            T.expect_eq(base64.b64decode(f.read()), g.read(),
                        "caBundle = base64 of ca.crt")
        T.expect_eq(os.stat(os.path.join(d, "tls.key")).st_mode & 0o077, 0,
                    "key not readable by others")
        # a TLS server on that pair, checked like the API server would
        import ssl as _ssl
        ctx = _ssl.SSLContext(_ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, "tls.crt"),
                            os.path.join(d, "tls.key"))

    def t_example_manifests(self):
        api = K.FakeKubeAPI(self.pki)   # not started: the store and RBAC only
        docs = api.load_manifests(os.path.join(MANIFESTS,
                                               "connector-example.yaml"))
        T.expect_eq([d["kind"] for d in docs], ["Connector", "Secret"],
                    "example kinds")
        c = api.get_connector("oci-connector-demo", "harbor")
        T.expect_eq(c["spec"], {"connectorClassName": "oci",
                                "address": "https://harbor.example.com",
                                "auth": {"name": "tokenAuth",
                                         "secretRef": {"name": "harbor-secret"}}},
                    "Connector spec as in the product guide")
        s = api.get_secret("oci-connector-demo", "harbor-secret")
        T.expect_eq(s["type"], "cpaas.io/distribution-registry-token", "type")
        T.expect_eq({k: base64.b64decode(v).decode()
                     for k, v in s["data"].items()},
                    {"username": "robot$demo", "password": "robotsecret"},
                    "stringData stored as data")
        api.load_manifests(os.path.join(MANIFESTS,
                                        "connector-access-example.yaml"))
        sa = "system:serviceaccount:oci-connector-demo:default"
        groups = ["system:serviceaccounts",
                  "system:serviceaccounts:oci-connector-demo",
                  "system:authenticated"]
        ok, reason = api.authorize(sa, groups, conn_attrs(
            "oci-connector-demo", "harbor"))
        T.expect_eq((ok, reason), (True, 'RBAC: allowed by RoleBinding '
                                   '"connector-harbor-users/oci-connector-demo"'
                                   ' of Role "connector-harbor-user" to Group '
                                   '"system:serviceaccounts:oci-connector-demo"'),
                    "the example grants the namespace's ServiceAccounts")
        for attrs, what in [
                (conn_attrs("oci-connector-demo", "other"), "other connector"),
                (conn_attrs("oci-connector-demo", "harbor", verb="list"),
                 "list"),
                (conn_attrs("team-b", "harbor"), "other namespace")]:
            T.expect_eq(api.authorize(sa, groups, attrs)[0], False, what)
        other = "system:serviceaccount:team-b:default"
        T.expect_eq(api.authorize(other, ["system:serviceaccounts:team-b"],
                                  conn_attrs("oci-connector-demo",
                                             "harbor"))[0], False,
                    "ServiceAccounts of other namespaces")

    def t_no_handler_errors(self):
        T.expect_eq(self.api.errors, [], "exceptions in handler threads")

    def close(self):
        if getattr(self, "c", None) is not None:
            self.c.close()
        if getattr(self, "api", None) is not None:
            self.api.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    ap.add_argument("--timeout", type=float, default=235,
                    help="fail the whole script after this many seconds")
    args = ap.parse_args()
    T.start_watchdog(args.timeout)
    with T.Env("k8sapi", keep=args.keep) as env:
        t = FixtureTest(env)
        tap = T.Tap(env)
        try:
            rc = tap.run_all([
                ("setup: pki, fake API server", t.setup, True)] + [
                (name, t.isolated(fn)) for name, fn in [

                ("health and version need no credentials",
                 t.t_unauthenticated_paths),
                ("401 Status for missing, wrong, expired credentials",
                 t.t_unauthorized),
                ("403 Status in the real message format", t.t_forbidden),
                ("client certificate authentication", t.t_client_cert),
                ("HTTP/1.1 keep-alive", t.t_keepalive),
                ("TokenReview: known tokens, exact response",
                 t.t_tokenreview_known),
                ("TokenReview: unknown token, bad requests",
                 t.t_tokenreview_unknown),
                ("TokenReview: expired, invalidated, removed",
                 t.t_tokenreview_expired),
                ("TokenReview: audiences", t.t_tokenreview_audiences),
                ("SubjectAccessReview: RBAC bindings, subjects, subresources",
                 t.t_sar),
                ("SubjectAccessReview: validation", t.t_sar_invalid),
                ("list: ConnectorList and SecretList shapes", t.t_list_shapes),
                ("list: limit/continue pagination", t.t_pagination),
                ("list: label and field selectors", t.t_selectors),
                ("watch: ADDED/MODIFIED/DELETED in order",
                 t.t_watch_order),
                ("watch: initial events and bookmarks",
                 t.t_watch_initial_events_and_bookmarks),
                ("watch: timeoutSeconds ends cleanly, connection kept",
                 t.t_watch_timeout_keepalive),
                ("watch: 410 Expired as an event and as HTTP 410",
                 t.t_watch_expired),
                ("list: 410 for an expired continue token",
                 t.t_continue_expired),
                ("watch: selectors, single object", t.t_watch_selector_transitions),
                ("gzip for lists and watches", t.t_gzip),
                ("watch: events split across chunks", t.t_watch_split_chunks),
                ("drop_watches cuts streams abruptly", t.t_drop_watches),
                ("fail_next: 429, 500, 503, hang, close", t.t_fail_next),
                ("stop/start on the same port", t.t_stop_start),
                ("status PATCH/PUT, conflicts, generation", t.t_status_patch),
                ("Leases: create, update, 409, MicroTime, RBAC",
                 t.t_leases),
                ("counters and request log", t.t_counters),
                ("kubeconfig for ocigate", t.t_kubeconfig),
                ("standalone: --port 0 --state, URL on stdout",
                 t.t_standalone),
                ("YAML subset reader", t.t_yaml_reader),
                ("manifests: every file parses", t.t_manifests_parse),
                ("manifests: Connector CRD", t.t_crd),
                ("manifests: rbac.yaml matches the fixture", t.t_rbac_manifest),
                ("manifests: Deployment, Service, ConfigMap",
                 t.t_deployment_manifest),
                ("manifests: kustomize base, cert-manager, daemonset",
                 t.t_kustomize),
                ("manifests: make-webhook-cert.sh", t.t_webhook_cert_script),
                ("manifests: examples work against the fixture",
                 t.t_example_manifests),
                ("no exception in the fixture's threads",
                 t.t_no_handler_errors),
            ]])
        finally:
            t.close()
    sys.exit(rc)


if __name__ == "__main__":
    main()
