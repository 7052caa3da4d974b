"""End-to-end test harness for ocigate: real registry, real clients.

Python 3 standard library only.  Everything listens on 127.0.0.1, every
process is started in its own session with its output in a log file under the
test's temporary directory, and every process is killed when the script exits
(normally, on an exception, or on SIGTERM/SIGINT).

The pieces:
  Env            temporary directory + process bookkeeping + command log
  Tap            TAP output; a failing case prints its diagnostics and the
                 tail of every process log
  make_pki       CA + server certificate (openssl CLI)
  Registry       Debian's docker-registry (distribution 2.8) over TLS
  StubRegistry   a tiny in-process TLS registry for what 2.8 lacks (tag
                 pagination with Link), recording what it receives
  make_oci_layout / seed_registry
                 a hand-written OCI image layout pushed with skopeo
  Ocigate        config + tokens file, start, port discovery, SIGTERM, log checks
  Containerd     a private containerd + ctr wrapper with hosts.toml
  RawConn / request / stream_get
                 an HTTP/1.1 client over raw sockets for exact assertions
"""

import argparse
import atexit
import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import traceback

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT_ALL = ", ".join([MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST,
                        MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST])

MiB = 1024 * 1024


# --------------------------------------------------------------------------
# Failures


class TestFailure(AssertionError):
    """A check failed; the message is printed as TAP diagnostics."""


class ToolError(TestFailure):
    """An external tool (skopeo, ctr, curl, openssl...) failed or is missing."""


def fail(msg):
    raise TestFailure(msg)


def expect(cond, msg):
    if not cond:
        raise TestFailure(msg)


def expect_eq(actual, expected, what):
    if actual != expected:
        raise TestFailure("%s: expected %r, got %r" % (what, expected, actual))


def expect_in(needle, haystack, what):
    if needle not in haystack:
        raise TestFailure("%s: %r not found in %r" % (what, needle, haystack))


# --------------------------------------------------------------------------
# Process bookkeeping.  Module-level on purpose: the atexit and signal
# handlers must find every live process and temp dir, whoever created them.

_live_procs = []
_live_envs = []
_handlers_installed = False


def _kill_everything():
    for p in list(_live_procs):
        p.kill()
    for e in list(_live_envs):
        e.close()


def _on_signal(signum, frame):
    sys.stdout.write("# caught signal %d, killing child processes\n" % signum)
    sys.stdout.flush()
    _kill_everything()
    os._exit(128 + signum)


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(_kill_everything)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


class Proc:
    """A long-running child process with stdout+stderr in a log file."""

    def __init__(self, name, argv, log_path, env=None, cwd=None,
                 preexec_fn=None):
        """preexec_fn: run in the child before exec (e.g. setrlimit)."""
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.preexec_fn = preexec_fn
        self.popen = None
        self.noise = None  # regex of log lines diagnostics leave out

    def start(self):
        assert self.popen is None or self.popen.poll() is not None
        with open(self.log_path, "ab") as logf:
            logf.write(("=== start %s: %s\n" % (time.strftime("%H:%M:%S"),
                                               " ".join(self.argv))).encode())
            logf.flush()
            try:
                self.popen = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                    stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                    start_new_session=True, preexec_fn=self.preexec_fn)
            except OSError as e:
                raise ToolError("cannot start %s (%s): %s"
                                % (self.name, self.argv[0], e))
        _live_procs.append(self)
        return self

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def returncode(self):
        return None if self.popen is None else self.popen.poll()

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """Exit status, or None if still running after timeout seconds."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        """SIGKILL the whole process group and reap it."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self in _live_procs:
            _live_procs.remove(self)

    def terminate(self, timeout=10):
        """SIGTERM, wait, SIGKILL if needed; returns the exit status."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.kill()
        rc = self.returncode()
        if self in _live_procs:
            _live_procs.remove(self)
        return rc

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=15):
        lines = self.log_text().splitlines()
        if self.noise is not None:
            lines = [l for l in lines if not self.noise.search(l)]
        return lines[-n:]


class Env:
    """Per-test temporary directory, processes and command log."""

    def __init__(self, name, keep=False):
        _install_handlers()
        self.name = name
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="ocigate-%s-" % name)
        self.procs = []
        self.command_log = os.path.join(self.dir, "commands.log")
        self.closed = False
        _live_envs.append(self)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def mkdir(self, *parts):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        return p

    def spawn(self, name, argv, env=None, cwd=None, preexec_fn=None):
        proc = Proc(name, argv, self.path(name + ".log"), env=env, cwd=cwd,
                    preexec_fn=preexec_fn)
        self.procs.append(proc)
        return proc.start()

    def run(self, argv, **kw):
        kw.setdefault("log", self.command_log)
        return run_tool(argv, **kw)

    def diagnostics(self, n=15):
        lines = []
        for p in self.procs:
            state = "running" if p.alive() else "exit %s" % p.returncode()
            lines.append("--- %s (%s) log tail: %s" % (p.name, state, p.log_path))
            lines.extend("  " + (l if len(l) <= 300 else l[:300] + "...")
                         for l in p.tail(n))
        return lines

    def close(self):
        if self.closed:
            return
        self.closed = True
        for p in reversed(self.procs):
            p.kill()
        _unmount_under(self.dir)
        if self.keep:
            sys.stdout.write("# kept temp dir %s\n" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if self in _live_envs:
            _live_envs.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _unmount_under(root):
    """Lazily unmount anything containerd left mounted below root."""
    try:
        with open("/proc/self/mountinfo") as f:
            points = [l.split()[4] for l in f]
    except OSError:
        return
    prefix = os.path.realpath(root) + "/"
    for mp in sorted((p for p in points if p.startswith(prefix)),
                     key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def _tail_text(data, n=25):
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return "\n".join(data.rstrip().splitlines()[-n:])


def run_tool(argv, timeout=180, check=True, env=None, input=None, log=None,
             cwd=None):
    """Run a command to completion; raise ToolError (with its stderr) when it
    is missing, times out, or (with check) exits non-zero."""
    argv = [str(a) for a in argv]
    cmd = " ".join(argv)
    t0 = time.monotonic()
    try:
        cp = subprocess.run(argv, capture_output=True, timeout=timeout,
                            env=env, input=input, cwd=cwd)
    except FileNotFoundError:
        raise ToolError("%s: command not found (see packaging/deps.txt)"
                        % argv[0])
    except subprocess.TimeoutExpired as e:
        raise ToolError("`%s` timed out after %ss\nstderr:\n%s"
                        % (cmd, timeout, _tail_text(e.stderr or b"")))
    if log:
        with open(log, "a") as f:
            f.write("%s rc=%d %.1fs\n" % (cmd, cp.returncode,
                                          time.monotonic() - t0))
            if cp.returncode != 0:
                f.write(_tail_text(cp.stderr) + "\n")
    if check and cp.returncode != 0:
        raise ToolError("`%s` exited %d\nstderr:\n%s\nstdout:\n%s"
                        % (cmd, cp.returncode, _tail_text(cp.stderr),
                           _tail_text(cp.stdout, 10)))
    return cp


def free_port():
    """A port nothing listens on right now (for programs that cannot bind 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1fs waiting for %s"
                              % (timeout, what))
        time.sleep(interval)


