#!/usr/bin/env bash
# The main job on the built-in synthetic world: make the world, train, evaluate, export.
#   bash scripts/run_synthetic.sh [WORKDIR]      (default runs/synthetic)
# The recipe is configs/synthetic.py (HED start, blocks 1-4 frozen and cached); NUM_TRAIN /
# NUM_VAL / EPOCHS override the world's size and the epochs. The validation places lie in
# an area of the world of their own; a 600 m orthophoto of a third area and 20 query panoramas
# in it (world/map/) are for cvft-index and cvft-localize.
set -euo pipefail
cd "$(dirname "$0")/.."
workdir="${1:-runs/synthetic}"
num_train="${NUM_TRAIN:-1600}"
num_val="${NUM_VAL:-100}"
epochs="${EPOCHS:-6}"
config=configs/synthetic.py
world="$workdir/world"
started=$SECONDS

if [ ! -f "$world/splits/val-19zl.csv" ]; then
  cvft-make-synthetic --out "$world" --format cvusa --num_train "$num_train" --num_val "$num_val" --seed 0 \
    --aerial_size 128 --ground_height 64 --ground_width 352 --workers 2 --map_extent 600 --num_queries 20
fi
cvft-train --config "$config" --config.data.root="$world" --config.train.epochs="$epochs" --workdir "$workdir/run"
cvft-eval --config "$config" --config.data.root="$world" --workdir "$workdir/run"
cvft-export --config "$config" --workdir "$workdir/run" --out "$workdir/saved_model"
echo "Learning curve: $workdir/run/learning_curve.png"
echo "TensorBoard: tensorboard --logdir $workdir/run/tensorboard"
echo "Main job done in $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
