#!/usr/bin/env bash
# Checks that relative links in Markdown files point to files that exist.
set -u
status=0
for f in $(git ls-files '*.md' 2>/dev/null || find . -name '*.md'); do
  dir=$(dirname "$f")
  for link in $(grep -oE '\]\([^)#]+' "$f" | sed 's/^](//' | grep -vE '^[a-z]+:'); do
    [ -e "$dir/$link" ] || { echo "$f: broken link $link"; status=1; }
  done
done
[ $status -eq 0 ] && echo "links: ok"
exit $status
