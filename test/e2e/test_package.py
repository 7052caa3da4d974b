#!/usr/bin/env python3
"""The Debian package, as an operator gets it: `bash packaging/build-deb.sh
OUTDIR` builds OUTDIR/ocigate_VERSION_ARCH.deb with dpkg-buildpackage;
lintian reports no error; `dpkg -x` into a throw-away root gives the
binaries, the unit, the example configuration in /etc/ocigate, the docs and
the man pages. The installed ocigate prints the project's version and
accepts the installed example with --check-config; ocigate.conf(5) lists
every option of `ocigate --help-config` under its section; the unit is
Type=notify and `systemd-analyze security --offline=true` rates it 2.0 or
less.

    python3 test/e2e/test_package.py --source .
"""

import argparse
import gzip
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ocitest as T  # noqa: E402

MAX_EXPOSURE = 2.0


def help_options(text):
    """(section, key) pairs of `ocigate --help-config`."""
    out, section = [], None
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[] \n")
        m = re.match(r"^  (\w+) \(", line)
        if m:
            out.append((section, m.group(1)))
    return out


def man_options(roff):
    """(section, key) pairs of the OPTIONS part of ocigate.conf(5)."""
    out, section, in_opts, prev = [], None, False, ""
    for line in roff.splitlines():
        if line.startswith(".SH"):
            in_opts = line.strip() == ".SH OPTIONS"
        elif in_opts and line.startswith(".SS"):
            section = line[4:].strip().strip("[]")
        elif in_opts and prev == ".TP" and line.startswith(".B "):
            out.append((section, line[3:].strip()))
        prev = line.strip()
    return out