def sha256_file(path, limit=None):
    h = hashlib.sha256()
    left = limit
    with open(path, "rb") as f:
        while True:
            n = MiB if left is None else min(MiB, left)
            if n == 0:
                break
            b = f.read(n)
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
    return h.hexdigest()


def sha256_bytes(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


# --------------------------------------------------------------------------
# TAP


def diag(msg):
    """TAP diagnostics: every line prefixed with '# '."""
    for line in str(msg).splitlines() or [""]:
        print("# " + line, flush=True)


def basic_auth(user, password):
    return "Basic " + base64.b64encode(
        ("%s:%s" % (user, password)).encode()).decode()


class Tap:
    """Runs named cases in order, printing TAP.  A case marked required that
    fails makes every later case fail with 'not run'."""

    def __init__(self, env=None):
        self.env = env
        self.n = 0
        self.failed = 0
        self.planned = None
        self.t0 = time.monotonic()

    def plan(self, n):
        self.planned = n
        print("1..%d" % n, flush=True)

    def diag(self, msg):
        diag(msg)

    def ok(self, name):
        self.n += 1
        print("ok %d - %s" % (self.n, name), flush=True)

    def not_ok(self, name, lines):
        self.n += 1
        self.failed += 1
        print("not ok %d - %s" % (self.n, name), flush=True)
        for l in lines:
            self.diag(l)

    def run(self, name, fn):
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:
            lines = [str(e) or type(e).__name__]
            if not isinstance(e, TestFailure):
                lines.append("".join(traceback.format_exception(
                    type(e), e, e.__traceback__)).rstrip())
            else:
                lines.append("at " + _test_location(e))
            if self.env is not None:
                lines.extend(self.env.diagnostics())
            self.not_ok(name, lines)
            return False
        self.ok(name)
        self.diag("  %.1fs" % (time.monotonic() - t0))
        return True

    def run_all(self, cases):
        """cases: list of (name, fn) or (name, fn, required)."""
        self.plan(len(cases))
        broken = None
        for case in cases:
            name, fn = case[0], case[1]
            required = len(case) > 2 and case[2]
            if broken is not None:
                self.not_ok(name, ["not run: required step %r failed" % broken])
                continue
            if not self.run(name, fn) and required:
                broken = name
        return self.finish()

    def finish(self):
        self.diag("%d/%d failed, %.1fs" % (self.failed, self.n,
                                           time.monotonic() - self.t0))
        if self.planned is not None and self.n != self.planned:
            self.diag("planned %d tests but ran %d" % (self.planned, self.n))
            return 1
        return 1 if self.failed else 0


def _test_location(exc):
    """file:line of the innermost frame in a test_*.py or demo script."""
    tb = traceback.extract_tb(exc.__traceback__)
    for fr in reversed(tb):
        if os.path.basename(fr.filename) != "ocitest.py":
            return "%s:%d (%s)" % (os.path.basename(fr.filename), fr.lineno,
                                   fr.name)
    fr = tb[-1]
    return "%s:%d (%s)" % (os.path.basename(fr.filename), fr.lineno, fr.name)


def parse_args(description, extra=None):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--ocigate", required=True, help="path to the ocigate binary")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (logs, configs)")
    ap.add_argument("--timeout", type=float, default=235,
                    help="fail the whole script after this many seconds")
    if extra:
        extra(ap)
    args = ap.parse_args()
    args.ocigate = os.path.abspath(args.ocigate)
    return args


def start_watchdog(seconds):
    """Bail out (TAP) and kill everything if the script runs too long."""
    def fire():
        sys.stdout.write("Bail out! script exceeded %.0fs\n" % seconds)
        sys.stdout.flush()
        for p in list(_live_procs):
            for line in p.tail(10):
                sys.stdout.write("# %s: %s\n" % (p.name, line))
        sys.stdout.flush()
        _kill_everything()
        os._exit(1)
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    return t


# --------------------------------------------------------------------------
# PKI


class Pki:
    def __init__(self, dir):
        self.dir = dir
        self.ca_key = os.path.join(dir, "ca.key")
        self.ca_pem = os.path.join(dir, "ca.pem")
        self.key = os.path.join(dir, "server.key")
        self.cert = os.path.join(dir, "server.pem")
        # skopeo --*-cert-dir reads every *.crt in a directory as a CA
        self.certdir = os.path.join(dir, "certs.d")

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.ca_pem)
        return ctx


