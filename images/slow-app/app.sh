# shellcheck shell=sh
# Entry point of the slow demo app (run by busybox sh as PID 1, on purpose without a trap: SIGTERM is ignored).
# /version -> {"version": "...", "host": "..."}; /cgi-bin/slow?ms=N -> after N ms; /healthz (what the
# HEALTHCHECK looks for) appears APP_READY_AFTER seconds after start.
/bin/busybox --install -s /bin
mkdir -p /www/cgi-bin /tmp
host=$(hostname)
printf '{"version": "%s", "host": "%s"}\n' "$APP_VERSION" "$host" > /www/version
rm -f /www/healthz  # a restarted container is not ready before its time either
cp /slow.cgi /www/cgi-bin/slow
chmod 755 /www/cgi-bin/slow
echo "slow demo app $APP_VERSION listening on :$APP_PORT, ready in ${APP_READY_AFTER}s"
(sleep "$APP_READY_AFTER"; echo ok > /www/healthz) &
httpd -f -p "$APP_PORT" -h /www
