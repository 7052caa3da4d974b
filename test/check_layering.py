#!/usr/bin/env python3
"""Lower layers never include higher ones (DESIGN.md "Layering"):
util -> nothing of ours; net -> util; auth -> util, net; k8s -> util, net,
auth; proxy -> all."""
import os
import re
import sys

ALLOWED = {
    "util": {"util"},
    "net": {"util", "net"},
    "auth": {"util", "net", "auth"},
    "k8s": {"util", "net", "auth", "k8s"},
    "proxy": {"util", "net", "auth", "k8s", "proxy"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/')


def main(root):
    bad = []
    checked = 0
    for layer, allowed in ALLOWED.items():
        folder = os.path.join(root, layer)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if m and m.group(1) in ALLOWED and m.group(1) not in allowed:
                        bad.append(f"{layer}/{name}:{lineno}: includes {m.group(1)}/")
            checked += 1
    for b in bad:
        print(b)
    print(f"{checked} files checked, {len(bad)} layering violations")
    return 1 if bad or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