def make_pki(dir, cn="ocigate-test"):
    """A private CA and a server certificate for 127.0.0.1 and localhost."""
    os.makedirs(dir, exist_ok=True)
    pki = Pki(dir)
    ext = os.path.join(dir, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = IP:127.0.0.1, DNS:localhost\n")
    ossl = "openssl"
    run_tool([ossl, "req", "-x509", "-newkey", "ec",
              "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", pki.ca_key, "-out", pki.ca_pem, "-days", "3",
              "-subj", "/CN=%s CA" % cn,
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    csr = os.path.join(dir, "server.csr")
    run_tool([ossl, "req", "-new", "-newkey", "ec",
              "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", pki.key, "-out", csr, "-subj", "/CN=127.0.0.1"])
    run_tool([ossl, "x509", "-req", "-in", csr, "-CA", pki.ca_pem,
              "-CAkey", pki.ca_key, "-CAcreateserial", "-days", "3",
              "-extfile", ext, "-out", pki.cert])
    os.makedirs(pki.certdir, exist_ok=True)
    shutil.copy(pki.ca_pem, os.path.join(pki.certdir, "ca.crt"))
    return pki


# --------------------------------------------------------------------------
# Registry (CNCF distribution 2.8, Debian's docker-registry)


REGISTRY_BIN = "/usr/bin/docker-registry"


class Registry:
    def __init__(self, env, pki, users=None, name="registry", port=None,
                 realm="ocigate-e2e-upstream", token_auth=None, tls=True,
                 storage=None):
        """users: dict user -> password for htpasswd auth, or None for no
        auth.  token_auth: a tokenservice.TokenService; the registry then
        uses `auth: token` instead of htpasswd, users are only the
        credentials seed_registry gives skopeo, and request() sends tokens
        minted by the service.  tls=False: plain HTTP.  storage: serve
        another registry's storage directory (for reads: never wipe or
        push through both).  The port stays the same across restarts."""
        self.env = env
        self.pki = pki
        self.users = users
        self.token_auth = token_auth
        self.name = name
        self.realm = realm
        self.tls = tls
        self.shared_storage = storage
        self.port = port or free_port()
        self.dir = env.mkdir(name)
        self.storage = env.mkdir(name, "storage")
        self.config = os.path.join(self.dir, "config.yml")
        self.proc = None
        self._write_config()

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return ("https://" if self.tls else "http://") + self.host

    def storage_dir(self):
        return self.shared_storage or self.storage

    def _write_config(self):
        auth = ""
        if self.token_auth is not None:
            auth = self.token_auth.registry_auth_yaml()
        elif self.users:
            htpasswd = os.path.join(self.dir, "htpasswd")
            lines = []
            for user, pw in self.users.items():
                cp = self.env.run(["htpasswd", "-Bbn", user, pw])
                lines.append(cp.stdout.decode().strip())
            with open(htpasswd, "w") as f:
                f.write("\n".join(lines) + "\n")
            auth = ("auth:\n  htpasswd:\n    realm: %s\n    path: %s\n"
                    % (self.realm, htpasswd))
        with open(self.config, "w") as f:
            f.write("version: 0.1\n"
                    "log:\n  level: info\n  formatter: text\n"
                    "  accesslog:\n    disabled: false\n"
                    "storage:\n  filesystem:\n    rootdirectory: %s\n"
                    "  delete:\n    enabled: true\n"
                    "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                    "http:\n  addr: 127.0.0.1:%d\n  secret: %s\n%s"
                    "health:\n  storagedriver:\n    enabled: false\n%s"
                    % (self.storage_dir(), self.port, secrets.token_hex(16),
                       "  tls:\n    certificate: %s\n    key: %s\n"
                       % (self.pki.cert, self.pki.key) if self.tls else "",
                       auth))

    def start(self, timeout=20):
        if self.proc is None:
            self.proc = self.env.spawn(self.name, [REGISTRY_BIN, "serve",
                                                   self.config])
            # its access log and warnings say enough
            self.proc.noise = re.compile(r"level=info")
        else:
            self.proc.start()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20):
        def ready():
            if not self.proc.alive():
                fail("%s exited with %s before answering; log:\n%s"
                     % (self.name, self.proc.returncode(),
                        "\n".join(self.proc.tail(20))))
            try:
                r = self.request("GET", "/v2/", auth=False, timeout=2)
                return r.status in (200, 401)
            except (OSError, http.client.HTTPException):
                return False
        wait_for(ready, timeout, 0.1, "%s to answer GET /v2/" % self.name)

    def kill(self):
        """SIGKILL: the upstream dies without closing anything cleanly."""
        self.proc.kill()

    def restart(self, timeout=20):
        if self.proc.alive():
            self.proc.terminate()
        self.start(timeout)

    def auth_header(self, path=None):
        if self.token_auth is not None:
            m = re.match(r"/v2/(.+?)/(manifests|blobs|tags|referrers)/", path or "")
            if not m:
                return {}
            return {"Authorization": "Bearer "
                    + self.token_auth.admin_token(m.group(1))}
        if not self.users:
            return {}
        user, pw = next(iter(self.users.items()))
        return {"Authorization": "Basic " + base64.b64encode(
            ("%s:%s" % (user, pw)).encode()).decode()}

    def request(self, method, path, headers=None, auth=True, timeout=30):
        """One request straight to the registry (HTTPS trusting our CA, or
        plain HTTP)."""
        h = dict(auth and self.auth_header(path) or {})
        h.update(headers or {})
        if self.tls:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port,
                                               timeout=timeout,
                                               context=self.pki.ssl_context())
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                              timeout=timeout)
        try:
            conn.request(method, path, headers=h)
            resp = conn.getresponse()
            body = resp.read()
            return Response(resp.status, resp.reason, "HTTP/1.1",
                            list(resp.getheaders()), body)
        finally:
            conn.close()

    def manifest(self, repo, ref, accept=ACCEPT_ALL, method="GET"):
        r = self.request(method, "/v2/%s/manifests/%s" % (repo, ref),
                         {"Accept": accept})
        expect_eq(r.status, 200, "registry %s manifest %s:%s status"
                  % (method, repo, ref))
        return r

    def access_lines(self, needle):
        """Access-log lines for requests whose line contains needle."""
        return [l for l in self.proc.log_text().splitlines()
                if needle in l and '"' in l and " /v2/" in l]


# --------------------------------------------------------------------------
# A scripted upstream for behaviour docker-registry 2.8 does not have


