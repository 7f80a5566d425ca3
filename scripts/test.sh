#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (the bare-metal target for the no_std proof, and the Python packages the
# interop tests use to write and read files the way users' tools do), then runs
# every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

# The runtime and the core of the formats must build where there is no std and no allocator.
cargo build --quiet -p nq-runtime -p nq-formats --target thumbv7em-none-eabihf

cargo test --workspace "$@"
