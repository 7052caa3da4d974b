"""The pieces of the ocigate benchmark world, on top of test/e2e/ocitest.py.

  BenchRegistry   docker-registry with or without TLS, with or without
                  htpasswd, sharing one storage directory, or in pull-through
                  (proxy:) mode with a storage of its own
  Nginx           nginx with one worker: the equivalent reverse proxy, or a
                  fast static TLS upstream serving the manifest bytes
  curl_one / curl_many / wrk   the load generators (same client for every
                  system under test)
  RssSampler, cpu_seconds, reset_hwm, vm_status   /proc measurements
  open_idle_connections   scenario 5's keep-alive connections
  callgrind_ir    total Ir of a callgrind output file

Python 3 standard library only.  Everything binds 127.0.0.1; every process
is an ocitest Proc, killed when the script exits.
"""

import os
import re
import resource
import shutil
import signal
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "e2e"))
import ocitest as T  # noqa: E402

MB = 1000 * 1000
cpu_split, cpu_seconds = T.cpu_split, T.cpu_seconds


class BenchError(T.TestFailure):
    """A measurement could not be taken (a tool failed, a body was short)."""


# --------------------------------------------------------------------------
# /proc


def vm_status(pid):
    """{"VmRSS": kib, "VmHWM": kib, ...} of pid, or {} if it is gone."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Vm"):
                    k, v = line.split(":", 1)
                    out[k] = int(v.split()[0])
    except (OSError, ValueError):
        return {}
    return out


def reset_hwm(pid):
    """Reset VmHWM to the current RSS (clear_refs 5), so that VmHWM read
    after a step is that step's peak.  False when the kernel refuses."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


# The same sampler the memory tests use.
RssSampler = T.RssSampler


