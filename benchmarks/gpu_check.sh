#!/usr/bin/env bash
# The GPU checks of docs/gpu.md, in stages that each fit in a 10-minute command:
#
#   bash benchmarks/gpu_check.sh STAGE OUTDIR [--tiny]
#     prepare the GPU study's first call: its 8 jobs timed at once for 2 epochs, the page
#             timed, the quick gpu tests (benchmarks/gpu_study.py prepare; 200 s)
#     study   the GPU study: 8 models, the paper's nets and MNIST protocol, as many epochs
#             (<= 100) as fit, 10,000-sample Inception FIDs, the page (gpu_study.py run; 480 s)
#     tests   python3 -m pytest -m gpu (the gpu-marked tests)
#     bench   train_speed.py --nets paper (fp32, bf16), jobs per GPU K=1,2,4,8, the CelebA nets
#             on synthetic data in CelebA's layout, paper_budget.py from those numbers
#     fid     the 10,000-sample Inception FID, timed in parts (fid_speed.py)
#     paper   WAE-MMD on Fashion-MNIST with the MNIST paper protocol (100 epochs) and the
#             10,000-sample Inception FID; resumes where a killed attempt stopped
#     all     tests, bench, fid, paper, in that order (about 30 minutes: not one device call)
#
# Every stage appends JSON lines to OUTDIR/results.jsonl; logs go to OUTDIR/<stage>.log.
# A failed stage does not stop the next; the script exits 1 when any stage failed, and 2,
# before running anything, when the fid or paper stage would lack the Inception weights.
# It installs nothing: hydra-core, omegaconf, torch-fidelity, ... must be importable already
# (.gpu/site, where `gpu_bundle.py unpack` installs the bundle's wheels, is on PYTHONPATH).
# Environment (the defaults in .gpu/ are what `gpu_bundle.py unpack` puts there):
#   WAEBENCH_INCEPTION_WEIGHTS   the FID Inception weights file (no download on the machine;
#                                default: .gpu/inception.pth when there)
#   WAEBENCH_FASHION_MNIST_DIR   a folder with Fashion-MNIST's four IDX .gz files (default:
#                                .gpu/data/fashion_mnist, else /usr/share/datasets/fashion-mnist)
#   WAEBENCH_MNIST_DIR           MNIST's four IDX files (default: .gpu/data/mnist when there)
#   STUDY_ARGS                   extra gpu_study.py options for prepare and study,
#                                e.g. "--models 4" or "--compile" or "--budget 400"
#   PYTHON                       the interpreter (default python3)
#   PAPER_OVERRIDES              extra waebench-train overrides for the paper stage,
#                                e.g. "trainer.precision=bf16-mixed trainer.benchmark=true"
# --tiny (or WAEBENCH_GPU_CHECK_TINY=1): CPU, small networks and counts, so that every stage
# runs end to end on a machine without a GPU (its numbers mean nothing).
set -euo pipefail

USAGE="usage: gpu_check.sh prepare|study|tests|bench|fid|paper|all OUTDIR [--tiny]"
STAGE=${1:?$USAGE}
OUTDIR=${2:?$USAGE}
TINY=${WAEBENCH_GPU_CHECK_TINY:-0}
[[ "${3:-}" == "--tiny" ]] && TINY=1
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
RESULTS=$OUTDIR/results.jsonl
BUNDLE=$REPO/.gpu
SITE=$([[ -d "$BUNDLE/site" ]] && echo ":$BUNDLE/site" || true)
export PYTHONPATH="$REPO/src$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 WANDB_MODE=offline
export WAEBENCH_CACHE_DIR=$OUTDIR/cache
[[ -z "${WAEBENCH_INCEPTION_WEIGHTS:-}" && -f "$BUNDLE/inception.pth" ]] &&
  export WAEBENCH_INCEPTION_WEIGHTS=$BUNDLE/inception.pth
[[ -z "${WAEBENCH_MNIST_DIR:-}" && -d "$BUNDLE/data/mnist" ]] &&
  export WAEBENCH_MNIST_DIR=$BUNDLE/data/mnist
