#!/usr/bin/env bash
# One device call (GPU machine: 16 cores, one H100): fine-tune the staff model on fresh
# synthetic data and bring the exported model back. See docs/DEVICE.md for the `run` call.
#
#   1. install the carried packages (.devsite/ or .whl/, from scripts/fetch_device_wheels.sh)
#      into /tmp/site
#   2. build staff crops on SYNTH_WORKERS cores in the background (train split), and a small
#      validation set (val split) beside it
#   3. as soon as MIN_SHARDS shards exist, train segment 1 on the GPU (from the shipped
#      weights if resources/models/omr-small/weights.pt exists) until the build is stopped
#   4. stop the build (finished shards are kept), then train segment 2: it resumes from
#      last.pt on every shard made, for as many steps as the time left allows at the rate
#      segment 1 measured, so the cosine schedule ends on time
#   5. export best.pt (else last.pt) with --include-weights and copy the model directory,
#      log.csv and this run's log to $OUT
#   6. in the time left, time the exported model's reading on this device
#      (benchmarks/bench_torch.py: ms per staff, fp32 and bf16) into $OUT/speed.json
#
# Why two segments: the streaming dataset (train without --curriculum) reads the shard list
# once, when training starts, and --curriculum loads the crops into memory once; neither
# sees shards finished later. Restarting the trainer (it resumes from last.pt) is the way to
# train on data that was still being built. Streaming is used because it starts at once.
#
# Everything below the knobs is bounded by BUDGET_S: each training segment and the export
# run under `timeout`, and the build is stopped before segment 2. With BUDGET_S=510 the
# script ends by about 8.5 minutes; give the `run` call timeout_s 600.
#
# Local smoke test (CPU, tiny numbers):
#   INSTALL_WHEELS=0 DEVICE=cpu CONFIG=tiny BATCH=2 COUNT=24 SHARD_SIZE=4 SYNTH_WORKERS=1 \
#   VAL_COUNT=4 MIN_SHARDS=2 SYNTH_S=60 BUDGET_S=220 EVAL_EVERY=25 EVAL_S=2 CKPT_EVERY=10 \
#   LOADER_WORKERS_1=1 LOADER_WORKERS_2=1 STARTUP_S=15 EXPORT_RESERVE_S=40 WORK=/tmp/dv_omr \
#   OUT=/tmp/dv_out nice -n 15 bash scripts/device_train.sh
set -euo pipefail
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")/.."
REPO=$PWD
T0=$(date +%s)

# ---- knobs (override with environment variables) ----
BUDGET_S=${BUDGET_S:-510}            # the whole script, seconds from its start
EXPORT_RESERVE_S=${EXPORT_RESERVE_S:-40}  # kept for export, copying and the speed benchmark (H200, session 17: 6 s + 16 s)
SYNTH_S=${SYNTH_S:-240}              # how long the train-set build runs before it is stopped
SYNTH_WORKERS=${SYNTH_WORKERS:-13}   # synth processes (16 cores: 2 loaders and the trainer too)
SHARD_SIZE=${SHARD_SIZE:-250}        # small shards: the first ones are ready sooner
COUNT=${COUNT:-200000}               # more than SYNTH_S can make; the build is cut off
SEED=${SEED:-100}                    # use a new seed each session (new pieces and crops)
GENERATED=${GENERATED:-0.4}          # share of generated pieces in the crops built (synth --generated;
                                     # the held-out errors are mostly in generated music: session 35)
VAL_COUNT=${VAL_COUNT:-256}          # validation crops (val split: pieces never trained on)
VAL_SEED=${VAL_SEED:-1}
MIN_SHARDS=${MIN_SHARDS:-20}         # training starts on this many shards (5,000 crops: fewer would be seen many times over)
CONFIG=${CONFIG:-small}
BATCH=${BATCH:-64}
LR=${LR:-5e-4}
CTC_WEIGHT=${CTC_WEIGHT:-1.0}        # the shipped model reads with its CTC head (run 4d: 1.0)
GRAMMAR_WEIGHT=${GRAMMAR_WEIGHT:-0.1}
CTC_GRAMMAR_WEIGHT=${CTC_GRAMMAR_WEIGHT:-0}  # grammar loss on the CTC head's frames (train
                                     # --ctc-grammar-weight; 0.3 over 200 CPU steps changed nothing
                                     # measurable, docs/TRAINING.md row 4q-g0.3: try 1.0 here)
