#!/usr/bin/env python3
"""Hostile peers on the upstream side: a storage host that a blob redirects
to, a registry that moves or downgrades its token realm, a token service
that redirects or answers too much, and user names that try to forge log
fields.  The connector's credentials must go to the registry and to the
token realm the registry itself named, nowhere else, and nothing a storage
host says may change how ocigate talks to the registry.

Real components: Debian docker-registry over TLS (one with htpasswd, one
with token auth and test/e2e/tokenservice.py), each behind
test/e2e/redirector.py, whose blob redirects the tests point at an "evil"
TLS host of this file (a valid certificate for localhost: the worst case).
The evil host records every request it gets.

Registries that hang up without answering (PoolRegistry, TLS and plain
HTTP) check the one retry of a GET/HEAD sent on a pooled connection the
registry had closed, and that nothing else is sent twice; they sit behind a
second ocigate logging at debug level (the upstream_close reasons).

    python3 test/e2e/test_hostile_upstream.py --ocigate build/ocigate
"""

import http.server
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402
from redirector import Redirector, Seen  # noqa: E402
from tokenservice import Served, TokenService, server_context  # noqa: E402

NS = "team-a"
BASIC, TOK, MOVE, HTTPREALM, REDIR = (
    "basic", "tok", "tokmove", "tokhttp", "tokredir")
# one connector per token response case: each learns its realm once
HUGE = ("tokhuge", "tokchunked", "toknegative", "tokgiant")
MAX_RETRY_AFTER = 3600
# 16 MiB of growth for 16 MiB of oversized token responses would mean they
# were buffered; the ASan test setup raises the limit (its shadow memory and
# quarantine are not ocigate's), as for test_memory.py.
GROWTH_LIMIT_MIB = int(os.environ.get("OCIGATE_TEST_RSS_LIMIT_MIB", "16"))
# a user name from a TokenReview or a tokens file may hold anything
FORGED_USER = 'mallory" status=200 forged="1'
# upstream connection reuse (PoolRegistry, one per connector): REUSE* hang
# up on reused connections (TLS with close_notify, TLS cut without it, plain
# HTTP), GONE* on every request once told to
REUSE, REUSE_CUT, REUSE_PLAIN = "reuse", "reusecut", "reuseplain"
GONE, GONE_CUT = "gone", "gonecut"
# a registry writing many small TLS records per TCP segment (RecordRegistry)
RECORDS = "records"
EMPTY_JSON_DIGEST = T.sha256_bytes(b"{}")


class Stub:
    """A TLS (or plain) HTTP server answering as `mode` says, recording
    every request: the evil storage host, or a token service that
    misbehaves."""

    def __init__(self, pki, name, blobs=None, tls=True):
        self.name = name
        self.blobs = dict(blobs or {})
        self.mode = "challenge"
        self.redirect_to = None      # "back" mode and /token redirects
        self.token_doc = None        # callable(query) -> dict for /token-doc
        self.seen = []
        self._lock = threading.Lock()
        self.tls = tls
        ctx = server_context(pki.cert, pki.key) if tls else None
        self.served = Served(self._handler(), ctx)

    def start(self):
        self.served.start()
        return self

    def stop(self):
        self.served.stop()

    @property
    def origin(self):
        """Addressed as localhost: another origin than any 127.0.0.1 server."""
        return "%s://localhost:%d" % ("https" if self.tls else "http",
                                      self.served.port)

    @property
    def ip_origin(self):
        return "%s://127.0.0.1:%d" % ("https" if self.tls else "http",
                                      self.served.port)

    def mark(self):
        with self._lock:
            return len(self.seen)

    def requests(self, since=0):
        with self._lock:
            return self.seen[since:]

    def _handler(self):
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def log_message(self, *a):
                pass

            def _any(self):
                with stub._lock:
                    stub.seen.append(Seen(stub.name, self.command, self.path,
                                          list(self.headers.items())))
                try:
                    stub._serve(self)
                except OSError:
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _any

        return Handler

    def _send(self, h, status, body, headers=(), ctype="application/json"):
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _serve(self, h):
        path, _, query = h.path.partition("?")
        if path == "/token":
            if self.redirect_to:
                return self._send(h, 302, b"", [("Location", self.redirect_to)])
            doc = {"token": "evil-token-" + secrets.token_hex(8),
                   "expires_in": 300}
            return self._send(h, 200, json.dumps(doc).encode())
        if path == "/token-doc":
            return self._send(h, 200, json.dumps(self.token_doc(query)).encode())
        if path == "/huge-token":
            return self._huge(h, chunked=False)
        if path == "/huge-chunked":
            return self._huge(h, chunked=True)
        challenge = ('Bearer realm="%s/token",service="evil",'
                     'scope="repository:demo/app:pull"' % self.origin)
        if self.mode == "challenge":
            return self._send(h, 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                              [("WWW-Authenticate", challenge),
                               ("WWW-Authenticate", 'Basic realm="evil"')])
        if self.mode == "forbidden":
            return self._send(h, 403, b"<Error>AccessDenied</Error>",
                              [("WWW-Authenticate", challenge),
                               ("Set-Cookie", "evil=1; Path=/")],
                              ctype="application/xml")
        if self.mode == "back":
            return self._send(h, 302, b"", [("Location", self.redirect_to)])
        if self.mode == "headers":
            return self._blob_with_hostile_headers(h, path, challenge)
        raise AssertionError(self.mode)

    def _blob_with_hostile_headers(self, h, path, challenge):
        m = re.match(r"^/blob/sha256/([0-9a-f]{64})$", path)
        fpath = self.blobs.get("sha256:" + m.group(1)) if m else None
        if fpath is None:
            return self._send(h, 404, b"no such blob", ctype="text/plain")
        with open(fpath, "rb") as f:
            data = f.read()
        self._send(h, 200, data, [
            ("WWW-Authenticate", challenge),
            ("Proxy-Authenticate", 'Basic realm="evil"'),
            ("Set-Cookie", "session=evil; Domain=127.0.0.1; Path=/"),
            ("Location", "https://evil.example/phish"),
            ("Link", '</v2/evil/tags/list?n=1>; rel="next"'),
            ("Docker-Content-Digest", "sha256:" + "0" * 64),
            ("Docker-Distribution-Api-Version", "evil/9"),
            ("OCI-Subject", "sha256:" + "1" * 64),
            ("RateLimit-Remaining", "0"),
            ("Retry-After", "99999999999999999999"),
            ("Retry-After", "1"),
            ("Retry-After", "2"),
            ("X-Evil", "1"),
            ("ETag", '"etag-from-storage"'),
        ], ctype="application/octet-stream")

    def _huge(self, h, chunked):
        size = 8 * T.MiB
        piece = b'{"token":"' + b"A" * 65536
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(size))
        h.end_headers()
        sent = 0
        while sent < size:
            chunk = piece[:min(len(piece), size - sent)]
            if chunked:
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                h.wfile.write(chunk)
            sent += len(chunk)
        if chunked:
            h.wfile.write(b"0\r\n\r\n")


