#!/usr/bin/env python3
"""layers.includes: every #include "FOLDER/..." in lib/ goes down the layer graph.

The compiler already refuses an upward include in a layer's sources (lib/CMakeLists.txt gives
each layer's target only the include directories of the layers it links); this also covers a
header that no source of its own layer compiles. The graph is the one lib/CMakeLists.txt links,
which it writes to layers.txt ("FOLDER: FOLDER..." lines, the direct uses only); a folder may
include its own headers and those of every layer it reaches.

Usage: layers_check.py LIB_DIR LAYERS_TXT
"""
import pathlib
import re
import sys


def main() -> int:
    lib = pathlib.Path(sys.argv[1])
    uses = {}
    for line in pathlib.Path(sys.argv[2]).read_text().splitlines():
        folder, _, deps = line.partition(":")
        uses[folder.strip()] = set(deps.split())

    def reach(folder, seen):
        for dep in uses.get(folder, ()):
            if dep not in seen:
                seen.add(dep)
                reach(dep, seen)
        return seen

    folders = sorted(p.name for p in lib.iterdir() if p.is_dir())
    bad = [f"lib/{f}: a folder with no layer in lib/CMakeLists.txt" for f in folders
           if f not in uses]
    include = re.compile(r'^\s*#\s*include\s*"([a-z0-9_]+)/', re.M)
    for folder in folders:
        allowed = reach(folder, {folder})
        for path in sorted((lib / folder).rglob("*")):
            if path.suffix not in (".hpp", ".cpp"):
                continue
            for m in include.finditer(path.read_text()):
                if m.group(1) not in allowed:
                    line = path.read_text().count("\n", 0, m.start()) + 1
                    bad.append(f"{path.relative_to(lib.parent)}:{line}: includes "
                               f"{m.group(1)}/, which lib/{folder} may not use")
    for b in bad:
        print(b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
