"""``cvft-convert-salad``: the SALAD authors' PyTorch checkpoint -> Keras ``.weights.h5`` + JSON.

    cvft-convert-salad --ckpt=dino_salad.ckpt --out=converted/dino_salad.weights.h5
    cvft-eval-place --weights=converted/dino_salad.weights.h5 \\
        --model_config=converted/dino_salad.json ...

``--ckpt``: the authors' ``dino_salad.ckpt`` (a plain state dict or a Lightning checkpoint);
``--dinov2``: optionally the official ``dinov2_vitb14_pretrain.pth``, for DINOv2 keys the
checkpoint lacks (the checkpoint's win). Writes ``--out`` and, beside it, the model's keyword
arguments as JSON (``--model_config_out``, default ``--out`` with ``.json`` for
``.weights.h5``): ``PlaceRecognitionModel`` arguments, or with ``--variant=cross_view`` the
``CrossViewModel`` arguments of the ``salad`` variant, whose ground and aerial branches both
get the weights. Prints the key -> Keras weight map; refuses missing, wrong-shape or unused
keys (``--ignore_extra`` skips the unused ones and lists them). Needs torch
(``pip install -e '.[torch]'``); the files written do not. See :mod:`cvft_tf.interop.salad_torch`
and ``docs/salad_weights.md``.
"""

import json
import os

from absl import app, flags

from cvft_tf.checkpoints import write_json_atomic
from cvft_tf.cli.common import reports_user_errors, size_flag
from cvft_tf.cli.exits import run_command
from cvft_tf.data.preprocess import AERIAL_SIZE, GROUND_SIZE
from cvft_tf.interop import salad_torch
from cvft_tf.models.dinov2 import INPUT_FORMATS, SALAD_TEST_SIZE
from cvft_tf.output_dirs import make_output_directory
from cvft_tf.progress import Progress

_CKPT = flags.DEFINE_string("ckpt", None, "The authors' checkpoint (dino_salad.ckpt): backbone.model.*, aggregator.*.")
_DINOV2 = flags.DEFINE_string("dinov2", None, "Optional official DINOv2 weights (dinov2_vitb14_pretrain.pth).")
_OUT = flags.DEFINE_string("out", None, "Output Keras weights file, ending in .weights.h5.")
_CONFIG_OUT = flags.DEFINE_string(
    "model_config_out", None, "Output JSON of the model's keyword arguments (default: --out with .json)."
)
_VARIANT = flags.DEFINE_enum(
    "variant", "place", salad_torch.VARIANTS, "place: PlaceRecognitionModel; cross_view: the salad CrossViewModel."
)
_IMAGE_SIZE = flags.DEFINE_list("image_size", list(map(str, SALAD_TEST_SIZE)), "Place model image H,W.")
_INPUT_FORMAT = flags.DEFINE_enum("input_format", "imagenet", INPUT_FORMATS, "Input images of the place model.")
_GROUND_SIZE = flags.DEFINE_list("ground_size", list(map(str, GROUND_SIZE)), "Cross-view ground image H,W.")
_AERIAL_SIZE = flags.DEFINE_list("aerial_size", list(map(str, AERIAL_SIZE)), "Cross-view aerial image H,W.")
_NUM_HEADS = flags.DEFINE_integer("num_heads", None, "DINOv2 attention heads (default: channels / 64).")
_IGNORE_EXTRA = flags.DEFINE_bool("ignore_extra", False, "Skip (and list) keys the model has no place for.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing output files.")

def _output_paths():
    """``(weights, config)`` paths, checked: a ``.weights.h5`` name, not existing unless ``--overwrite``."""
    out = _OUT.value
    if not out.endswith(".weights.h5"):
        raise app.UsageError(f"--out must end in .weights.h5 (Keras weights), got {out!r}.")
    config_out = _CONFIG_OUT.value or out[: -len(".weights.h5")] + ".json"
    for path, flag in ((out, "--out"), (config_out, "--model_config_out")):
        if os.path.isdir(path):
            raise app.UsageError(f"{flag} {path} is a directory; give the path of the file to write.")
        if os.path.exists(path) and not _OVERWRITE.value:
            raise app.UsageError(f"{flag} {path} exists; pass --overwrite to replace it.")
    return out, config_out


@reports_user_errors
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not _CKPT.value or not _OUT.value:
        raise app.UsageError("--ckpt and --out are required.")
    out, config_out = _output_paths()
    for path in {os.path.dirname(os.path.abspath(out)), os.path.dirname(os.path.abspath(config_out))}:
        make_output_directory(path, "folder of --out")
    progress = Progress(3, unit="step")  # reading the checkpoints, converting, writing the config
    checkpoint = salad_torch.read_state_dict(_CKPT.value, "--ckpt")
    dinov2_weights = salad_torch.read_state_dict(_DINOV2.value, "--dinov2") if _DINOV2.value else None
    progress.add(1)
    sources = salad_torch.split_sources(
        checkpoint, f"--ckpt {_CKPT.value}", dinov2_weights, f"--dinov2 {_DINOV2.value}"
    )
    rows, unused, config = salad_torch.convert(
        sources,
        out,
        variant=_VARIANT.value,
        image_size=size_flag(_IMAGE_SIZE.value, "image_size"),
        input_format=_INPUT_FORMAT.value,
        ground_size=size_flag(_GROUND_SIZE.value, "ground_size"),
        aerial_size=size_flag(_AERIAL_SIZE.value, "aerial_size"),
        num_heads=_NUM_HEADS.value,
        ignore_extra=_IGNORE_EXTRA.value,
    )
    progress.add(1)
    write_json_atomic(config, config_out)
    progress.add(1).finish()
    width = max(len(row.key) for row in rows)
    for row in rows:
        print(f"{row.key:<{width}}  ->  {row.keras_path} {list(row.shape)}")
    for key, shape in unused:
        print(f"skipped (--ignore_extra): {key} {list(shape)}")
    print(f"Wrote {len(rows)} weights ({_VARIANT.value}) to {out} and the model config to {config_out}:")
    print(json.dumps(config))


def run():
    run_command(main)


if __name__ == "__main__":
    run()
