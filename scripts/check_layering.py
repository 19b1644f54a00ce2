#!/usr/bin/env python3
"""Holds ferry's #include lines to its dependency rules (docs/architecture.md "Dependencies").

  check_layering.py ROOT          checks every C/C++ source under ROOT; exit 1 naming each
                                  include that crosses a boundary
  check_layering.py --self-test   checks that a crossing is caught (ctest runs this)

Every build runs the check (target ferry_check_layering), so a forbidden include fails the
build. Only ferry's own modules are checked: an include whose first path component is not a
ferry module ("absl/...", "gtest/...") is a third-party header and always allowed.
"""
import os
import re
import sys
import tempfile

# Module -> the modules its files may include (itself always). include/ferry is "ferry".
ALLOWED = {
    "ferry": set(),
    "core": {"ferry"},
    "shm": {"core", "ferry"},
    "common": {"core", "ferry"},
    "proto": {"core", "common", "ferry"},
    "control": {"core", "common", "proto"},
    "dataplane": {"core", "common", "shm", "proto", "ferry", "cuda"},
    "cuda": {"core", "common", "shm", "ferry"},
    "sdk": {"ferry", "core", "shm", "proto", "common"},
}
# Anything may include anything from these (they test or measure the whole system).
UNRESTRICTED = {"tests", "perf", "examples"}
MODULES = set(ALLOWED) | UNRESTRICTED
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
SKIP_DIRS = {".git", "third_party", "node_modules"}


def module_of(rel_path):
    first = rel_path.split("/", 1)[0]
    if first == "include":
        return "ferry"
    return first if first in MODULES else None


def check(root):
    problems = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        # Build trees (build, build-asan, ...) and hidden directories are not sources.
        dirnames[:] = [d for d in dirnames
                       if d not in SKIP_DIRS and not d.startswith(".") and not
                       (rel_dir == "." and d.startswith("build"))]
        for name in filenames:
            if not name.endswith((".h", ".hpp", ".cc", ".cpp", ".cu", ".cuh", ".c")):
                continue
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            mod = module_of(rel)
            if mod is None or mod in UNRESTRICTED:
                continue
            with open(os.path.join(dirpath, name), encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    target = m.group(1)
                    first = target.split("/", 1)[0]
                    if first not in MODULES:
                        continue   # third-party, or a file next to this one
                    if first == mod or first in ALLOWED[mod]:
                        continue
                    allowed = ", ".join(sorted(ALLOWED[mod] | {mod})) or "nothing"
                    problems.append(f'{rel}:{lineno}: includes "{target}": {mod}/ may include '
                                    f"only {allowed} (docs/architecture.md \"Dependencies\")")
    return problems


def self_test():
    with tempfile.TemporaryDirectory() as root:
        def write(path, text):
            os.makedirs(os.path.dirname(os.path.join(root, path)), exist_ok=True)
            with open(os.path.join(root, path), "w") as f:
                f.write(text)
        write("sdk/client.cc", '#include "ferry/client.h"\n#include "absl/status/status.h"\n')
        write("control/x.cc", '#include "proto/coordinator.pb.h"\n#include "core/ids.h"\n')
        write("tests/t.cc", '#include "dataplane/a.h"\n#include "control/b.h"\n')
        write("build/gen.cc", '#include "control/b.h"\n')
        if check(root):
            print("self-test: a clean tree was refused:", check(root), file=sys.stderr)
            return 1
        write("sdk/bad.cc", '#include "ferry/client.h"\n#include "dataplane/store/object_store.h"\n')
        write("core/bad.h", '  #  include "proto/common.pb.h"\n')
        found = check(root)
        want = {"sdk/bad.cc:2", "core/bad.h:1"}
        got = {p.split(": ", 1)[0] for p in found}
        if got != want:
            print(f"self-test: expected violations {sorted(want)}, got {found}", file=sys.stderr)
            return 1
    print("check_layering self-test: ok")
    return 0


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return self_test()
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(argv[1])
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check_layering: {len(problems)} include(s) cross a module boundary", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
