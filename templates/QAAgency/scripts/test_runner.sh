#!/usr/bin/env bash
# Runs the project's tests and prints a one-line summary `N passed, N failed`.
# Usage: test_runner.sh [TEST COMMAND...]   (default: detected from the project)
set -u
if [ $# -gt 0 ]; then cmd="$*"
elif [ -f Cargo.toml ]; then cmd="cargo test"
elif [ -f package.json ]; then cmd="npm test --silent"
elif [ -f go.mod ]; then cmd="go test ./..."
else cmd="python3 -m pytest -q"; fi
log=$(mktemp)
bash -c "$cmd" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
rm -f "$log"
echo "$passed passed, $failed failed"
exit $status
