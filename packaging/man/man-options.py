#!/usr/bin/env python3
"""Makes ocigate.conf(5) from its hand-written frame and the option table
as `ocigate --help-config` prints it, so the page cannot miss an option.

    man-options.py OCIGATE_BINARY FRAME.in VERSION OUTPUT
"""

import re
import subprocess
import sys

OPTION_RE = re.compile(r"^  (\w+) \((.*)\)$")


def roff(text):
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def options_roff(help_text):
    out = []
    for line in help_text.splitlines():
        if line.startswith("["):
            out.append(".SS %s" % roff(line.strip()))
            continue
        m = OPTION_RE.match(line)
        if m:
            out += [".TP", ".B %s" % m.group(1), "(%s)" % roff(m.group(2))]
        elif line.startswith("      "):
            out += [".br", roff(line.strip())]
        elif line.strip():
            sys.exit("man-options: unexpected --help-config line: %r" % line)
    return "\n".join(out)


def main():
    binary, frame, version, output = sys.argv[1:5]
    help_text = subprocess.run([binary, "--help-config"], check=True,
                               capture_output=True, text=True).stdout
    with open(frame) as f:
        page = f.read()
    page = page.replace("@VERSION@", version)
    page = page.replace("@OPTIONS@", options_roff(help_text))
    with open(output, "w") as f:
        f.write(page)


if __name__ == "__main__":
    main()