def raise_nofile(n):
    """Raise this process's RLIMIT_NOFILE (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, max(n, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------
# docker-registry in the shapes the benchmark needs


class BenchRegistry(T.Registry):
    """T.Registry plus: pull-through mode (proxy = dict(remoteurl=,
    username=, password=)), extra environment variables (SSL_CERT_FILE for
    the pull-through's trust in our CA) and a quiet log."""

    def __init__(self, env, pki, users=None, name="registry", tls=True,
                 storage=None, proxy=None, proc_env=None):
        self.proxy = proxy
        self.proc_env = proc_env
        T.Registry.__init__(self, env, pki, users=users, name=name, tls=tls,
                            storage=storage)

    def _write_config(self):
        T.Registry._write_config(self)
        with open(self.config) as f:
            text = f.read()
        if self.proxy:
            text += "proxy:\n" + "".join(
                "  %s: %s\n" % kv for kv in self.proxy.items())
        # docker-registry's info-level access log costs it CPU per request
        text = text.replace("  level: info\n", "  level: warn\n")
        text = text.replace("    disabled: false\n", "    disabled: true\n")
        # T.Registry's config format is what the edits above rely on
        assert self.storage_dir() in text
        assert self.tls == ("  tls:\n" in text)
        assert "level: warn" in text and "disabled: true" in text
        with open(self.config, "w") as f:
            f.write(text)

    def start(self, timeout=20):
        if self.proc is None:
            env = None
            if self.proc_env:
                env = dict(os.environ)
                env.update(self.proc_env)
            self.proc = self.env.spawn(self.name, [T.REGISTRY_BIN, "serve",
                                                   self.config], env=env)
        else:
            self.proc.start()
        self.wait_ready(timeout)
        return self

    def wipe_storage(self):
        """Stop, empty the storage directory, start: a cold pull-through."""
        assert self.shared_storage is None, "never wipe the shared storage"
        if self.proc is not None and self.proc.alive():
            self.proc.terminate()
        shutil.rmtree(self.storage, ignore_errors=True)
        os.makedirs(self.storage)
        self.start()

    def wait_stored(self, repo, digest, size, timeout=300):
        """Wait until this pull-through registry has committed the blob to
        its own storage and linked it into repo.  distribution 2.8 stores a
        proxied blob with a second, background fetch from the upstream; a
        pull issued before that finishes is served from the upstream again,
        not from storage."""
        algo, hexd = digest.split(":", 1)
        v2 = os.path.join(self.storage_dir(), "docker", "registry", "v2")
        data = os.path.join(v2, "blobs", algo, hexd[:2], hexd, "data")
        link = os.path.join(v2, "repositories", repo, "_layers", algo, hexd,
                            "link")

        def stored():
            try:
                return os.path.getsize(data) == size and os.path.exists(link)
            except OSError:
                return False
        T.wait_for(stored, timeout, 0.1, "%s to store %s" % (self.name,
                                                             digest[:19]))

    @property
    def pid(self):
        return self.proc.pid


# --------------------------------------------------------------------------
# nginx


NGINX_BIN = "nginx"


class Nginx:
    """nginx, one worker, in its own directory.  http_conf is the text
    inside http { }."""

    def __init__(self, env, name, http_conf, port=None):
        self.env = env
        self.name = name
        self.dir = env.mkdir(name)
        self.port = port or T.free_port()
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.http_conf = http_conf
        self.proc = None
        self.worker = None

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def write_config(self):
        tmp = os.path.join(self.dir, "tmp")
        os.makedirs(tmp, exist_ok=True)
        text = (
            "# written by test/bench/benchlib.py\n"
            "worker_processes 1;\n"
            "daemon off;\n"
            "user root;\n"
            "pid %(d)s/nginx.pid;\n"
            "error_log %(d)s/error.log warn;\n"
            "worker_rlimit_nofile 65536;\n"
            "events {\n  worker_connections 30000;\n}\n"
            "http {\n"
            "  access_log %(d)s/access.log;\n"
            "  client_body_temp_path %(t)s/body;\n"
            "  proxy_temp_path %(t)s/proxy;\n"
            "  fastcgi_temp_path %(t)s/fastcgi;\n"
            "  uwsgi_temp_path %(t)s/uwsgi;\n"
            "  scgi_temp_path %(t)s/scgi;\n"
            "  types { }\n"
            "  default_type application/octet-stream;\n"
            "  sendfile on;\n"
            "  keepalive_timeout 600s;\n"
            "  keepalive_requests 1000000;\n"
            "%(http)s"
            "}\n" % {"d": self.dir, "t": tmp,
                     "http": self.http_conf.replace("@PORT@", str(self.port))})
        with open(self.conf, "w") as f:
            f.write(text)

    def start(self, timeout=10):
        self.write_config()
        self.env.run([NGINX_BIN, "-t", "-q", "-e",
                      os.path.join(self.dir, "error.log"), "-c", self.conf])
        self.proc = self.env.spawn(self.name, [
            NGINX_BIN, "-e", os.path.join(self.dir, "error.log"),
            "-c", self.conf])

        def up():
            if not self.proc.alive():
                T.fail("%s exited with %s; log:\n%s" % (
                    self.name, self.proc.returncode(),
                    "\n".join(self.proc.tail(20))))
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
            except OSError:
                return False
            kids = children_of(self.proc.pid)
            return kids[0] if len(kids) == 1 else False
        self.worker = T.wait_for(up, timeout, 0.05, "%s to listen" % self.name)
        return self

    @property
    def pid(self):
        """The worker: the process that does the proxying."""
        return self.worker

    def stop(self):
        self.proc.terminate()


def nginx_location(prefix, upstream_url, host, authorization=None, ca=None):
    """A location that proxies PREFIX... to UPSTREAM_URL... the way ocigate
    does: HTTP/1.1 with keep-alive upstream, no buffering, the connector's
    Authorization instead of the client's, TLS verified against ca."""
    lines = ["    location %s {" % prefix,
             "      proxy_pass %s;" % upstream_url,
             "      proxy_http_version 1.1;",
             # ocigate's defaults: upstream.connect_timeout (TCP + TLS
             # handshake) 10s, upstream.read_timeout 60s
             "      proxy_connect_timeout 10s;",
             "      proxy_read_timeout 60s;",
             '      proxy_set_header Connection "";',
             "      proxy_set_header Host %s;" % host,
             "      proxy_buffering off;",
             "      proxy_request_buffering off;"]
    if authorization:
        lines.append('      proxy_set_header Authorization "%s";' % authorization)
    else:
        lines.append('      proxy_set_header Authorization "";')
    if ca:
        lines += ["      proxy_ssl_verify on;",
                  "      proxy_ssl_trusted_certificate %s;" % ca,
                  # the test certificate names IP:127.0.0.1 and DNS:localhost;
                  # nginx checks DNS names only
                  "      proxy_ssl_name localhost;",
                  "      proxy_ssl_session_reuse on;"]
    lines.append("    }")
    return "\n".join(lines) + "\n"


def nginx_upstream(name, host, keepalive):
    return ("  upstream %s {\n    server %s;\n    keepalive %d;\n"
            "    keepalive_requests 1000000;\n    keepalive_timeout 600s;\n"
            "  }\n" % (name, host, keepalive))


# --------------------------------------------------------------------------
# Load generators


class Transfer:
    def __init__(self, status, nbytes, seconds):
        self.status = status
        self.nbytes = nbytes
        self.seconds = seconds


def _curl_auth_args(headers, cacert):
    args = []
    for k, v in (headers or {}).items():
        args += ["-H", "%s: %s" % (k, v)]
    if cacert:
        args += ["--cacert", cacert]
    return args


def curl_one(env, url, size, headers=None, cacert=None, timeout=600):
    """One GET of url into /dev/null; MB/s (1 MB = 10^6 bytes) from curl's
    own transfer time.  The body must be size bytes."""
    cp = env.run(["curl", "-sS", "-o", "/dev/null", "-w",
                  "%{http_code} %{size_download} %{time_total}\n"]
                 + _curl_auth_args(headers, cacert) + [url],
                 timeout=timeout, check=False)
    m = re.search(rb"^(\d{3}) (\d+) ([\d.]+)$", cp.stdout, re.M)
    if cp.returncode != 0 or not m:
        raise BenchError("curl %s: exit %d: %s %s" % (
            url, cp.returncode, cp.stdout.decode(errors="replace")[-300:],
            cp.stderr.decode(errors="replace")[-300:]))
    t = Transfer(int(m.group(1)), int(m.group(2)), float(m.group(3)))
    if t.status != 200 or t.nbytes != size:
        raise BenchError("curl %s: status %d, %d of %d bytes" % (
            url, t.status, t.nbytes, size))
    return t.nbytes / t.seconds / MB


CURL_PARALLEL_MAX = 250   # curl 7.88 refuses --parallel-max above 300
CURL_TIMED_OUT = 28


class ManyResult:
    def __init__(self, mbps, complete, cut, starved, failed, wall):
        self.mbps = mbps            # aggregate MB/s
        self.complete = complete    # transfers that got the whole body
        self.cut = cut              # stopped by max_time during the body
        self.starved = starved      # stopped by max_time before any answer
        self.failed = failed        # list of "status S, N bytes, curl exit E"
        self.wall = wall


def curl_many(env, url, n, size, headers=None, cacert=None, max_time=None,
              timeout=900):
    """n concurrent GETs of url (one connection each), from
    ceil(n / 250) `curl --parallel` processes started together.  With
    max_time, each transfer is stopped after that many seconds (curl
    --max-time, exit 28) if it has not finished: the aggregate is then
    measured over that window.  Returns a ManyResult whose mbps is the sum
    of the bytes received over the wall time from the start of the first
    process to the exit of the last.  A transfer that ends in any other way
    than complete (status 200, size bytes) or cut by max_time (in the body,
    or starved: before the server answered at all) is listed in .failed:
    the server's doing, for the caller to report.  Raises when curl did not
    account for every transfer."""
    seq = getattr(curl_many, "seq", 0) + 1
    curl_many.seq = seq
    procs = []
    left = n
    k = 0
    while left > 0:
        m = min(left, CURL_PARALLEL_MAX)
        left -= m
        k += 1
        cfg = env.path("curl-%d-%d.cfg" % (seq, k))
        with open(cfg, "w") as f:
            for _ in range(m):
                f.write('url = "%s"\noutput = "/dev/null"\n' % url)
        argv = ["curl", "-sS", "--parallel", "--parallel-immediate",
                "--parallel-max", str(m), "-w",
                "%{http_code} %{size_download} %{exitcode}\n"]
        if max_time:
            argv += ["--max-time", "%g" % max_time]
        argv += _curl_auth_args(headers, cacert) + ["-K", cfg]
        procs.append(T.Proc("curl", argv, env.path("curl-%d-%d.out"
                                                   % (seq, k))))
    t0 = time.monotonic()
    for p in procs:
        p.start()
    try:
        for p in procs:
            left = timeout - (time.monotonic() - t0)
            if p.wait(max(left, 1)) is None:
                raise BenchError("curl --parallel (%d transfers) still running "
                                 "after %ds" % (n, timeout))
        wall = time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
    nbytes = complete = cut = starved = 0
    bad = []
    messages = []   # curl's own error lines, for the diagnostics
    for p in procs:
        for line in p.log_text().splitlines():
            m = re.fullmatch(r"(\d{3}) (\d+) (\d+)", line.strip())
            if not m:
                if line.startswith("curl:") and not line.startswith(
                        "curl: (%d)" % CURL_TIMED_OUT):
                    messages.append(line.strip())
                continue
            status, got, rc = (int(x) for x in m.groups())
            nbytes += got
            if status == 200 and got == size and rc == 0:
                complete += 1
            elif status == 200 and rc == CURL_TIMED_OUT and max_time:
                cut += 1
            elif status == 0 and got == 0 and rc == CURL_TIMED_OUT \
                    and max_time:
                starved += 1
            else:
                bad.append("status %d, %d bytes, curl exit %d"
                           % (status, got, rc))
        try:
            os.unlink(p.log_path)
        except OSError:
            pass
    if complete + cut + starved + len(bad) != n:
        raise BenchError("%d concurrent GETs of %s: curl reported %d "
                         "(%d complete, %d cut after %ss, %d starved, %d "
                         "failed: %s)\ncurl says: %s" % (
                             n, url, complete + cut + starved + len(bad),
                             complete, cut, max_time, starved, len(bad),
                             "; ".join(sorted(set(bad))[:8]),
                             "; ".join(sorted(set(messages))[:8])))
    return ManyResult(nbytes / wall / MB, complete, cut, starved, bad, wall)


class WrkResult:
    def __init__(self, requests, seconds, rps, text):
        self.requests = requests
        self.seconds = seconds
        self.rps = rps
        self.text = text


def wrk(env, url, connections, seconds, headers=None, threads=1):
    """wrk -t threads -c connections -d seconds; fails on any non-2xx
    answer or socket error."""
    argv = ["wrk", "-t", str(threads), "-c", str(connections),
            "-d", "%ds" % seconds, "--timeout", "10s"]
    for k, v in (headers or {}).items():
        argv += ["-H", "%s: %s" % (k, v)]
    argv.append(url)
    cp = env.run(argv, timeout=seconds + 60, check=False)
    text = cp.stdout.decode(errors="replace")
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", text)
    r = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if cp.returncode != 0 or not m or not r:
        raise BenchError("wrk %s: exit %d\n%s\n%s" % (
            url, cp.returncode, text, cp.stderr.decode(errors="replace")))
    if "Non-2xx" in text or "Socket errors" in text:
        raise BenchError("wrk %s: errors\n%s" % (url, text))
    secs = float(m.group(2)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(3)]
    return WrkResult(int(m.group(1)), secs, float(r.group(1)), text)


def wrk_measured(env, url, pid, connections, seconds, headers=None,
                 upstream_pid=None):
    """wrk against a server whose CPU time is read before and after:
    (WrkResult, CPU seconds per 1000 requests, and a dict of the same per
    1000 split: "kernel" (the server's system time), "upstream" (the
    process behind it, when given) and "wrk" (the client itself))."""
    def snapshot():
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (cpu_split(pid), cpu_seconds(upstream_pid) if upstream_pid else 0.0,
                ru.ru_utime + ru.ru_stime)
    (u0, k0), up0, w0 = snapshot()
    res = wrk(env, url, connections, seconds, headers)
    (u1, k1), up1, w1 = snapshot()
    if not res.requests:
        T.fail("wrk completed no request in %g s against %s" % (seconds, url))
    per = res.requests / 1000.0
    split = {"kernel": (k1 - k0) / per, "wrk": (w1 - w0) / per}
    if upstream_pid:
        split["upstream"] = (up1 - up0) / per
    return res, (u1 - u0 + k1 - k0) / per, split


# --------------------------------------------------------------------------
# Syscall counts (perf)


def perf_usable(env):
    """True when `perf stat` can count syscall tracepoints here (root,
    tracefs, linux-perf installed)."""
    try:
        cp = env.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter",
                      "true"], check=False, timeout=30)
    except T.ToolError:
        return False
    return cp.returncode == 0


