#!/usr/bin/env python3
"""ocigate quick-start demo: a private TLS registry with a password, ocigate
in front of it, and an image pulled through ocigate with skopeo and with
containerd, using a token instead of the registry password.

    python3 test/e2e/demo.py --ocigate build/ocigate [--serve] [--keep]

Everything runs on 127.0.0.1 in a temporary directory and is stopped at the
end (with --serve: on Ctrl-C).  Exit status 0 only if both pulls worked.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402

NS, CONN = "demo", "registry"
REPO, TAG = "sample/hello", "v1"


def say(msg=""):
    print(msg, flush=True)


def step(msg):
    say("==> " + msg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ocigate", required=True)
    ap.add_argument("--serve", action="store_true",
                    help="keep ocigate and the registry running until Ctrl-C")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    args = ap.parse_args()
    binary = os.path.abspath(args.ocigate)
    if not os.access(binary, os.X_OK):
        say("demo: %s is not an executable; build it first "
            "(meson setup build && ninja -C build)" % binary)
        return 1

    with T.Env("demo", keep=args.keep) as env:
        try:
            return run(env, binary, args.serve)
        except T.TestFailure as e:
            say("")
            say("demo FAILED: %s" % e)
            for line in env.diagnostics(10):
                say("  " + line)
            say("(logs: rerun with --keep to keep %s)" % env.dir)
            return 1


def run(env, binary, serve):
    step("Creating a CA and a certificate for 127.0.0.1")
    pki = T.make_pki(env.path("pki"))

    password = "demo-" + secrets.token_hex(8)
    reg = T.Registry(env, pki, users={"robot": password}, name="registry")
    step("Starting a private registry (TLS, htpasswd user 'robot') at %s"
         % reg.url)
    reg.start()

    step("Pushing %s:%s to it with skopeo" % (REPO, TAG))
    layout = T.make_oci_layout(env.path("layout"), big_size=64 * 1024)
    T.seed_registry(reg, layout, repo=REPO, tags=(TAG,), index_repo=None)
    digest = layout.single.digest
    say("    %s/%s:%s  %s" % (reg.host, REPO, TAG, digest))

    user = T.Token("demo-user", groups=["demo-team"])
    conn = T.registry_connector("%s/%s" % (NS, CONN), reg,
                                allow=["demo-user"])
    og = T.Ocigate(env, binary, [user], [conn])
    og.write_config()
    step("Starting ocigate with this config (%s):" % og.config)
    for line in og.config_text().splitlines():
        if line.startswith("password ="):
            line = "password = %s  (shown masked; only ocigate reads it)" % (
                "*" * len(password))
        say("    " + line)
    say("    tokens file %s: %s,demo-user,...  (the token is the only thing "
        "a client gets)" % (og.tokens_file, user.token[:8] + "..."))
    og.start()
    say("    listening on %s" % og.url)

    image = "%s/namespaces/%s/connectors/%s/%s:%s" % (og.host, NS, CONN,
                                                      REPO, TAG)
    step("Pulling through ocigate with skopeo")
    cmd = ["skopeo", "inspect", "--tls-verify=false", "--creds",
           "anyuser:TOKEN", "docker://" + image]
    say("    $ " + " ".join(cmd))
    cmd[4] = "anyuser:" + user.token
    info = json.loads(env.run(cmd).stdout)
    T.expect_eq(info.get("Digest"), digest, "digest seen by skopeo")
    dest = env.path("pulled")
    env.run(["skopeo", "--insecure-policy", "copy", "--quiet",
             "--preserve-digests", "--dest-oci-accept-uncompressed-layers",
             "--src-tls-verify=false", "--src-creds", "anyuser:" + user.token,
             "docker://" + image, "oci:%s:%s" % (dest, TAG)])
    found = T.verify_blob_dir(os.path.join(dest, "blobs", "sha256"))
    T.expect(digest in found, "manifest %s missing from the copy" % digest)
    say("    ok: digest %s, %d blobs copied and verified" % (digest, len(found)))

    step("Pulling through ocigate with containerd (ctr)")
    cd = T.Containerd(env).start()
    hosts = cd.hosts_dir(og.host, og.url)
    say("    %s/%s/hosts.toml:" % (hosts, og.host))
    with open(os.path.join(hosts, og.host, "hosts.toml")) as f:
        for line in f.read().splitlines():
            say("      " + line)
    say("    $ ctr --address %s --namespace %s images pull --hosts-dir %s "
        "--user anyuser:TOKEN %s" % (cd.sock, cd.NAMESPACE, hosts, image))
    cd.pull(image, hosts, user="anyuser:" + user.token)
    got = cd.images().get(image)
    T.expect(got is not None and got[1] == digest,
             "ctr images ls shows %r for %s, expected %s" % (got, image, digest))
    say("    ok: containerd has %s at %s" % (image, digest))

    og.assert_log_clean()
    say("")
    say("Pulled %s:%s from the private registry %s" % (REPO, TAG, reg.host))
    say("as     %s" % image)
    say("digest %s" % digest)
    say("with a token: neither client ever saw the registry password.")

    if serve:
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        say("")
        say("Serving until Ctrl-C.  Try:")
        say("  curl -u x:%s %s/v2/namespaces/%s/connectors/%s/%s/manifests/%s \\"
            % (user.token, og.url, NS, CONN, REPO, TAG))
        say("       -H 'Accept: %s'" % T.MEDIA_OCI_MANIFEST)
        say("  skopeo inspect --tls-verify=false --creds x:%s docker://%s"
            % (user.token, image))
        say("  ocigate log: %s" % og.proc.log_path)
        while not stop.wait(1):
            if not og.proc.alive():
                say("ocigate exited with %s" % og.proc.returncode())
                return 1
    step("Stopping")
    rc = og.stop()
    T.expect_eq(rc, 0, "ocigate exit status after SIGTERM")
    say("demo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