class Hit:
    """One request a PoolRegistry got: on which of its connections, the
    how-many-th on that connection, and whether it was answered."""

    def __init__(self, conn, nth, method, path, authorization, answered):
        self.conn = conn
        self.nth = nth
        self.method = method
        self.path = path
        self.authorization = authorization
        self.answered = answered

    def key(self):
        return (self.conn, self.nth, self.method, self.path, self.answered)

    def __repr__(self):
        return "<conn %d #%d %s %s %s>" % (self.conn, self.nth, self.method, self.path,
                                           "answered" if self.answered else "hung up")


class PoolRegistry(Stub):
    """A minimal registry for one Basic connector: GET/HEAD /v2/ and
    /v2/demo/app/manifests/v1, PUT of a manifest (201), DELETE of its
    manifest by digest (202), keep-alive, 401 +
    Basic challenge without the right credential.  It numbers its
    connections (one handler instance each) and the requests on each.
    mode "serve" answers everything; "close_reused" closes a connection
    without a byte of answer when a second (or later) request arrives on it,
    as a registry that drops an idle keep-alive connection just as the proxy
    reuses it; "close_all" does so for every request, the first one on a
    fresh connection too.  close_notify: the TLS close sends its alert before
    the FIN (as Go's and nginx's idle closes do); without it the TLS stream
    just ends."""

    REPO, TAG = "demo/app", "v1"

    def __init__(self, pki, name, user, password, tls=True, close_notify=True):
        Stub.__init__(self, pki, name, tls=tls)
        self.mode = "serve"
        self.authorization = T.basic_auth(user, password)
        self.close_notify = close_notify
        self.conns = 0
        self.hits = []
        self.manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": T.MEDIA_OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": EMPTY_JSON_DIGEST, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json",
                        "digest": EMPTY_JSON_DIGEST, "size": 2}],
            "annotations": {"registry": name},
        }, sort_keys=True).encode()
        self.digest = T.sha256_bytes(self.manifest)

    def mark(self):
        with self._lock:
            return len(self.hits)

    def hits_since(self, since=0):
        with self._lock:
            return self.hits[since:]

    def _serve(self, h):
        with self._lock:
            if not hasattr(h, "pool_conn"):
                self.conns += 1
                h.pool_conn, h.pool_nth = self.conns, 0
            h.pool_nth += 1
            hang_up = (self.mode == "close_all" or
                       (self.mode == "close_reused" and h.pool_nth > 1))
            self.hits.append(Hit(h.pool_conn, h.pool_nth, h.command, h.path,
                                 h.headers.get("Authorization"), not hang_up))
        body = b""
        n = int(h.headers.get("Content-Length") or 0)
        if n:
            # read it all: closing on unread bytes would be a reset, not an EOF
            body = h.rfile.read(n)
        if hang_up:
            return self._hang_up(h)
        if h.headers.get("Authorization") != self.authorization:
            return self._send(h, 401, b'{"errors":[{"code":"UNAUTHORIZED",'
                              b'"message":"pool registry: authentication required"}]}',
                              [("WWW-Authenticate", 'Basic realm="%s"' % self.name)])
        manifest_path = "/v2/%s/manifests/" % self.REPO
        if h.path == "/v2/" and h.command in ("GET", "HEAD"):
            return self._send(h, 200, b"{}")
        if h.path == manifest_path + self.TAG and h.command in ("GET", "HEAD"):
            return self._send(h, 200, self.manifest,
                              [("Docker-Content-Digest", self.digest)],
                              ctype=T.MEDIA_OCI_MANIFEST)
        if h.path == manifest_path + self.digest and h.command == "DELETE":
            return self._send(h, 202, b"")
        if h.path.startswith(manifest_path) and h.command == "PUT":
            digest = T.sha256_bytes(body)
            return self._send(h, 201, b"", [("Location", manifest_path + digest),
                                            ("Docker-Content-Digest", digest)])
        return self._send(h, 404, b'{"errors":[{"code":"NAME_UNKNOWN",'
                          b'"message":"pool registry: unknown path"}]}')

    def _hang_up(self, h):
        """Close this connection without answering (the handler's loop ends,
        the server shuts the socket down)."""
        h.close_connection = True
        s = h.connection
        if self.tls and self.close_notify:
            s.setblocking(False)
            try:
                s.unwrap()      # sends close_notify, does not wait for the peer's
            except (ssl.SSLError, OSError):
                pass
        try:
            s.shutdown(socket.SHUT_RDWR)    # the FIN now, not when collected
        except OSError:
            pass


