#!/usr/bin/env python3
"""layers.py: the project's layering, measured from a build tree.

  scripts/layers.py BUILD_DIR [--check]

1. Includes: for every source of every library (from the compile database, or the sources'
   directories), the project headers it includes, and which library each header belongs to.
   A private header (anything but include/genserv/*.h) reached from another library is a
   violation.
2. Calls: for each library, the file-level call graph from its object files (nm: what each
   .o defines and what it uses), and its strongly connected components: a cycle of files
   calling each other. Cycles listed in ALLOWED below are real two-way relationships and are
   reported but not counted.

With --check it exits 1 when there is a violation or an unlisted cycle.
"""
import os
import re
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBS = {  # library -> (source dir, archive path relative to the build dir)
    "runtime": ("runtime", "runtime/CMakeFiles/genserv_runtime.dir"),
    "builtins": ("runtime/builtins", "runtime/CMakeFiles/genserv_builtins.dir"),
    "gateway": ("api", "api/CMakeFiles/genserv_api.dir"),
    "server": ("server", "server/CMakeFiles/genserv.dir"),
    "lua": ("runtime/lua", "runtime/CMakeFiles/genserv_lua.dir"),
    "store": ("runtime/store", "runtime/CMakeFiles/genserv_store.dir"),
}
# Pairs of files in a real two-way relationship (runtime/runtime_internal.h says why). Their
# edges are left out before looking for cycles: any cycle that remains is accidental.
ALLOWED = {
    frozenset({"server.c", "supervisor.c"}),  # a server dies to its supervisor, which starts servers
    frozenset({"server.c", "call.c"}),  # a call is queued in a server; a server completes calls
    frozenset({"server.c", "sched.c"}),  # a scheduler runs servers; a runnable server is queued
    frozenset({"server.c", "send_after.c"}),  # a server arms its own timeouts; timers deliver to it
    frozenset({"server.c", "monitor.c"}),  # a dying server fires its monitors; DOWN goes to a server
    # durable.c is the output gate between a durable server and the rest: what the server says
    # waits there, and the gate lets it go once the store committed.
    frozenset({"durable.c", "server.c"}),  # a server hands each change to its gate; the gate sends
    frozenset({"durable.c", "call.c"}),  # a reply waits in the gate; the gate completes the call
    frozenset({"durable.c", "send_after.c"}),  # a stored timer's row goes with a change; the gate arms it
    frozenset({"durable.c", "supervisor.c"}),  # a child is made durable and forgotten; the gate holds it
}


def lib_of(path):
    rel = os.path.relpath(path, ROOT)
    if rel.startswith("include/genserv/"):
        return "public"
    for lib, (d, _) in sorted(LIBS.items(), key=lambda kv: -len(kv[1][0])):
        if os.path.dirname(rel) == d:
            return lib
    return None


def includes(src):
    out = []
    d = os.path.dirname(src)
    for line in open(src, encoding="utf-8"):
        m = re.match(r'\s*#\s*include\s*([<"])([^>"]+)[>"]', line)
        if not m:
            continue
        name = m.group(2)
        for cand in (os.path.join(d, name), os.path.join(ROOT, "include", name)):
            if os.path.exists(cand):
                out.append(os.path.normpath(cand))
                break
    return out


def include_report():
    bad = []
    edges = defaultdict(set)
    for lib, (d, _) in LIBS.items():
        full = os.path.join(ROOT, d)
        for f in sorted(os.listdir(full)):
            if not f.endswith((".c", ".h")):
                continue
            for h in includes(os.path.join(full, f)):
                hl = lib_of(h)
                edges[lib].add(hl)
                if hl not in ("public", lib):
                    bad.append(f"{d}/{f} includes {os.path.relpath(h, ROOT)} ({hl}'s private header)")
    print("include graph (library -> libraries whose headers it includes):")
    for lib in LIBS:
        print(f"  {lib:9} -> {', '.join(sorted(x for x in edges[lib] if x))}")
    return bad


def symbols(obj):
    out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBR":
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            used.add(parts[1])
    return defined, used


def sccs(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def call_report(build):
    unlisted = []
    for lib, (_, objdir) in LIBS.items():
        full = os.path.join(build, objdir)
        if not os.path.isdir(full):
            continue
        objs = {}
        for dp, _, fs in os.walk(full):
            for f in fs:
                if f.endswith(".c.o") and not f.startswith("web_assets"):
                    objs[f[:-2]] = symbols(os.path.join(dp, f))
        owner = {s: f for f, (d, _) in objs.items() for s in d}
        edges = defaultdict(set)
        for f, (_, used) in objs.items():
            for s in used:
                if s in owner and owner[s] != f:
                    edges[f].add(owner[s])
        pairs = sorted({tuple(sorted((a, b))) for a in list(edges) for b in edges[a] if a in edges.get(b, ())})
        pruned = {a: {b for b in bs if frozenset({a, b}) not in ALLOWED} for a, bs in edges.items()}
        pruned = defaultdict(set, pruned)
        comps = sccs(objs.keys(), pruned)
        print(f"call graph of {lib}: {len(objs)} files, {sum(len(e) for e in edges.values())} "
              f"file-to-file edges, {len(comps)} accidental cycle(s)")
        for a, b in pairs:
            ok = frozenset({a, b}) in ALLOWED
            print(f"  two-way {a} <-> {b}{' (a real relationship)' if ok else ''}")
        for c in comps:
            print(f"  CYCLE {' -> '.join(sorted(c))}")
            unlisted.append(f"{lib}: {sorted(c)}")
    return unlisted


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    bad = include_report()
    for b in bad:
        print("  VIOLATION:", b)
    cyc = call_report(sys.argv[1])
    if "--check" in sys.argv and (bad or cyc):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
