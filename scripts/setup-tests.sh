#!/usr/bin/env bash
# Installs what the tests need on a fresh machine and proves the runtime builds
# without std:
# - the bare-metal target for the no_std proof;
# - .venv-test, a Python virtual environment of the tests' own, created empty
#   (no system site packages) and filled with the pinned packages of
#   scripts/requirements-test.txt. The tests run Python from there
#   (test-support's `python()`), never from PATH, so a package installed by
#   hand cannot hide a missing install step. It is rebuilt from nothing
#   whenever the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true

venv=.venv-test
requirements=scripts/requirements-test.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x "$venv/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "setup-tests: creating $venv from nothing ($requirements)" >&2
    python3 -m venv --clear "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$requirements"
    echo "$want" >"$stamp"
fi
# Nothing outside the pinned set (and pip's own) may be importable from it.
"$venv/bin/python" - <<'PY'
import sys
assert sys.prefix != sys.base_prefix, "not a virtual environment"
assert not any("site-packages" in p and sys.prefix not in p for p in sys.path), sys.path
PY

# The runtime and the core of the formats must build where there is no std and no allocator.
cargo build --quiet -p nq-runtime -p nq-formats --target thumbv7em-none-eabihf
