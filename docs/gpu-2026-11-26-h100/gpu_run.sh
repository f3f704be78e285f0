#!/bin/bash
# One device call: cifar10-cpu teacher + methods, fashion-mnist replay screens (3 seeds), selftest; all in parallel.
# Env: DEV (cuda), TEP (teacher epochs), ITS (e.g. "--iterations 2" for a dry run), DL (deadline seconds).
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 DFKD_DATA=$PWD/devdata OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
DEV=${DEV:-cuda}; TEP=${TEP:-30}; DL=${DL:-560}; OUTD=${OUT:-/tmp/out}; mkdir -p $OUTD
T0=$(date +%s)
left() { echo $(( DL - ($(date +%s) - T0) )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
G=runs/gpu; rm -rf $G; mkdir -p $G
( timeout 270 python3 -m dfkd train-teacher --dataset cifar10 --arch wrn-16-2 --epochs $TEP --batch-size 256 \
    --out $G/c10teacher --device $DEV --quiet > $G/teacher.log 2>&1; echo "teacher rc=$?" >> $G/teacher.log ) &
TPID=$!
if [ "$DEV" = cuda ]; then
  ( python3 -m dfkd selftest --device cuda --no-speed --no-torchrun --json $G/selftest.json > $G/selftest.log 2>&1
    echo "selftest rc=$?" >> $G/selftest.log ) &
fi
fm() { name=$1; seed=$2; shift 2; d=$G/fm-$name-s$seed; mkdir -p $d; cp -r devdata/teachers/fmnist $d/teacher
  timeout $(left) python3 -m dfkd bench --suite fashion-mnist --methods pre-dfkd+ --seeds $seed --out $d \
    --device $DEV --quiet $ITS "$@" > $d.log 2>&1 & }
for s in 0 1 2; do
  fm base $s; fm bal4 $s --set replay_balance=4; fm bal4nn $s --set replay_balance=4 --set replay_nudge=false
done
wait $TPID; echo "t=$(( $(date +%s) - T0 ))s teacher: $(tail -1 $G/teacher.log) $(tail -1 $G/c10teacher/metrics.jsonl 2>/dev/null | cut -c1-200)"
c10() { m=$1; seed=$2; d=$G/c10-$m-s$seed; mkdir -p $d; cp -r $G/c10teacher $d/teacher; rm -f $d/teacher/teacher-state.pt
  timeout $(left) python3 -m dfkd bench --suite cifar10-cpu --methods $m --seeds $seed --out $d \
    --device $DEV --quiet $ITS > $d.log 2>&1 & }
if [ -f $G/c10teacher/teacher.pt ]; then
  for m in pre-dfkd+ pre-dfkd dfad cmi adi; do c10 $m 0; done; c10 pre-dfkd+ 1
fi
while [ $(left) -gt 0 ] && [ -n "$(jobs -r)" ]; do
  sleep 20; echo "t=$(( $(date +%s) - T0 ))s running=$(jobs -r | wc -l) $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
done
sleep 3
tail -3 $G/selftest.log 2>/dev/null
for f in $G/*/*/metrics.jsonl; do
  echo "$f: $(grep -c '"eval"' $f) evals; $(grep '"eval"' $f | tail -1 | cut -c1-160)"; done
for f in $G/*/results.json; do python3 -c "
import json,sys; r=json.load(open('$f'))
for x in r['runs']: print('$f'.split('/')[2], x['method'], x['seed'], round(x['mu'],2), round(x['final'],2), round(x['max_drop'],2), round(x['wall_seconds']))"; done
tar czf $OUTD/gpu-results.tgz --exclude=state.pt --exclude=teacher-state.pt --exclude='runs/gpu/*/teacher' $G
ls -la $OUTD