CTC_UPSAMPLE=${CTC_UPSAMPLE:-}       # CTC frames per column; empty = the shipped weights' (2 since run 4n,
                                     # which read held-out crops 0.05 SER better than 4k's one; run 4o,
                                     # shipped, kept it: docs/TRAINING.md)
TOKEN_ORDER=${TOKEN_ORDER:-onset}     # target order of a measure's voices (train --token-order); the shipped
                                     # run 4t reads onset order, so keep it unless starting over:
                                     # "onset" merges them by onset with <voice:N> switches, the
                                     # order a CTC head can read (docs/TRAINING.md, session 18)
STRETCH=${STRETCH:-}                 # "LO HI": resize crops across afresh on every read (train
                                     # --stretch; run 4q: "0.85 1.3"). Empty: as built.
REFRAME=${REFRAME:-}                 # "LO HI": frame staff crops afresh on every read, the paper above
                                     # and below the staff lines cut or padded to LO..HI staff spaces
                                     # (train --reframe; run 4o: "1.5 5.0"). Empty: as built.
AMP=${AMP:-1}                        # 1 = bf16 autocast; 0 = fp32. The first H200 round's NaN under
                                     # bf16 fits cuDNN attention's bug (pytorch#196678), now turned
                                     # off in training (train.configure_cuda); should bf16 still give
                                     # NaN, the trainer skips the step and falls back to fp32 after 3.
                                     # H200, seeds 2626/2627: 3,023 bf16 steps trained, losses finite
                                     # throughout (2627's trainer log: no step skipped)
WARMUP=${WARMUP:-300}
EVAL_EVERY=${EVAL_EVERY:-1000}
EVAL_S=${EVAL_S:-15}                 # guess: one validation (greedy decoding of VAL_COUNT crops)
CKPT_EVERY=${CKPT_EVERY:-100}        # a segment cut off by timeout loses at most this many steps
LOADER_WORKERS_1=${LOADER_WORKERS_1:-2}  # data loader processes while the build runs
LOADER_WORKERS_2=${LOADER_WORKERS_2:-14} # ... after it is stopped (H200: 8 gave 1,950 samples/s on stored crops; 14 gave 963/s degrading online)
STARTUP_S=${STARTUP_S:-30}           # a trainer start (imports, grammar table, val set, CUDA)
SEG2_SPEEDUP=${SEG2_SPEEDUP:-}       # segment 2 vs segment 1 samples/s. Unset: with DEGRADE_ONLINE the
                                     # loaders bound both segments, so 0.85 x LOADER_WORKERS_2 /
                                     # LOADER_WORKERS_1 (H200, seeds 2626/2627: 184/s with 2 loaders
                                     # then 963/s with 14; 392/s with 6 then 693/s with 14; seeds
                                     # 2801/2802: 146/s with 2 then 1,020/s, 527/s with 6 then
                                     # 1,016/s; 0.7 left 2801 123 s of its budget unused); else 3
                                     # (seed 2611: 490/s with 2 beside the build, 1,950/s with 8 after)
SEG2_MAX_RATE=${SEG2_MAX_RATE:-900}  # ... but never more than this many samples/s: 14 loaders degrading online
                                     # feed the H200 770-970/s whatever segment 1 ran at (seeds 3301/3302:
                                     # 227/s and 663/s in segment 1, 800-970/s and 770-960/s in segment 2,
                                     # planned for 1,350/s and 1,314/s, so both were cut short). 0: no cap
DEGRADE_ONLINE=${DEGRADE_ONLINE:-1.0} # >0: build clean crops (--strength-max 0) and degrade them
                                     # afresh on every read up to this strength (train
                                     # --degrade-online), so crops seen many times look different
                                     # each time. 0: build degraded crops and read them as stored.
                                     # Loaders, not the GPU, bound the rate (about 65-90 samples/s
                                     # per loader on the H200 machine). Seed 2626 (1.0): val SER
                                     # still falling after 6 passes over its ~24k crops
