#!/usr/bin/env bash
# Looks for likely secrets in tracked files (or in the diff against BASE if given).
set -u
pattern='(AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|(api[_-]?key|secret|password|token)[[:space:]]*[:=][[:space:]]*["'"'"'][^"'"'"']{8,})'
if [ $# -gt 0 ]; then hits=$(git diff "$1"... | grep -E '^\+' | grep -Ei -- "$pattern")
else hits=$(git grep -nEI -i -- "$pattern" 2>/dev/null); fi
if [ -n "$hits" ]; then echo "$hits"; echo "secret scan: possible secrets found"; exit 1; fi
echo "secret scan: clean"
