#!/usr/bin/env bash
# Make sure a Docker engine, HAProxy, nginx, Caddy, docker-compose and shellcheck are available for the demo and
# the tests.
#  - a reachable engine (DOCKER_HOST or the default socket) is used as it is;
#  - otherwise, as root on Debian, docker.io/haproxy/nginx/caddy/busybox-static/shellcheck/docker-compose are installed
#    from the distribution and dockerd is started in the background;
#  - shellcheck is what ansible-test's shellcheck sanity test runs: without it the test is skipped;
#  - nginx and caddy are only binaries for the tests: they start private instances, so the system
#    services are neither started nor left enabled;
#  - otherwise we stop and say what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.tmp/services; mkdir -p "$STATE"

say() { echo ">> $*"; }
die() { echo "ERROR: $*" >&2; exit 1; }

engine_up() { docker_cli version --format '{{.Server.Version}}' >/dev/null 2>&1; }
docker_cli() {
  # Debian's client matches Debian's engine (API 1.41); prefer it over any newer client on PATH
  if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi
}

need_pkgs=()
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_pkgs+=(haproxy)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need_pkgs+=(busybox-static)
command -v wrk >/dev/null 2>&1 || need_pkgs+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx)
command -v caddy >/dev/null 2>&1 || [ -x /usr/bin/caddy ] || need_pkgs+=(caddy)
command -v shellcheck >/dev/null 2>&1 || need_pkgs+=(shellcheck)
# Compose 1.29 (Debian 12's docker-compose): the Compose-service tests drive a real one
command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
if ! engine_up && ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
  need_pkgs+=(docker.io)
fi
# busybox must be static to run FROM scratch
if [ -x /bin/busybox ] && file -L /bin/busybox 2>/dev/null | grep -q dynamically; then need_pkgs+=(busybox-static); fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing from the distribution: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # a policy-rc.d answering 101 keeps the package scripts from starting nginx's and caddy's system
    # services (the tests run their own on ephemeral loopback ports); an existing policy is left as it is
    own_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
    for service in nginx caddy; do
      if [[ " ${need_pkgs[*]} " == *" $service "* ]] && [ -d /run/systemd/system ]; then
        systemctl disable --now "$service" >/dev/null 2>&1 || true
      fi
    done
  else
    die "missing: ${need_pkgs[*]}. Install them (Debian/Ubuntu: apt-get install ${need_pkgs[*]}) and re-run."
  fi
fi

if engine_up; then
  say "Docker engine reachable: $(docker_cli version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
else
  [ "$(id -u)" = 0 ] || die "no Docker engine is reachable and we are not root to start one. Start dockerd (or set DOCKER_HOST) and re-run."
  say "starting dockerd in the background (log: $STATE/dockerd.log)"
  nohup /usr/sbin/dockerd >"$STATE/dockerd.log" 2>&1 &
  echo $! > "$STATE/dockerd.pid"
  for _ in $(seq 1 60); do engine_up && break; sleep 0.5; done
  engine_up || { tail -20 "$STATE/dockerd.log" >&2; die "dockerd did not come up"; }
  say "Docker engine started: $(docker_cli version --format '{{.Server.Version}}')"
fi
# sed reads all of it: `head -1` would close the pipe early and, under pipefail, fail on SIGPIPE
PATH=$PATH:/usr/sbin haproxy -v | sed -n '1s/^/>> /p'
# nginx -v writes to stderr
PATH=$PATH:/usr/sbin nginx -v 2>&1 | sed -n '1s/^/>> /p'
echo ">> caddy $(caddy version | sed -n '1p')"
# Caddy rebinds its listeners on every config change (SO_REUSEPORT); when the old socket closes, Linux resets the
# connections still in its accept queue unless this setting hands them to the new socket (Linux 5.14 and later).
# Users of the caddy driver need it too (docs/docker.md; preflight warns when it is 0).
migrate=/proc/sys/net/ipv4/tcp_migrate_req
if [ -e "$migrate" ] && [ "$(cat "$migrate")" = 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    sysctl -qw net.ipv4.tcp_migrate_req=1 && say "net.ipv4.tcp_migrate_req set to 1 (Caddy's config reloads)"
  else
    say "warning: net.ipv4.tcp_migrate_req is 0 and we are not root: the Caddy tests will fail until it is 1"
  fi
fi
echo ">> shellcheck $(shellcheck --version | sed -n 's/^version: //p')"

# Bridges the tests' extra dockerds made (zd<hex>...) and that no running dockerd uses any more: a test run that
# was killed left them. They are removed, so that their subnets and routes do not linger.
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
  live=$(pgrep -a dockerd | sed -n 's/.*--bridge \([^ ]*\).*/\1/p' || true)
  for bridge in $(ip -o link show type bridge | awk -F': ' '{print $2}' | grep -E '^zd[a-z]?[0-9a-f]{6}[0-9]*$' || true); do
    if ! grep -qx "$bridge" <<<"$live"; then
      ip link del "$bridge" && say "removed the bridge $bridge a killed test run left"
    fi
  done
fi
