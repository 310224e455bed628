#!/usr/bin/env bash
# Build the demo images offline: zerodown/demo-app:1.0, :2.0, :broken (never healthy) and :flaky (healthy, but
# /cgi-bin/version answers 500 to 20 % of requests).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
docker_cli() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi; }
repo=${DEMO_IMAGE_REPO:-zerodown/demo-app}
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
bb=$(command -v busybox || echo /bin/busybox)
cp -L "$bb" "$ctx/busybox"; cp "$here/Dockerfile" "$here/app.sh" "$ctx/"
build() { # tag version broken [fail-percent]
  docker_cli build -q -t "$repo:$1" --build-arg VERSION="$2" --build-arg BROKEN="$3" \
    --build-arg FAIL_PERCENT="${4:-0}" "$ctx" >/dev/null
  echo ">> built $repo:$1"
}
build 1.0 1.0 0
build 2.0 2.0 0
build broken 2.1 1
build flaky 2.2 0 20
