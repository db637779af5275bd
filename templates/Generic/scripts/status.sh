#!/usr/bin/env bash
# Shows this agency's agents and their state, and the working copy's branch.
set -u
agency status "${AGENCY_NAME:-}"
git status --short --branch 2>/dev/null | head -n 20