class RecordRegistry(PoolRegistry):
    """A PoolRegistry over TLS that writes every response as small TLS
    records (RECORD bytes of plaintext each) corked into as few TCP
    segments as loopback allows, so one read(2) of ocigate's brings many
    records at once.  It also serves one blob (BLOB, random bytes)."""

    RECORD = 1000
    CORK = 60 * 1000     # plaintext per TCP segment, below loopback's MSS

    def __init__(self, pki, name, user, password, blob):
        PoolRegistry.__init__(self, pki, name, user, password)
        self.blob = blob
        self.blob_digest = T.sha256_bytes(blob)

    def _serve(self, h):
        if h.path == "/v2/%s/blobs/%s" % (self.REPO, self.blob_digest) and \
                h.headers.get("Authorization") == self.authorization:
            return self._send(h, 200, self.blob, ctype="application/octet-stream")
        return PoolRegistry._serve(self, h)

    def _send(self, h, status, body, headers=(), ctype="application/json"):
        head = ["HTTP/1.1 %d %s" % (status, h.responses[status][0]),
                "Content-Type: " + ctype, "Content-Length: %d" % len(body)]
        head += ["%s: %s" % kv for kv in headers]
        data = ("\r\n".join(head) + "\r\n\r\n").encode()
        if h.command != "HEAD":
            data += body
        s = h.connection
        for seg in range(0, len(data), self.CORK):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            for i in range(seg, min(seg + self.CORK, len(data)), self.RECORD):
                s.sendall(data[i:min(i + self.RECORD, seg + self.CORK, len(data))])
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


