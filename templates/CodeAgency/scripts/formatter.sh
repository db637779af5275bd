#!/usr/bin/env bash
# Formats the files changed on this branch with the formatters that are installed.
set -u
base=${1:-main}
for f in $(git diff --name-only "$base"... 2>/dev/null); do
  [ -f "$f" ] || continue
  case "$f" in
    *.py) command -v black >/dev/null && black -q "$f" ;;
    *.go) command -v gofmt >/dev/null && gofmt -w "$f" ;;
    *.rs) command -v rustfmt >/dev/null && rustfmt "$f" ;;
    *.js|*.ts|*.tsx) command -v prettier >/dev/null && prettier -w "$f" >/dev/null ;;
  esac
done
echo "format: done"
