#!/bin/bash
# Second device call (2026-11-28, the time left): the two winners of gpu_run.sh together, and lr_vae 2e-3.
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 DFKD_DATA=$PWD/runs/devdata OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
DL=${DL:-290}; OUTD=${OUT:-/tmp/out}; mkdir -p $OUTD; T0=$(date +%s)
left() { echo $(( DL - ($(date +%s) - T0) )); }
G=runs/gpu2; rm -rf $G; mkdir -p $G
run() { name=$1; seed=$2; shift 2; d=$G/$name-s$seed; mkdir -p $d; cp -r runs/devdata/teachers/fmnist $d/teacher
  timeout $(left) python3 -m dfkd bench --suite fashion-mnist --methods pre-dfkd+ --seeds $seed --out $d \
    --device cuda --quiet "$@" > $d.log 2>&1 & }
for s in 0 1 2 3; do
  run vae2x-lrvae $s --set vae_updates=2 --set iterations=1600 --set eval_every=80 --set lr_vae=1e-3
  run lrvae2 $s --set lr_vae=2e-3
done
while [ $(left) -gt 0 ] && [ -n "$(jobs -r)" ]; do sleep 15; echo "t=$(( $(date +%s) - T0 ))s running=$(jobs -r | wc -l)"; done
sleep 2
for f in $G/*/*/metrics.jsonl; do echo "$f: $(grep '"eval"' $f | python3 -c "import sys,json; print(' '.join(f\"{json.loads(l)['test_acc']:.1f}\" for l in sys.stdin))")"; done
tar czf $OUTD/gpu2.tgz --exclude=state.pt --exclude=teacher-state.pt --exclude='runs/gpu2/*/teacher' $G
