#!/usr/bin/env bash
# ansible-test sanity on a copy of the tracked files placed under ansible_collections/zerodown/rollout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dest=.tmp/sanity/ansible_collections/zerodown/rollout
rm -rf .tmp/sanity && mkdir -p "$dest"
# what git tracks plus what is new and not ignored: the files a commit would contain
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  mkdir -p "$dest/$(dirname "$f")"; cp -p "$f" "$dest/$f"
done
py=$("$root/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cd "$dest"
# ansible-test wants a git tree to list files, as a fresh clone has
git init -q . && git add -A >/dev/null && git -c user.email=ci@localhost -c user.name=ci commit -qm sanity
"$root/.venv/bin/ansible-test" sanity --color no --python "$py" --requirements ${SANITY_ARGS:-} "$@"
