#!/usr/bin/env bash
# Installs what ocigate needs, builds it, and runs every test: unit, fuzz
# corpus replay and end-to-end with real components, first in a normal build,
# then again built with AddressSanitizer and UndefinedBehaviorSanitizer, and
# when clang can link libFuzzer, a third build (build-fuzz) that fuzzes each
# harness for 15 s from its corpus (suite fuzz-run).
# Ends with "N passed, N failed[, N skipped]" counted from meson's testlog.json
# and exits non-zero when anything failed.
#
#   OCIGATE_SKIP_INSTALL=1   do not run apt-get (the packages are there)
#   OCIGATE_SKIP_ASAN=1      only the normal build (quicker local runs)
#   OCIGATE_SKIP_FUZZ=1      no libFuzzer build
#   OCIGATE_SUITES="unit fuzz"  run only these meson suites
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

install_deps() {
	[ "${OCIGATE_SKIP_INSTALL:-0}" = 1 ] && return 0
	bash packaging/install-deps.sh
}

suite_args() {
	local s args=()
	for s in ${OCIGATE_SUITES:-}; do args+=(--suite "$s"); done
	echo "${args[@]}"
}

# build_and_test DIR SETUP_ARGS... : one build directory, every test in it.
build_and_test() {
	local dir=$1 setup=$2
	shift 2
	if [ -d "$dir" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null || return 1
	else
		meson setup "$dir" "$@" || return 1
	fi
	ninja -C "$dir" || return 1
	# shellcheck disable=SC2046
	meson test -C "$dir" --print-errorlogs --num-processes 2 $setup $(suite_args)
	return 0
}

# True when clang links a libFuzzer harness (clang and its runtime).
have_libfuzzer() {
	local out
	command -v clang >/dev/null || return 1
	out=$(mktemp) || return 1
	echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' |
		clang -x c - -fsanitize=fuzzer -o "$out" 2>/dev/null
	local rc=$?
	rm -f "$out"
	return $rc
}

# The fuzzing build only runs the fuzz-run suite: the corpora are replayed
# in the other two builds already.
want_fuzz_run() {
	[ "${OCIGATE_SKIP_FUZZ:-0}" != 1 ] || return 1
	[ -z "${OCIGATE_SUITES:-}" ] || [[ " $OCIGATE_SUITES " == *" fuzz-run "* ]]
}

logs=()
build_failed=0
if ! install_deps; then
	echo "run-all: installing packages failed" >&2
	build_failed=1
fi
if [ $build_failed = 0 ]; then
	build_and_test build "" || build_failed=1
	logs+=("$root/build/meson-logs/testlog.json")
	if [ "${OCIGATE_SKIP_ASAN:-0}" != 1 ]; then
		build_and_test build-asan "--setup=asan" -Db_sanitize=address,undefined -Db_lundef=false \
			|| build_failed=1
		logs+=("$root/build-asan/meson-logs/testlog-asan.json")
	fi
	if want_fuzz_run; then
		if have_libfuzzer; then
			CC=clang OCIGATE_SUITES=fuzz-run build_and_test build-fuzz "" -Dfuzzing=enabled \
				-Db_sanitize=address,undefined -Db_lundef=false -De2e=disabled \
				|| build_failed=1
			logs+=("$root/build-fuzz/meson-logs/testlog.json")
		else
			echo "run-all: clang cannot link libFuzzer here: no fuzz-run suite"
		fi
	fi
fi

python3 "$root/test/count_results.py" --build-failed "$build_failed" "${logs[@]}"
