#!/usr/bin/env bash
# Checks that each URL answers with HTTP 2xx/3xx; prints one line per URL.
set -u
[ $# -gt 0 ] || { echo "usage: health_check.sh URL..."; exit 2; }
status=0
for url in "$@"; do
  code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$url" || echo 000)
  case "$code" in 2*|3*) echo "ok   $code $url" ;; *) echo "FAIL $code $url"; status=1 ;; esac
done
exit $status
