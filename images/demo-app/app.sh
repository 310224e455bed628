# shellcheck shell=sh
# Entry point of the demo app (run by busybox sh).
# /version -> {"version": "...", "host": "..."}; /healthz -> ok (absent when APP_BROKEN=1, so the
# HEALTHCHECK never passes: the "broken" release). /cgi-bin/version answers like /version, but 500 to
# APP_FAIL_PERCENT % of requests at random (the "flaky" release: healthy, yet failing some user requests).
/bin/busybox --install -s /bin
mkdir -p /www/cgi-bin /tmp
host=$(hostname)
printf '{"version": "%s", "host": "%s"}\n' "$APP_VERSION" "$host" > /www/version
cat > /www/cgi-bin/version <<EOF
#!/bin/sh
if [ "\$((RANDOM % 100))" -lt "${APP_FAIL_PERCENT:-0}" ]; then
  printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nflaky release\n'
else
  printf 'Content-Type: application/json\r\n\r\n{"version": "%s", "host": "%s"}\n' "$APP_VERSION" "$host"
fi
EOF
chmod 755 /www/cgi-bin/version
printf 'App Version %s on %s\n' "$APP_VERSION" "$host" > /www/index.html
if [ "$APP_BROKEN" != 1 ]; then echo ok > /www/healthz; fi
printf '.json:application/json\n' > /etc/httpd.conf 2>/dev/null || true
echo "demo app $APP_VERSION listening on :$APP_PORT"
# PID 1 ignores SIGTERM unless it handles it: forward it so `docker stop` is prompt and graceful
httpd -f -v -p "$APP_PORT" -h /www &
pid=$!
trap 'kill -TERM $pid; wait $pid; exit 0' TERM INT
wait $pid
