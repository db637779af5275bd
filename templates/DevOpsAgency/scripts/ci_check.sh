#!/usr/bin/env bash
# Runs the usual CI steps for the project in this folder; stops at the first failure.
set -eu
if [ -f Cargo.toml ]; then cargo fmt --check && cargo clippy --all-targets -q -- -D warnings && cargo test -q
elif [ -f package.json ]; then npm ci --silent && npm test --silent
elif [ -f go.mod ]; then go vet ./... && go test ./...
elif ls *.py >/dev/null 2>&1 || [ -d tests ]; then python3 -m pytest -q
else echo "ci: nothing to check here"; fi
echo "ci: ok"
