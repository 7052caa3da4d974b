#!/bin/bash
# Builds the Debian package from this checkout:
#   bash packaging/build-deb.sh OUTDIR   ->  OUTDIR/ocigate_VERSION_ARCH.deb
# The tree is copied (without build directories) to a scratch directory
# where packaging/debian becomes debian/, then dpkg-buildpackage builds the
# binary package (unsigned). Needs the build dependencies of
# packaging/debian/control (all in packaging/deps.txt).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
version=$(sed -n "s/^  version: '\([^']*\)'.*/\1/p" "$root/meson.build" | head -1)
debversion=$(dpkg-parsechangelog -l "$root/packaging/debian/changelog" -S Version)
if [ "$version" != "$debversion" ]; then
	echo "build-deb: meson.build says $version, packaging/debian/changelog $debversion" >&2
	exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
src="$scratch/ocigate-$version"
mkdir "$src"
tar -C "$root" --exclude='./build*' --exclude=./.git --exclude='./obj-*' -cf - . | tar -C "$src" -xf -
cp -a "$root/packaging/debian" "$src/debian"
(cd "$src" && dpkg-buildpackage -b -us -uc --no-sign >"$scratch/build.log" 2>&1) || {
	tail -40 "$scratch/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed (log above)" >&2
	exit 1
}
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="ocigate_${version}_${arch}.deb"
cp "$scratch/$deb" "$out/$deb"
echo "$out/$deb"
