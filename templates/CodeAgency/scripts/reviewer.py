#!/usr/bin/env python3
"""First-pass review of a branch: size, leftover debug lines, missing tests.

Usage: reviewer.py [BASE] [BRANCH]
"""
import re
import subprocess
import sys

base = sys.argv[1] if len(sys.argv) > 1 else "main"
branch = sys.argv[2] if len(sys.argv) > 2 else "HEAD"
diff = subprocess.run(["git", "diff", f"{base}...{branch}"], capture_output=True, text=True).stdout
files = re.findall(r"^\+\+\+ b/(.+)$", diff, re.M)
added = [l[1:] for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
findings = []
for pattern, what in [(r"\bprint\(|console\.log|dbg!", "debug output"), (r"TODO|FIXME|XXX", "open TODO"),
                      (r"(?i)(api[_-]?key|secret|password)\s*=\s*['\"][^'\"]+", "possible secret")]:
    hits = [l for l in added if re.search(pattern, l)]
    if hits:
        findings.append(f"{what}: {len(hits)} added line(s), e.g. {hits[0].strip()[:80]}")
code = [f for f in files if re.search(r"\.(py|js|ts|go|rs)$", f) and not re.search(r"test", f)]
tests = [f for f in files if re.search(r"test", f)]
if code and not tests:
    findings.append("code changed but no test file changed")
print(f"review {branch} against {base}: {len(files)} file(s), +{len(added)} line(s)")
for f in findings:
    print(f"- {f}")
print("no findings" if not findings else f"{len(findings)} finding(s)")
sys.exit(1 if findings else 0)