INIT=${INIT:-resources/models/omr-small/weights.pt}  # the shipped model's weights (fp16)
EXTRA_PACK=${EXTRA_PACK:-}           # crops built here that the device cannot build (LilyPond and
                                     # MuseScore engravings), packed by scripts/pack_crops.py into a
                                     # .tar.xz the call carries; unpacked to $WORK/data/extra
EXTRA_REPEAT=${EXTRA_REPEAT:-1}      # how many times the pack's crops count in the training pool
EXPORT_ARGS=${EXPORT_ARGS:---decoder hybrid --beam 4}  # add --quantize for int8 ONNX
DEVICE=${DEVICE:-cuda}
INSTALL_WHEELS=${INSTALL_WHEELS:-1}
WORK=${WORK:-/tmp/omr}
OUT=${OUT:-$WORK/out}                # set by the device tool; its files come back

DEADLINE=$((T0 + BUDGET_S))
TRAIN_END=$((DEADLINE - EXPORT_RESERVE_S))
RUN=$WORK/run
LOG=$OUT/device_train.log             # written as it goes: it comes back even if cut off
mkdir -p "$WORK" "$OUT"
rm -rf "$RUN" "$WORK/model"
exec > >(tee -a "$LOG") 2>&1

now() { date +%s; }
say() { echo "[$(($(now) - T0))s] $*"; }
shards() {  # finished shards of a dataset folder (its manifest is replaced atomically)
  python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['shards']))" \
    "$1/manifest.json" 2>/dev/null || echo 0
}
progress() {  # the last "step N/M loss L R/s" line a trainer printed
  tr '\r' '\n' <"$1" | grep -E '^step [0-9]+/' | tail -1 || true
}

SYNTH_PID=""
VAL_PID=""
finish() {  # always: stop the builds, bring back what there is
  local rc=$?
  for pid in $SYNTH_PID $VAL_PID; do kill -TERM "$pid" 2>/dev/null || true; done
  [[ -f $RUN/log.csv ]] && cp "$RUN/log.csv" "$OUT/log.csv"
  say "exit $rc; files in $OUT:"
  ls -la "$OUT" "$OUT"/omr-small 2>/dev/null || true
  # the trainers' and builds' own output, appended to the log (not through tee)
  for f in "$WORK"/train*.log "$WORK"/synth*.log; do
    [[ -f $f ]] && { echo "==== $f"; tr '\r' '\n' <"$f" | grep -v '^$' | tail -200; }
  done >>"$LOG" 2>/dev/null || true
}
trap finish EXIT

say "device_train: budget ${BUDGET_S}s, seed $SEED, config $CONFIG, batch $BATCH"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

# ---- 1. wheels ----
# .devsite/site.tar.xz (fetch_device_wheels.sh --pack: 38 MiB) if it came, else .whl/*.whl
# (56 MiB), whichever the run carried. Python unpacks: the image may have no xz.
if [[ $INSTALL_WHEELS == 1 ]]; then
  if [[ -f .devsite/site.tar.xz ]]; then
    python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')" \
      .devsite/site.tar.xz /tmp/site
  else
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
  fi
  export PYTHONPATH=/tmp/site:$REPO
else
  export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c "
import music21, verovio, pymupdf, resvg_py, converter21, torch
print('music21', music21.__version__, 'verovio', verovio.toolkit(False).getVersion(),
      'pymupdf', pymupdf.VersionBind, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())
"
say "wheels ready"
if [[ -n $EXTRA_PACK ]]; then
  rm -rf "$WORK/data/extra" && mkdir -p "$WORK/data/extra"
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1], 'r|xz').extractall(sys.argv[2], filter='data')" \
    "$EXTRA_PACK" "$WORK/data/extra"
  say "extra crops unpacked: $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['count'])" "$WORK/data/extra/manifest.json")"
fi

# ---- 2. synthetic data, in the background ----
clean=()
online=()
if awk -v d="$DEGRADE_ONLINE" 'BEGIN { exit !(d > 0) }'; then
  clean=(--strength-max 0)
  online=(--degrade-online "$DEGRADE_ONLINE")
