#!/usr/bin/env bash
# Builds LeRobot's own Python environment once (requirements-lerobot.txt) and prints its python.
# The environment lives outside the checkout, keyed by the requirements' hash, so fresh clones and CI
# reuse it: FOREMAN_LEROBOT_HOME (default ~/.cache/foreman)/lerobot-<hash>. Offline from the package
# registries only. Safe to run concurrently (a lock) and again (a stamp).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
home="${FOREMAN_LEROBOT_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/foreman}"
hash="$(sha256sum requirements-lerobot.txt | cut -c1-12)"
env_dir="$home/lerobot-$hash"
mkdir -p "$home"
exec 9>"$home/lerobot-$hash.lock"
flock 9
if [ ! -f "$env_dir/.installed" ]; then
  rm -rf "$env_dir"
  echo "building LeRobot's environment in $env_dir (once; several GB)" >&2
  "$PYTHON" -m venv "$env_dir"
  pip=("$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check)
  # Everything but lerobot with its dependencies resolved; lerobot itself without (its torch pin).
  "${pip[@]}" $(grep -vE '^\s*(#|$|lerobot==)' requirements-lerobot.txt) 2>&1 | sed '/is ignored: it is neither/d' >&2
  "${pip[@]}" --no-deps "$(grep -E '^lerobot==' requirements-lerobot.txt)" 2>&1 | sed '/is ignored: it is neither/d' >&2
  "$env_dir/bin/python" -c "import lerobot.robots, lerobot.cameras.opencv, lerobot.cameras.zmq, scservo_sdk, zmq" >&2
  touch "$env_dir/.installed"
  # Environments of earlier requirements only take disk (several GB each).
  for old in "$home"/lerobot-*/; do [ "${old%/}" = "$env_dir" ] || rm -rf "${old%/}" "${old%/}.lock"; done
fi
echo "$env_dir/bin/python"
