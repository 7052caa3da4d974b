"""A registry token service (Docker/distribution token auth) for the e2e tests.

Python 3 standard library plus the openssl CLI.  It issues real RS256 JWTs
that Debian's docker-registry 2.8 (`auth: token`) accepts: the signing key's
certificate is issued by a private "token CA" (the registry's
`rootcertbundle`) and travels in the JWT header `x5c`, so the registry needs
no key id.

    ts = TokenService(env, pki, users={"robot": "pw"},
                      grants={"robot": [("demo/*", ["pull"])]}).start()
    Registry(env, pki, users={"seeder": pw}, token_auth=ts)

GET /token?service=S&scope=repository:R:pull,push[&scope=...][&account=U]
with optional Basic credentials answers
    {"token": JWT, "access_token": JWT, "expires_in": N, "issued_at": RFC3339}

Failure modes, switchable at runtime with set_mode(): "ok", "slow" (sleeps
slow_seconds before answering), "badjson", "notoken", "expired" (issued_at
an hour ago, exp in the past), "useless" (a well-formed token granting
nothing, so the registry answers 401 to it); stop() / start() make it go
down and come back on the same port.  Every request is recorded.
"""

import base64
import fnmatch
import http.server
import json
import os
import secrets
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

MODES = ("ok", "slow", "badjson", "notoken", "expired", "useless")


# --------------------------------------------------------------------------
# A threaded HTTPS server whose TLS handshakes happen in the handler thread
# (a stuck client must not block accept), shared with redirector.py.


class TLSServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, ctx, family=socket.AF_INET):
        self.address_family = family
        self.ctx = ctx
        self.open_socks = set()
        self.socks_lock = threading.Lock()
        http.server.ThreadingHTTPServer.__init__(self, addr, handler)

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        http.server.ThreadingHTTPServer.server_bind(self)

    def finish_request(self, request, client_address):
        with self.socks_lock:
            self.open_socks.add(request)
        try:
            if self.ctx is not None:
                request.settimeout(30)
                raw = request
                try:
                    # wrap_socket detaches raw: track the TLS socket instead
                    request = self.ctx.wrap_socket(raw, server_side=True)
                except (OSError, ssl.SSLError):
                    return
                finally:
                    with self.socks_lock:
                        self.open_socks.discard(raw)
                        if request is not raw:
                            self.open_socks.add(request)
            self.RequestHandlerClass(request, client_address, self)
        finally:
            with self.socks_lock:
                self.open_socks.discard(request)

    def drop_connections(self):
        """Cut every open connection (keep-alive ones included)."""
        with self.socks_lock:
            socks = list(self.open_socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def server_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


class Served:
    """A server bound to a fixed port, started in a thread; stop() closes
    the listening socket (connection refused), start() binds again."""

    def __init__(self, handler, ctx, port=0, host="127.0.0.1"):
        self.handler = handler
        self.ctx = ctx
        self.host = host
        self.port = port
        self.server = None
        self.thread = None

    def start(self):
        assert self.server is None
        fam = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.server = TLSServer((self.host, self.port), self.handler,
                                self.ctx, fam)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.server.drop_connections()
        self.thread.join(5)
        self.server = None

    @property
    def running(self):
        return self.server is not None


# --------------------------------------------------------------------------
# JWT


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _openssl(argv, input=None):
    cp = subprocess.run(["openssl"] + argv, input=input, capture_output=True,
                        timeout=60)
    if cp.returncode != 0:
        raise RuntimeError("openssl %s exited %d: %s"
                           % (" ".join(argv), cp.returncode,
                              cp.stderr.decode("utf-8", "replace")))
    return cp.stdout


class Signer:
    """An RSA key whose certificate is issued by its own CA; dir/ca.pem is
    the registry's rootcertbundle."""

    def __init__(self, dir, cn="ocigate-e2e token signer"):
        os.makedirs(dir, exist_ok=True)
        self.dir = dir
        self.ca_key = os.path.join(dir, "ca.key")
        self.ca_pem = os.path.join(dir, "ca.pem")
        self.key = os.path.join(dir, "signer.key")
        self.cert = os.path.join(dir, "signer.pem")
        _openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes",
                  "-keyout", self.ca_key, "-out", self.ca_pem, "-days", "3",
                  "-subj", "/CN=ocigate-e2e token CA",
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        csr = os.path.join(dir, "signer.csr")
        _openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes",
                  "-keyout", self.key, "-out", csr, "-subj", "/CN=" + cn])
        ext = os.path.join(dir, "signer.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints = critical, CA:FALSE\n"
                    "keyUsage = critical, digitalSignature\n")
        _openssl(["x509", "-req", "-in", csr, "-CA", self.ca_pem,
                  "-CAkey", self.ca_key, "-CAcreateserial", "-days", "3",
                  "-extfile", ext, "-out", self.cert])
        der = _openssl(["x509", "-in", self.cert, "-outform", "DER"])
        # x5c is standard base64 of DER (RFC 7515 4.1.6), not base64url
        self.x5c = [base64.b64encode(der).decode()]

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode())
                         + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = _openssl(["dgst", "-sha256", "-sign", self.key],
                       input=signing_input.encode())
        return signing_input + "." + b64url(sig)


