#!/usr/bin/env bash
# Runs the dependency audit tool for each ecosystem found here.
set -u
ran=0; status=0
if [ -f Cargo.lock ]; then ran=1; if command -v cargo-audit >/dev/null; then cargo audit || status=1; else echo "cargo: install cargo-audit"; fi; fi
if [ -f package-lock.json ]; then ran=1; npm audit --omit=dev || status=1; fi
if [ -f requirements.txt ]; then ran=1; if command -v pip-audit >/dev/null; then pip-audit -r requirements.txt || status=1; else echo "python: install pip-audit"; fi; fi
[ $ran -eq 1 ] || echo "audit: no lock files found"
exit $status
