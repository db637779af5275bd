#!/usr/bin/env bash
# Lints the files changed on this branch with whatever linters are installed.
set -u
base=${1:-main}
files=$(git diff --name-only "$base"... 2>/dev/null || git ls-files)
status=0
for f in $files; do
  [ -f "$f" ] || continue
  case "$f" in
    *.py) command -v ruff >/dev/null && { ruff check "$f" || status=1; } || python3 -m py_compile "$f" || status=1 ;;
    *.sh) bash -n "$f" || status=1 ;;
    *.go) command -v gofmt >/dev/null && [ -n "$(gofmt -l "$f")" ] && { echo "gofmt: $f"; status=1; } ;;
    *.json) python3 -m json.tool "$f" >/dev/null || { echo "invalid JSON: $f"; status=1; } ;;
  esac
done
[ $status -eq 0 ] && echo "lint: ok" || echo "lint: problems found"
exit $status
