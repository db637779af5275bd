#!/usr/bin/env bash
# Seed-compatible wrapper:
#   ./scripts/create_agency.sh CodeAgency --agents "python-agent,js-agent,go-agent" \
#       --coordinator "code-coordinator" --capabilities "backend,frontend,api-design,code-review"
# Any other `agency create` flag (--template, --layout, --agent-command, --json) passes through.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${AGENCY_BIN:-$(command -v agency || ls "$here"/../target/{release,debug}/agency 2>/dev/null | head -n 1)}
exec "$bin" --home "${AGENCY_HOME:-$here/..}" create "$@"
