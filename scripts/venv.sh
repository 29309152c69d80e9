# Sourced by the scripts here: make (once) and use a virtual environment for byoc,
# $BYOC_VENV or .venv in the checkout, so nothing is installed into the system Python
# (Debian's refuses pip installs anyway). Needs python3 with venv (Debian: python3-venv).
BYOC_VENV=${BYOC_VENV:-$PWD/.venv}
if [ ! -x "$BYOC_VENV/bin/python" ]; then
    echo "== creating $BYOC_VENV"
    python3 -m venv "$BYOC_VENV"
fi
export VIRTUAL_ENV=$BYOC_VENV PATH=$BYOC_VENV/bin:$PATH
pip_install() { "$BYOC_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
