#!/usr/bin/env bash
# One device call (issue 3): train variants of config/pretrain_dualstream_s_gpu.yaml side by side on one GPU for
# TRAIN_S seconds, score each with `dualstream eval propagate` on the DAVIS sequences (on the GPU), keep the best
# checkpoint, then time the encoder (bench/gpu_encoder.py). Data comes from DATA (training videos) and DAVIS.
# Output in $OUT: sweep.json (all scores), best_model.json, the best model split in <16 MB parts, logs.tar.gz.
set -u
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
DATA=${DATA:-.devdata/train}; DAVIS=${DAVIS:-.devdata/davis2016}; TRAIN_S=${TRAIN_S:-330}; OUT=${OUT:-/tmp/out}
DEVICE=${DEVICE:-cuda}; MAX_FRAMES=${MAX_FRAMES:-0}
mkdir -p runs/sweep "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
CFG=config/pretrain_dualstream_s_gpu.yaml
declare -A VARIANTS=(
  [base]=""
  [bigcrop]="data.crop=[384,384] loss.colour_radius=12 optim.batch_size=8"
  [wide]="model.overrides.local_channels=[32,64,128] model.overrides.local_depths=[1,2,3]"
  [teacher]="run.export=teacher"
  [long]="data.clip_len=6 data.gaps=[1,2,4,8,16,32] loss.colour_gaps=[1,3,5]"
)
for name in "${!VARIANTS[@]}"; do
  sets=(); for kv in ${VARIANTS[$name]}; do sets+=(--set "$kv"); done
  python3 -m perception.cli pretrain --config $CFG --data $DATA/* --out runs/sweep/$name --no-progress \
    --set run.max_seconds=$TRAIN_S --set run.device=$DEVICE "${sets[@]}" > runs/sweep/$name.log 2>&1 &
done
wait
for name in "${!VARIANTS[@]}"; do tail -n 3 runs/sweep/$name.log; tail -n 2 runs/sweep/$name/train_log.csv; done
for name in "${!VARIANTS[@]}"; do
  [ -f runs/sweep/$name/model.safetensors ] || continue
  python3 -m perception.cli eval propagate --davis $DAVIS --seqs car-roundabout,parkour --device $DEVICE --max-frames $MAX_FRAMES \
    --checkpoint runs/sweep/$name/model.safetensors --json runs/sweep/$name/eval.json > runs/sweep/$name.eval.log 2>&1 &
done
[ "$DEVICE" = cuda ] && ( python3 bench/gpu_encoder.py --json runs/sweep/gpu_encoder.json > runs/sweep/gpu_encoder.log 2>&1 || true ) &
wait
python3 - <<'PY'
import json, os, pathlib, shutil
out = pathlib.Path(os.environ.get("OUT", "/tmp/out")); sweep = {}
for d in sorted(pathlib.Path("runs/sweep").iterdir()):
    f = d / "eval.json"
    if f.is_file():
        m = json.loads(f.read_text())["methods"]
        sweep[d.name] = {k: {"JF": v["JF"], "J": v["J"], "F": v["F"],
                             "per_sequence": {s: r["JF"] for s, r in v["per_sequence"].items()}} for k, v in m.items()}
        sweep[d.name]["steps"] = json.loads((d / "model.json").read_text())["provenance"]["steps"]
print(json.dumps(sweep, indent=1))
(out / "sweep.json").write_text(json.dumps(sweep, indent=1))
if sweep:
    best = max(sweep, key=lambda n: sweep[n]["checkpoint"]["JF"])
    print("best", best, sweep[best]["checkpoint"]["JF"])
    shutil.copy(f"runs/sweep/{best}/model.json", out / "best_model.json")
    pathlib.Path("/tmp/best.txt").write_text(best)
PY
B=$(cat /tmp/best.txt 2>/dev/null) && split -b 15900K -d runs/sweep/$B/model.safetensors "$OUT/best_model.part"
cp runs/sweep/gpu_encoder.json "$OUT/" 2>/dev/null; cat runs/sweep/gpu_encoder.log | tail -n 40
tar czf "$OUT/logs.tar.gz" runs/sweep/*.log runs/sweep/*/train_log.csv runs/sweep/*/eval.json runs/sweep/*/model.json runs/sweep/*/config.yaml 2>/dev/null
ls -la "$OUT"
