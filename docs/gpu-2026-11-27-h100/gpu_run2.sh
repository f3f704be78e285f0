#!/bin/bash
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 DFKD_DATA=$PWD/devdata OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
DL=${DL:-250}; OUTD=${OUT:-/tmp/out}; mkdir -p $OUTD; T0=$(date +%s)
left() { echo $(( DL - ($(date +%s) - T0) )); }
G=runs/gpu2; rm -rf $G; mkdir -p $G
run() { suite=$1; teacher=$2; name=$3; seed=$4; shift 4; d=$G/$name-s$seed; mkdir -p $d; cp -r $teacher $d/teacher
  timeout $(left) python3 -m dfkd bench --suite $suite --methods pre-dfkd+ --seeds $seed --out $d \
    --device cuda --quiet "$@" > $d.log 2>&1 & }
F=devdata/teachers/fmnist; B=devdata/teachers/bn
run fashion-mnist $F fm-jit4 2 --set generator_jitter=4; run fashion-mnist $F fm-jit4 3 --set generator_jitter=4
run fashion-mnist $F fm-jit8 0 --set generator_jitter=8; run fashion-mnist $F fm-jit8 1 --set generator_jitter=8
run fashion-mnist-bn $B bn-jit4 0 --set generator_jitter=4; run fashion-mnist-bn $B bn-jit4 1 --set generator_jitter=4
while [ $(left) -gt 0 ] && [ -n "$(jobs -r)" ]; do sleep 15; echo "t=$(( $(date +%s) - T0 ))s running=$(jobs -r | wc -l)"; done
for f in $G/*/*/metrics.jsonl; do echo "$f: $(grep '"eval"' $f | python3 -c "import sys,json; print(' '.join(f\"{json.loads(l)['test_acc']:.1f}\" for l in sys.stdin))")"; done
for f in $G/*/results.json; do python3 -c "
import json; r=json.load(open('$f'))
for x in r['runs']: print('$f'.split('/')[2], x['seed'], round(x['mu'],2), round(x['final'],2), round(x['peak'],2), round(x['max_drop'],2), round(x['wall_seconds']))"; done
tar czf $OUTD/gpu2.tgz --exclude=state.pt --exclude=teacher-state.pt --exclude='runs/gpu2/*/teacher' $G
