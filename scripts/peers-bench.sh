#!/usr/bin/env bash
# Side-by-side SPS: the JAX peer (../shared/peers/jax_ppo.py) and nq-train --bench
# at the same shape (256 envs x 128 steps, 4 epochs x 4 minibatches, 225->256->256
# actor and critic), alternated round by round so host noise hits both alike.
# Usage: scripts/peers-bench.sh [ROUNDS] [NQ_TRAIN_BINARY...]
#   PY=/path/to/python (with jax, flax, optax), JSON=results.jsonl, UPDATES=4 (nq-train),
#   PHASES="1 2" (nq-train curricula to run; the peer has one env)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
shift || true
bins=("$@")
[ ${#bins[@]} -eq 0 ] && bins=("${CARGO_TARGET_DIR:-target}/release/nq-train")
py=${PY:-python3}
json=${JSON:-/tmp/peers-bench.jsonl}
updates=${UPDATES:-4}
phases=${PHASES:-1}
peers=$(cd ../shared/peers && pwd)
for r in $(seq 1 "$rounds"); do
  out=$(cd "$peers" && "$py" jax_ppo.py --num-envs 256 --updates 20 --warmup 2 --json "$json" | tail -1)
  echo "round $r jax_ppo: $out"
  for b in "${bins[@]}"; do
    for phase in $phases; do
      res=$("$b" --bench --quiet --phase "$phase" --updates "$updates" --num-envs 256 --data data 2>/dev/null | tail -1)
      echo "round $r $b: $res"
      echo "{\"round\":$r,\"binary\":\"$b\",\"nq_train\":$res}" >> "$json"
    done
  done
done