class SyscallCounter:
    """Counts the system calls pid makes while the with-block runs
    (perf stat -e raw_syscalls:sys_enter -p PID); .count afterwards."""

    def __init__(self, env, pid, name="perf"):
        self.env = env
        self.pid = pid
        self.out = env.path("%s-%d.csv" % (name, pid))
        self.proc = None
        self.count = None

    def __enter__(self):
        self.proc = T.Proc("perf", ["perf", "stat", "-x,", "-o", self.out,
                                    "-e", "raw_syscalls:sys_enter",
                                    "-p", str(self.pid)],
                           self.out + ".log").start()
        time.sleep(0.3)  # let it attach
        return self

    def __exit__(self, *exc):
        self.proc.signal(signal.SIGINT)   # perf writes its counts on SIGINT
        self.proc.wait(15)
        self.proc.kill()                  # forgets it; SIGKILL if still there
        try:
            with open(self.out) as f:
                for line in f:
                    fields = line.strip().split(",")
                    if len(fields) > 2 and fields[2].startswith(
                            "raw_syscalls:sys_enter") and fields[0].isdigit():
                        self.count = int(fields[0])
        except OSError:
            pass
        if self.count is None and exc[0] is None:
            raise BenchError("perf stat counted nothing for pid %d: %s"
                             % (self.pid, " | ".join(self.proc.tail(5))))
        return False


