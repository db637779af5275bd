#!/usr/bin/env bash
# Seed-compatible wrapper:
#   ./scripts/create_agency.sh CodeAgency --agents "python-agent,js-agent,go-agent" --coordinator "code-coordinator" --capabilities "backend,frontend,api-design,code-review"
exec "$(dirname "${BASH_SOURCE[0]}")/_run.sh" create "$@"
