#!/usr/bin/env bash
# Seed-compatible wrapper:
#   ./scripts/deploy-to-sandbox.sh CodeAgency feature/user-profile [--test-command CMD] [--keep]
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" sandbox deploy "$@"