class StubRegistry:
    """A minimal TLS registry in this process: Basic auth, GET /v2/, and
    paginated tags/list with a Link header (distribution 2.8 ignores ?n=).
    Every request is recorded as (method, path, headers dict)."""

    def __init__(self, pki, users, tags):
        import http.server
        self.pki = pki
        self.users = dict(users)
        self.tags = dict(tags)  # repo -> list of tags
        self.requests = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                stub._serve(self, body=True)

            def do_HEAD(self):
                stub._serve(self, body=False)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.cert, pki.key)
        self.server.socket = ctx.wrap_socket(self.server.socket,
                                             server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _send(self, h, status, doc, headers=(), body=True):
        data = json.dumps(doc).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(data)

    def _authorized(self, h):
        want = ["Basic " + base64.b64encode(("%s:%s" % kv).encode()).decode()
                for kv in self.users.items()]
        return h.headers.get("Authorization") in want

    def _serve(self, h, body):
        import urllib.parse
        self.requests.append((h.command, h.path, dict(h.headers.items())))
        if not self._authorized(h):
            self._send(h, 401, {"errors": [{"code": "UNAUTHORIZED",
                                            "message": "stub: authentication required"}]},
                       [("WWW-Authenticate", 'Basic realm="stub-upstream"')], body)
            return
        u = urllib.parse.urlsplit(h.path)
        if u.path == "/v2/":
            self._send(h, 200, {}, body=body)
            return
        m = re.fullmatch(r"/v2/(.+)/tags/list", u.path)
        if not m or m.group(1) not in self.tags:
            self._send(h, 404, {"errors": [{"code": "NAME_UNKNOWN",
                                            "message": "stub: unknown"}]},
                       body=body)
            return
        repo = m.group(1)
        q = urllib.parse.parse_qs(u.query)
        tags = sorted(self.tags[repo])
        if "last" in q:
            tags = [t for t in tags if t > q["last"][0]]
        headers = []
        if "n" in q:
            n = int(q["n"][0])
            if len(tags) > n:
                tags = tags[:n]
                headers.append(("Link", '</v2/%s/tags/list?last=%s&n=%d>; rel="next"'
                                % (repo, tags[-1], n)))
        self._send(h, 200, {"name": repo, "tags": tags}, headers, body)


# --------------------------------------------------------------------------
# OCI image layout, written by hand


class Blob:
    def __init__(self, digest, size, media_type, path):
        self.digest = digest
        self.size = size
        self.media_type = media_type
        self.path = path

    def descriptor(self, **extra):
        d = {"mediaType": self.media_type, "digest": self.digest,
             "size": self.size}
        d.update(extra)
        return d

    def read(self, start=0, end=None):
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(-1 if end is None else end - start)


class Image:
    """One platform image: manifest, config and layers."""

    def __init__(self, manifest, config, layers, platform):
        self.manifest = manifest
        self.config = config
        self.layers = layers
        self.platform = platform

    @property
    def digest(self):
        return self.manifest.digest

    def blobs(self):
        return [self.manifest, self.config] + self.layers


class Layout:
    def __init__(self, dir):
        self.dir = dir
        self.single = None   # Image, ref name "single"
        self.index = None    # Blob of the image index, ref name "multi"
        self.platforms = {}  # "amd64"/"arm64" -> Image
        self.big = None      # the big uncompressed layer (Blob)

    def blob_path(self, digest):
        algo, hexd = digest.split(":", 1)
        return os.path.join(self.dir, "blobs", algo, hexd)

    def all_blobs(self):
        out = {}
        for img in [self.single] + list(self.platforms.values()):
            for b in img.blobs():
                out[b.digest] = b
        out[self.index.digest] = self.index
        return out


class _RandomReader:
    """File-like stream of deterministic pseudo-random bytes."""

    def __init__(self, seed, size):
        self.rng = random.Random(seed)
        self.left = size

    def read(self, n=-1):
        if n < 0 or n > self.left:
            n = self.left
        self.left -= n
        return self.rng.randbytes(n)


def _json_bytes(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _tarinfo(name, size, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mode = mode
    ti.mtime = 1700000000
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def _small_tar(files):
    """Deterministic tar bytes of {name: (bytes, mode)}."""
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, (data, mode) in sorted(files.items()):
            tf.addfile(_tarinfo(name, len(data), mode), io.BytesIO(data))
    return bio.getvalue()


class _LayoutWriter:
    def __init__(self, dir):
        self.dir = dir
        self.blobdir = os.path.join(dir, "blobs", "sha256")
        os.makedirs(self.blobdir, exist_ok=True)

    def put(self, data, media_type):
        digest = sha256_bytes(data)
        path = os.path.join(self.blobdir, digest.split(":", 1)[1])
        with open(path, "wb") as f:
            f.write(data)
        return Blob(digest, len(data), media_type, path)

    def put_file(self, tmp_path, media_type):
        hexd = sha256_file(tmp_path)
        path = os.path.join(self.blobdir, hexd)
        os.replace(tmp_path, path)
        return Blob("sha256:" + hexd, os.path.getsize(path), media_type, path)

    def gzip_layer(self, files):
        """(layer blob, diff_id) of a gzip'd tar."""
        tar = _small_tar(files)
        gz = gzip.compress(tar, compresslevel=6, mtime=0)
        return self.put(gz, MEDIA_LAYER_GZIP), sha256_bytes(tar)

    def big_layer(self, name, size, seed):
        """An uncompressed tar holding size pseudo-random bytes."""
        tmp = os.path.join(self.dir, "big.tar.tmp")
        with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tf:
            tf.addfile(_tarinfo(name, size), _RandomReader(seed, size))
        blob = self.put_file(tmp, MEDIA_LAYER_TAR)
        return blob, blob.digest

    def image(self, platform, layers_and_diffids, cmd):
        arch, osname = platform["architecture"], platform["os"]
        config = {
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch,
            "os": osname,
            "config": {"Cmd": cmd, "Env": ["PATH=/usr/bin:/bin"],
                       "WorkingDir": "/"},
            "rootfs": {"type": "layers",
                       "diff_ids": [d for _, d in layers_and_diffids]},
            "history": [{"created": "2024-01-01T00:00:00Z",
                         "created_by": "ocitest layer %d" % i}
                        for i in range(len(layers_and_diffids))],
        }
        cfg = self.put(_json_bytes(config), MEDIA_OCI_CONFIG)
        layers = [b for b, _ in layers_and_diffids]
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_OCI_MANIFEST,
            "config": cfg.descriptor(),
            "layers": [b.descriptor() for b in layers],
        }
        m = self.put(_json_bytes(manifest), MEDIA_OCI_MANIFEST)
        return Image(m, cfg, layers, platform)


def make_oci_layout(dir, big_size=100 * MiB, seed=20240101):
    """Write an OCI image layout with two references:
      "single": linux/amd64, two gzip layers + one uncompressed tar layer
                holding big_size pseudo-random bytes;
      "multi":  an index with linux/amd64 and linux/arm64 images.
    Deterministic for a given (big_size, seed)."""
    os.makedirs(dir, exist_ok=True)
    w = _LayoutWriter(dir)
    lay = Layout(dir)

    l1 = w.gzip_layer({"etc/app.conf": (b"greeting = hello\n", 0o644)})
    l2 = w.gzip_layer({"bin/app": (b"#!/bin/sh\ncat /etc/app.conf\n", 0o755)})
    l3 = w.big_layer("data/big.bin", big_size, seed)
    amd64 = {"architecture": "amd64", "os": "linux"}
    lay.single = w.image(amd64, [l1, l2, l3], ["/bin/app"])
    lay.big = l3[0]

    for arch in ("amd64", "arm64"):
        plat = {"architecture": arch, "os": "linux"}
        layer = w.gzip_layer({"etc/arch": (("built for %s\n" % arch).encode(),
                                           0o644)})
        lay.platforms[arch] = w.image(plat, [layer], ["/bin/cat", "/etc/arch"])
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_INDEX,
        "manifests": [img.manifest.descriptor(platform=img.platform)
                      for img in lay.platforms.values()],
    }
    lay.index = w.put(_json_bytes(index), MEDIA_OCI_INDEX)

    top = {
        "schemaVersion": 2,
        "mediaType": MEDIA_OCI_INDEX,
        "manifests": [
            lay.single.manifest.descriptor(annotations={
                "org.opencontainers.image.ref.name": "single"}),
            lay.index.descriptor(annotations={
                "org.opencontainers.image.ref.name": "multi"}),
        ],
    }
    with open(os.path.join(dir, "index.json"), "wb") as f:
        f.write(_json_bytes(top))
    with open(os.path.join(dir, "oci-layout"), "wb") as f:
        f.write(_json_bytes({"imageLayoutVersion": "1.0.0"}))
    return lay


class Seeded:
    """What seed_registry pushed: repository names and tags."""

    def __init__(self, repo, tags, index_repo, index_tag):
        self.repo = repo
        self.tags = tags
        self.index_repo = index_repo
        self.index_tag = index_tag


def skopeo_copy(env, src, dst, extra=(), timeout=180):
    return env.run(["skopeo", "--insecure-policy", "copy", "--quiet",
                    "--preserve-digests"] + list(extra) + [src, dst],
                   timeout=timeout)


def seed_registry(registry, layout, repo="demo/app",
                  tags=("v1", "v2", "v3"), index_repo="demo/multi",
                  index_tag="v1"):
    """Push the layout's images with skopeo (the single image under every
    tag, the index with --all), then check the registry serves exactly the
    digests we wrote (no recompression on the way)."""
    env = registry.env
    user, pw = next(iter(registry.users.items())) if registry.users else (None, None)
    extra = ["--dest-cert-dir", registry.pki.certdir]
    if user:
        extra += ["--dest-creds", "%s:%s" % (user, pw)]
    for tag in tags:
        skopeo_copy(env, "oci:%s:single" % layout.dir,
                    "docker://%s/%s:%s" % (registry.host, repo, tag), extra)
    if index_repo:
        skopeo_copy(env, "oci:%s:multi" % layout.dir,
                    "docker://%s/%s:%s" % (registry.host, index_repo, index_tag),
                    ["--all"] + extra)
    for tag in tags:
        r = registry.manifest(repo, tag, method="HEAD")
        expect_eq(r.header("Docker-Content-Digest"), layout.single.digest,
                  "registry digest of %s:%s" % (repo, tag))
    if index_repo:
        r = registry.manifest(index_repo, index_tag, method="HEAD")
        expect_eq(r.header("Docker-Content-Digest"), layout.index.digest,
                  "registry digest of %s:%s" % (index_repo, index_tag))
    r = registry.request("HEAD", "/v2/%s/blobs/%s" % (repo, layout.big.digest))
    expect_eq(r.status, 200, "registry HEAD big blob")
    expect_eq(r.header("Content-Length"), str(layout.big.size),
              "registry big blob size")
    return Seeded(repo, list(tags), index_repo, index_tag)


# --------------------------------------------------------------------------
# ocigate


class Token:
    def __init__(self, user, uid=None, groups=(), token=None):
        self.user = user
        self.uid = uid or "uid-" + user
        self.groups = list(groups)
        self.token = token or "tok-" + secrets.token_hex(20)

    def basic(self, user="x"):
        return "Basic " + base64.b64encode(
            ("%s:%s" % (user, self.token)).encode()).decode()

    def bearer(self):
        return "Bearer " + self.token

    def secrets(self):
        """Strings that must never appear in a log."""
        return [self.token, self.basic().split(" ", 1)[1]]


class Connector:
    def __init__(self, name, address, username=None, password=None,
                 password_file=None, ca_file=None, allow=(), options=None):
        """options: more "key = value" lines, e.g. {"allow_push": "alice"}."""
        self.name = name
        self.options = dict(options or {})
        self.address = address
        self.username = username
        self.password = password
        self.password_file = password_file
        self.ca_file = ca_file
        self.allow = list(allow)

    def render(self):
        lines = ['[connector "%s"]' % self.name,
                 "address = %s" % self.address]
        if self.username is not None:
            lines.append("username = %s" % self.username)
        if self.password_file is not None:
            lines.append("password_file = %s" % self.password_file)
        elif self.password is not None:
            lines.append("password = %s" % self.password)
        if self.ca_file is not None:
            lines.append("ca_file = %s" % self.ca_file)
        if self.allow:
            lines.append("allow = %s" % " ".join(self.allow))
        lines += ["%s = %s" % kv for kv in self.options.items()]
        return "\n".join(lines) + "\n"


def robot_registry(env):
    """A PKI and a started TLS registry whose one user is "robot" with a
    random password: (pki, password, registry)."""
    pki = make_pki(env.path("pki"))
    password = "robot-" + secrets.token_hex(8)
    return pki, password, Registry(env, pki, users={"robot": password}).start()


def registry_connector(name, registry, allow, password=None, ca=True, **kw):
    """A connector pointing at our test registry with its first user."""
    user, pw = next(iter(registry.users.items())) if registry.users else (None, None)
    return Connector(name, registry.url, username=user,
                     password=pw if password is None else password,
                     ca_file=registry.pki.ca_pem if ca else None,
                     allow=allow, **kw)


LISTEN_RE = re.compile(r'event=listening\b.*?\baddr="?127\.0\.0\.1:(\d+)')
# the admin and TLS listeners: event=listening listener=admin|tls addr=...
LISTENER_RE = re.compile(r'event=listening listener=(\w+) addr="?127\.0\.0\.1:(\d+)')
WEBHOOK_LISTEN_RE = re.compile(
    r'event=webhook_listening\b.*?\baddress="?127\.0\.0\.1:(\d+)')


class Ocigate:
    def __init__(self, env, binary, tokens, connectors, server=None,
                 name="ocigate", upstream=None, sections=None, proc_env=None,
                 preexec_fn=None):
        """The configuration is data, rendered once by config_text:
        server: extra [server] options, e.g. {"header_timeout": "2s"};
        upstream: [upstream] options, e.g. {"read_timeout": "3s"};
        sections: more sections, e.g. {"tls": {"listen": "127.0.0.1:0"}}.
        With a "kubernetes" section ocigate runs in Kubernetes mode: no
        [auth] tokens file and no [connector] sections are written.
        A listen option in "admin", "tls" or "webhook" (or admin_listen in
        server) makes start() wait for that listener's port
        (self.listeners, self.webhook_port);
        proc_env: the process environment (None: inherit);
        preexec_fn: run in the child before exec (e.g. setrlimit)."""
        self.preexec_fn = preexec_fn
        self.env = env
        self.binary = binary
        self.tokens = list(tokens)
        self.connectors = list(connectors)
        self.server = dict(server or {})
        self.upstream = dict(upstream or {})
        self.sections = dict(sections or {})
        self.proc_env = proc_env
        self.listeners = {}  # "admin", "tls": port
        self.name = name
        self.dir = env.mkdir(name)
        self.config = os.path.join(self.dir, "ocigate.conf")
        self.tokens_file = os.path.join(self.dir, "tokens.csv")
        self.proc = None
        self.port = None

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    @property
    def url(self):
        return "http://" + self.host

    @property
    def webhook_port(self):
        return self.listeners.get("webhook")

    @property
    def pid(self):
        return self.proc.pid

    def config_text(self):
        out = ["[server]"]
        if "listen" not in self.server:
            out.append("listen = 127.0.0.1:0")
        out += ["%s = %s" % kv for kv in self.server.items()]
        if self.upstream:
            out += ["", "[upstream]"]
            out += ["%s = %s" % kv for kv in self.upstream.items()]
        for name, opts in self.sections.items():
            out += ["", "[%s]" % name]
            out += ["%s = %s" % kv for kv in opts.items()]
        if "kubernetes" in self.sections:
            return "\n".join(out) + "\n"
        out += ["", "[auth]", "tokens_file = %s" % self.tokens_file, ""]
        for c in self.connectors:
            out.append(c.render())
        return "\n".join(out)

    def write_config(self):
        with open(self.tokens_file, "w") as f:
            for t in self.tokens:
                line = "%s,%s,%s" % (t.token, t.user, t.uid)
                if t.groups:
                    line += ',"%s"' % ",".join(t.groups)
                f.write(line + "\n")
        with open(self.config, "w") as f:
            f.write(self.config_text())
        return self.config

    def start(self, timeout=10):
        if not os.access(self.binary, os.X_OK):
            fail("ocigate binary %s does not exist or is not executable"
                 % self.binary)
        self.write_config()
        self.proc = self.env.spawn(self.name, [self.binary, "--config",
                                               self.config], env=self.proc_env,
                                   preexec_fn=self.preexec_fn)
        want = {n for n in ("admin", "tls", "webhook")
                if self.sections.get(n, {}).get("listen") or
                (n == "admin" and self.server.get("admin_listen"))}
        plain = self.server.get("listen", "x") != ""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.proc.log_text().splitlines():
                m = WEBHOOK_LISTEN_RE.search(line)
                if m:
                    self.listeners["webhook"] = int(m.group(1))
                    continue
                m = LISTENER_RE.search(line)
                if m:
                    self.listeners[m.group(1)] = int(m.group(2))
                    continue
                m = LISTEN_RE.search(line)
                if m:
                    self.port = int(m.group(1))
            if (self.port or not plain) and want <= set(self.listeners):
                if not plain:
                    self.port = self.listeners["tls"]
                return self
            if not self.proc.alive():
                fail("%s exited with %s before listening; log:\n%s"
                     % (self.name, self.proc.returncode(),
                        "\n".join(self.proc.tail(30))))
            if time.monotonic() > deadline:
                fail("%s printed no 'event=listening addr=127.0.0.1:PORT' "
                     "line within %ss; log:\n%s"
                     % (self.name, timeout, "\n".join(self.proc.tail(30))))
            time.sleep(0.05)

    def respawn(self, name):
        """A new, started instance with the same configuration, e.g. after
        this one crashed (its log stays for the diagnostics)."""
        return Ocigate(self.env, self.binary, self.tokens, self.connectors,
                       server=self.server, name=name,
                       upstream=self.upstream, sections=self.sections,
                       proc_env=self.proc_env,
                       preexec_fn=self.preexec_fn).start()

    def stop(self, timeout=15):
        """SIGTERM and wait; the exit status (None if it had to be killed)."""
        self.proc.signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        if rc is None:
            self.proc.kill()
        return rc

    def log_text(self):
        return self.proc.log_text() if self.proc else ""

    def secrets(self):
        out = []
        for t in self.tokens:
            out += t.secrets()
        for c in self.connectors:
            if c.password:
                out.append(c.password)
                if c.username:
                    out.append(base64.b64encode(("%s:%s" % (
                        c.username, c.password)).encode()).decode())
        return out

    @property
    def log_path(self):
        return self.proc.log_path

    @property
    def log(self):
        return self.log_text()

    def assert_log_clean(self, secrets=()):
        """No token, upstream password or Basic credential (the ones this
        instance was configured with, plus secrets) in the log."""
        log = self.log_text()
        expect(log.strip() != "", "%s log is empty" % self.name)
        for s in list(self.secrets()) + list(secrets):
            if s and s in log:
                lines = [l for l in log.splitlines() if s in l][:3]
                fail("secret %s... found in %s log:\n%s"
                     % (s[:6], self.name, "\n".join(lines)))

    def check_config(self, path):
        return self.env.run([self.binary, "--check-config", "--config", path],
                            check=False, timeout=20)

    def rss_kib(self):
        return proc_rss_kib(self.proc.pid)


def prometheus_parser():
    """Debian's python3-prometheus-client text parser, also when the python3
    on PATH is not Debian's own (a pyenv shim, say): the module is pure
    Python."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        from prometheus_client.parser import text_string_to_metric_families
    return text_string_to_metric_families


def scrape_metrics(port):
    """GET /metrics on an admin listener: ({family name: family}, text),
    parsed by Prometheus' own parser (which drops a counter's _total from
    the family name)."""
    r = request(port, "GET", "/metrics")
    expect_eq(r.status, 200, "GET /metrics status")
    expect_eq(r.header("Content-Type"),
              "text/plain; version=0.0.4; charset=utf-8", "/metrics type")
    text = r.body.decode()
    return {f.name: f for f in prometheus_parser()(text)}, text


def metric_value(fams, sample, **labels):
    """One sample's value in a scrape, 0 when absent."""
    for f in fams.values():
        for s in f.samples:
            if s.name == sample and s.labels == labels:
                return s.value
    return 0


