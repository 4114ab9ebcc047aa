#!/usr/bin/env bash
# Settings sweep of `dualstream eval adapt` on a many-core machine (the lent device's CPUs): every (setting, shift)
# pair as its own single-threaded process, all at once, then one JSON per setting merged from its shifts.
#   bench/adapt_sweep.sh TASK DATA OUT 'NAME:--set k=v --set k=v' 'NAME2:...' ...
# TASK: propagate | detect; DATA: the folder holding davis2016/ (and videos/, mot15/ for detect).
# Only the J&F / AP50 scores and guard counts are meant for reading: fps is skipped (`--fps-frames 0`), since the
# speed bar is about the robot's CPU, not this one. Run the final one-run measurement on the target machine.
set -u
task=$1; data=$2; out=$3; shift 3
mkdir -p "$out"
shifts="none lowlight lowcontrast fog noise blur"
pids=()
for setting in "$@"; do
  name=${setting%%:*}; args=${setting#*:}
  for s in $shifts; do
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=1 python3 -m perception.cli eval adapt --task "$task" --shifts "$s" --threads 1 \
      --fps-frames 0 --davis "$data/davis2016" --video "$data/videos/vtest.avi" \
      --gt "$data/mot15/PETS09-S2L1/gt/gt.txt" --json "$out/${name}_$s.json" $args \
      > "$out/${name}_$s.log" 2>&1 &
    pids+=($!)
  done
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
python3 - "$out" "$@" <<'PY'
import json, sys
from pathlib import Path
from perception.eval.adapt import summarise
out = Path(sys.argv[1])
for setting in sys.argv[2:]:
    name = setting.split(":", 1)[0]
    parts = sorted(out.glob(f"{name}_*.json"))
    shifts, guard = {}, {}
    for p in parts:
        r = json.loads(p.read_text())
        shifts.update(r["shifts"])
        for m, g in r["guard"].items():
            acc = guard.setdefault(m, {"rollbacks": 0, "trips": 0, "updates": 0})
            for k in acc:
                acc[k] += g[k]
    order = [s for s in ("none", "lowlight", "lowcontrast", "fog", "noise", "blur") if s in shifts]
    shifts = {s: shifts[s] for s in order}
    summary = summarise(shifts, guard, None) if len(order) == 6 else None
    (out / f"{name}.json").write_text(json.dumps({"setting": setting, "shifts": shifts, "guard": guard,
                                                  "summary": summary}, indent=1))
    print(name, json.dumps(shifts), json.dumps(summary))
PY
exit $status
