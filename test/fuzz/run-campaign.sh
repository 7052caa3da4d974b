#!/usr/bin/env bash
# Fuzzing campaign: builds the libFuzzer + ASan + UBSan build and runs every
# harness in turn, each for MINUTES (default 5) or until RUNS executions,
# whichever comes first. New inputs are merged into a minimised corpus that
# replaces test/fuzz/corpus/NAME (nothing is replaced for a harness that
# crashed). Prints per harness: executions, coverage (cov:), features (ft:),
# corpus files and bytes, crashes, slow units (reported, not failures);
# exits 1 when any harness crashed.
#
#   test/fuzz/run-campaign.sh [MINUTES]
#   RUNS=10000000            stop a harness after this many executions
#   HARNESSES="http1 url"    only these (default: every corpus directory)
#   BUILD=build-fuzz         build directory (set up here when missing)
#   CC=clang                 the compiler for a new build directory
#   TIMEOUT=30               libFuzzer -timeout (seconds of wall-clock time)
#   SUMMARY=FILE             where the table goes (two campaigns at once: one each)
#
# Crash inputs are kept in BUILD/campaign/NAME/artifacts/, the full log in
# BUILD/campaign/NAME/fuzz.log. Run it under `nice` on a shared machine.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
minutes=${1:-5}
runs=${RUNS:--1}
build=${BUILD:-build-fuzz}
corpora=$root/test/fuzz/corpus

if [ ! -d "$build" ]; then
	CC=${CC:-clang} meson setup "$build" -Dfuzzing=enabled \
		-Db_sanitize=address,undefined -Db_lundef=false -De2e=disabled || exit 1
fi
ninja -C "$build" || exit 1

max_len_of() {
	local len
	len=$(awk -v n="$1" '$1 == n { print $2 }' "$root/test/fuzz/max_len")
	echo "${len:-4096}"
}

# stat NAME LOG: the value of libFuzzer's "stat::NAME: N" final line
final_stat() {
	sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$2" | tail -1
}

# field NAME LOG: "cov: N" or "ft: N" from the last status line
status_field() {
	grep -E '^#[0-9]+' "$2" | tail -1 | sed -n "s/.* $1: \([0-9]*\).*/\1/p"
}

# UBSan only reports by default: make undefined behaviour a crash.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
# A smaller quarantine and shorter allocation stacks: with the defaults
# (256 MiB, 30 frames) the allocator's release of quarantined memory is the
# hot spot of the JSON harnesses (connector_status: 1,300 -> 2,900 exec/s).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:malloc_context_size=5:quarantine_size_mb=32}
# libFuzzer's -timeout is wall-clock time: a campaign under nice on a loaded
# machine needs more than the slowest input's CPU time.
timeout=${TIMEOUT:-30}

harnesses=${HARNESSES:-$(ls "$corpora")}
summary=${SUMMARY:-$root/$build/campaign/summary.txt}
mkdir -p "$root/$build/campaign"
printf '%-18s %12s %8s %8s %7s %9s %7s %7s %s\n' harness execs exec/s cov ft corpus bytes crashes \
	slow >"$summary"
failed=0
for name in $harnesses; do
	exe=$root/$build/test/fuzz_$name
	work=$root/$build/campaign/$name
	len=$(max_len_of "$name")
	if [ ! -x "$exe" ]; then
		echo "run-campaign: $exe missing" >&2
		failed=1
		continue
	fi
	rm -rf "$work"
	mkdir -p "$work/new" "$work/artifacts" "$work/merged"
	echo "== $name: ${minutes} min or $runs runs, max_len $len"
	start=$(date +%s)
	# The committed corpus is read only: new inputs go to $work/new.
	"$exe" -max_total_time=$((minutes * 60)) -runs="$runs" -max_len="$len" \
		-timeout="$timeout" -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" "$work/new" "$corpora/$name" \
		>"$work/fuzz.log" 2>&1
	secs=$(( $(date +%s) - start ))
	execs=$(final_stat number_of_executed_units "$work/fuzz.log")
	cov=$(status_field cov "$work/fuzz.log")
	ft=$(status_field ft "$work/fuzz.log")
	# slow-unit-* files are inputs that took long once (a loaded machine):
	# reported, not failures; crash-, leak-, timeout- and oom- files are.
	crashes=$(find "$work/artifacts" -type f ! -name 'slow-unit-*' | wc -l)
	slow=$(find "$work/artifacts" -type f -name 'slow-unit-*' | wc -l)
	if [ "$crashes" = 0 ] && grep -q 'runtime error:' "$work/fuzz.log"; then
		crashes=1
	fi
	if [ "$crashes" = 0 ]; then
		"$exe" -merge=1 -max_len="$len" -timeout="$timeout" -rss_limit_mb=2048 \
			"$work/merged" "$corpora/$name" "$work/new" >"$work/merge.log" 2>&1 || crashes=1
	fi
	if [ "$crashes" = 0 ] && [ -n "$(ls "$work/merged")" ]; then
		# merged inputs are named by their SHA-1: seeds that stay keep their name
		for f in "$corpora/$name"/*; do
			sha=$(sha1sum <"$f" | cut -d' ' -f1)
			if [ "${f##*/}" != "$sha" ] && [ -f "$work/merged/$sha" ]; then
				mv "$work/merged/$sha" "$work/merged/${f##*/}"
			fi
		done
		rm -rf "${corpora:?}/$name"
		cp -r "$work/merged" "$corpora/$name"
	else
		failed=1
		echo "run-campaign: $name crashed, see $work/fuzz.log and $work/artifacts" >&2
	fi
	files=$(find "$corpora/$name" -type f | wc -l)
	bytes=$(cat "$corpora/$name"/* | wc -c)
	printf '%-18s %12s %8s %8s %7s %9s %7s %7s %s\n' "$name" "${execs:-?}" \
		"$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "${cov:-?}" "${ft:-?}" "$files" "$bytes" \
		"$crashes" "$slow" | tee -a "$summary"
done
echo
cat "$summary"
exit $failed