def proc_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# --------------------------------------------------------------------------
# containerd + ctr


class Containerd:
    NAMESPACE = "ocigate-test"

    def __init__(self, env, name="containerd"):
        self.env = env
        self.name = name
        self.dir = env.mkdir(name)
        self.root = os.path.join(self.dir, "root")
        self.state = os.path.join(self.dir, "state")
        self.sock = os.path.join(self.dir, "c.sock")
        self.config = os.path.join(self.dir, "config.toml")
        self.hosts_root = env.mkdir(name, "hosts")
        self.snapshotter = None
        self.proc = None

    def _write_config(self):
        disabled = ["io.containerd.grpc.v1.cri",
                    "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper"]
        with open(self.config, "w") as f:
            f.write('version = 2\n'
                    'root = "%s"\n'
                    'state = "%s"\n'
                    'temp = "%s"\n'
                    'disabled_plugins = [%s]\n\n'
                    '[grpc]\n  address = "%s"\n\n'
                    '[ttrpc]\n  address = "%s.ttrpc"\n\n'
                    '[debug]\n  level = "info"\n\n'
                    '[plugins."io.containerd.internal.v1.opt"]\n'
                    '  path = "%s"\n'
                    % (self.root, self.state, self.env.mkdir(self.name, "tmp"),
                       ", ".join('"%s"' % p for p in disabled),
                       self.sock, self.sock, os.path.join(self.dir, "opt")))

    def start(self, timeout=30):
        self._write_config()
        self.proc = self.env.spawn(self.name, ["containerd", "--config",
                                               self.config])

        def up():
            if not self.proc.alive():
                fail("containerd exited with %s; log:\n%s"
                     % (self.proc.returncode(), "\n".join(self.proc.tail(20))))
            if not os.path.exists(self.sock):
                return False
            return self.ctr(["version"], check=False,
                            timeout=10).returncode == 0
        wait_for(up, timeout, 0.2, "containerd socket %s" % self.sock)
        self.snapshotter = self._pick_snapshotter()
        return self

    def _pick_snapshotter(self):
        """overlayfs when its plugin loaded (it test-mounts at init), else
        native, which works anywhere."""
        out = self.ctr(["plugins", "ls"]).stdout.decode()
        status = {}
        for line in out.splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 4:
                status[(cols[0], cols[1])] = cols[-1]
        if status.get(("io.containerd.snapshotter.v1", "overlayfs")) == "ok":
            return "overlayfs"
        if status.get(("io.containerd.snapshotter.v1", "native")) == "ok":
            return "native"
        fail("neither the overlayfs nor the native snapshotter loaded:\n"
             + out)

    def ctr(self, args, check=True, timeout=180):
        return self.env.run(["ctr", "--address", self.sock, "--namespace",
                             self.NAMESPACE] + list(args),
                            check=check, timeout=timeout)

    def hosts_dir(self, host, server, ca=None, label=None):
        """A --hosts-dir tree with HOST/hosts.toml sending pulls to server
        ("http://..." for plain HTTP, "https://..." with ca)."""
        d = os.path.join(self.hosts_root, label or host.replace(":", "_"))
        os.makedirs(os.path.join(d, host), exist_ok=True)
        body = ('server = "%s"\n\n[host."%s"]\n'
                '  capabilities = ["pull", "resolve"]\n' % (server, server))
        if ca:
            body += '  ca = "%s"\n' % ca
        with open(os.path.join(d, host, "hosts.toml"), "w") as f:
            f.write(body)
        return d

    def pull(self, ref, hosts_dir, user=None, platform=None, timeout=180):
        args = ["images", "pull", "--hosts-dir", hosts_dir,
                "--snapshotter", self.snapshotter]
        if user:
            args += ["--user", user]
        if platform:
            args += ["--platform", platform]
        return self.ctr(args + [ref], timeout=timeout)

    def images(self):
        """ref -> (media type, digest)"""
        out = self.ctr(["images", "ls"]).stdout.decode()
        res = {}
        for line in out.splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 3:
                res[cols[0]] = (cols[1], cols[2])
        return res

    def content(self):
        """Set of digests in the content store."""
        out = self.ctr(["content", "ls"]).stdout.decode()
        return {l.split()[0] for l in out.splitlines()[1:] if l.strip()}

    def remove_image(self, ref):
        self.ctr(["images", "rm", "--sync", ref], check=False)

    def clear_content(self):
        """Forget all images and blobs (so the next pull fetches again)."""
        for ref in self.images():
            self.remove_image(ref)
        left = self.content()
        if left:
            self.ctr(["content", "rm"] + sorted(left), check=False)