class PackageTest:
    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.source = os.path.abspath(args.source)

    def t_build(self):
        with open(os.path.join(self.source, "meson.build")) as f:
            self.version = re.search(r"version: '([^']+)'", f.read()).group(1)
        arch = subprocess.run(["dpkg", "--print-architecture"], check=True,
                              capture_output=True, text=True).stdout.strip()
        out = self.env.mkdir("out")
        self.env.run(["bash", os.path.join(self.source, "packaging",
                                           "build-deb.sh"), out], timeout=900)
        self.deb = os.path.join(out, "ocigate_%s_%s.deb" % (self.version, arch))
        T.expect(os.path.isfile(self.deb), "%s not built (found %r)"
                 % (self.deb, os.listdir(out)))
        self.root = self.env.mkdir("root")
        self.env.run(["dpkg", "-x", self.deb, self.root])

    def t_lintian(self):
        r = self.env.run(["lintian", "--fail-on", "error", self.deb],
                         check=False, timeout=300)
        out = (r.stdout + r.stderr).decode(errors="replace")
        errors = [l for l in out.splitlines() if l.startswith("E:")]
        T.expect(r.returncode == 0 and not errors,
                 "lintian errors (rc=%d):\n%s" % (r.returncode, out[-2000:]))

    def t_files(self):
        want = ["usr/bin/ocigate", "usr/bin/ocigate-credential-provider",
                "lib/systemd/system/ocigate.service",
                "etc/ocigate/ocigate.conf.example",
                "usr/share/doc/ocigate/copyright",
                "usr/share/doc/ocigate/README.md.gz",
                "usr/share/man/man8/ocigate.8.gz",
                "usr/share/man/man8/ocigate-credential-provider.8.gz",
                "usr/share/man/man5/ocigate.conf.5.gz"]
        missing = [p for p in want
                   if not os.path.isfile(os.path.join(self.root, p))]
        T.expect_eq(missing, [], "files missing from the package")
        r = self.env.run(["dpkg-deb", "-f", self.deb, "Package", "Version"])
        T.expect_eq(r.stdout.decode().split(),
                    ["Package:", "ocigate", "Version:", self.version],
                    "control fields")
        conffiles = self.env.run(["dpkg-deb", "--ctrl-tarfile", self.deb])
        T.expect(b"conffiles" in conffiles.stdout,
                 "no conffiles: /etc/ocigate is not marked as configuration")

    def bin(self, name="ocigate"):
        return os.path.join(self.root, "usr", "bin", name)

    def t_version(self):
        for name in ("ocigate", "ocigate-credential-provider"):
            r = self.env.run([self.bin(name), "--version"], timeout=20)
            T.expect_eq(r.stdout.decode().strip(),
                        "%s %s" % (name, self.version), name + " --version")

    def t_check_config(self):
        etc = os.path.join(self.root, "etc", "ocigate")
        # the two files the example names, next to it
        with open(os.path.join(etc, "tokens.csv"), "w") as f:
            f.write('token1,alice,uid-1,"team-a"\n')
        with open(os.path.join(etc, "harbor.password"), "w") as f:
            f.write("example-password\n")
        r = self.env.run([self.bin(), "--check-config", "--config",
                          os.path.join(etc, "ocigate.conf.example")],
                         check=False, timeout=20)
        T.expect_eq(r.returncode, 0, "--check-config exit status (%s)"
                    % (r.stdout + r.stderr).decode(errors="replace"))
        T.expect_in(b"configuration OK", r.stdout, "--check-config output")

    def t_man_options(self):
        help_text = self.env.run([self.bin(), "--help-config"]).stdout.decode()
        want = help_options(help_text)
        T.expect(len(want) > 40, "only %d options in --help-config" % len(want))
        with gzip.open(os.path.join(self.root, "usr/share/man/man5/"
                                    "ocigate.conf.5.gz"), "rt") as f:
            page = f.read()
        got = man_options(page)
        T.expect_eq(sorted(set(want) - set(got)), [],
                    "options missing from ocigate.conf(5)")
        T.expect_eq(sorted(set(got) - set(want)), [],
                    "options in ocigate.conf(5) that ocigate does not know")
        T.expect(self.version in page.splitlines()[0], "version in .TH")
        for page8 in ("ocigate.8.gz", "ocigate-credential-provider.8.gz"):
            with gzip.open(os.path.join(self.root, "usr/share/man/man8",
                                        page8), "rt") as f:
                text = f.read()
            T.expect(text.startswith(".TH ") and "@VERSION@" not in text and
                     ".SH NAME" in text and ".SH SYNOPSIS" in text,
                     "man page %s is not a complete page" % page8)

    def t_unit(self):
        unit = os.path.join(self.root, "lib/systemd/system/ocigate.service")
        with open(unit) as f:
            text = f.read()
        for line in ("Type=notify", "ExecStart=/usr/bin/ocigate --config "
                     "/etc/ocigate/ocigate.conf", "ExecReload=/bin/kill -HUP "
                     "$MAINPID", "ConfigurationDirectory=ocigate"):
            T.expect(line in text.splitlines(), "unit lacks %r" % line)
        r = self.env.run(["systemd-analyze", "security", "--offline=true",
                          unit], check=False, timeout=60)
        out = r.stdout.decode(errors="replace")
        m = re.search(r"Overall exposure level for ocigate\.service: "
                      r"([0-9.]+)", out)
        T.expect(m is not None, "no exposure level in:\n" + out[-1500:])
        T.diag("systemd-analyze security: exposure %s" % m.group(1))
        T.expect(float(m.group(1)) <= MAX_EXPOSURE,
                 "exposure %s > %.1f" % (m.group(1), MAX_EXPOSURE))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", required=True, help="the source checkout")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--timeout", type=float, default=1100)
    args = ap.parse_args()
    T.start_watchdog(args.timeout)
    with T.Env("package", keep=args.keep) as env:
        t = PackageTest(args, env)
        tap = T.Tap(env)
        rc = tap.run_all([
            ("build-deb.sh builds ocigate_VERSION_ARCH.deb; dpkg -x", t.t_build,
             True),
            ("lintian: no errors", t.t_lintian),
            ("binaries, unit, /etc/ocigate example (conffile), docs, man pages",
             t.t_files),
            ("installed binaries print the project version", t.t_version),
            ("installed ocigate --check-config accepts the installed example",
             t.t_check_config),
            ("ocigate.conf(5) lists exactly the options of --help-config",
             t.t_man_options),
            ("unit: Type=notify, reload by SIGHUP, systemd-analyze exposure "
             "<= 2.0", t.t_unit),
        ])
    sys.exit(rc)


if __name__ == "__main__":
    main()
