#!/usr/bin/env python3
"""Prints "N passed, N failed[, N skipped]" from meson testlog.json files and
exits 1 when anything failed, a log is missing, or no test ran at all."""
import argparse
import json
import os
import sys

PASS = {"OK", "EXPECTEDFAIL"}
SKIP = {"SKIP"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-failed", type=int, default=0)
    ap.add_argument("logs", nargs="*")
    args = ap.parse_args()
    passed = failed = skipped = 0
    failures = []
    for path in args.logs:
        if not os.path.exists(path):
            print(f"missing test log: {path}")
            failed += 1
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                t = json.loads(line)
                result = t.get("result")
                where = os.path.basename(os.path.dirname(os.path.dirname(path)))
                if result in PASS:
                    passed += 1
                elif result in SKIP:
                    skipped += 1
                else:
                    failed += 1
                    failures.append(f"{where}: {t.get('name')} {result}")
    if args.build_failed:
        failures.append("a build or install step failed")
        failed += 1
    for f in failures:
        print(f"FAILED {f}")
    if passed + failed + skipped == 0:
        print("no test ran")
        failed += 1
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