class HostileTest(T.CrashGuard):
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.alice = T.Token("alice")
        self.mallory = T.Token('"%s"' % FORGED_USER.replace('"', '""'),
                               uid="uid-mallory")
        self.dead = []

    # -- fixture ----------------------------------------------------------

    def setup(self):
        env = self.env
        self.pki = T.make_pki(env.path("pki"))
        self.lay = T.make_oci_layout(env.path("layout"), 1 * T.MiB)
        blobs = {d: b.path for d, b in self.lay.all_blobs().items()}
        # htpasswd registry
        self.bpw = "upw-basic-" + secrets.token_hex(8)
        self.breg = T.Registry(env, self.pki, users={"robot": self.bpw},
                               name="basic-registry").start()
        T.seed_registry(self.breg, self.lay, tags=("v1",), index_repo=None)
        # token registry
        self.seed_pw = "seed-" + secrets.token_hex(8)
        self.tpw = "upw-token-" + secrets.token_hex(8)
        self.ts = TokenService(
            env, self.pki, users={"seeder": self.seed_pw, "robot": self.tpw},
            grants={"seeder": [("*", ["pull", "push"])],
                    "robot": [("demo/*", ["pull"])]}).start()
        self.treg = T.Registry(env, self.pki, users={"seeder": self.seed_pw},
                               token_auth=self.ts, name="token-registry").start()
        T.seed_registry(self.treg, self.lay, tags=("v1",), index_repo=None)
        T.skopeo_copy(env, "oci:%s:single" % self.lay.dir,
                      "docker://%s/demo/second:v1" % self.treg.host,
                      ["--dest-cert-dir", self.pki.certdir, "--dest-creds",
                       "seeder:" + self.seed_pw])
        self.brd = Redirector(self.pki, self.breg, blobs).start()
        self.trd = Redirector(self.pki, self.treg, blobs).start()
        self.evil = Stub(self.pki, "evil", blobs).start()
        self.tsredir = Stub(self.pki, "tsredir").start()
        self.plain = Stub(self.pki, "plain", tls=False).start()
        conns = [self.connector(BASIC, self.brd, self.bpw)]
        for name in (TOK, MOVE, HTTPREALM, REDIR) + HUGE:
            conns.append(self.connector(name, self.trd, self.tpw))
        self.og = T.Ocigate(env, self.args.ocigate, [self.alice, self.mallory],
                            conns).start()
        T.diag("ocigate %s, basic front %s, token front %s, evil %s"
               % (self.og.host, self.brd.url, self.trd.url, self.evil.origin))

    def connector(self, name, rd, pw):
        return T.Connector("%s/%s" % (NS, name), rd.url, username="robot",
                           password=pw, ca_file=self.pki.ca_pem,
                           allow=["alice"])

    def setup_reuse(self):
        """One PoolRegistry per connector (and a RecordRegistry) behind a
        second ocigate that logs at debug level: upstream_close lines (with
        their reason) are debug.  Its body_buffer is the smallest allowed,
        16k, so a slow client switches upstream reading off and on often."""
        self.rpw = "upw-reuse-" + secrets.token_hex(8)
        self.pools = {}
        for name, kw in ((REUSE, {}), (REUSE_CUT, {"close_notify": False}),
                         (REUSE_PLAIN, {"tls": False}), (GONE, {}),
                         (GONE_CUT, {"close_notify": False})):
            reg = PoolRegistry(self.pki, name, "robot", self.rpw, **kw).start()
            if name.startswith("reuse"):
                reg.mode = "close_reused"
            self.pools[name] = reg
        self.records_blob = os.urandom(8 * T.MiB)
        self.pools[RECORDS] = RecordRegistry(self.pki, RECORDS, "robot", self.rpw,
                                             self.records_blob).start()
        conns = [T.Connector("%s/%s" % (NS, name), reg.ip_origin, username="robot",
                             password=self.rpw,
                             ca_file=self.pki.ca_pem if reg.tls else None,
                             allow=["alice"], options={"allow_push": "alice"})
                 for name, reg in self.pools.items()]
        conns.append(self.connector(BASIC, self.brd, self.bpw))
        self.og_reuse = T.Ocigate(self.env, self.args.ocigate, [self.alice], conns,
                                  name="ocigate-reuse",
                                  server={"admin_listen": "127.0.0.1:0", "body_buffer": "16k"},
                                  upstream={"pool_idle_timeout": "120s"},
                                  sections={"log": {"level": "debug"}}).start()
        T.diag("ocigate-reuse %s, %s" % (self.og_reuse.host, ", ".join(
            "%s %s" % (n, r.ip_origin) for n, r in self.pools.items())))

    def extra_ocigates(self):
        return [self.og_reuse] if hasattr(self, "og_reuse") else []

    def teardown(self):
        for name in ("brd", "trd", "evil", "tsredir", "plain", "ts"):
            if hasattr(self, name):
                getattr(self, name).stop()
        for reg in getattr(self, "pools", {}).values():
            reg.stop()

    # -- helpers ----------------------------------------------------------

    def get(self, conn, repo, kind, ref, method="GET", token=None):
        h = {"Authorization": (token or self.alice).basic(),
             "Accept": T.ACCEPT_ALL}
        return T.request(self.og.port, method,
                         T.proxy_path(NS, conn, repo, kind, ref), h,
                         timeout=60)

    def manifest(self, conn, repo="demo/app", ref="v1"):
        return self.get(conn, repo, "manifests", ref)

    def expect_blob(self, conn, blob, what):
        r = self.get(conn, "demo/app", "blobs", blob.digest)
        T.expect_status(r, 200, what)
        T.expect_eq(T.sha256_bytes(r.body), blob.digest, what + ": sha256")
        return r

    def to_evil(self, rd):
        rd.mode = "custom"
        rd.custom_location = lambda d: "%s/blob/sha256/%s?X-Amz-Signature=%s" % (
            self.evil.origin, d.split(":")[1], secrets.token_hex(8))

    def credentials(self):
        """Every secret of the connectors: passwords, their Basic forms and
        every token the token service issued."""
        out = [self.bpw, self.tpw, T.basic_auth("robot", self.bpw).split()[1],
               T.basic_auth("robot", self.tpw).split()[1]]
        return out + list(self.ts.tokens)

    def expect_no_credentials(self, reqs, where):
        for q in reqs:
            T.expect(q.header("Authorization") is None,
                     "%s received Authorization %r on %s %s"
                     % (where, q.header("Authorization"), q.method, q.path))
            for k, v in q.headers:
                for s in self.credentials():
                    T.expect(s not in v, "%s received a connector credential "
                             "in %s: on %s %s" % (where, k, q.method, q.path))

    def layer(self, i):
        return self.lay.single.layers[i]

    # -- cases ------------------------------------------------------------

    def t_fixture(self):
        """The evil host answers as described, without ocigate."""
        cp = T.curl(self.env, ["--cacert", self.pki.ca_pem, "-o", "/dev/null",
                               "-D", "-", self.evil.origin + "/blob/x"])
        head = cp.stdout.decode()
        T.expect(head.startswith("HTTP/1.1 401"), "evil status: %r" % head[:40])
        T.expect_in('Bearer realm="%s/token"' % self.evil.origin, head,
                    "evil challenge")

    def t_storage_challenge_basic(self):
        """Storage 401 + Bearer realm on itself, htpasswd registry: the
        request fails, the site stays on Basic, the evil host never gets
        the password (before the fix, the next pull sent Basic to it)."""
        self.to_evil(self.brd)
        self.evil.mode = "challenge"
        emark = self.evil.mark()
        for i in (0, 1):
            r = self.get(BASIC, "demo/app", "blobs", self.layer(i).digest)
            msg = T.expect_error(r, 502, "UNAVAILABLE",
                                 "blob redirected to a host answering 401")
            T.expect_in("storage host", msg, "502 message")
            T.expect_eq(r.header("WWW-Authenticate"), None,
                        "the storage host's challenge relayed to the client")
        T.expect_eq(len(self.evil.requests(emark)), 2, "requests the evil host got")
        self.brd.mode = "absolute"
        fmark = self.brd.mark()
        self.expect_blob(BASIC, self.layer(1), "blob after the attack")
        T.expect_status(self.manifest(BASIC), 200, "manifest after the attack")
        front = self.brd.requests("front", fmark)
        T.expect(front, "the registry saw no request after the attack")
        for q in front:
            T.expect_eq(q.header("Authorization"),
                        T.basic_auth("robot", self.bpw),
                        "Authorization the registry got after the attack (%s)"
                        % q.path)
        self.expect_no_credentials(self.evil.requests(), "the evil host")
        T.expect_eq([q.path for q in self.evil.requests() if
                     q.path.startswith("/token")], [],
                    "token requests the evil host got")

    def t_storage_challenge_token(self):
        """The same against a token registry: the realm the registry named
        stays; a new scope is fetched from it, not from the evil realm."""
        T.expect_status(self.manifest(TOK), 200, "first manifest (realm learned)")
        self.to_evil(self.trd)
        self.evil.mode = "challenge"
        r = self.get(TOK, "demo/app", "blobs", self.layer(0).digest)
        T.expect_error(r, 502, "UNAVAILABLE", "blob redirected to a host answering 401")
        self.trd.mode = "absolute"
        tmark = self.ts.mark()
        T.expect_status(self.manifest(TOK, "demo/second"), 200,
                        "manifest of a new scope after the attack")
        T.expect(self.ts.count(scope="repository:demo/second:pull", since=tmark) >= 1,
                 "the registry's token service was not asked for the new scope")
        self.expect_blob(TOK, self.layer(1), "blob after the attack")
        self.expect_no_credentials(self.evil.requests(), "the evil host")
        T.expect(not any("evil-token" in v for q in self.trd.requests("front")
                         for _, v in q.headers),
                 "a token from the evil realm reached the registry")

    def t_hostile_headers(self):
        """A storage host's 200 reaches the client with the bytes and the
        framing/caching headers only: no cookie, challenge, Location, Link,
        digest, registry or rate-limit fields; one Retry-After, capped."""
        self.to_evil(self.brd)
        self.evil.mode = "headers"
        try:
            blob = self.layer(0)
            for method in ("GET", "HEAD"):
                r = self.get(BASIC, "demo/app", "blobs", blob.digest, method=method)
                what = "%s blob served by a hostile storage host" % method
                T.expect_status(r, 200, what)
                if method == "GET":
                    T.expect_eq(T.sha256_bytes(r.body), blob.digest, what + ": sha256")
                for name in ("WWW-Authenticate", "Proxy-Authenticate", "Set-Cookie",
                             "Location", "Link", "Docker-Distribution-Api-Version",
                             "OCI-Subject", "RateLimit-Remaining", "X-Evil"):
                    T.expect_eq(r.header_all(name), [], what + ": " + name)
                T.expect(r.header("Docker-Content-Digest") in (None, blob.digest),
                         "%s: Docker-Content-Digest %r from the storage host"
                         % (what, r.header("Docker-Content-Digest")))
                ra = r.header_all("Retry-After")
                T.expect(len(ra) <= 1, "%s: %d Retry-After fields" % (what, len(ra)))
                for v in ra:
                    T.expect(v.isdigit() and int(v) <= MAX_RETRY_AFTER,
                             "%s: Retry-After %r not capped" % (what, v))
                T.expect_eq(r.header("ETag"), '"etag-from-storage"', what + ": ETag kept")
        finally:
            self.brd.mode = "absolute"
        self.expect_no_credentials(self.evil.requests(), "the evil host")

    def t_storage_403(self):
        """A storage 403 with a challenge and a cookie: relayed as a 403
        without them, the site unchanged."""
        self.to_evil(self.brd)
        self.evil.mode = "forbidden"
        try:
            r = self.get(BASIC, "demo/app", "blobs", self.layer(0).digest)
            T.expect_status(r, 403, "storage 403")
            for name in ("WWW-Authenticate", "Set-Cookie"):
                T.expect_eq(r.header_all(name), [], "storage 403: " + name)
        finally:
            self.brd.mode = "absolute"
        self.expect_blob(BASIC, self.layer(0), "blob after a storage 403")
        self.expect_no_credentials(self.evil.requests(), "the evil host")

    def t_back_to_registry(self):
        """The storage host redirects back to the registry's origin, to a
        path of its choosing: that request goes without the connector's
        credential (before the fix it carried Basic, and the manifest came
        back as the blob)."""
        self.to_evil(self.brd)
        self.evil.mode = "back"
        self.evil.redirect_to = self.brd.url + "/v2/demo/app/manifests/v1"
        fmark = self.brd.mark()
        try:
            r = self.get(BASIC, "demo/app", "blobs", self.layer(0).digest)
        finally:
            self.evil.redirect_to = None
            self.brd.mode = "absolute"
        T.expect_error(r, 502, "UNAVAILABLE", "storage redirect back to the registry")
        back = [q for q in self.brd.requests("front", fmark)
                if q.path == "/v2/demo/app/manifests/v1"]
        T.expect_eq(len(back), 1, "requests for the path the storage host chose")
        for q in back:
            T.expect_eq(q.header("Authorization"), None,
                        "Authorization on the hop the storage host chose")
        self.expect_blob(BASIC, self.layer(0), "blob afterwards")

    def t_realm_change(self):
        """The registry itself names another realm: taken, with a warning,
        and the token comes from the new realm."""
        T.expect_status(self.manifest(MOVE), 200, "manifest with the first realm")
        old = self.ts.realm
        new = "https://localhost:%d/token" % self.ts.port
        self.trd.rewrite_realm = new
        try:
            # a token the registry refuses makes it answer 401 with its realm
            self.ts.set_mode("useless")
            r = self.manifest(MOVE, "demo/second")
            T.expect_error(r, 502, "DENIED", "useless token")
            self.ts.set_mode("ok")
            tmark = self.ts.mark()
            T.expect_status(self.manifest(MOVE, "demo/second"), 200,
                            "manifest with the new realm")
            hosts = [q.headers.get("Host") for q in self.ts.requests[tmark:]]
            T.expect_eq(hosts, ["localhost:%d" % self.ts.port],
                        "Host of the token requests after the move")
        finally:
            self.ts.set_mode("ok")
            self.trd.rewrite_realm = None
        lines = [l for l in self.og.log.splitlines() if "token_realm_changed" in l]
        T.expect(any("connector=%s/%s" % (NS, MOVE) in l and "from=" + old in l
                     and "to=" + new in l and "level=warn" in l for l in lines),
                 "no token_realm_changed warning naming both realms: %r" % lines)

    def t_http_realm(self):
        """An http realm without allow_insecure: refused before any request
        goes there, logged, and the site stays usable (before the fix it
        kept the http realm and every later request failed)."""
        pmark = self.plain.mark()
        self.trd.rewrite_realm = self.plain.ip_origin + "/token"
        try:
            r = self.manifest(HTTPREALM)
            msg = T.expect_error(r, 502, "UNAVAILABLE", "http token realm")
            T.expect_in("plain http", msg, "502 message")
        finally:
            self.trd.rewrite_realm = None
        T.expect_eq(self.plain.requests(pmark), [], "requests to the http realm")
        T.expect_status(self.manifest(HTTPREALM), 200,
                        "manifest once the registry names an https realm again")
        T.expect(any("token_realm_refused" in l and "connector=%s/%s" % (NS, HTTPREALM) in l
                     for l in self.og.log.splitlines()),
                 "no token_realm_refused line in the log")

    def t_token_redirect(self):
        """The realm the registry named answers 302 to another origin: not
        followed, the credentials stay where the registry said."""
        self.tsredir.redirect_to = self.evil.origin + "/token"
        self.trd.rewrite_realm = self.tsredir.ip_origin + "/token"
        emark = self.evil.mark()
        try:
            r = self.manifest(REDIR)
            msg = T.expect_error(r, 502, "UNAVAILABLE", "redirecting token service")
            T.expect_in("302", msg, "502 message")
        finally:
            self.trd.rewrite_realm = None
            self.tsredir.redirect_to = None
        T.expect_eq(self.evil.requests(emark), [], "requests the redirect target got")
        T.expect(len(self.tsredir.requests()) >= 1, "the named realm got no request")

    def t_token_responses(self):
        """Too large (Content-Length or chunked), negative and giant
        lifetimes: bounded failures or a capped lifetime, small memory."""
        rss0 = self.og.rss_kib()
        try:
            for conn, path in zip(HUGE, ("/huge-token", "/huge-chunked")):
                self.trd.rewrite_realm = self.tsredir.ip_origin + path
                r = self.manifest(conn)
                msg = T.expect_error(r, 502, "UNAVAILABLE", "token response " + path)
                T.expect_in("too large", msg, "502 message for " + path)
            self.trd.rewrite_realm = self.tsredir.ip_origin + "/token-doc"

            def doc(expires_in, issued_at):
                def make(query):
                    q = urllib.parse.parse_qs(query)
                    tok = self.ts.mint("robot", q.get("scope", []))
                    return {"token": tok, "expires_in": expires_in,
                            "issued_at": issued_at}
                return make
            self.tsredir.token_doc = doc(-5, None)
            r = self.manifest(HUGE[2])
            msg = T.expect_error(r, 502, "UNAVAILABLE", "negative expires_in")
            T.expect_in("expires_in", msg, "502 message")
            # issued 2020 for 2^63-1 seconds: a sum would overflow
            self.tsredir.token_doc = doc(2 ** 63 - 1, "2020-01-01T00:00:00Z")
            T.expect_status(self.manifest(HUGE[3]), 200,
                            "token with a giant expires_in (issued 2020)")
        finally:
            self.trd.rewrite_realm = None
            self.tsredir.token_doc = None
        grew = self.og.rss_kib() - rss0
        T.diag("  RSS grew by %d KiB over the token-response cases" % grew)
        T.expect(grew < GROWTH_LIMIT_MIB * 1024, "RSS grew by %d KiB (limit %d MiB)"
                 % (grew, GROWTH_LIMIT_MIB))

    def t_user_log(self):
        """A user name with quotes is logged quoted: it adds no field."""
        r = T.request(self.og.port, "GET", "/v2/",
                      {"Authorization": self.mallory.basic()})
        T.expect_status(r, 200, "GET /v2/ as the user with quotes in the name")
        lines = [l for l in self.og.log.splitlines()
                 if "event=access" in l and "mallory" in l]
        T.expect(lines, "no access line for the user")
        want = 'user="mallory\\" status=200 forged=\\"1"'
        for l in lines:
            T.expect(l.endswith(want), "access line with the user: %r" % l)

    def t_still_working(self):
        """After everything: both kinds of connector pull, the evil host
        never saw a credential or a registry token."""
        self.brd.mode = self.trd.mode = "absolute"
        for conn in (BASIC, TOK):
            T.expect_status(self.manifest(conn), 200, "manifest via " + conn)
            self.expect_blob(conn, self.lay.big, "big blob via " + conn)
        self.expect_no_credentials(self.evil.requests(), "the evil host")
        self.expect_no_credentials(self.plain.requests(), "the plain host")
        n = len(self.evil.requests())
        T.expect(n > 0, "the evil host got no request at all")
        T.diag("  the evil host got %d requests, none with a credential" % n)
        moved = [l for l in self.og.log.splitlines() if "token_realm_changed" in l
                 and "connector=%s/%s " % (NS, MOVE) not in l]
        T.expect_eq(moved, [], "realm changes on connectors only a storage host attacked")

    # -- upstream connection reuse -----------------------------------------

    MANIFEST_PATH = "/v2/%s/manifests/%s" % (PoolRegistry.REPO, PoolRegistry.TAG)

    def via_reuse(self, conn, method="GET", ref=PoolRegistry.TAG, body=b"", ctype=None):
        h = {"Authorization": self.alice.basic(), "Accept": T.ACCEPT_ALL}
        if ctype:
            h["Content-Type"] = ctype
        return T.request(self.og_reuse.port, method,
                         T.proxy_path(NS, conn, PoolRegistry.REPO, "manifests", ref),
                         h, body=body, timeout=30)

    def reuse_log(self, conn, pattern):
        """ocigate-reuse's log lines about connector conn matching pattern."""
        return [l for l in self.og_reuse.log.splitlines()
                if re.search(pattern, l) and " connector=%s/%s " % (NS, conn) in l]

    def stale_reused(self, conn):
        return self.reuse_log(conn, r"event=upstream_close .*reason=stale_reused\b")

    def stale_retries(self):
        """ocigate-reuse's ocigate_upstream_stale_retries_total."""
        fams, _ = T.scrape_metrics(self.og_reuse.listeners["admin"])
        return T.metric_value(fams, "ocigate_upstream_stale_retries_total")

    def upstream_errors(self, conn):
        return self.reuse_log(conn, r"event=upstream_error ")

    def expect_manifest(self, r, reg, method, what):
        T.expect_status(r, 200, what)
        T.expect_eq(r.header("Content-Type"), T.MEDIA_OCI_MANIFEST, what + ": Content-Type")
        T.expect_eq(r.header("Docker-Content-Digest"), reg.digest,
                    what + ": Docker-Content-Digest")
        T.expect_eq(r.header("Content-Length"), str(len(reg.manifest)),
                    what + ": Content-Length")
        T.expect_eq(r.body, reg.manifest if method == "GET" else b"", what + ": body")

    def t_reuse_retried(self):
        """Each registry hangs up, without a byte, on every request that
        arrives on a connection that already carried one.  Sequential GETs
        and HEADs through ocigate all get 200 and the manifest: each went
        first on the pooled connection, then once more on a new one, and
        ocigate logged stale_reused for each dropped connection."""
        methods = ["GET", "HEAD", "GET", "HEAD", "GET"]
        for name in (REUSE, REUSE_CUT, REUSE_PLAIN):
            reg = self.pools[name]
            c0, mark = reg.conns, reg.mark()
            stale0, err0 = len(self.stale_reused(name)), len(self.upstream_errors(name))
            retries0 = self.stale_retries()
            for i, m in enumerate(methods):
                self.expect_manifest(self.via_reuse(name, m), reg, m,
                                     "%s #%d via %s" % (m, i + 1, name))
            # request i: on connection c0+i (the pooled one, hung up), then
            # on the new connection c0+i+1, answered, pooled for the next
            want = []
            for i, m in enumerate(methods):
                if i:
                    want.append((c0 + i, 2, m, self.MANIFEST_PATH, False))
                want.append((c0 + i + 1, 1, m, self.MANIFEST_PATH, True))
            hits = reg.hits_since(mark)
            T.expect_eq([h.key() for h in hits], want,
                        "requests %s got (conn, nth on it, method, path, answered)" % name)
            T.expect_eq({h.authorization for h in hits}, {reg.authorization},
                        "Authorization of the first sends and of the retries to " + name)
            T.wait_for(lambda: len(self.stale_reused(name)) - stale0 >= len(methods) - 1,
                       5, what="stale_reused lines for " + name)
            T.expect_eq(len(self.stale_reused(name)) - stale0, len(methods) - 1,
                        "upstream_close reason=stale_reused lines for " + name)
            T.expect_eq(self.upstream_errors(name)[err0:], [],
                        "upstream_error lines for " + name)
            T.expect_eq(self.stale_retries() - retries0, len(methods) - 1,
                        "ocigate_upstream_stale_retries_total growth for " + name)

    def t_delete_retried(self):
        """A manifest DELETE (idempotent, no body) on a pooled connection
        the registry closes without a byte is sent once more on a new
        connection, like a GET: 202, stale_reused logged and counted."""
        for name in (REUSE, REUSE_PLAIN):
            reg = self.pools[name]
            self.expect_manifest(self.via_reuse(name), reg, "GET",
                                 "GET via %s, pooling a connection" % name)
            c0, mark = reg.conns, reg.mark()
            stale0, retries0 = len(self.stale_reused(name)), self.stale_retries()
            r = self.via_reuse(name, "DELETE", reg.digest)
            T.expect_status(r, 202, "DELETE via %s on a connection it closes" % name)
            path = "/v2/%s/manifests/%s" % (PoolRegistry.REPO, reg.digest)
            T.expect_eq([h.key() for h in reg.hits_since(mark)],
                        [(c0, 2, "DELETE", path, False), (c0 + 1, 1, "DELETE", path, True)],
                        "requests %s got (conn, nth on it, method, path, answered)" % name)
            T.wait_for(lambda: len(self.stale_reused(name)) - stale0 >= 1, 5,
                       what="a stale_reused line for the DELETE via " + name)
            T.expect_eq(self.stale_retries() - retries0, 1,
                        "ocigate_upstream_stale_retries_total growth for the DELETE via "
                        + name)

    def t_fresh_not_retried(self):
        """A registry that hangs up on every request: a GET that found a
        pooled connection is sent once more on a new connection, and no
        third time; a GET or HEAD on a fresh connection is sent once.  Each
        gets 502 UNAVAILABLE naming the registry; the other connectors
        keep working, and this one once its registry answers again."""
        for name in (GONE, GONE_CUT):
            reg = self.pools[name]
            reg.mode = "serve"
            self.expect_manifest(self.via_reuse(name), reg, "GET",
                                 "GET via %s while it answers" % name)
            reg.mode = "close_all"
            try:
                c0, mark = reg.conns, reg.mark()
                stale0, err0 = len(self.stale_reused(name)), len(self.upstream_errors(name))
                retries0 = self.stale_retries()
                msgs = []
                for m in ("GET", "GET", "HEAD"):
                    r = self.via_reuse(name, m)
                    what = "%s via %s hanging up" % (m, name)
                    if m == "HEAD":
                        T.expect_status(r, 502, what)
                        T.expect_eq(r.body, b"", what + ": body")
                    else:
                        msgs.append(T.expect_error(r, 502, "UNAVAILABLE", what))
                want = [(c0, 2, "GET", self.MANIFEST_PATH, False),       # pooled
                        (c0 + 1, 1, "GET", self.MANIFEST_PATH, False),   # its one retry
                        (c0 + 2, 1, "GET", self.MANIFEST_PATH, False),   # fresh: once
                        (c0 + 3, 1, "HEAD", self.MANIFEST_PATH, False)]  # fresh: once
                T.expect_eq([h.key() for h in reg.hits_since(mark)], want,
                            "requests %s got (conn, nth on it, method, path, answered)" % name)
                T.expect_eq(len(self.stale_reused(name)) - stale0, 1,
                            "stale_reused lines for " + name)
                T.expect_eq(self.stale_retries() - retries0, 1,
                            "ocigate_upstream_stale_retries_total growth for " + name)
                errs = self.upstream_errors(name)[err0:]
                T.expect_eq(len(errs), 3, "upstream_error lines for %s: %r" % (name, errs))
                T.expect(all("status=502 " in l for l in errs),
                         "upstream_error lines for %s: %r" % (name, errs))
                for msg in msgs:
                    T.expect(msg.startswith("connector %s/%s: %s" % (NS, name, reg.ip_origin)),
                             "502 message for %s: %r" % (name, msg))
                    T.expect_in("closed the connection", msg, "502 message for " + name)
                    T.expect_eq("without TLS close_notify" in msg, not reg.close_notify,
                                "502 message for %s says close_notify was missing: %r"
                                % (name, msg))
            finally:
                reg.mode = "serve"
            self.expect_manifest(self.via_reuse(name), reg, "GET",
                                 "GET via %s answering again" % name)
        T.expect_status(self.via_reuse(BASIC), 200, "manifest via %s afterwards" % BASIC)
        for name in (REUSE, REUSE_PLAIN):
            self.expect_manifest(self.via_reuse(name), self.pools[name], "GET",
                                 "GET via %s afterwards" % name)

    def t_put_not_retried(self):
        """A manifest PUT on a pooled connection the registry closes is
        not sent again (its body went out): 502, one PUT upstream, no
        stale_reused.  The same PUT gets 201 once the registry answers."""
        reg = self.pools[REUSE]
        body = json.dumps({"schemaVersion": 2, "mediaType": T.MEDIA_OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                      "digest": EMPTY_JSON_DIGEST, "size": 2},
                           "layers": []}).encode()
        mark, stale0 = reg.mark(), len(self.stale_reused(REUSE))
        r = self.via_reuse(REUSE, "PUT", "pushed", body, T.MEDIA_OCI_MANIFEST)
        T.expect_error(r, 502, "UNAVAILABLE", "PUT on a connection the registry closes")
        puts = [h for h in reg.hits_since(mark) if h.method == "PUT"]
        T.expect_eq([(h.nth > 1, h.answered) for h in puts], [(True, False)],
                    "PUTs the registry got (on a reused connection, answered): %r" % puts)
        T.expect_eq(len(self.stale_reused(REUSE)) - stale0, 0, "stale_reused lines for the PUT")
        reg.mode = "serve"
        try:
            r = self.via_reuse(REUSE, "PUT", "pushed", body, T.MEDIA_OCI_MANIFEST)
        finally:
            reg.mode = "close_reused"
        T.expect_status(r, 201, "the same PUT with the registry answering")
        T.expect_eq(r.header("Docker-Content-Digest"), T.sha256_bytes(body),
                    "Docker-Content-Digest of the PUT")

    def t_many_records(self):
        """Each response comes as many TLS records in one TCP segment, so
        OpenSSL's read-ahead holds records after the one libevent asked
        for.  Manifest GETs and HEADs on a kept-alive upstream connection
        all complete, within seconds, not at ocigate's read timeout."""
        reg = self.pools[RECORDS]
        for i, m in enumerate(["GET", "HEAD", "GET", "GET", "HEAD", "GET"]):
            self.expect_manifest(self.via_reuse(RECORDS, m), reg, m,
                                 "%s #%d via %s" % (m, i + 1, RECORDS))
        T.expect_eq(reg.conns, 1, "upstream connections used for 6 requests")

    def t_many_records_slow_client(self):
        """An 8 MiB blob in 1,000-byte records to a client reading at 4 MB/s:
        ocigate stops reading the registry while a client's buffer is full
        and starts again when it drains, with records still held by
        OpenSSL; every client gets the exact blob."""
        reg = self.pools[RECORDS]
        path = T.proxy_path(NS, RECORDS, PoolRegistry.REPO, "blobs", reg.blob_digest)
        for rate in (4 * 1000 * 1000, None):
            res = T.stream_get(self.og_reuse.port, path,
                               {"Authorization": self.alice.basic()}, rate=rate,
                               timeout=20, rcvbuf=16 * 1024)
            what = "blob at %s" % ("4 MB/s" if rate else "full speed")
            T.expect_eq((res.status, res.error, res.nbytes, res.sha256),
                        (200, None, len(reg.blob), reg.blob_digest), what)

    def aborted_lines(self, og, path):
        """og's access lines for path of requests cut short."""
        return [l for l in og.log.splitlines()
                if "event=access " in l and " path=%s " % path in l and " aborted=" in l]

    def t_abandoned_logged(self):
        """A client that leaves mid-body still gets its access line: the
        status sent, the body bytes so far, and aborted= saying why."""
        reg = self.pools[RECORDS]
        blob = T.proxy_path(NS, RECORDS, PoolRegistry.REPO, "blobs", reg.blob_digest)
        counted = self.requests_counted()
        res = T.stream_get(self.og_reuse.port, blob, {"Authorization": self.alice.basic()},
                           max_bytes=256 * 1024, timeout=20, rcvbuf=16 * 1024)
        T.expect_eq(res.status, 200, "blob cut by its client")
        lines = T.wait_for(lambda: self.aborted_lines(self.og_reuse, blob), 10,
                           what="an access line for the cut blob")
        T.expect_eq(len(lines), 1, "access lines for the cut blob: %r" % lines)
        m = re.search(r" status=200 bytes=(\d+) .* user=alice aborted=client_\w+$", lines[0])
        T.expect(m is not None, "cut blob line: %r" % lines[0])
        T.expect(0 < int(m.group(1)) < len(reg.blob),
                 "bytes of the cut blob: %s of %d" % (m.group(1), len(reg.blob)))
        # ... and is counted like any other request, with the status sent.
        T.expect_eq(self.requests_counted() - counted, 1,
                    "ocigate_http_requests_total{method=GET,code=200} for %s/%s "
                    "after the cut blob" % (NS, RECORDS))

    def requests_counted(self):
        fams, _ = T.scrape_metrics(self.og_reuse.listeners["admin"])
        return T.metric_value(fams, "ocigate_http_requests_total",
                              connector="%s/%s" % (NS, RECORDS), method="GET",
                              code="200") or 0

    def t_log_clean(self):
        for og in self.dead + [self.og] + self.extra_ocigates():
            og.assert_log_clean(secrets=self.credentials())


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("hostile-upstream", keep=args.keep) as env:
        t = HostileTest(args, env)
        tap = T.Tap(env)
        try:
            rc = tap.run_all([
                ("setup: pki, registries, token service, redirectors, evil host, "
                 "ocigate", t.setup, True),
                ("fixture: the evil host answers 401 with a realm on itself",
                 t.t_fixture),
                ("storage 401 + realm on itself (htpasswd registry): 502, the "
                 "password never goes there, Basic kept", t.guard(t.t_storage_challenge_basic)),
                ("storage 401 + realm on itself (token registry): the registry's "
                 "realm kept for new scopes", t.guard(t.t_storage_challenge_token)),
                ("a storage host's other headers do not reach the client",
                 t.guard(t.t_hostile_headers)),
                ("storage 403: relayed without challenge or cookie, site unchanged",
                 t.guard(t.t_storage_403)),
                ("storage redirect back to the registry: no credential on that hop",
                 t.guard(t.t_back_to_registry)),
                ("the registry moves its realm: followed, warning logged",
                 t.guard(t.t_realm_change)),
                ("http realm without allow_insecure: refused, logged, site usable",
                 t.guard(t.t_http_realm)),
                ("token service redirecting to another origin: not followed",
                 t.guard(t.t_token_redirect)),
                ("huge, negative and giant-lifetime token responses: bounded",
                 t.guard(t.t_token_responses)),
                ("a user name with quotes cannot forge access-log fields",
                 t.guard(t.t_user_log)),
                ("connectors still work; no credential ever reached the evil host",
                 t.guard(t.t_still_working)),
                ("setup: registries hanging up on reused connections, ocigate-reuse",
                 t.setup_reuse),
                ("GET/HEAD on a pooled connection the registry closed: sent once "
                 "more on a new one, 200, stale_reused (TLS, TLS cut, plain)",
                 t.t_reuse_retried),
                ("DELETE on a pooled connection the registry closed: sent once more, "
                 "202, stale_reused (TLS, plain)", t.t_delete_retried),
                ("registry hanging up on every request: one retry for a pooled "
                 "connection, none for a fresh one, 502; others keep working",
                 t.t_fresh_not_retried),
                ("PUT on a pooled connection the registry closed: not sent again, 502",
                 t.t_put_not_retried),
                ("many TLS records per segment: manifests on a kept-alive "
                 "connection complete", t.t_many_records),
                ("many TLS records per segment: an 8 MiB blob to a slow and a "
                 "fast client, exact", t.t_many_records_slow_client),
                ("a blob its client leaves mid-body has its access line: status, "
                 "bytes so far, aborted=",
                 t.guard(t.t_abandoned_logged)),
                ("ocigate never crashed", t.guard(t.t_no_crash)),
                ("ocigate logs have no token or upstream password",
                 t.guard(t.t_log_clean)),
            ])
        finally:
            t.teardown()
    sys.exit(rc)


if __name__ == "__main__":
    main()
