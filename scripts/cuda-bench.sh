#!/usr/bin/env bash
# The CUDA throughput check of issue 4, as one short script for a lent GPU
# machine (which has no registry access, so nothing is built there).
#
# Here:   CARGO_TARGET_DIR=/work/target-trainer cargo build --release -p nq-trainer --features cuda
#         mkdir -p .gpu-bin && cp "$CARGO_TARGET_DIR/release/nq-train" .gpu-bin/ && strip .gpu-bin/nq-train
# There:  bash scripts/cuda-bench.sh .gpu-bin/nq-train        (carry .gpu-bin)
#
# Prints the card, then one JSON line per run from `nq-train --bench`: SPS and
# where the time went (rollout forward / env / other, update gather /
# forward-backward / optimizer). The first update compiles and autotunes the
# kernels, so runs use several updates and the figure to quote is
# `sps_median_after_first_update`. Each run has its own time limit, so one slow size cannot
# eat the whole lease.
set -uo pipefail
bin=${1:?usage: cuda-bench.sh NQ_TRAIN_BINARY [ENVS...]}
shift
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(256 4096)
data=${DATA:-data}
updates=${UPDATES:-6}
limit=${LIMIT_S:-200}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
nproc
for envs in "${sizes[@]}"; do
    for phase in ${PHASES:-1}; do
        echo "# --device cuda --phase $phase --num-envs $envs --updates $updates"
        timeout "$limit" "$bin" --bench --quiet --device cuda --phase "$phase" \
            --updates "$updates" --num-envs "$envs" --data "$data"
        echo "# exit $?"
    done
done
