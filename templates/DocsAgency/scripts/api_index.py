#!/usr/bin/env python3
"""Lists public definitions in source files and whether each has a doc comment."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
rules = {".py": (r"^(def|class) (\w+)", r'^\s+("""|\'\'\')'), ".rs": (r"^pub (?:fn|struct|enum|trait) (\w+)", r"^\s*///"),
         ".go": (r"^func (?:\([^)]*\) )?([A-Z]\w*)", r"^//")}
missing = total = 0
for path in sorted(root.rglob("*")):
    rule = rules.get(path.suffix)
    if not rule or "target" in path.parts or ".git" in path.parts:
        continue
    lines = path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        m = re.match(rule[0], line)
        if not m:
            continue
        total += 1
        before = lines[i - 1] if i else ""
        after = lines[i + 1] if i + 1 < len(lines) else ""
        if not (re.match(rule[1], before) or re.match(rule[1], after)):
            missing += 1
            print(f"undocumented {path}:{i + 1} {m.group(m.lastindex)}")
print(f"{total - missing}/{total} public definitions documented")