FASHION=${WAEBENCH_FASHION_MNIST_DIR:-}
[[ -z "$FASHION" && -d "$BUNDLE/data/fashion_mnist" ]] && FASHION=$BUNDLE/data/fashion_mnist
export WAEBENCH_FASHION_MNIST_DIR=${FASHION:-/usr/share/datasets/fashion-mnist}
DATA=$OUTDIR/data
link_data() {  # paths.data_dir of the bench, fid and paper stages
  mkdir -p "$DATA"
  ln -sfn "$WAEBENCH_FASHION_MNIST_DIR" "$DATA/fashion_mnist"
}
cd "$REPO"

if [[ "$TINY" == 1 ]]; then
  DEVICE=cpu ACCEL=cpu
  PAPER=(trainer.max_epochs=1 trainer.limit_train_batches=5 trainer.limit_val_batches=2
         model.width=8 eval.inception.num_samples=200 eval.inception.num_real=200
         eval.classifier.enabled=false)
  JOBS=(--jobs 4 --ks 1,2 --width 4 --steps 5 --dataset digits)
  CELEBA=(--images 250 --warmup 1 --steps 2 model.width=8)
  TRAIN_SPEED=(--device cpu --steps 5 --warmup 2 --repeats 1)
  FID_N=200
  STUDY=(--tiny)
else
  DEVICE=cuda ACCEL=gpu
  PAPER=()
  JOBS=(--jobs 24 --ks 1,2,4,8 --width 128 --steps 550 --dataset fashion_mnist
        "paths.data_dir=$DATA")
  CELEBA=()
  TRAIN_SPEED=(--device cuda --nets paper)
  FID_N=10000
  STUDY=()
fi

