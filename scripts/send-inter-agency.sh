#!/usr/bin/env bash
# Seed-compatible wrapper:
#   ./scripts/send-inter-agency.sh FROM TO 'JSON'   (e.g. CodeAgency QAAgency '{"type": "handoff", "branch": "feature/x"}')
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" send-inter "$@"
