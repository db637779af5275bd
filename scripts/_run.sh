#!/usr/bin/env bash
# Runs `agency` for the wrapper scripts beside this file: AGENCY_BIN, else
# `agency` on PATH, else this repository's build; the workspace is
# AGENCY_HOME, else the folder above scripts/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${AGENCY_BIN:-$(command -v agency || ls "$here"/../target/{release,debug}/agency 2>/dev/null | head -n 1)}
if [ -z "$bin" ]; then
  echo "error: agency not found" >&2
  echo "hint: put it on PATH, set AGENCY_BIN, or run 'cargo build --release' in the repository" >&2
  exit 1
fi
exec "$bin" --home "${AGENCY_HOME:-$here/..}" "$@"
