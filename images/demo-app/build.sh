#!/usr/bin/env bash
# Build the demo images offline: zerodown/demo-app:1.0, :2.0 and :broken (never healthy).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
docker_cli() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi; }
repo=${DEMO_IMAGE_REPO:-zerodown/demo-app}
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
bb=$(command -v busybox || echo /bin/busybox)
cp -L "$bb" "$ctx/busybox"; cp "$here/Dockerfile" "$here/app.sh" "$ctx/"
build() { # tag version broken
  docker_cli build -q -t "$repo:$1" --build-arg VERSION="$2" --build-arg BROKEN="$3" "$ctx" >/dev/null
  echo ">> built $repo:$1"
}
build 1.0 1.0 0
build 2.0 2.0 0
build broken 2.1 1
