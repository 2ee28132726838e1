#!/usr/bin/env bash
# The paper's Table 1 on the synthetic world: cvft, vgg_conv ("wo/ CVFT") and vgg_gp, each
# trained with the main job's recipe and budget (configs/synthetic.py) on the same world,
# over SEEDS seeds, then evaluated and compared.
#   bash scripts/table1_synthetic.sh [OUT]        (default runs/table1)
# Writes OUT/table.md (mean and lowest-highest r@1/5/10/1% per variant) and
# OUT/recall_curves.png. The world is the main job's (NUM_TRAIN / NUM_VAL pairs); the frozen
# blocks' features are computed once and shared by every run (OUT/feature_cache).
# AERIAL_SIZE, GROUND_HEIGHT and GROUND_WIDTH set the world's image sizes; SEEDS, EPOCHS, CONFIG_ARG (appended to the variant: ",smoke") and EXTRA (more --config
# overrides) change the budget.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/table1}"
num_train="${NUM_TRAIN:-1600}"
num_val="${NUM_VAL:-100}"
epochs="${EPOCHS:-6}"
seeds="${SEEDS:-0 1}"
config_arg="${CONFIG_ARG:-}"
read -r -a extra <<< "${EXTRA:-}"
world="$out/world"
started=$SECONDS

if [ ! -f "$world/splits/val-19zl.csv" ]; then
  cvft-make-synthetic --out "$world" --format cvusa --num_train "$num_train" --num_val "$num_val" --seed 0 \
    --aerial_size "${AERIAL_SIZE:-128}" --ground_height "${GROUND_HEIGHT:-64}" --ground_width "${GROUND_WIDTH:-352}" \
    --workers 2
fi
runs=()
for seed in $seeds; do
  for variant in cvft vgg_conv vgg_gp; do
    workdir="$out/$variant-seed$seed"
    overrides=(--config.data.root="$world" --config.train.epochs="$epochs" --config.train.seed="$seed"
      --config.train.feature_cache_dir="$out/feature_cache" "${extra[@]}")
    cvft-train --config "configs/synthetic.py:$variant$config_arg" "${overrides[@]}" --workdir "$workdir"
    cvft-eval --config "configs/synthetic.py:$variant$config_arg" "${overrides[@]}" --workdir "$workdir"
    runs+=(--run "$variant=$workdir")
  done
done
cvft-compare "${runs[@]}" --out "$out" --title "Table 1 on the synthetic world ($num_train training pairs, $num_val held-out validation places, seeds: $seeds)"
echo "Table 1 done in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