fi
# Each seed builds into its own folder: a second call on a still-warm machine with a new SEED
# would otherwise find the last call's folder and stop ("built with other settings"), leaving
# only the old crops (session 17, seed 2702). Folders of earlier seeds still here are trained on too.
TRAIN_DATA=$WORK/data/train-$SEED
python3 -m omr_engine.cli synth --out "$TRAIN_DATA" --count "$COUNT" \
  --workers "$SYNTH_WORKERS" --seed "$SEED" --unit staff --split train --generated "$GENERATED" \
  --shard-size "$SHARD_SIZE" "${clean[@]}" >"$WORK/synth_train.log" 2>&1 &
SYNTH_PID=$!
SYNTH_END=$(($(now) + SYNTH_S))
python3 -m omr_engine.cli synth --out "$WORK/data/val" --count "$VAL_COUNT" \
  --workers 0 --seed "$VAL_SEED" --unit staff --split val \
  --shard-size "$VAL_COUNT" >"$WORK/synth_val.log" 2>&1 &
VAL_PID=$!

while kill -0 "$VAL_PID" 2>/dev/null || (($(shards "$TRAIN_DATA") < MIN_SHARDS)); do
  kill -0 "$SYNTH_PID" 2>/dev/null || { say "train build died"; tail -20 "$WORK/synth_train.log"; exit 1; }
  (($(now) > TRAIN_END - 120)) && { say "no data in time"; tail -n 5 "$WORK"/synth_*.log; exit 1; }
  sleep 2
done
wait "$VAL_PID" || { say "val build failed"; tail -20 "$WORK/synth_val.log"; exit 1; }
VAL_PID=""
say "data ready: $(shards "$TRAIN_DATA") train shards, val $(tail -2 "$WORK/synth_val.log" | head -1)"

# ---- 3. training segment 1, while the build goes on ----
init=()
if [[ -f $INIT ]]; then init=(--init-from "$INIT"); else say "no $INIT: training from scratch"; fi
data=()
for d in "$WORK"/data/train-*; do
  [[ -f $d/manifest.json ]] && data+=(--data "$d")
done
if [[ -n $EXTRA_PACK ]]; then
  for ((i = 0; i < EXTRA_REPEAT; i++)); do data+=(--data "$WORK/data/extra"); done
fi
say "training data: ${data[*]}"
common=("${data[@]}" --val-data "$WORK/data/val" --val-samples "$VAL_COUNT"
  --config "$CONFIG" --unit staff --device "$DEVICE" --out "$RUN" --batch-size "$BATCH"
  --lr "$LR" --warmup "$WARMUP" --ctc-weight "$CTC_WEIGHT" --grammar-weight "$GRAMMAR_WEIGHT"
  --eval-every "$EVAL_EVERY" --checkpoint-every "$CKPT_EVERY" "${online[@]}")
[[ $AMP == 1 ]] || common+=(--no-amp)
[[ -n $CTC_UPSAMPLE ]] && common+=(--ctc-upsample "$CTC_UPSAMPLE")
[[ $TOKEN_ORDER != canonical ]] && common+=(--token-order "$TOKEN_ORDER")
[[ $CTC_GRAMMAR_WEIGHT != 0 ]] && common+=(--ctc-grammar-weight "$CTC_GRAMMAR_WEIGHT")
# shellcheck disable=SC2206  # REFRAME is two numbers, split on purpose
[[ -n $REFRAME ]] && common+=(--reframe $REFRAME)
# shellcheck disable=SC2206  # STRETCH is two numbers, split on purpose
[[ -n $STRETCH ]] && common+=(--stretch $STRETCH)
seg1_s=$((SYNTH_END - $(now)))
((seg1_s < STARTUP_S + 40)) && seg1_s=$((STARTUP_S + 40))
((seg1_s > TRAIN_END - $(now) - 60)) && seg1_s=$((TRAIN_END - $(now) - 60))
say "segment 1: ${seg1_s}s, $LOADER_WORKERS_1 loader workers"
rc=0
timeout -s INT -k 20 "$seg1_s" python3 -m omr_engine.cli train "${common[@]}" "${init[@]}" \
  --steps 1000000 --workers "$LOADER_WORKERS_1" >"$WORK/train1.log" 2>&1 || rc=$?
line=$(progress "$WORK/train1.log")
say "segment 1 ended (rc $rc: 124 = cut off as planned): $line"
[[ -f $RUN/last.pt ]] || { tail -30 "$WORK/train1.log"; exit 1; }