def parse_scope(scope):
    """'repository:a/b:pull,push' -> ('repository', 'a/b', ['pull', 'push']);
    the name may itself contain ':' (registry:catalog:*, host:port/x)."""
    typ, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return typ, name, [a for a in actions.split(",") if a]


# --------------------------------------------------------------------------
# The service


class TokenRequest:
    def __init__(self, method, path, service, scopes, account, user, status,
                 headers):
        self.method = method
        self.path = path
        self.service = service
        self.scopes = scopes      # tuple of scope strings, in request order
        self.account = account
        self.user = user          # authenticated user, "" anonymous, None bad
        self.status = status
        self.headers = headers    # dict of the request headers
        self.time = time.monotonic()

    def __repr__(self):
        return ("<%s %s service=%s scopes=%s user=%r -> %s>"
                % (self.method, self.path, self.service, list(self.scopes),
                   self.user, self.status))


class TokenService:
    def __init__(self, env, pki, users, grants, service="ocigate-e2e-registry",
                 issuer="ocigate-e2e-token-issuer", expires_in=300,
                 anonymous=None, name="tokenservice"):
        """users: user -> password (Basic).  grants: user -> list of
        (repository glob, allowed actions); anonymous: grants for requests
        without credentials (None: anonymous requests get 401)."""
        self.env = env
        self.pki = pki
        self.users = dict(users)
        self.grants = dict(grants)
        self.anonymous = anonymous
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.mode = "ok"
        self.slow_seconds = 10
        self.include_expires_in = True
        self.chunked = False      # answer with split chunked framing
        self.requests = []
        self.tokens = []          # every token issued (for leak checks)
        self._lock = threading.Lock()
        self.signer = Signer(env.path(name))
        self.served = Served(self._handler_class(),
                             server_context(pki.cert, pki.key))

    # -- lifecycle --------------------------------------------------------

    def start(self):
        self.served.start()
        return self

    def stop(self):
        """Go down: nothing listens on the port until start()."""
        self.served.stop()

    @property
    def port(self):
        return self.served.port

    @property
    def realm(self):
        return "https://127.0.0.1:%d/token" % self.port

    @property
    def root_bundle(self):
        return self.signer.ca_pem

    def registry_auth_yaml(self):
        return ("auth:\n  token:\n    realm: %s\n    service: %s\n"
                "    issuer: %s\n    rootcertbundle: %s\n"
                % (self.realm, self.service, self.issuer, self.root_bundle))

    def set_mode(self, mode, **kw):
        assert mode in MODES, mode
        self.mode = mode
        for k, v in kw.items():
            assert hasattr(self, k), k
            setattr(self, k, v)

    # -- bookkeeping ------------------------------------------------------

    def mark(self):
        """A position in the request list, for count(since=...)."""
        with self._lock:
            return len(self.requests)

    def issued(self, since=0):
        """Requests since the mark that got a token (status 200)."""
        with self._lock:
            return [r for r in self.requests[since:] if r.status == 200]

    def count(self, scope=None, service=None, since=0, status=None):
        """Requests since the mark, optionally only those naming scope (a
        scope string among the request's scopes), service and status."""
        with self._lock:
            reqs = self.requests[since:]
        return len([r for r in reqs
                    if (scope is None or scope in r.scopes)
                    and (service is None or r.service == service)
                    and (status is None or r.status == status)])

    def by_scope(self, since=0):
        """{(service, scopes...): number of requests} since the mark."""
        out = {}
        with self._lock:
            reqs = self.requests[since:]
        for r in reqs:
            k = (r.service,) + tuple(r.scopes)
            out[k] = out.get(k, 0) + 1
        return out

    # -- tokens -----------------------------------------------------------

    def _granted(self, user, typ, name, wanted):
        rules = self.anonymous if user == "" else self.grants.get(user, [])
        allowed = set()
        for pattern, actions in rules or []:
            if typ == "repository" and fnmatch.fnmatchcase(name, pattern):
                allowed |= set(actions)
        return [a for a in wanted if a in allowed]

    def mint(self, user, scopes, now=None, lifetime=None, useless=False):
        """A signed token for user with what grants allow of scopes."""
        now = time.time() if now is None else now
        lifetime = self.expires_in if lifetime is None else lifetime
        access = []
        for s in scopes:
            typ, name, wanted = parse_scope(s)
            acts = [] if useless else self._granted(user, typ, name, wanted)
            access.append({"type": typ, "name": name, "actions": acts})
        claims = {"iss": self.issuer, "sub": user, "aud": self.service,
                  "exp": int(now + lifetime), "nbf": int(now) - 1,
                  "iat": int(now), "jti": secrets.token_hex(16),
                  "access": access}
        tok = self.signer.sign(claims)
        with self._lock:
            self.tokens.append(tok)
        return tok

    def admin_token(self, repo, actions=("pull", "push", "delete")):
        """A token for direct registry access by the test itself (not
        recorded as a request)."""
        now = time.time()
        claims = {"iss": self.issuer, "sub": "e2e-admin", "aud": self.service,
                  "exp": int(now + 600), "nbf": int(now) - 1, "iat": int(now),
                  "jti": secrets.token_hex(16),
                  "access": [{"type": "repository", "name": repo,
                              "actions": list(actions)}]}
        return self.signer.sign(claims)

    # -- HTTP -------------------------------------------------------------

    def _authenticate(self, header):
        """'' for no credentials, the user for good ones, None for bad."""
        if not header:
            return ""
        kind, _, cred = header.partition(" ")
        if kind.lower() != "basic":
            return None
        try:
            user, _, pw = base64.b64decode(cred, validate=True).decode(
                "utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if user in self.users and secrets.compare_digest(
                self.users[user].encode(), pw.encode()):
            return user
        return None

    def _serve(self, h):
        u = urllib.parse.urlsplit(h.path)
        q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
        service = (q.get("service") or [None])[0]
        scopes = tuple(q.get("scope") or [])
        account = (q.get("account") or [None])[0]
        user = self._authenticate(h.headers.get("Authorization"))
        rec = TokenRequest(h.command, h.path, service, scopes, account, user,
                           None, dict(h.headers.items()))
        with self._lock:
            self.requests.append(rec)
        mode = self.mode
        if u.path != "/token" or h.command != "GET":
            rec.status = 404
            return _send(h, 404, {"errors": [{"code": "NOT_FOUND",
                                              "message": "no such endpoint"}]})
        if user is None or (user == "" and self.anonymous is None):
            rec.status = 401
            return _send(h, 401, {"errors": [{
                "code": "UNAUTHORIZED",
                "message": "token service: authentication failed"}]},
                [("WWW-Authenticate", 'Basic realm="ocigate-e2e-tokens"')])
        if service != self.service:
            rec.status = 400
            return _send(h, 400, {"errors": [{
                "code": "INVALID", "message": "unknown service %r" % service}]})
        if mode == "slow":
            time.sleep(self.slow_seconds)
        now = time.time()
        if mode == "badjson":
            rec.status = 200
            return _send_raw(h, 200, b'{"token": "abc", "expires_in": 300,',
                             "application/json", chunked=self.chunked)
        if mode == "notoken":
            rec.status = 200
            return _send(h, 200, {"expires_in": self.expires_in,
                                  "issued_at": rfc3339(now)},
                         chunked=self.chunked)
        if mode == "expired":
            issued = now - 3600
            tok = self.mint(user, scopes, now=issued, lifetime=60)
            doc = {"token": tok, "access_token": tok, "expires_in": 60,
                   "issued_at": rfc3339(issued)}
        else:
            tok = self.mint(user, scopes, now=now, useless=(mode == "useless"))
            doc = {"token": tok, "access_token": tok, "issued_at": rfc3339(now)}
            if self.include_expires_in:
                doc["expires_in"] = self.expires_in
        rec.status = 200
        _send(h, 200, doc, chunked=self.chunked)

    def _handler_class(self):
        ts = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def log_message(self, *a):
                pass

            def do_GET(self):
                ts._serve(self)

            def do_POST(self):
                ts._serve(self)

        return Handler


def _send_raw(h, status, data, ctype, headers=(), chunked=False):
    try:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        if not chunked:
            h.wfile.write(data)
            return
        # two chunks, their framing cut into separate TCP segments
        half = len(data) // 2
        size1, size2 = b"%x" % half, b"%x" % (len(data) - half)
        for piece in (size1[:1], size1[1:] + b"\r", b"\n" + data[:half],
                      b"\r\n" + size2 + b"\r", b"\n" + data[half:] + b"\r\n0",
                      b"\r\n\r", b"\n"):
            h.wfile.write(piece)
            h.wfile.flush()
            time.sleep(0.05)
    except OSError:
        h.close_connection = True


def _send(h, status, doc, headers=(), chunked=False):
    _send_raw(h, status, json.dumps(doc).encode(), "application/json", headers,
              chunked)
