#!/usr/bin/env bash
# Prints a release summary for BRANCH against BASE: commits, files, and a rollback point.
set -eu
base=${1:-main}; branch=${2:-HEAD}
echo "# Deployment plan: $branch onto $base"
echo "rollback point: $(git rev-parse --short "$base")"
echo "## Commits"; git log --oneline "$base..$branch"
echo "## Files"; git diff --stat "$base...$branch" | tail -n 20
