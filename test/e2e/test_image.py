#!/usr/bin/env python3
"""The container image (packaging/image/build.sh): built offline from the
Debian packages on this machine, then the product carries itself.

  - build.sh OUTDIR prints oci:OUTDIR:TAG last and writes a valid OCI
    layout: one manifest, labels org.opencontainers.image.version/source/
    revision, User 65532:65532, Entrypoint /usr/bin/ocigate, at most 60 MB;
  - unpacked, the root holds the CA bundle and the credential provider, and
    `ocigate --version` runs in it under chroot as user 65532 (so every
    library it loads is in the image);
  - the image is pushed THROUGH ocigate (standalone mode, allow_push) to the
    test registry with skopeo, and pulled back through ocigate with
    containerd's ctr: the manifest digest is the layout's at every step.

    python3 test/e2e/test_image.py --ocigate build/ocigate
"""

import gzip
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.join(ROOT, "packaging", "image", "build.sh")
NS, NAME = "ci", "registry"
MAX_BYTES = 60 * 1000 * 1000


def version():
    with open(os.path.join(ROOT, "meson.build")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("version:"):
                return line.split("'")[1]
    T.fail("no version in meson.build")


class ImageTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env

    def blob(self, digest):
        return os.path.join(self.layout, "blobs", "sha256",
                            digest.split(":", 1)[1])

    def read_json(self, digest):
        with open(self.blob(digest), "rb") as f:
            return json.loads(f.read())

    def t_build(self):
        self.layout = self.env.path("image")
        # the binaries the rest of the suite tested, not a second build
        r = self.env.run(["bash", BUILD, self.layout, "--build-dir",
                          os.path.dirname(os.path.abspath(self.args.ocigate))],
                         timeout=600)
        last = r.stdout.decode().strip().splitlines()[-1]
        self.tag = version()
        T.expect_eq(last, "oci:%s:%s" % (self.layout, self.tag),
                    "last line of build.sh")
        with open(os.path.join(self.layout, "oci-layout")) as f:
            T.expect_eq(json.load(f), {"imageLayoutVersion": "1.0.0"},
                        "oci-layout")
        with open(os.path.join(self.layout, "index.json")) as f:
            index = json.load(f)
        (desc,) = index["manifests"]
        T.expect_eq(desc["annotations"]["org.opencontainers.image.ref.name"],
                    self.tag, "ref.name")
        self.digest = desc["digest"]
        T.expect_eq("sha256:" + T.sha256_file(self.blob(self.digest)), self.digest,
                    "manifest blob digest")
        man = self.read_json(self.digest)
        T.expect_eq(man["mediaType"],
                    "application/vnd.oci.image.manifest.v1+json", "manifest")
        cfg = self.read_json(man["config"]["digest"])
        c = cfg["config"]
        T.expect_eq(c["User"], "65532:65532", "numeric non-root user")
        T.expect_eq(c["Entrypoint"], ["/usr/bin/ocigate"], "Entrypoint")
        T.expect_eq((cfg["os"], cfg["architecture"]), ("linux", "amd64"),
                    "platform")
        labels = c["Labels"]
        T.expect_eq(labels["org.opencontainers.image.version"], self.tag,
                    "version label")
        T.expect(labels["org.opencontainers.image.source"], "source label")
        head = self.env.run(["git", "-C", ROOT, "rev-parse", "HEAD"],
                            check=False).stdout.decode().strip()
        if head:
            T.expect(labels["org.opencontainers.image.revision"]
                     .startswith(head), "revision label is git HEAD")
        total = sum(os.path.getsize(os.path.join(d, f))
                    for d, _, fs in os.walk(self.layout) for f in fs)
        (layer,) = man["layers"]
        self.layer = layer["digest"]
        with gzip.open(self.blob(self.layer)) as f:
            unpacked = len(f.read())
        T.diag("image: %.1f MB in the layout, %.1f MB unpacked"
               % (total / 1e6, unpacked / 1e6))
        T.expect(total <= MAX_BYTES and unpacked <= MAX_BYTES,
                 "at most 60 MB (%d, %d)" % (total, unpacked))
        T.expect_eq(cfg["rootfs"]["diff_ids"],
                    [T.sha256_bytes(gzip.open(self.blob(self.layer)).read())],
                    "diff_id = sha256 of the uncompressed layer")

    def t_chroot(self):
        root = self.env.mkdir("rootfs")
        with tarfile.open(self.blob(self.layer)) as tar:
            for m in tar.getmembers():
                T.expect(not m.name.startswith("/") and ".." not in
                         m.name.split("/"), "layer path %s" % m.name)
                T.expect_eq((m.uid, m.gid), (0, 0), "owner of %s" % m.name)
            tar.extractall(root)
        for f in ("etc/ssl/certs/ca-certificates.crt",
                  "usr/bin/ocigate-credential-provider",
                  "usr/share/ocigate/packages.txt"):
            T.expect(os.path.isfile(os.path.join(root, f)), "%s present" % f)
        with open(os.path.join(root, "etc/ssl/certs/ca-certificates.crt")) as f:
            T.expect(f.read().count("BEGIN CERTIFICATE") > 50,
                     "a real CA bundle")
        T.expect(not os.path.exists(os.path.join(root, "bin/sh")),
                 "no shell in the image")
        # As a container runtime does: /proc mounted in the root, in a
        # mount namespace of its own (the ASan build of the asan setup
        # cannot even exit without /proc: its leak checker reads it).
        # Inside a chroot (the fresh-machine check) "/" is no mount point,
        # so it cannot be made private (unshare --propagation private
        # fails with EINVAL) and the proc mount may propagate to the
        # parent namespace: the script unmounts it itself.
        os.makedirs(os.path.join(root, "proc"), exist_ok=True)
        script = ('mount --make-rprivate / 2>/dev/null; '
                  'mount -t proc proc "$0/proc" || exit 125; '
                  'chroot --userspec=65532:65532 "$0" "$@"; rc=$?; '
                  'umount "$0/proc"; exit $rc')

        def in_image(*argv, check=True):
            return self.env.run(
                ["unshare", "-m", "--propagation", "unchanged", "sh", "-c",
                 script, root] + list(argv), check=check)
        r = in_image("/usr/bin/ocigate", "--version")
        T.expect_eq(r.stdout.decode().strip(), "ocigate %s" % self.tag,
                    "ocigate --version inside the image")
        r = in_image("/usr/bin/ocigate-credential-provider", "--help",
                     check=False)
        T.expect_in("CredentialProviderRequest", r.stdout.decode()
                    + r.stderr.decode(), "credential provider runs")

    def t_through_ocigate(self):
        env = self.env
        pki = T.make_pki(env.path("pki"))
        reg = T.Registry(env, pki, users={"robot": "pw-robot-1"}).start()
        self.ci = T.Token("system:serviceaccount:ci:builder")
        og = T.Ocigate(env, self.args.ocigate, [self.ci], [
            T.registry_connector("%s/%s" % (NS, NAME), reg,
                                 allow=[self.ci.user],
                                 options={"allow_push": self.ci.user})]).start()
        ref = "%s/namespaces/%s/connectors/%s/ocigate/ocigate:%s" % (
            og.host, NS, NAME, self.tag)
        T.skopeo_copy(env, "oci:%s:%s" % (self.layout, self.tag),
                      "docker://" + ref,
                      ["--dest-tls-verify=false", "--dest-creds",
                       "x:" + self.ci.token])
        r = reg.manifest("ocigate/ocigate", self.tag, method="HEAD")
        T.expect_eq(r.header("Docker-Content-Digest"), self.digest,
                    "registry has the layout's manifest digest")
        ctr = T.Containerd(env).start()
        hosts = ctr.hosts_dir(og.host, og.url)
        ctr.pull(ref, hosts, user="x:" + self.ci.token)
        T.expect_eq(ctr.images()[ref][1], self.digest,
                    "containerd pulled the same digest through ocigate")
        T.expect(self.layer in ctr.content(), "the layer is in containerd")
        og.assert_log_clean()


def main():
    args = T.parse_args(__doc__)
    T.start_watchdog(args.timeout)
    with T.Env("image", keep=args.keep) as env:
        t = ImageTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("build.sh: OCI layout, labels, user, size", t.t_build, True),
            ("unpacked: CA bundle, provider, --version under chroot",
             t.t_chroot),
            ("pushed through ocigate with skopeo, pulled with ctr",
             t.t_through_ocigate),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
