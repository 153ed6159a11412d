#!/bin/bash
# Usage: PYTHONPATH=src python -m tools.pack_faces packed/ && bash tools/gpu_check.sh packed/  (CUDA smoke, data speed, paper-tier speed; a few minutes)
# Paper-tier speed is measured alone and with 3 trainings sharing the GPU. Writes to $OUT.
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
D=${1:?usage: tools/gpu_check.sh DATA_ROOT (made by tools/pack_faces.py)}; OUT=${OUT:-gpu-check}; mkdir -p $OUT
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
nproc
python3 -c "import torch, lightning; print(torch.__version__, lightning.__version__)"
run() {  # name config extra-args...
  local n=$1 c=$2; shift 2
  timeout 200 python3 -m arasfsr.cli train $c --data-root $D --out /tmp/$n "$@" > /tmp/$n.log 2>&1
  echo "$n rc=$?"; tail -c 400 /tmp/$n.log | tr '\r' '\n' | tail -2
  grep -E "Error|error" /tmp/$n.log | tail -5
  cp /tmp/$n/model.json $OUT/$n.json 2>/dev/null
  python3 - "$n" <<'PY'
import csv, sys, statistics
try:
    rows = list(csv.DictReader(open(f"/tmp/{sys.argv[1]}/logs/version_0/metrics.csv")))
except OSError as e:
    print(e); sys.exit()
sp = [float(r["steps_per_s"]) for r in rows if r.get("steps_per_s")]
print(sys.argv[1], "steps/s median of last half:", round(statistics.median(sp[len(sp)//2:]), 2) if sp else None,
      "val:", [round(float(r["val_psnr"]), 2) for r in rows if r.get("val_psnr")])
PY
}
D=$D python3 - <<'PY'
import os, time, torch
from torch.utils.data import DataLoader
from pathlib import Path
from arasfsr.training.config import load_config
from arasfsr.training.data import StepBatches, StepSampler, list_images
cfg = load_config("paper/A-arasfsr")
files = list_images(Path(os.environ["D"]) / "utkface" / "train")
for w in (1, 8):
    dl = DataLoader(StepBatches(files, cfg["data"], 16, 0), batch_size=None, sampler=StepSampler(0), num_workers=w)
    it = iter(dl); next(it); t = time.time(); n = 0
    for _ in range(30 if w == 1 else 150):
        next(it); n += 16
    print(f"data pipeline paper/A, {w} workers: {n / (time.time() - t):.0f} samples/s")
PY
run smoke smoke/A-arasfsr --accelerator cuda
run paperA paper/A-arasfsr --set train.iterations=600 --set train.val_every=300 --set train.log_every=20
# three models at once on the one GPU
run paperA3 paper/A-arasfsr --set train.iterations=300 --set train.val_every=300 --set train.log_every=20 > $OUT/A3.txt &
run paperL3 paper/A-liif --set train.iterations=300 --set train.val_every=300 --set train.log_every=20 > $OUT/L3.txt &
run paperP3 paper/P-arasfsr --set train.iterations=300 --set train.val_every=300 --set train.log_every=20 > $OUT/P3.txt &
wait
cat $OUT/A3.txt $OUT/L3.txt $OUT/P3.txt
