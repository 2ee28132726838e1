#!/usr/bin/env bash
# Limited field of view and unknown heading on the synthetic world, DSM-style: cvft and dsm
# (polar aerial + azimuth correlation, which also estimates the heading), each trained and
# evaluated on queries of FOVS degrees (default 360 180 90) cut at unknown headings, at one
# budget (the main job's recipe, configs/synthetic.py, EPOCHS epochs).
#   bash scripts/fov_table_synthetic.sh [OUT]        (default runs/fov)
# Writes OUT/table.md (r@1/5/10/1% and, for dsm, the heading error of the correctly
# retrieved queries) and OUT/recall_curves.png. WORLD reuses a world (e.g. the main job's
# runs/synthetic/world); otherwise the main job's world is made in OUT/world. The aerial
# stems' features are computed once per variant and shared by its runs (OUT/feature_cache). VARIANTS,
# EPOCHS, SEED and EXTRA (more --config overrides) change the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/fov}"
fovs="${FOVS:-360 180 90}"
variants="${VARIANTS:-cvft dsm}"
epochs="${EPOCHS:-6}"
seed="${SEED:-0}"
read -r -a extra <<< "${EXTRA:-}"
world="${WORLD:-$out/world}"
started=$SECONDS

if [ ! -f "$world/splits/val-19zl.csv" ]; then
  cvft-make-synthetic --out "$world" --format cvusa --num_train "${NUM_TRAIN:-1600}" --num_val "${NUM_VAL:-100}" \
    --seed 0 --aerial_size 128 --ground_height 64 --ground_width 352 --workers 2
fi
runs=()
for fov in $fovs; do
  for variant in $variants; do
    workdir="$out/$variant-fov$fov"
    config="configs/synthetic.py:$variant,fov$fov"
    overrides=(--config.data.root="$world" --config.train.epochs="$epochs" --config.train.seed="$seed"
      --config.train.feature_cache_dir="$out/feature_cache" "${extra[@]}")
    cvft-train --config "$config" "${overrides[@]}" --workdir "$workdir"
    cvft-eval --config "$config" "${overrides[@]}" --workdir "$workdir"
    runs+=(--run "$variant, FoV $fov=$workdir")
  done
done
cvft-compare "${runs[@]}" --out "$out" \
  --title "Queries of limited field of view and unknown heading on the synthetic world ($epochs epochs, seed $seed)"
echo "FoV table done in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