# --------------------------------------------------------------------------
# HTTP client over raw sockets


class ShortBody(TestFailure):
    def __init__(self, msg, got):
        TestFailure.__init__(self, msg)
        self.got = got


class Response:
    def __init__(self, status, reason, version, headers, body):
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers  # list of (name, value) in wire order
        self.body = body

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            fail("response body is not JSON: %r" % self.body[:300])

    def error_code(self):
        """The first OCI error code, or None when the body is not one."""
        try:
            return self.error()[0]
        except TestFailure:
            return None

    def error(self):
        """(code, message) of the first OCI error in the body."""
        doc = self.json()
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if not isinstance(errs, list) or not errs or not isinstance(errs[0], dict):
            fail("not an OCI error body: %r" % self.body[:300])
        return errs[0].get("code"), errs[0].get("message", "")

    def describe(self):
        lines = ["%s %d %s" % (self.version, self.status, self.reason)]
        lines += ["%s: %s" % kv for kv in self.headers]
        body = self.body[:400]
        lines.append("")
        lines.append(body.decode("utf-8", "replace")
                     + (" ...(%d bytes)" % len(self.body)
                        if len(self.body) > 400 else ""))
        return "\n".join(lines)


def expect_status(resp, status, what):
    if resp.status != status:
        fail("%s: expected status %d, got %d\nresponse:\n%s"
             % (what, status, resp.status, resp.describe()))


