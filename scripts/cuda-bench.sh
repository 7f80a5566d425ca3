#!/usr/bin/env bash
# The CUDA throughput check of issue 4, as one short script for a lent GPU
# machine (which has no registry access, so nothing is built there).
#
# Here:   CARGO_TARGET_DIR=/work/target-trainer cargo build --release -p nq-trainer --features cuda
#         mkdir -p .gpu-bin && cp "$CARGO_TARGET_DIR/release/nq-train" .gpu-bin/ && strip .gpu-bin/nq-train
# There:  bash scripts/cuda-bench.sh .gpu-bin/nq-train        (carry .gpu-bin)
#
# Prints the card, then one JSON line per run from `nq-train --bench`: SPS,
# the backend and its device check (fused CUDA is checked against the CPU
# and left for the unfused backend if it disagrees: tracel-ai/burn#5122), and
# where the time went (rollout forward / env / other, update gather /
# forward-backward / optimizer). FUSION="on off" also times the unfused
# backend. The first update compiles and autotunes the
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
        for fusion in ${FUSION:-on}; do
            echo "# --device cuda --cuda-fusion $fusion --phase $phase --num-envs $envs --updates $updates"
            timeout "$limit" "$bin" --bench --quiet --device cuda --cuda-fusion "$fusion" \
                --phase "$phase" --updates "$updates" --num-envs "$envs" --data "$data"
            echo "# exit $?"
        done
    done
done
