"""A registry front that redirects blob downloads elsewhere, the way
registries backed by S3 or a CDN do, for the e2e tests.

Python 3 standard library only.  Three servers:

  front   HTTPS on 127.0.0.1 (the connector's address).  Blob GET/HEAD are
          first checked against the real registry (a HEAD with the
          caller's Authorization: a 401/404 there is passed back as is),
          then answered with a redirect; every other request is proxied to
          the registry with http.client.
  cdn     HTTPS on another port, addressed as https://localhost:PORT (a
          different host for the origin rules; the test certificate has
          SANs for both 127.0.0.1 and localhost).  Serves blob bytes from
          files the test names, with Range support.
  plain   plain HTTP on a third port (http://localhost:PORT), same content.

Every request each server sees is recorded (method, path, headers), so a
test can assert the cdn never saw an Authorization header.

Modes (attribute `mode`, switchable at runtime):
  "absolute"  Location: https://localhost:CDN/cdn/sha256/HEX?X-Amz-...
  "relative"  Location: /_blobstore/sha256/HEX?sig=... (served by the front)
  "dots"      Location: ../../../../_blobstore/sha256/HEX?sig=... (a
              path-relative reference: RFC 3986 resolution gives the same
              /_blobstore/ path)
  "chain"     `hops` redirects in total, the last one lands on the blob
  "loop"      endless redirects on the cdn
  "http"      Location: http://localhost:PLAIN/cdn/sha256/HEX?...
  "untrusted" Location: https://localhost:ROGUE/cdn/... where the rogue
              server's certificate comes from another CA (rogue_pki)
  "off"       no redirect: the front proxies blobs like everything else
  "custom"    Location: custom_location(digest), any URL the test wants
`rewrite_realm`, when set, replaces the realm="..." of every
WWW-Authenticate the front relays from the registry (a registry that
moves its token service).
`status` is the redirect status code (307 by default).  With `chunked`
set, the cdn sends whole-blob GETs with Transfer-Encoding: chunked, the
framing of the first chunks cut into separate TCP segments.
"""

import http.client
import http.server
import re
import secrets
import threading
import time

from tokenservice import Served, server_context

BLOB_RE = re.compile(r"^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$")
STORE_RE = re.compile(r"^/(?:cdn|_blobstore)/sha256/([0-9a-f]{64})$")
HOP_RE = re.compile(r"^/(loop|chain)/(\d+)/sha256/([0-9a-f]{64})$")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te",
              "trailer", "upgrade", "proxy-authorization",
              "proxy-authenticate", "host", "content-length"}


class Seen:
    def __init__(self, server, method, path, headers):
        self.server = server
        self.method = method
        self.path = path
        self.headers = headers   # list of (name, value) in wire order

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return "<%s %s %s %s>" % (self.server, self.method, self.path,
                                  self.headers)


def parse_range(value, size):
    """(start, end inclusive) for a single 'bytes=' range, None when
    absent, "bad" when unsatisfiable or malformed."""
    if value is None:
        return None
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", value.strip())
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return "bad"
    if m.group(1) == "":
        n = int(m.group(2))
        if n == 0:
            return "bad"
        return max(0, size - n), size - 1
    start = int(m.group(1))
    end = size - 1 if m.group(2) == "" else min(int(m.group(2)), size - 1)
    if start >= size or end < start:
        return "bad"
    return start, end


