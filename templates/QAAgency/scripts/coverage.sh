#!/usr/bin/env bash
# Prints test coverage with whichever tool the project uses.
set -u
if [ -f Cargo.toml ] && command -v cargo-llvm-cov >/dev/null; then cargo llvm-cov --summary-only
elif python3 -c 'import coverage' 2>/dev/null; then python3 -m coverage run -m pytest -q && python3 -m coverage report
elif [ -f go.mod ]; then go test -cover ./...
else echo "coverage: no coverage tool found (install coverage.py, cargo-llvm-cov, or use go test -cover)"; exit 1; fi
