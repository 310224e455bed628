# shellcheck shell=sh
# Entry point of the demo app (run by busybox sh).
# /version -> {"version": "...", "host": "..."}; /healthz -> ok (absent when APP_BROKEN=1, so the
# HEALTHCHECK never passes: the "broken" release).
/bin/busybox --install -s /bin
mkdir -p /www /tmp
host=$(hostname)
printf '{"version": "%s", "host": "%s"}\n' "$APP_VERSION" "$host" > /www/version
printf 'App Version %s on %s\n' "$APP_VERSION" "$host" > /www/index.html
if [ "$APP_BROKEN" != 1 ]; then echo ok > /www/healthz; fi
printf '.json:application/json\n' > /etc/httpd.conf 2>/dev/null || true
echo "demo app $APP_VERSION listening on :$APP_PORT"
# PID 1 ignores SIGTERM unless it handles it: forward it so `docker stop` is prompt and graceful
httpd -f -v -p "$APP_PORT" -h /www &
pid=$!
trap 'kill -TERM $pid; wait $pid; exit 0' TERM INT
wait $pid
