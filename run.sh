#!/usr/bin/env bash
# e2a: one command to set up and run.   ./run.sh demo | test | ui | e2a <args>
# This script only creates the virtualenv; configuration (data directory, Dagster home, instance
# storage) is resolved by e2a_assets/settings.py when `e2a` runs.
set -euo pipefail
cd "$(dirname "$0")"

pick_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "run.sh: Python 3.11 or 3.12 is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

setup() {
  if [ ! -x .venv/bin/python ]; then
    echo "run.sh: creating .venv" >&2
    "$(pick_python)" -m venv .venv
  fi
  # Reinstall only when the declared dependencies changed.
  stamp=".venv/.e2a-installed"
  want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "run.sh: installing e2a and its dependencies into .venv" >&2
    # -qq: errors only (the build backend's notices about editable installs are not for users).
    .venv/bin/python -m pip install -qq --upgrade pip
    .venv/bin/python -m pip install -qq -e ".[test]"
    echo "$want" > "$stamp"
  fi
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  demo) setup; exec .venv/bin/e2a demo "$@" ;;
  test) setup; exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@" ;;
  ui)   setup; exec .venv/bin/e2a ui "$@" ;;
  e2a)  setup; exec .venv/bin/e2a "$@" ;;
  *) echo "usage: ./run.sh demo | test | ui | e2a <command>" >&2; exit 2 ;;
esac