def expect_error(resp, status, code, what):
    expect_status(resp, status, what)
    got, msg = resp.error()
    if got != code:
        fail("%s: expected error code %s, got %s\nresponse:\n%s"
             % (what, code, got, resp.describe()))
    return msg


class RawConn:
    """One TCP connection; send arbitrary bytes, parse responses strictly
    enough to notice stray bytes."""

    def __init__(self, port, host="127.0.0.1", timeout=15):
        self.port = port
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self):
        if self.eof:
            return False
        try:
            b = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            b = b""
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def _line(self):
        while b"\n" not in self.buf:
            if not self._fill():
                fail("connection closed while reading a header line; got %r"
                     % self.buf[:200])
        line, _, self.buf = self.buf.partition(b"\n")
        if not line.endswith(b"\r"):
            fail("response line not terminated by CRLF: %r" % line[:200])
        return line[:-1].decode("latin-1")

    def _exact(self, n):
        while len(self.buf) < n:
            if not self._fill():
                got = self.buf
                self.buf = b""
                raise ShortBody("connection closed after %d of %d body bytes"
                                % (len(got), n), got)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, method="GET"):
        status_line = self._line()
        m = re.match(r"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", status_line)
        if not m:
            fail("bad status line %r" % status_line)
        version, status, reason = m.group(1), int(m.group(2)), m.group(3) or ""
        headers = []
        while True:
            line = self._line()
            if line == "":
                break
            if ":" not in line or line[0] in " \t":
                fail("bad response header line %r" % line)
            k, v = line.split(":", 1)
            headers.append((k, v.strip(" \t")))
        resp = Response(status, reason, version, headers, b"")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        te = resp.header("Transfer-Encoding")
        cl = resp.header("Content-Length")
        if te and "chunked" in te.lower():
            resp.body = self._chunked()
        elif cl is not None:
            resp.body = self._exact(int(cl))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def _chunked(self):
        body = b""
        while True:
            size = int(self._line().split(";", 1)[0], 16)
            if size == 0:
                while self._line() != "":
                    pass
                return body
            body += self._exact(size)
            expect_eq(self._exact(2), b"\r\n", "chunk terminator")

    def closed_within(self, seconds):
        """True if the peer closes (EOF or reset) within seconds, ignoring
        any bytes it still sends; False if still open."""
        deadline = time.monotonic() + seconds
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                self._fill()
            except socket.timeout:
                return False
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def build_request(method, path, host, headers=None, body=b""):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host]
    for k, v in (headers.items() if isinstance(headers, dict) else headers or []):
        lines.append("%s: %s" % (k, v))
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def request(port, method, path, headers=None, body=b"", timeout=30):
    """One request on a fresh connection; the whole response."""
    with RawConn(port, timeout=timeout) as c:
        c.send(build_request(method, path, "127.0.0.1:%d" % port, headers,
                             body))
        return c.read_response(method)


class StreamResult:
    def __init__(self):
        self.status = None
        self.headers = []
        self.nbytes = 0
        self.sha256 = None
        self.complete = False
        self.error = None
        self.seconds = 0.0


def _stream_chunked(sock, buf, h, res):
    """Decodes a chunked body from sock (buf: bytes already read), hashing
    the data; sets res.complete only when the last chunk arrived."""
    def fill(need):
        nonlocal buf
        while len(buf) < need:
            b = sock.recv(1 << 20)
            if not b:
                raise TestFailure("closed inside a chunked body")
            buf += b

    def line():
        nonlocal buf
        while b"\r\n" not in buf:
            fill(len(buf) + 1)
        ln, _, buf = buf.partition(b"\r\n")
        return ln

    while True:
        size = int(line().split(b";")[0], 16)
        if size == 0:
            while line():
                pass
            res.complete = True
            return
        fill(size + 2)
        h.update(buf[:size])
        res.nbytes += size
        if buf[size:size + 2] != b"\r\n":
            raise TestFailure("chunk data not followed by CRLF")
        buf = buf[size + 2:]


