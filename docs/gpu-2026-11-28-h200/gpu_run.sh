#!/bin/bash
# One device call (2026-11-28): three one-change screens on top of the fashion-mnist suite's pre-dfkd+
# (generator_jitter=8), seeds 0-3 paired with the suite's own runs in the same call; the BN suite's cnn-bn teacher
# trained alongside (for the CPU), and the self-check on the current code.
# Env: DEV (cuda), ITS (e.g. "--iterations 2" for a dry run), DL (deadline s). Data and teacher: runs/devdata.
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 DFKD_DATA=$PWD/runs/devdata OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
DEV=${DEV:-cuda}; DL=${DL:-510}; OUTD=${OUT:-/tmp/out}; mkdir -p $OUTD
T0=$(date +%s)
left() { echo $(( DL - ($(date +%s) - T0) )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
G=runs/gpu; rm -rf $G; mkdir -p $G
BF=--bf16; [ "$DEV" = cpu ] && BF=--no-bf16
TEP=${TEP:-10}
( timeout 300 python3 -m dfkd train-teacher --dataset fashion-mnist --arch cnn-bn --epochs $TEP $BF \
    --out $G/bnteacher --device $DEV --quiet > $G/bnteacher.log 2>&1; echo "teacher rc=$?" >> $G/bnteacher.log ) &
if [ "$DEV" = cuda ]; then
  ( timeout 450 python3 -m dfkd selftest --device cuda --no-speed --no-torchrun --json $G/selftest.json > $G/selftest.log 2>&1
    echo "selftest rc=$?" >> $G/selftest.log ) &
fi
run() { name=$1; seed=$2; shift 2; d=$G/$name-s$seed; mkdir -p $d; cp -r runs/devdata/teachers/fmnist $d/teacher
  timeout $(left) python3 -m dfkd bench --suite fashion-mnist --methods pre-dfkd+ --seeds $seed --out $d \
    --device $DEV --quiet "$@" $ITS > $d.log 2>&1 & }
for s in 0 1 2 3; do
  run base $s
  run adv10 $s --set w_adversarial=10
  run vae2x $s --set vae_updates=2 --set iterations=1600 --set eval_every=80
  run lrvae $s --set lr_vae=1e-3
done
while [ $(left) -gt 0 ] && [ -n "$(jobs -r)" ]; do
  sleep 20; echo "t=$(( $(date +%s) - T0 ))s running=$(jobs -r | wc -l) $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
done
sleep 2
tail -3 $G/bnteacher.log; tail -1 $G/bnteacher/metrics.jsonl 2>/dev/null | cut -c1-200
tail -4 $G/selftest.log 2>/dev/null
for f in $G/*/*/metrics.jsonl; do echo "$f: $(grep '"eval"' $f | python3 -c "import sys,json; print(' '.join(f\"{json.loads(l)['test_acc']:.1f}\" for l in sys.stdin))")"; done
for f in $G/*/results.json; do python3 -c "
import json; r=json.load(open('$f'))
for x in r['runs']: print('$f'.split('/')[2], x['seed'], round(x['mu'],2), round(x['final'],2), round(x['peak'],2), round(x['max_drop'],2), round(x['wall_seconds']))"; done
for f in $G/*.log; do grep -l -i "error\|traceback" $f; done 2>/dev/null | head
tar czf $OUTD/gpu-results.tgz --exclude=state.pt --exclude=teacher-state.pt --exclude='runs/gpu/*/teacher' $G
cp $G/bnteacher/teacher.pt $OUTD/bn-teacher.pt 2>/dev/null
ls -la $OUTD
