#!/usr/bin/env bash
# ansible-test sanity on a copy of the tracked files placed under ansible_collections/zerodown/rollout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mkdir -p .tmp
work=$(mktemp -d "$root/.tmp/sanity.XXXXXX")   # one per run: parallel runs do not collide
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/zerodown/rollout
mkdir -p "$dest"
# what git tracks plus what is new and not ignored: the files a commit would contain
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [ -e "$f" ] || continue
  mkdir -p "$dest/$(dirname "$f")"; cp -p "$f" "$dest/$f"
done
# ansible-test bootstraps pip in its sanity venvs with a script it downloads from a host that is not
# reachable from every network. When it is not cached, provide an equivalent: pip from Python's own
# ensurepip wheel installs the requested pip from the configured package index.
pip_ver=$("$root/.venv/bin/python" - <<'PY'
import re, pathlib, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
m = re.search(r"\bpip='([^']+)'", src.read_text()) if src.exists() else None
print(m.group(1) if m else "")
PY
)
if [ -n "$pip_ver" ]; then
  shim=~/.ansible/test/cache/get_pip_${pip_ver//./_}.py
  if [ ! -s "$shim" ] || grep -q "Stand-in for ansible-test" "$shim"; then
    mkdir -p "$(dirname "$shim")"
    cat > "$shim" <<'PY'
# Stand-in for ansible-test's get-pip bootstrap: run pip from ensurepip's bundled wheel.
import glob, os, sys, ensurepip
wheel = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl")))[-1]
sys.path.insert(0, wheel)
from pip._internal.cli.main import main
# get-pip's own flags: --no-setuptools/--no-wheel mean "do not add them", which plain pip does anyway
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall"] + args))
PY
  fi
fi
py=$("$root/.venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# SANITY_ARGS="--test shellcheck --test pep8": extra ansible-test options, split on blanks (no globbing)
read -r -a extra_args <<<"${SANITY_ARGS:-}"
cd "$dest"
# ansible-test wants a git tree to list files, as a fresh clone has
git init -q . && git add -A >/dev/null && git -c user.email=ci@localhost -c user.name=ci commit -qm sanity
"$root/.venv/bin/ansible-test" sanity --color no --python "$py" --requirements "${extra_args[@]}" "$@"
