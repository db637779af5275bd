#!/usr/bin/env bash
# Seed-compatible wrapper:
#   ./scripts/broadcast-agency.sh FROM 'MESSAGE'   (text, or JSON with a "type"; add --all-agents for every agent)
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" broadcast "$@"
