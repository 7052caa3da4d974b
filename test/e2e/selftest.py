#!/usr/bin/env python3
"""Checks the e2e harness itself, without ocigate: the same registry,
images, skopeo and containerd pulls, straight against the TLS registry.
When this fails the machine (packages, mounts, sandbox) is the problem, not
ocigate.

    python3 test/e2e/selftest.py [--keep]
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402


class SelfTest:
    def __init__(self, env):
        self.env = env

    def setup(self):
        self.w = T.World(self.env, big_size=20 * T.MiB)
        self.reg = self.w.registry
        self.lay = self.w.layout
        self.creds = "%s:%s" % (self.w.upstream_user, self.w.upstream_password)

    def t_layout(self):
        lay = self.lay
        T.verify_blob_dir(os.path.join(lay.dir, "blobs", "sha256"))
        with open(lay.single.config.path) as f:
            cfg = json.load(f)
        T.expect_eq(len(cfg["rootfs"]["diff_ids"]), 3, "diff_ids")
        T.expect_eq(cfg["rootfs"]["diff_ids"][2], lay.big.digest,
                    "diff_id of the uncompressed layer is its digest")
        T.expect_eq([l.media_type for l in lay.single.layers],
                    [T.MEDIA_LAYER_GZIP, T.MEDIA_LAYER_GZIP, T.MEDIA_LAYER_TAR],
                    "layer media types")
        again = T.make_oci_layout(self.env.path("layout2"), 20 * T.MiB)
        T.expect_eq(again.single.digest, lay.single.digest,
                    "layout is deterministic")

    def t_registry_auth(self):
        r = self.reg.request("GET", "/v2/", auth=False)
        T.expect_eq(r.status, 401, "GET /v2/ without credentials")
        T.expect(r.header("WWW-Authenticate") is not None, "challenge")
        T.expect_eq(self.reg.request("GET", "/v2/").status, 200,
                    "GET /v2/ with credentials")

    def t_skopeo_direct(self):
        cp = self.env.run(["skopeo", "inspect", "--cert-dir",
                           self.w.pki.certdir, "--creds", self.creds,
                           "docker://%s/demo/app:v1" % self.reg.host])
        T.expect_eq(json.loads(cp.stdout)["Digest"], self.lay.single.digest,
                    "skopeo inspect digest")

    def t_ctr_direct(self):
        cd = T.Containerd(self.env).start()
        T.diag("  snapshotter: %s" % cd.snapshotter)
        hosts = cd.hosts_dir(self.reg.host, self.reg.url, ca=self.w.pki.ca_pem)
        for ref, plat, digest in [
                ("demo/app:v1", None, self.lay.single.digest),
                ("demo/multi:v1", "linux/arm64", self.lay.index.digest)]:
            full = "%s/%s" % (self.reg.host, ref)
            cd.pull(full, hosts, user=self.creds, platform=plat)
            T.expect_eq(cd.images().get(full, (None, None))[1], digest,
                        "ctr images ls " + full)
        arm = self.lay.platforms["arm64"]
        T.expect(arm.layers[0].digest in cd.content(), "arm64 layer pulled")

    def t_stub_pagination(self):
        stub = T.StubRegistry(self.w.pki, {"u": "p"}, {"r/x": ["a", "b"]}).start()
        try:
            conn = T.http.client.HTTPSConnection(
                "127.0.0.1", stub.port, context=self.w.pki.ssl_context())
            conn.request("GET", "/v2/r/x/tags/list?n=1",
                         headers={"Authorization": T.basic_auth("u", "p")})
            r = conn.getresponse()
            body = json.loads(r.read())
            T.expect_eq(body["tags"], ["a"], "first page")
            T.expect_eq(r.getheader("Link"),
                        '</v2/r/x/tags/list?last=a&n=1>; rel="next"', "Link")
        finally:
            stub.stop()

    def t_kill_restart(self):
        self.reg.kill()
        T.expect(not self.reg.proc.alive(), "registry still alive after kill")
        self.reg.restart()
        r = self.reg.manifest("demo/app", "v1", method="HEAD")
        T.expect_eq(r.header("Docker-Content-Digest"), self.lay.single.digest,
                    "digest after restart (same storage)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--ocigate", help="ignored: this checks the harness alone")
    args = ap.parse_args()
    T.start_watchdog(235)
    with T.Env("selftest", keep=args.keep) as env:
        t = SelfTest(env)
        rc = T.Tap(env).run_all([
            ("setup: pki, TLS+htpasswd registry, layout, skopeo seed",
             t.setup, True),
            ("OCI layout is well-formed and deterministic", t.t_layout),
            ("registry asks for credentials", t.t_registry_auth),
            ("skopeo inspect straight from the registry", t.t_skopeo_direct),
            ("containerd pulls straight from the registry (hosts.toml ca)",
             t.t_ctr_direct),
            ("stub registry pages tags/list", t.t_stub_pagination),
            ("registry SIGKILL and restart on the same port", t.t_kill_restart),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