# --------------------------------------------------------------------------
# Idle keep-alive connections (scenario 5)


def request_ok(port, path, headers):
    r = T.request(port, "GET", path, headers)
    if r.status != 200:
        raise BenchError("GET %s on port %d: %d" % (path, port, r.status))


def open_idle_connections(port, n, path, headers):
    """n keep-alive connections, each having had one request answered 200,
    then left idle.  Returns the sockets (the caller closes them)."""
    req = T.build_request("GET", path, "127.0.0.1:%d" % port, headers)
    socks = []
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            socks.append(s)
            s.sendall(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                b = s.recv(4096)
                if not b:
                    raise BenchError("connection %d closed before a response"
                                     % i)
                buf += b
            head, _, rest = buf.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise BenchError("connection %d: %r" % (i, head[:100]))
            m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
            want = int(m.group(1)) if m else 0
            while len(rest) < want:
                b = s.recv(4096)
                if not b:
                    raise BenchError("connection %d: short body" % i)
                rest += b
    except BaseException:
        close_all(socks)
        raise
    return socks


def still_open(socks):
    """How many of socks the server has not closed (non-blocking peek)."""
    n = 0
    for s in socks:
        try:
            s.setblocking(False)
            b = s.recv(1, socket.MSG_PEEK)
            if b:
                n += 1  # unexpected bytes, but open
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# callgrind


def callgrind_ir(path):
    """Total instructions (Ir) recorded in a callgrind output file."""
    total = None
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    if total is None:
        raise BenchError("no summary/totals line in %s" % path)
    return total


def sequential_requests(port, n, path, headers):
    """n GETs one after the other on one keep-alive connection; every
    answer must be 200."""
    with T.RawConn(port, timeout=120) as c:
        req = T.build_request("GET", path, "127.0.0.1:%d" % port, headers)
        for i in range(n):
            c.send(req)
            r = c.read_response()
            if r.status != 200:
                raise BenchError("request %d: status %d\n%s"
                                 % (i, r.status, r.describe()))


# --------------------------------------------------------------------------
# Statistics


def median(xs):
    return statistics.median(xs) if xs else None
