#!/usr/bin/env bash
# Seed-compatible wrapper: opens the approval screen.
#   ./scripts/approval-cli.sh [--status pending|approved|rejected|all]
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" approvals "$@"
