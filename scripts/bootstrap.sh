#!/usr/bin/env bash
# Create the project's virtual environments with pinned dependencies.
#   .venv         newest Python >= 3.12 found (newest ansible-core), falls back to 3.11
#   .venv-oldest  Python 3.11 with the oldest supported ansible-core (units only)
#   .venv-target-oldest  (with the argument target-oldest) Python 3.9 with the oldest supported kubernetes,
#                 docker and requests: the interpreter the modules run under in the oldest-target pass
# Re-running is cheap: a venv is rebuilt only when its requirement files changed.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  # newest first; pyenv installs are looked up too since they are not always on PATH
  local v cand
  for v in "$@"; do
    for cand in "python$v" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v"*/bin/python"$v"; do
      if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        command -v "$cand"; return 0
      fi
    done
  done
  return 1
}

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

make_venv() {
  local dir=$1 py=$2; shift 2
  local stamp; stamp="$("$py" -c 'import sys; print(sys.version)' | tr -d '\n')-$(stamp_of "$@")"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  local pyver; pyver=$("$py" -c 'import sys; print(sys.version)' | tr -d '\n')
  if [ -x "$dir/bin/python" ] && [ "$(cut -d- -f1 "$dir/.stamp" 2>/dev/null)" = "$(echo "$pyver" | cut -d- -f1)" ]; then
    # same interpreter: update in place, so running processes keep a working environment
    echo ">> updating $dir from $*"
  else
    echo ">> creating $dir with $("$py" --version) from $*"
    rm -rf "$dir"
    "$py" -m venv "$dir"
    "$dir/bin/python" -m pip install -q --upgrade pip
  fi
  local req args=()
  for req in "$@"; do args+=(-r "$req"); done
  "$dir/bin/python" -m pip install -q "${args[@]}"
  echo "$stamp" > "$dir/.stamp"
}

if [ "${1:-}" = target-oldest ]; then
  target_py=$(find_python 3.9) || {
    echo "ERROR: no Python 3.9 with venv found for the oldest-target test pass; install it (for example" \
         "'pyenv install 3.9') or put python3.9 on PATH" >&2; exit 1; }
  make_venv .venv-target-oldest "$target_py" requirements/target-oldest.txt
  exit 0
fi

main_py=$(find_python 3.13 3.12 3.11) || {
  echo "ERROR: no Python 3.11+ with venv found; install python3 and python3-venv" >&2; exit 1; }
case "$("$main_py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" in
  3.11) main_req=requirements/oldest.txt ;;   # ansible-core >= 2.20 needs Python 3.12
  *)    main_req=requirements/newest.txt ;;
esac
make_venv .venv "$main_py" "$main_req" requirements/test.txt

if [ "${ZD_SKIP_OLDEST:-0}" != 1 ]; then
  old_py=$(find_python 3.11 3.12) || { echo "ERROR: no Python 3.11 for the oldest ansible-core" >&2; exit 1; }
  make_venv .venv-oldest "$old_py" requirements/oldest.txt requirements/unit.txt
fi
