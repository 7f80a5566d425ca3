#!/usr/bin/env bash
# The CUDA throughput check of issue 4, as one script for a lent GPU machine
# (which has no registry access, so nothing is built there).
#
# Here:   bash scripts/cuda-bench.sh --prepare     (builds .gpu-bin/: nq-train with
#         `cuda`, nq-train-autotune with `cuda-autotune`, and a copy of the JAX peer)
# There:  bash scripts/cuda-bench.sh .gpu-bin/nq-train      (carry .gpu-bin)
#
# Steps, each under its own time limit so one slow step cannot eat the lease:
# 1. the card, then one `nq-train --bench` JSON line per size and fusion
#    setting, and one with the rollout's forward on the host (ROLLOUT=host):
#    SPS (quote `sps_median_after_first_update`: the first update
#    compiles the kernels), the backend and its device check (fused CUDA is
#    checked against the CPU and left for the unfused backend if it
#    disagrees: tracel-ai/burn#5122), and where the host's time went;
# 2. PROFILE=1 (default): one run at the first size with cubecl's kernel
#    profiler on (a cubecl.toml in its working folder). Each kernel is timed
#    on the GPU, which serialises them, so read the shares, not the SPS:
#    `cuda-profile-top.txt` sums the time per kernel name;
# 3. if .gpu-bin/nq-train-autotune exists: the same sizes with burn's
#    autotune at CUBECL_AUTOTUNE_LEVEL (default minimal);
# 4. if .gpu-bin/peers/jax_ppo.py exists: the JAX peer (same network and
#    batch shape) on the same GPU, the reference for what the card can do.
# Everything lands in $OUT (the device tool's folder) or ./cuda-bench-out.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = "--prepare" ]; then
    set -e
    target=${CARGO_TARGET_DIR:-$here/target}
    target_autotune=${AUTOTUNE_TARGET_DIR:-$target-autotune}
    mkdir -p "$here/.gpu-bin/peers"
    (cd "$here" && CARGO_TARGET_DIR=$target cargo build --release -p nq-trainer --features cuda)
    cp "$target/release/nq-train" "$here/.gpu-bin/nq-train"
    if [ -z "${NO_AUTOTUNE:-}" ]; then
        (cd "$here" && CARGO_TARGET_DIR=$target_autotune \
            cargo build --release -p nq-trainer --features cuda-autotune)
        cp "$target_autotune/release/nq-train" "$here/.gpu-bin/nq-train-autotune"
    fi
    strip "$here"/.gpu-bin/nq-train*
    peers=${PEERS:-$here/../shared/peers}
    [ -f "$peers/jax_ppo.py" ] && cp "$peers/jax_ppo.py" "$peers/market.py" "$here/.gpu-bin/peers/"
    du -sh "$here/.gpu-bin"
    exit 0
fi

bin=$(realpath "${1:?usage: cuda-bench.sh --prepare | NQ_TRAIN_BINARY [ENVS...]}")
shift
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(256 4096)
data=$(realpath "${DATA:-data}")
updates=${UPDATES:-6}
limit=${LIMIT_S:-120}
out=${OUT:-$here/cuda-bench-out}
mkdir -p "$out"
bin_dir=$(dirname "$bin")

# One `nq-train --bench` run; its JSON line goes to stdout and bench.jsonl.
bench() {
    local label=$1 envs=$2 fusion=$3 binary=$4
    shift 4
    echo "# $label: --cuda-fusion $fusion --phase $phase --num-envs $envs --updates $updates $*"
    timeout "$limit" "$binary" --bench --quiet --device cuda --cuda-fusion "$fusion" \
        --phase "$phase" --updates "$updates" --num-envs "$envs" --data "$data" "$@" |
        sed "s/^{/{\"label\":\"$label\",/" | tee -a "$out/bench.jsonl"
    echo "# exit ${PIPESTATUS[0]}"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
echo "# cpu cores: $(nproc)"

for envs in "${sizes[@]}"; do
    for phase in ${PHASES:-1}; do
        for fusion in ${FUSION:-on off}; do
            bench default "$envs" "$fusion" "$bin"
        done
        for rollout in ${ROLLOUT:-host}; do
            bench "rollout-$rollout" "$envs" on "$bin" --rollout-on "$rollout"
        done
    done
done

if [ "${PROFILE:-1}" = 1 ]; then
    phase=1
    prof=$(mktemp -d)
    cat >"$prof/cubecl.toml" <<EOF
[profiling.logger]
level = "basic"
file = "$prof/profile.log"
EOF
    echo "# profile: cubecl kernel timings, fusion on, ${sizes[0]} envs, 3 updates"
    (cd "$prof" && updates=3 && bench profiled "${sizes[0]}" on "$bin")
    python3 "$here/scripts/cuda-profile-summary.py" "$prof/profile.log" \
        --updates 3 >"$out/cuda-profile-top.txt" && head -40 "$out/cuda-profile-top.txt"
    gzip -c "$prof/profile.log" >"$out/cuda-profile.log.gz"
fi

if [ -x "$bin_dir/nq-train-autotune" ]; then
    for envs in "${sizes[@]}"; do
        phase=1
        CUBECL_AUTOTUNE_LEVEL=${AUTOTUNE_LEVEL:-minimal} \
            bench "autotune-${AUTOTUNE_LEVEL:-minimal}" "$envs" on "$bin_dir/nq-train-autotune"
    done
fi

if [ -f "$bin_dir/peers/jax_ppo.py" ]; then
    for envs in "${sizes[@]}"; do
        echo "# JAX peer on this GPU: --num-envs $envs"
        (cd "$bin_dir/peers" && timeout "$limit" python3 jax_ppo.py --num-envs "$envs" \
            --updates 20 --warmup 2 --json "$out/peers.jsonl")
        echo "# exit $?"
    done
fi

echo "# summary (sps_median_after_first_update)"
python3 - "$out/bench.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    print(f"{r.get('num_envs'):>6} envs  {r.get('label', '?'):<18} {r.get('backend', '?'):<28} "
          f"{r.get('sps_median_after_first_update', 0):>12,.0f} SPS")
EOF
