#!/bin/bash
# Quick start on a fresh Debian 12, as root: install what is missing from
# packaging/deps.txt, build ocigate, then pull an image through it from a
# private registry with skopeo and containerd (test/e2e/demo.py).
#
#   sudo packaging/demo.sh            # run the demo and stop
#   sudo packaging/demo.sh --serve    # keep ocigate + registry up until Ctrl-C
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [ "$(id -u)" -ne 0 ]; then
	echo "demo.sh: run as root (installs packages, starts containerd)" >&2
	exit 1
fi

packaging/install-deps.sh

if [ ! -f build/build.ninja ]; then
	echo "==> meson setup build"
	meson setup build
fi
echo "==> ninja -C build"
ninja -C build

exec python3 test/e2e/demo.py --ocigate build/ocigate "$@"
