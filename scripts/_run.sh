#!/usr/bin/env bash
# Runs `agency` for the wrapper scripts beside this file: AGENCY_BIN, else
# `agency` on PATH, else the workspace's registry/bin/agency (the binary that
# brought its agencies up), else this repository's build; the workspace is
# AGENCY_HOME, else the folder above scripts/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${AGENCY_BIN:-}
if [ -n "$bin" ] && ! command -v "$bin" >/dev/null 2>&1; then
  echo "error: AGENCY_BIN is '$bin', which is not a program" >&2
  echo "hint: set AGENCY_BIN to the agency binary's path, or unset it to use agency from PATH" >&2
  exit 1
fi
if [ -z "$bin" ]; then
  bin=$(command -v agency || true)
fi
if [ -z "$bin" ]; then
  for built in "$here/../registry/bin/agency" "$here/../target/release/agency" "$here/../target/debug/agency"; do
    if [ -x "$built" ]; then
      bin=$built
      break
    fi
  done
fi
if [ -z "$bin" ]; then
  echo "error: agency not found (not on PATH, AGENCY_BIN not set)" >&2
  echo "hint: install it with 'cargo install --path .' in agency's source and put ~/.cargo/bin on PATH, or set AGENCY_BIN=/path/to/agency" >&2
  exit 1
fi
exec "$bin" --home "${AGENCY_HOME:-$here/..}" "$@"
