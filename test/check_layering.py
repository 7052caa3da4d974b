#!/usr/bin/env python3
"""Include rules of the source tree, checked file by file (in the spirit of
Tor's .may_include):

  - a file may include headers of its own folder and of the folders below
    it: util < net < auth < k8s < proxy; credprov (the kubelet plugin program) sits
    beside proxy on k8s and nothing includes it;
  - every "dir/name.h" that is included exists;
  - headers of one folder never include each other in a cycle.

Cycles between modules of one folder (a module is name.c with name.h and
name_priv.h: a.c includes b.h while b.c includes a.h) are printed as notes
and do not fail: a module that calls back into its caller is a design
choice, but a long list is a smell worth seeing.

    python3 test/check_layering.py [ROOT]
"""
import os
import re
import sys

ALLOWED = {
    "util": {"util"},
    "net": {"util", "net"},
    "auth": {"util", "net", "auth"},
    "k8s": {"util", "net", "auth", "k8s"},
    "proxy": {"util", "net", "auth", "k8s", "proxy"},
    "credprov": {"util", "net", "auth", "k8s", "credprov"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"(([a-z0-9_]+)/([a-z0-9_]+\.h))"')


def read_includes(root):
    """{"dir/file.c": [(lineno, "dir2/x.h"), ...]} for every source file."""
    files = {}
    for folder in ALLOWED:
        path = os.path.join(root, folder)
        if not os.path.isdir(path):
            continue
        for name in sorted(os.listdir(path)):
            if not name.endswith((".c", ".h")):
                continue
            incs = []
            with open(os.path.join(path, name), encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if m and m.group(2) in ALLOWED:
                        incs.append((lineno, m.group(1)))
            files[folder + "/" + name] = incs
    return files


def check_layers(files):
    bad = []
    for path, incs in files.items():
        folder = path.split("/")[0]
        for lineno, inc in incs:
            target = inc.split("/")[0]
            if target not in ALLOWED[folder]:
                bad.append("%s:%d: includes %s (%s/ may include %s)"
                           % (path, lineno, inc, folder, ", ".join(sorted(ALLOWED[folder]))))
            elif inc not in files:
                bad.append("%s:%d: includes %s, which does not exist" % (path, lineno, inc))
    return bad


def cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def same_folder_graph(files, node):
    graph = {}
    for path, incs in files.items():
        for _, inc in incs:
            if inc.split("/")[0] == path.split("/")[0] and node(inc) != node(path):
                graph.setdefault(node(path), set()).add(node(inc))
    return graph


def module_of(path):
    return re.sub(r"(_priv)?\.[ch]$", "", path)


def main(root):
    sys.setrecursionlimit(10000)
    files = read_includes(root)
    bad = check_layers(files)
    headers = {p: i for p, i in files.items() if p.endswith(".h")}
    for comp in cycles(same_folder_graph(headers, lambda p: p)):
        bad.append("header include cycle: " + " -> ".join(comp))
    notes = cycles(same_folder_graph(files, module_of))
    for b in bad:
        print(b)
    for comp in notes:
        print("note: modules that include each other: " + ", ".join(comp))
    print("%d files checked, %d violations, %d module cycles noted"
          % (len(files), len(bad), len(notes)))
    return 1 if bad or not files else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
