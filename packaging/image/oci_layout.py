#!/usr/bin/env python3
"""Writes an OCI image layout (image-spec v1.1) for one root directory as a
single gzip layer: entries sorted, times fixed (SOURCE_DATE_EPOCH, else 0),
owner 0:0, so the same root gives the same digests.

    oci_layout.py --rootfs DIR --out LAYOUT --tag TAG [--label K=V ...]
        [--user U:G] [--entrypoint PATH] [--cmd ARG ...] [--env K=V ...]

Python standard library only (packaging/image/build.sh calls it).
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_INDEX = "application/vnd.oci.image.index.v1+json"


def layer_tar(rootfs, mtime):
    """The uncompressed tar of rootfs."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, rootfs)
            names = sorted(filenames + [d for d in dirnames
                                        if os.path.islink(os.path.join(dirpath, d))])
            entries = [] if rel_dir == "." else [rel_dir]
            entries += [os.path.normpath(os.path.join(rel_dir, n)) for n in names]
            for rel in entries:
                full = os.path.join(rootfs, rel)
                ti = tar.gettarinfo(full, arcname=rel)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = ""
                ti.mtime = mtime
                ti.pax_headers = {}
                if ti.isreg():
                    with open(full, "rb") as f:
                        tar.addfile(ti, f)
                else:
                    tar.addfile(ti)
    return buf.getvalue()


def put_blob(out, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(out, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return "sha256:" + digest


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--label", action="append", default=[])
    ap.add_argument("--env", action="append",
                    default=["PATH=/usr/bin:/bin"])
    ap.add_argument("--user", default="")
    ap.add_argument("--entrypoint", default=None)
    ap.add_argument("--cmd", action="append", default=[])
    a = ap.parse_args()
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = "1970-01-01T00:00:00Z" if not mtime else \
        __import__("time").strftime("%Y-%m-%dT%H:%M:%SZ",
                                    __import__("time").gmtime(mtime))

    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(os.path.join(a.out, "blobs", "sha256"))
    tar = layer_tar(a.rootfs, mtime)
    gz = gzip.compress(tar, compresslevel=9, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    layer = put_blob(a.out, gz)
    labels = dict(kv.split("=", 1) for kv in a.label)
    cfg = {"created": created, "architecture": "amd64", "os": "linux",
           "config": {"User": a.user, "Env": a.env, "WorkingDir": "/",
                      "Labels": labels},
           "rootfs": {"type": "layers", "diff_ids": [diff_id]},
           "history": [{"created": created,
                        "created_by": "packaging/image/build.sh"}]}
    if a.entrypoint:
        cfg["config"]["Entrypoint"] = [a.entrypoint]
    if a.cmd:
        cfg["config"]["Cmd"] = a.cmd
    cfg_bytes = canonical(cfg)
    cfg_digest = put_blob(a.out, cfg_bytes)
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, "digest": cfg_digest,
                           "size": len(cfg_bytes)},
                "layers": [{"mediaType": MT_LAYER, "digest": layer,
                            "size": len(gz)}],
                "annotations": labels}
    man_bytes = canonical(manifest)
    man_digest = put_blob(a.out, man_bytes)
    index = {"schemaVersion": 2, "mediaType": MT_INDEX,
             "manifests": [{"mediaType": MT_MANIFEST, "digest": man_digest,
                            "size": len(man_bytes),
                            "platform": {"architecture": "amd64",
                                         "os": "linux"},
                            "annotations": {
                                "org.opencontainers.image.ref.name": a.tag}}]}
    with open(os.path.join(a.out, "index.json"), "wb") as f:
        f.write(canonical(index))
    with open(os.path.join(a.out, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    print("layer %s: %d bytes compressed, %d uncompressed; manifest %s"
          % (layer, len(gz), len(tar), man_digest))


if __name__ == "__main__":
    main()
