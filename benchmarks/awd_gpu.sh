#!/usr/bin/env bash
# The AWD-LSTM against plain LSTM comparison of
# benchmarks/results/awd_whole_10k/plan-gpu-b80.txt, for a GPU machine with no network:
# for each seed, the half-dropout AWD model then the plain one (500 warm-up steps), batch 80,
# MINUTES wall-clock minutes of training each, one process, one run after the other.
#
#   benchmarks/awd_gpu.sh SEEDS LIMIT_S OUT [MINUTES]     e.g.  benchmarks/awd_gpu.sh 0,1 470 out
#
# SEEDS: comma-separated; LIMIT_S: the process is stopped after that many seconds (what finished
# is still copied); OUT: where the log, each run's metrics.jsonl and the curves go (the run
# directories, with their checkpoints, stay in a temporary folder); MINUTES: default 1.5.
# The corpus must be in the cache already: on a machine with network, run
#   XDG_CACHE_HOME=$PWD/.devcache python -c "from rnnkit.data.datasets import load_corpus; load_corpus('shakespeare')"
# (or any command that trains on the default data) and carry .devcache to the GPU machine.
set -u
SEEDS=$1 LIMIT=$2 OUT=$3 MINUTES=${4:-1.5}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$PWD/.devcache}
HALF="dropout=0.15 input_dropout=0.15 hidden_dropout=0.1 embedding_dropout=0.025 weight_drop=0.15"
TAG=s${SEEDS//,/} RUNS=$(mktemp -d)
mkdir -p "$OUT"
date -u > "$OUT/clock-$TAG.txt"
timeout "$LIMIT" python3 benchmarks/lm.py --awd --max-vocab 10000 --eval-every 1000 \
    --minutes "$MINUTES" --threads 2 --seeds "$SEEDS" --awd-models awd,plain --awd-variant adamw \
    --set $HALF batch_size=80 eval_each_epoch=true \
    --plain-set warmup_steps=500 batch_size=80 eval_each_epoch=true \
    --out "$RUNS" > "$OUT/runs-$TAG.log" 2>&1
echo "rc=$?" >> "$OUT/runs-$TAG.log"
date -u >> "$OUT/clock-$TAG.txt"
cp "$RUNS"/*.png "$OUT/" 2>/dev/null
for f in "$RUNS"/*/metrics.jsonl; do
    [ -e "$f" ] && cp "$f" "$OUT/$(basename "$(dirname "$f")").metrics.jsonl"
done
tail -n 14 "$OUT/runs-$TAG.log"
