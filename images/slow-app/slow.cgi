#!/bin/sh
# /cgi-bin/slow?ms=N: answers after N milliseconds (default 2000, at most 60000)
ms=2000
case "$QUERY_STRING" in
  *ms=*) ms=${QUERY_STRING#*ms=}; ms=${ms%%&*} ;;
esac
case "$ms" in ''|*[!0-9]*) ms=2000 ;; esac
[ "$ms" -gt 60000 ] && ms=60000
sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
printf 'Content-Type: application/json\r\n\r\n{"version": "%s", "slept_ms": %s}\n' "$APP_VERSION" "$ms"