def stream_get(port, path, headers=None, rate=None, max_bytes=None,
               timeout=60, rcvbuf=None):
    """GET path, hashing the body as it arrives (never kept in memory).
    rate: bytes per second to read at (slow client); max_bytes: stop after
    that many body bytes.  Never raises for transfer errors: see .error."""
    res = StreamResult()
    t0 = time.monotonic()
    h = hashlib.sha256()
    sock = None
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        sock.sendall(build_request("GET", path, "127.0.0.1:%d" % port, headers))
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = sock.recv(65536)
            if not b:
                raise TestFailure("closed before response headers")
            buf += b
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        res.status = int(lines[0].split()[1])
        res.headers = [tuple(x.strip() for x in l.split(":", 1))
                       for l in lines[1:]]
        cl = None
        chunked = False
        for k, v in res.headers:
            if k.lower() == "content-length":
                cl = int(v)
            if k.lower() == "transfer-encoding" and v.lower() == "chunked":
                chunked = True
        if chunked:
            _stream_chunked(sock, rest, h, res)
            want = res.nbytes
        else:
            want = cl if max_bytes is None or cl is None else min(cl, max_bytes)
            h.update(rest[:want] if want is not None else rest)
            res.nbytes = len(rest) if want is None else min(len(rest), want)
        chunk = 65536 if rate else 1024 * 1024
        mv = memoryview(bytearray(chunk))
        while want is None or res.nbytes < want:
            n = chunk if want is None else min(chunk, want - res.nbytes)
            got = sock.recv_into(mv, n)
            if got == 0:
                break
            h.update(mv[:got])
            res.nbytes += got
            if rate:
                ahead = res.nbytes / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        res.complete = want is not None and res.nbytes == want
        if not res.complete and res.error is None:
            res.error = "short body: %d of %s bytes" % (res.nbytes, want)
    except (OSError, TestFailure, ValueError, IndexError) as e:
        res.error = "%s: %s" % (type(e).__name__, e)
    finally:
        if sock is not None:
            sock.close()
    res.sha256 = "sha256:" + h.hexdigest()
    res.seconds = time.monotonic() - t0
    return res


def proxy_path(ns, connector, repo, kind, ref):
    """/v2/namespaces/NS/connectors/NAME/REPO/KIND/REF"""
    return "/v2/namespaces/%s/connectors/%s/%s/%s/%s" % (ns, connector, repo,
                                                         kind, ref)


def curl(env, args, timeout=180, check=True):
    return env.run(["curl", "-sS"] + list(args), timeout=timeout, check=check)


def spawn_curl(env, name, args):
    """A background curl (its stderr goes to NAME.log)."""
    return env.spawn(name, ["curl", "-sS"] + list(args))


def verify_blob_dir(dir):
    """Every file in dir named like a sha256 hex digest hashes to its name;
    returns the set of digests found."""
    found = set()
    for fn in os.listdir(dir):
        if not re.fullmatch(r"[0-9a-f]{64}", fn):
            continue
        got = sha256_file(os.path.join(dir, fn))
        expect_eq(got, fn, "sha256 of %s/%s" % (dir, fn))
        found.add("sha256:" + fn)
    return found


# --------------------------------------------------------------------------
# The usual fixture: CA, TLS+htpasswd registry, seeded images


class World:
    """PKI, a TLS registry with htpasswd auth seeded with the test images."""

    def __init__(self, env, big_size=100 * MiB, repo="demo/app",
                 tags=("v1", "v2", "v3"), index_repo="demo/multi"):
        self.env = env
        self.pki = make_pki(env.path("pki"))
        self.upstream_user = "robot"
        self.upstream_password = "upw-" + secrets.token_hex(12)
        self.registry = Registry(env, self.pki, users={
            self.upstream_user: self.upstream_password}).start()
        self.layout = make_oci_layout(env.path("layout"), big_size)
        self.seeded = seed_registry(self.registry, self.layout, repo=repo,
                                    tags=tags, index_repo=index_repo)


class CrashGuard:
    """Crash containment for test classes with self.og (an Ocigate) and
    self.dead (a list): a case whose ocigate has died starts a fresh one, so
    later cases still tell something; the crash fails the case it happened
    in and t_no_crash."""

    def guard(self, fn):
        def run():
            if not self.og.proc.alive():
                self.dead.append(self.og)
                self.og = self.og.respawn("ocigate-%d" % (len(self.dead) + 1))
                self.after_respawn()
                diag("  ocigate had exited (%s); started %s on %s"
                     % (self.dead[-1].proc.returncode(), self.og.name,
                        self.og.host))
            fn()
        return run

    def after_respawn(self):
        pass

    def extra_ocigates(self):
        return []

    def t_no_crash(self):
        bad = []
        for og in self.dead + [self.og] + self.extra_ocigates():
            crash = [l for l in og.log_text().splitlines()
                     if re.search(r"Assertion|Sanitizer|runtime error|"
                                  r"SUMMARY|Segmentation", l)]
            if not og.proc.alive() or crash:
                bad.append("%s: exit %s\n  %s" % (og.name, og.proc.returncode(),
                                                  "\n  ".join(crash[:5])))
        expect(not bad, "ocigate crashed during the run:\n" + "\n".join(bad))


class RssSampler:
    """Samples VmRSS of pid every interval seconds in a thread."""

    def __init__(self, pid, interval=0.05):
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            kib = proc_rss_kib(self.pid)
            if kib is not None:
                self.peak_kib = max(self.peak_kib, kib)
                self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def cpu_split(pid):
    """(utime, stime) of pid (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    # the command name may hold blanks and parentheses: split after the last ')'
    fields = data[data.rindex(")") + 2:].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def cpu_seconds(pid):
    """utime + stime of pid (all its threads), in seconds."""
    return sum(cpu_split(pid))


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def make_many_layer_layout(dir, n, label="layer"):
    """An OCI layout whose "many" reference is a linux/amd64 image of n
    small gzip layers (label goes into each layer's file)."""
    w = _LayoutWriter(dir)
    layers = [w.gzip_layer({"layer/%02d.txt" % i:
                            (("%s %d of %d\n" % (label, i, n)).encode(), 0o644)})
              for i in range(n)]
    img = w.image({"architecture": "amd64", "os": "linux"}, layers,
                  ["/bin/true"])
    top = {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
           "manifests": [img.manifest.descriptor(annotations={
               "org.opencontainers.image.ref.name": "many"})]}
    with open(os.path.join(dir, "index.json"), "wb") as f:
        f.write(_json_bytes(top))
    with open(os.path.join(dir, "oci-layout"), "wb") as f:
        f.write(_json_bytes({"imageLayoutVersion": "1.0.0"}))
    return img