class Redirector:
    def __init__(self, pki, registry, blobs, status=307, rogue_pki=None):
        """registry: ocitest.Registry behind the front; blobs: digest ->
        file path of every blob the cdn can serve; rogue_pki: a Pki from
        another CA for the "untrusted" mode."""
        self.pki = pki
        self.registry = registry
        self.blobs = dict(blobs)
        self.mode = "absolute"
        self.status = status
        self.hops = 5
        self.chunked = False
        self.custom_location = None
        self.rewrite_realm = None
        self.seen = []
        self._lock = threading.Lock()
        ctx = server_context(pki.cert, pki.key)
        self.front = Served(self._handler("front"), ctx)
        self.cdn = Served(self._handler("cdn"), ctx)
        self.plain = Served(self._handler("plain"), None)
        self.rogue = None
        if rogue_pki is not None:
            self.rogue = Served(self._handler("rogue"),
                                server_context(rogue_pki.cert, rogue_pki.key))
        # looks like a presigned URL: the query must arrive byte for byte
        self.query = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
                      "e2e%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&"
                      "X-Amz-Expires=1200&X-Amz-Signature=" + secrets.token_hex(32))

    def start(self):
        self.front.start()
        self.cdn.start()
        self.plain.start()
        if self.rogue is not None:
            self.rogue.start()
        return self

    def stop(self):
        for s in (self.front, self.cdn, self.plain, self.rogue):
            if s is not None:
                s.stop()

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.front.port

    @property
    def cdn_origin(self):
        return "https://localhost:%d" % self.cdn.port

    @property
    def plain_origin(self):
        return "http://localhost:%d" % self.plain.port

    def mark(self):
        with self._lock:
            return len(self.seen)

    def requests(self, server=None, since=0):
        with self._lock:
            reqs = self.seen[since:]
        return [r for r in reqs if server is None or r.server == server]

    # -- where a blob redirect points -------------------------------------

    def location(self, digest):
        hexd = digest.split(":", 1)[1]
        mode = self.mode
        if mode == "absolute":
            return "%s/cdn/sha256/%s?%s" % (self.cdn_origin, hexd, self.query)
        if mode == "relative":
            return "/_blobstore/sha256/%s?%s" % (hexd, self.query)
        if mode == "dots":
            return "../../../../_blobstore/sha256/%s?%s" % (hexd, self.query)
        if mode == "http":
            return "%s/cdn/sha256/%s?%s" % (self.plain_origin, hexd, self.query)
        if mode == "untrusted":
            return "https://localhost:%d/cdn/sha256/%s?%s" % (
                self.rogue.port, hexd, self.query)
        if mode == "loop":
            return "%s/loop/1/sha256/%s" % (self.cdn_origin, hexd)
        if mode == "custom":
            return self.custom_location(digest)
        if mode == "chain":
            if self.hops <= 1:
                return "%s/cdn/sha256/%s?%s" % (self.cdn_origin, hexd,
                                                self.query)
            return "%s/chain/2/sha256/%s" % (self.cdn_origin, hexd)
        raise AssertionError(mode)

    # -- HTTP -------------------------------------------------------------

    def _handler(self, server_name):
        rd = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 60

            def log_message(self, *a):
                pass

            def _any(self):
                with rd._lock:
                    rd.seen.append(Seen(server_name, self.command, self.path,
                                        list(self.headers.items())))
                try:
                    if server_name == "front":
                        rd._front(self)
                    else:
                        rd._cdn(self)
                except (OSError, http.client.HTTPException):
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        return Handler

    def _front(self, h):
        path = h.path.split("?", 1)[0]
        m = BLOB_RE.match(path)
        if m and h.command in ("GET", "HEAD") and self.mode != "off":
            up = self._upstream(h, "HEAD", h.path, b"", drop=("range",))
            if up.status != 200:
                if h.command == "GET":  # with the registry's error body
                    up = self._upstream(h, "GET", h.path, b"")
                return _relay(h, up, up.body, self._rewrite)
            h.send_response(self.status)
            h.send_header("Location", self.location(m.group(2)))
            h.send_header("Content-Length", "0")
            h.send_header("Docker-Distribution-API-Version", "registry/2.0")
            h.end_headers()
            return
        if STORE_RE.match(path):
            return self._cdn(h)
        n = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(n) if n else b""
        up = self._upstream(h, h.command, h.path, body)
        _relay(h, up, up.body, self._rewrite)

    def _rewrite(self, name, value):
        if self.rewrite_realm is None or name.lower() != "www-authenticate":
            return value
        return re.sub(r'realm="[^"]*"', 'realm="%s"' % self.rewrite_realm, value)

    def _upstream(self, h, method, path, body, drop=()):
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.registry.port, timeout=60,
            context=self.pki.ssl_context())
        try:
            # header by header: several Accept lines must all arrive
            conn.putrequest(method, path, skip_host=True,
                            skip_accept_encoding=True)
            conn.putheader("Host", self.registry.host)
            for k, v in h.headers.items():
                if k.lower() not in HOP_BY_HOP and k.lower() not in drop:
                    conn.putheader(k, v)
            if body or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            resp = conn.getresponse()
            resp.body = resp.read()
            return resp
        finally:
            conn.close()

    def _cdn(self, h):
        path = h.path.split("?", 1)[0]
        m = HOP_RE.match(path)
        if m:
            kind, n, hexd = m.group(1), int(m.group(2)), m.group(3)
            if kind == "chain" and n >= self.hops:
                loc = "%s/cdn/sha256/%s?%s" % (self.cdn_origin, hexd, self.query)
            else:
                loc = "%s/%s/%d/sha256/%s" % (self.cdn_origin, kind, n + 1, hexd)
            h.send_response(self.status)
            h.send_header("Location", loc)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        m = STORE_RE.match(path)
        fpath = self.blobs.get("sha256:" + m.group(1)) if m else None
        if h.command not in ("GET", "HEAD") or fpath is None:
            return _plain(h, 404 if fpath is None else 405, b"no such object\n")
        self._serve_file(h, fpath)

    def _serve_file(self, h, fpath):
        with open(fpath, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            rng = parse_range(h.headers.get("Range"), size)
            if rng == "bad":
                h.send_response(416)
                h.send_header("Content-Range", "bytes */%d" % size)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            start, end = (0, size - 1) if rng is None else rng
            chunked = self.chunked and rng is None and h.command == "GET"
            h.send_response(200 if rng is None else 206)
            h.send_header("Content-Type", "application/octet-stream")
            if chunked:
                h.send_header("Transfer-Encoding", "chunked")
            else:
                h.send_header("Content-Length", str(end - start + 1))
            h.send_header("Accept-Ranges", "bytes")
            h.send_header("ETag", '"%s"' % fpath.rsplit("/", 1)[-1][:32])
            if rng is not None:
                h.send_header("Content-Range", "bytes %d-%d/%d"
                              % (start, end, size))
            h.end_headers()
            if h.command == "HEAD":
                return
            f.seek(start)
            if chunked:
                return _write_chunked(h, f)
            left = end - start + 1
            while left > 0:
                b = f.read(min(left, 1024 * 1024))
                if not b:
                    break
                h.wfile.write(b)
                left -= len(b)


def _write_chunked(h, f, split=3):
    """The file as 64 KiB chunks; the framing of the first `split` chunks
    and of the last one goes out in pieces, a moment apart, so that the
    reader sees it cut inside the size line and between CR and LF."""
    def pieces(*parts):
        for p in parts:
            h.wfile.write(p)
            h.wfile.flush()
            time.sleep(0.05)
    n = 0
    while True:
        b = f.read(65536)
        if not b:
            break
        size = b"%x" % len(b)
        if n < split:
            pieces(size[:1], size[1:] + b"\r", b"\n" + b + b"\r", b"\n")
        else:
            h.wfile.write(size + b"\r\n" + b + b"\r\n")
        n += 1
    pieces(b"0\r", b"\n\r", b"\n")


def _plain(h, status, body):
    h.send_response(status)
    h.send_header("Content-Type", "text/plain")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


def _relay(h, up, body, rewrite=None):
    h.send_response(up.status, up.reason)
    for k, v in up.getheaders():
        # send_response already wrote Date and Server
        if k.lower() not in HOP_BY_HOP and k.lower() not in ("date", "server"):
            h.send_header(k, rewrite(k, v) if rewrite else v)
    if h.command == "HEAD":
        cl = up.getheader("Content-Length")
        if cl is not None:
            h.send_header("Content-Length", cl)
        h.end_headers()
        return
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)
