#!/bin/bash
# One device call (2026-11-27): fashion-mnist generator_jitter screen (N = 0/1/2/4, paired by seed) and the
# BN suite (cnn-bn teacher trained here, then pre-dfkd+ with and without jitter), selftest alongside.
# Env: DEV (cuda), TEP (BN teacher epochs, 10), ITS (e.g. "--iterations 2" for a dry run), DL (deadline s).
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 DFKD_DATA=$PWD/devdata OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
DEV=${DEV:-cuda}; TEP=${TEP:-10}; DL=${DL:-520}; OUTD=${OUT:-/tmp/out}; mkdir -p $OUTD
T0=$(date +%s)
left() { echo $(( DL - ($(date +%s) - T0) )); }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
G=runs/gpu; rm -rf $G; mkdir -p $G
BF=--bf16; [ "$DEV" = cpu ] && BF=--no-bf16
( timeout 240 python3 -m dfkd train-teacher --dataset fashion-mnist --arch cnn-bn --epochs $TEP $BF \
    --out $G/bnteacher --device $DEV --quiet > $G/bnteacher.log 2>&1; echo "teacher rc=$?" >> $G/bnteacher.log ) &
TPID=$!; sleep 3
if [ "$DEV" = cuda ]; then
  ( timeout 400 python3 -m dfkd selftest --device cuda --no-speed --no-torchrun --json $G/selftest.json > $G/selftest.log 2>&1
    echo "selftest rc=$?" >> $G/selftest.log ) &
fi
run() { suite=$1; teacher=$2; name=$3; seed=$4; shift 4; d=$G/$name-s$seed; mkdir -p $d; cp -r $teacher $d/teacher
  rm -f $d/teacher/teacher-state.pt
  timeout $(left) python3 -m dfkd bench --suite $suite --methods pre-dfkd+ --seeds $seed --out $d \
    --device $DEV --quiet $ITS "$@" > $d.log 2>&1 & }
FT=devdata/teachers/fmnist
for s in 0 1 2 3; do
  run fashion-mnist $FT fm-base $s; run fashion-mnist $FT fm-jit2 $s --set generator_jitter=2
done
for s in 0 1; do
  run fashion-mnist $FT fm-jit1 $s --set generator_jitter=1; run fashion-mnist $FT fm-jit4 $s --set generator_jitter=4
done
wait $TPID; echo "t=$(( $(date +%s) - T0 ))s bn teacher: $(tail -2 $G/bnteacher.log | tr '\n' ' ') $(tail -1 $G/bnteacher/metrics.jsonl 2>/dev/null | cut -c1-200)"
if [ -f $G/bnteacher/teacher.pt ]; then
  for s in 0 1; do
    run fashion-mnist-bn $G/bnteacher bn-base $s; run fashion-mnist-bn $G/bnteacher bn-jit2 $s --set generator_jitter=2
  done
fi
while [ $(left) -gt 0 ] && [ -n "$(jobs -r)" ]; do
  sleep 20; echo "t=$(( $(date +%s) - T0 ))s running=$(jobs -r | wc -l) $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
done
sleep 3
tail -4 $G/selftest.log 2>/dev/null
for f in $G/*/*/metrics.jsonl; do
  echo "$f: $(grep -c '"eval"' $f) evals; $(grep '"eval"' $f | tail -1 | cut -c1-120)"; done
for f in $G/*/results.json; do python3 -c "
import json; r=json.load(open('$f'))
for x in r['runs']: print('$f'.split('/')[2], x['method'], x['seed'], round(x['mu'],2), round(x['final'],2), round(x['peak'],2), round(x['max_drop'],2), round(x['wall_seconds']))"; done
for f in $G/*.log; do grep -l -i "error\|traceback" $f; done 2>/dev/null | head
tar czf $OUTD/gpu-results.tgz --exclude=state.pt --exclude=teacher-state.pt --exclude='runs/gpu/*/teacher' $G
cp $G/bnteacher/teacher.pt $OUTD/bn-teacher.pt 2>/dev/null
ls -la $OUTD
