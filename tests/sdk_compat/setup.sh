#!/usr/bin/env bash
# Creates the Python venv with Alibaba Cloud's official SDKs used by tests/sdk_compat.rs.
#
#   bash tests/sdk_compat/setup.sh
#
# Venv: $ALICLOUD_SDK_VENV, else ${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-db-operator/sdk-venv
# (the same rule as the test). Interpreter: $PYTHON, else python3 (>= 3.8).
# Idempotent: a stamp holding the hash of requirements.txt and the interpreter version makes a
# second run a no-op; a changed requirements.txt rebuilds the venv from scratch.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
req="$here/requirements.txt"
venv="${ALICLOUD_SDK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/alicloud-db-operator/sdk-venv}"
python="${PYTHON:-python3}"
stamp="$venv/.sdk-compat-stamp"

if ! command -v "$python" >/dev/null; then
  echo "error: $python not found; the official-SDK check needs Python >= 3.8 with venv" >&2
  exit 1
fi
want="$( { sha256sum "$req" | cut -d' ' -f1; "$python" -c 'import sys; print(sys.version)'; } )"

mkdir -p "$(dirname "$venv")"
# Serialise concurrent runs (several CI jobs, or a developer and a test) on one venv.
if command -v flock >/dev/null; then
  exec 9>"$venv.lock"
  flock 9
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$venv/bin/python" -c '' 2>/dev/null; then
  echo "sdk venv up to date: $venv"
  exit 0
fi

echo "creating sdk venv: $venv"
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$req"
"$venv/bin/python" - <<'EOF'
import alibabacloud_dbs20190306.client, alibabacloud_rds20140815.client  # noqa: F401
import alibabacloud_sts20150401.client, alibabacloud_tea_openapi.client  # noqa: F401
EOF
printf '%s\n' "$want" >"$stamp"
echo "sdk venv ready: $venv"
