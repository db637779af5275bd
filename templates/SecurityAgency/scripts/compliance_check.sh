#!/usr/bin/env bash
# Checks for the files most policies require.
set -u
status=0
for f in LICENSE README.md; do
  if ls "$f"* >/dev/null 2>&1; then echo "ok      $f"; else echo "missing $f"; status=1; fi
done
[ -f SECURITY.md ] && echo "ok      SECURITY.md" || echo "note    no SECURITY.md (how to report vulnerabilities)"
exit $status
