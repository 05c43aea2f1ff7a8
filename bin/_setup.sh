# Shared by bin/run and bin/test: a local virtualenv with the pinned requirements.
# Re-installs only when requirements.txt changed (its hash is kept in the venv).
set -euo pipefail
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    echo "==> creating virtualenv in .venv"
    "$PYTHON" -m venv .venv
fi
REQ_HASH="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat .venv/.requirements.sha256 2>/dev/null || true)" != "$REQ_HASH" ]; then
    echo "==> installing pinned requirements"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$REQ_HASH" > .venv/.requirements.sha256
fi
# shellcheck disable=SC1091
source .venv/bin/activate