# ---- 4. stop the build, train segment 2 on all of it ----
kill -TERM "$SYNTH_PID" 2>/dev/null || true
wait "$SYNTH_PID" || true
SYNTH_PID=""
tail -3 "$WORK/synth_train.log" | tr '\r' '\n' | tail -3
say "build stopped: $(shards "$TRAIN_DATA") shards"

# The step last.pt holds, and the rate: samples/s of segment 1's last 50 steps as it
# printed them, else (under 50 steps) last.pt's steps over its wall_s (time in the loop).
read -r step1 rate_ckpt < <(python3 -c "
import sys, torch
c = torch.load(sys.argv[1], map_location='cpu', weights_only=False)
print(c['step'], c['step'] * int(sys.argv[2]) / max(c['wall_s'], 1e-9))" "$RUN/last.pt" "$BATCH") || true
rate=$(awk '{sub("/s", "", $5); print $5}' <<<"$line")
rate=${rate:-$rate_ckpt}
if [[ -z $SEG2_SPEEDUP ]]; then
  SEG2_SPEEDUP=3
  awk -v d="$DEGRADE_ONLINE" 'BEGIN { exit !(d > 0) }' &&
    SEG2_SPEEDUP=$(awk -v a="$LOADER_WORKERS_1" -v b="$LOADER_WORKERS_2" 'BEGIN { print 0.85 * b / a }')
fi
rate=$(awk -v r="${rate:-0}" -v f="$SEG2_SPEEDUP" -v m="$SEG2_MAX_RATE" \
  'BEGIN { x = r * f; if (m > 0 && x > m) x = m; print x }')
left=$((TRAIN_END - $(now)))
# Time to train t: left = startup + t + (1 + steps/EVAL_EVERY) validations of EVAL_S each,
# with steps = 0.9 x rate/batch x t (the 0.9 is slack: the timeout would cut the cosine).
steps2=$(awk -v s="${step1:-0}" -v r="${rate:-0}" -v b="$BATCH" -v left="$left" \
  -v up="$STARTUP_S" -v e="$EVAL_S" -v every="$EVAL_EVERY" 'BEGIN {
    sps = 0.9 * r / b; t = (left - up - e) / (1 + e * sps / every)
    n = int(sps * t); if (n < 0) n = 0; print s + n }')
say "segment 2: ${left}s left, ${rate:-?} samples/s expected -> train to step $steps2"
if ((steps2 > ${step1:-0} + 20 && left > STARTUP_S + 30)); then
  rc=0
  timeout -s INT -k 20 "$left" python3 -m omr_engine.cli train "${common[@]}" \
    --steps "$steps2" --workers "$LOADER_WORKERS_2" >"$WORK/train2.log" 2>&1 || rc=$?
  say "segment 2 ended (rc $rc; 0 = reached step $steps2): $(progress "$WORK/train2.log")"
else
  say "no time for segment 2"
fi
grep -v '^$' "$RUN/log.csv" | tail -n 12 || true

# ---- 5. export and copy back ----
ckpt=$RUN/best.pt
[[ -f $ckpt ]] || ckpt=$RUN/last.pt
left=$((DEADLINE - $(now)))
((left < 30)) && left=30
say "export $ckpt (${left}s)"
timeout -k 10 "$left" python3 -m omr_engine.cli export "$ckpt" "$WORK/model" --unit staff \
  --include-weights $EXPORT_ARGS
mkdir -p "$OUT/omr-small"
cp "$WORK/model"/* "$OUT/omr-small/"
du -b "$OUT/omr-small"/* | awk '{printf "%10.1f KiB  %s\n", $1/1024, $2}'

# ---- 6. reading speed on this device (PyTorch: onnxruntime here has no CUDA provider) ----
left=$((DEADLINE - $(now)))
if ((left > 20)); then
  say "reading speed (${left}s)"
  timeout -k 5 "$left" python3 benchmarks/bench_torch.py "$WORK/model" --data "$WORK/data/val" \
    --device "$DEVICE" --crops "$VAL_COUNT" --threads 4 --out "$OUT/speed.json" || true
fi
say "done"
