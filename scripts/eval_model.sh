#!/usr/bin/env bash
# Read the held-out sets with one model: the numbers docs/TRAINING.md and the model card give.
#
#     bash scripts/eval_model.sh MODEL OUT [SETS]
#
# MODEL is an exported model folder (config.json, encoder.onnx, decoder.onnx) or a training
# checkpoint (.pt), which is first exported the way the shipped model is (staff crops, int8,
# read by the decoder and the CTC head together with a beam of 4, crops cut 3.5 staff
# spaces above and below, a staff left flagged or unsure read again 1.1, 1.25 and 1.4 times
# wider and its readings voted measure by measure) into OUT/model. SETS is any of "pages
# crops crops30 systems sample" (default: all five; crops30 is the second pair of held-out
# crop sets). Results go to OUT as JSON and logs;
# the sets come from scripts/build_eval_sets.sh under DATA (default /work/data).
set -euo pipefail
MODEL=$1
OUT=$2
SETS=${3:-pages crops crops30 systems sample}
DATA=${DATA:-/work/data}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"

if [ -f "$MODEL" ]; then
    deepmusic-ocr export "$MODEL" "$OUT/model" --unit staff --quantize --decoder hybrid --beam 4 \
        --include-weights --margin-spaces 3.5 --second-stretch 1.1 1.25 1.4 --second-below -0.2 \
        --second-vote > "$OUT/export.log"
    MODEL=$OUT/model
fi

for set in $SETS; do
    case $set in
    pages)
        python "$ROOT/benchmarks/bench_engravers.py" "$DATA/engravers" --model "$MODEL" \
            --out "$OUT/pages.json" > "$OUT/pages.log" 2>&1 ;;
    crops)
        python "$ROOT/benchmarks/eval_model.py" "$MODEL" --data "$DATA/val3" \
            --data "$DATA/val3-clean" --limit 600 --out "$OUT/crops.json" > "$OUT/crops.log" 2>&1 ;;
    crops30)
        python "$ROOT/benchmarks/eval_model.py" "$MODEL" --data "$DATA/val30" \
            --data "$DATA/val30-clean" --limit 600 --out "$OUT/crops30.json" \
            > "$OUT/crops30.log" 2>&1 ;;
    systems)
        for s in valsys valsys-clean valsys-corpus; do
            python "$ROOT/benchmarks/eval_systems.py" "$MODEL" --data "$DATA/$s" \
                --out "$OUT/$s.json" > "$OUT/$s.log" 2>&1
        done ;;
    sample)
        deepmusic-ocr transcribe "$ROOT/resources/samples/bwv66.6-scan.png" --model "$MODEL" \
            -o "$OUT/sample.musicxml" --force > "$OUT/sample.log" 2>&1 || true
        python - "$ROOT/resources/samples/bwv66.6.musicxml" "$OUT/sample.musicxml" \
            >> "$OUT/sample.log" <<'PY'
import sys
from omr_engine.model.metrics import edit_distance
from omr_engine.notation.music21_io import read_score
from omr_engine.notation.tokens import score_to_tokens

truth, read = (score_to_tokens(read_score(path)[0]) for path in sys.argv[1:3])
ids: dict[str, int] = {}
errors = edit_distance([ids.setdefault(t, len(ids)) for t in read],
                       [ids.setdefault(t, len(ids)) for t in truth])
print(f"sample page: {errors} of {len(truth)} tokens wrong")
PY
        ;;
    *)
        echo "unknown set: $set (pages, crops, crops30, systems, sample)" >&2; exit 2 ;;
    esac
    echo "$set: done ($OUT)"
done