FAILED=()
record() {  # record STAGE KEY=VALUE...: one JSON line in the results file
  local pair
  for pair in "${@:2}"; do
    [[ "$pair" == exit_code=* && "$pair" != exit_code=0 ]] && FAILED+=("$1")
  done
  "$PY" - "$RESULTS" "$@" <<'PYEOF'
import json, sys, time
path, stage, *pairs = sys.argv[1:]
row = {"stage": stage, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
for pair in pairs:
    key, value = pair.split("=", 1)
    try:
        row[key] = json.loads(value)
    except json.JSONDecodeError:
        row[key] = value
with open(path, "a") as out:
    out.write(json.dumps(row) + "\n")
PYEOF
}

machine() {
  "$PY" -c 'import torch, os; print(torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores")'
}

stage_study() {  # stage_study prepare|run LOG: benchmarks/gpu_study.py, its log beside
  local rc=0
  # shellcheck disable=SC2086
  "$PY" benchmarks/gpu_study.py "$1" --out "$OUTDIR" "${STUDY[@]}" ${STUDY_ARGS:-} 2>&1 |
    tee -a "$OUTDIR/$2" || rc=$?
  [[ "$rc" != 0 ]] && FAILED+=("$1")
  return 0
}

stage_tests() {
  local log=$OUTDIR/tests.log rc=0
  "$PY" -m pytest -m gpu -q -p no:cacheprovider -o addopts="-ra --strict-markers" \
    --junitxml="$OUTDIR/tests.xml" tests 2>&1 | tee "$log" || rc=$?
  record tests "device=$(machine)" "exit_code=$rc" "summary=$(tail -n 1 "$log")"
}

stage_bench() {
  local rc
  link_data
  # train_speed.py writes a JSON list; each row goes to the results file as one line.
  rc=0; "$PY" benchmarks/train_speed.py "${TRAIN_SPEED[@]}" --json "$OUTDIR/train_speed.json" \
    2>&1 | tee "$OUTDIR/train_speed.log" || rc=$?
  if [[ -f "$OUTDIR/train_speed.json" ]]; then
    "$PY" -c 'import json, sys; [print(json.dumps({"stage": "bench", "benchmark": "train_speed", **r})) for r in json.load(open(sys.argv[1]))]' \
      "$OUTDIR/train_speed.json" >> "$RESULTS"
  fi
  record bench benchmark=train_speed "exit_code=$rc"
  for precision in 32-true bf16-mixed; do
    [[ "$TINY" == 1 && "$precision" == bf16-mixed ]] && continue
    rc=0; "$PY" benchmarks/celeba_synthetic.py --device "$DEVICE" --precision "$precision" \
      --data-dir "$OUTDIR/celeba_synthetic" --json "$RESULTS" "${CELEBA[@]}" \
      2>&1 | tee -a "$OUTDIR/celeba_synthetic.log" || rc=$?
    record bench benchmark=celeba_synthetic "precision=$precision" "exit_code=$rc"
  done
  rc=0; "$PY" benchmarks/jobs_per_gpu.py --device "$DEVICE" --json "$RESULTS" "${JOBS[@]}" \
    2>&1 | tee "$OUTDIR/jobs_per_gpu.log" || rc=$?
  record bench benchmark=jobs_per_gpu "exit_code=$rc"
  budget
}

budget() {  # paper_budget.py from every speed measured so far (train_speed, CelebA, FID)
  local sources=("$RESULTS") precision
  [[ -f "$OUTDIR/train_speed.json" ]] && sources+=("$OUTDIR/train_speed.json")
  for precision in 32-true bf16-mixed; do
    "$PY" benchmarks/paper_budget.py --speed "${sources[@]}" --precision "$precision" \
      --json "$RESULTS" 2>&1 | tee -a "$OUTDIR/paper_budget.log" || true
  done
}

stage_fid() {
  local rc=0
  link_data
  "$PY" benchmarks/fid_speed.py --num-images "$FID_N" --device "$DEVICE" \
    --data-dir "$DATA" --cache-dir "$OUTDIR/fid_cache" --json "$RESULTS" \
    2>&1 | tee "$OUTDIR/fid.log" || rc=$?
  record fid benchmark=fid_speed "exit_code=$rc"
}

stage_paper() {
  # A fixed run directory with ckpt_path=auto: a second call resumes a killed first one.
  local run=$OUTDIR/paper_run rc=0 started ended
  link_data
  started=$(date +%s)
  # shellcheck disable=SC2086
  "$PY" -m waebench.train experiment=wae_paper/mnist_wae_mmd dataset=fashion_mnist \
    "paths.data_dir=$DATA" "trainer.accelerator=$ACCEL" trainer.enable_progress_bar=false \
    eval.inception.num_samples=10000 ckpt_path=auto "hydra.run.dir=$run" \
    "${PAPER[@]}" ${PAPER_OVERRIDES:-} 2>&1 | tee -a "$OUTDIR/paper.log" || rc=$?
  ended=$(date +%s)
  [[ "$rc" != 0 ]] && FAILED+=(paper)
  "$PY" - "$RESULTS" "$run/metrics.json" "$((ended - started))" "$rc" "$(machine)" \
    "${PAPER_OVERRIDES:-}" <<'PYEOF'
import json, sys, time
results, metrics_path, seconds, rc, device, overrides = sys.argv[1:]
row = {"stage": "paper", "experiment": "wae_paper/mnist_wae_mmd", "dataset": "fashion_mnist",
       "device": device, "wall_s_this_call": int(seconds), "exit_code": int(rc),
       "overrides": overrides, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
try:
    metrics = json.load(open(metrics_path))
except FileNotFoundError:
    metrics = {}
row.update({k: metrics.get(k) for k in ("status", "epochs", "global_step", "test")})
row["eval"] = {k: v.get("value") for k, v in metrics.get("eval", {}).items()
               if isinstance(v, dict)}
with open(results, "a") as out:
    out.write(json.dumps(row) + "\n")
print(json.dumps(row, indent=1))
PYEOF
}

if [[ "$STAGE" =~ ^(fid|paper|all)$ || ( "$STAGE" == study && "$TINY" != 1 ) ]]; then
  # Refuse now, not after an hour of training, when the FID weights cannot be found.
  "$PY" -c 'from waebench.evaluation.fid import require_inception_weights as w; print("Inception weights:", w())' \
    || { echo "gpu_check.sh: the $STAGE stage needs the Inception weights (see above)" >&2; exit 2; }
fi

case "$STAGE" in
  prepare) stage_study prepare prepare.log ;;
  study) stage_study run study.log ;;
  tests) stage_tests ;;
  bench) stage_bench ;;
  fid) stage_fid ;;
  paper) stage_paper ;;
  all) stage_tests; stage_bench; stage_fid; budget; stage_paper ;;
  *) echo "unknown stage '$STAGE': use prepare, study, tests, bench, fid, paper or all" >&2; exit 2 ;;
esac
echo "results: $RESULTS"
if (( ${#FAILED[@]} )); then
  echo "gpu_check.sh: failed stages: ${FAILED[*]} (logs in $OUTDIR)" >&2
  exit 1
fi
