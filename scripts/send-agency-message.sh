#!/usr/bin/env bash
# Seed-compatible wrapper:
#   ./scripts/send-agency-message.sh AGENCY AGENT "MESSAGE"   (e.g. CodeAgency python-agent "TASK-042: Implement OAuth2")
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" send "$@"
