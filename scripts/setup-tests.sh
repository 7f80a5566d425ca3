#!/usr/bin/env bash
# Installs what the tests need on a fresh machine (the bare-metal target for
# the no_std proof, the Python packages the interop tests use to write and read
# files the way users' tools do) and proves the runtime builds without std.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

# The runtime and the core of the formats must build where there is no std and no allocator.
cargo build --quiet -p nq-runtime -p nq-formats --target thumbv7em-none-eabihf
