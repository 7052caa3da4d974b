#!/usr/bin/env bash
# The full benchmark: installs the packages (packaging/deps.txt), builds
# ocigate with release optimisation in build-release/, and runs
# test/bench/bench.py against nginx and docker-registry's pull-through mode.
# Prints the Markdown table at the end and writes it to
# build-release/bench-DATE.md (the path is printed). Run as root on a quiet
# machine; it takes about 15-20 minutes.
#
#   OCIGATE_SKIP_INSTALL=1   do not run apt-get (the packages are there)
#   extra arguments go to bench.py, e.g. --only 1,3 or --reps 5
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${OCIGATE_SKIP_INSTALL:-0}" != 1 ]; then
	bash packaging/install-deps.sh
fi
if [ ! -d build-release ]; then
	meson setup build-release --buildtype=release -Db_lto=true -De2e=disabled
fi
ninja -C build-release
exec python3 test/bench/bench.py --ocigate build-release/ocigate "$@"
