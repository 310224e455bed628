#!/usr/bin/env bash
# Build the slow demo images offline: zerodown/slow-app:1.0 and :2.0 (see the Dockerfile).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
docker_cli() { if [ -x /usr/bin/docker ]; then /usr/bin/docker "$@"; else docker "$@"; fi; }
repo=${SLOW_IMAGE_REPO:-zerodown/slow-app}
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
bb=$(command -v busybox || echo /bin/busybox)
cp -L "$bb" "$ctx/busybox"; cp "$here/Dockerfile" "$here/app.sh" "$here/slow.cgi" "$ctx/"
for version in 1.0 2.0; do
  docker_cli build -q -t "$repo:$version" --build-arg VERSION="$version" "$ctx" >/dev/null
  echo ">> built $repo:$version"
done
