"""``cvft-index``: slide the trained aerial window over a geo-referenced map and index it.

    cvft-index --config configs/synthetic.py --workdir runs/synthetic/run \\
        --map runs/world/map/orthophoto.png --out runs/index [--stride_m 5] [--search ivfpq]
    cvft-index --config configs/synthetic.py --saved_model runs/synthetic/saved_model --map ... --out ...
    cvft-index --config ... --workdir ... --map TILE_FOLDER --out runs/index [--crs EPSG:32632]

``--map`` is a GeoTIFF, a PNG/JPEG with a JSON or a world file beside it
(``cvft_tf.localization.geomap``), or a folder of aerial tiles with ``tiles.csv`` of their
centres (``cvft_tf.localization.tiles``): each tile is one window, nothing is slid.
``--crs`` gives the CRS where the files hold none (a world file without ``.prj``, a tile
folder without ``tiles.json``).

The window is ``config.data.aerial_footprint_m`` metres a side (what one training tile
covers); each window is resized to the model's aerial size and embedded with the aerial
branch, in batches on tf.data. The index (``cvft_tf.localization.index``) holds the
descriptors, the windows' centres and a FAISS search structure: exact inner product, or
IVF-PQ (``--search ivfpq``, for large regions) whose recall@10 against exact is printed.

The same command resumes a killed run where it stopped; another ``--map`` into the same
``--out`` extends the index. An index built with another model is refused.
"""

import os

from absl import app, flags
from cvft_tf.configs import define_config_flag

from cvft_tf import directory_lock
from cvft_tf.cli.common import reports_user_errors
from cvft_tf.cli.exits import run_command
from cvft_tf.config_schema import ConfigError, check_model_section
from cvft_tf.localization import encoders as model_encoders
from cvft_tf.localization import index, search
from cvft_tf.localization.geomap import open_map
from cvft_tf.localization.tiles import TileFolder
from cvft_tf.write_failures import reported_write_failures

_CONFIG = define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir whose best model embeds the map.")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "SavedModel of cvft-export, instead of --workdir.")
_MAP = flags.DEFINE_string(
    "map", None, "GeoTIFF; PNG/JPEG with a JSON or world file beside it; or a folder of tiles with tiles.csv."
)
_CRS = flags.DEFINE_string("crs", None, "CRS of a map or tile folder whose files hold none (EPSG:32632).")
_OUT = flags.DEFINE_string("out", None, "Index directory (created, resumed or extended).")
_STRIDE = flags.DEFINE_float("stride_m", 5.0, "Metres between neighbouring windows (a map; not tiles).")
_SEARCH = flags.DEFINE_enum("search", "exact", list(search.SEARCH_KINDS), "FAISS search structure.")
_NPROBE = flags.DEFINE_integer("nprobe", search.DEFAULT_NPROBE, "IVF-PQ cells visited per query.", lower_bound=1)
_BATCH = flags.DEFINE_integer("batch_size", 32, "Windows per model call (a new map's).", lower_bound=1)
_CHUNK = flags.DEFINE_integer("chunk_batches", 8, "Batches per chunk file (a new map's).", lower_bound=1)
flags.mark_flags_as_required(["config", "map", "out"])


@reports_user_errors
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if bool(_WORKDIR.value) == bool(_SAVED_MODEL.value):
        raise app.UsageError("give one of --workdir and --saved_model")
    config = _CONFIG.value
    check_model_section(config)
    footprint = config.data.aerial_footprint_m
    if not footprint or footprint <= 0:
        raise ConfigError(f"config.data.aerial_footprint_m must be positive, got {footprint!r}")
    tiles = os.path.isdir(_MAP.value)
    source = TileFolder(_MAP.value, _CRS.value) if tiles else open_map(_MAP.value, _CRS.value)
    fields, _ = index.describe(source, footprint, _STRIDE.value)
    if _SAVED_MODEL.value:
        encoders = model_encoders.from_saved_model(_SAVED_MODEL.value)
    else:
        encoders = model_encoders.from_workdir(config, _WORKDIR.value)
    with reported_write_failures(_OUT.value), directory_lock.hold(_OUT.value, "index directory"):
        summary = index.build_index(
            source, encoders, _OUT.value, footprint, _STRIDE.value, kind=_SEARCH.value,
            batch_size=_BATCH.value, chunk_batches=_CHUNK.value, nprobe=_NPROBE.value,
        )  # fmt: skip
    record = summary["search"]
    if tiles:
        windows = f"{summary['windows']} tiles (one window each)"
    else:
        grid = fields["grid"]
        windows = (f"{summary['windows']} windows of {footprint:g} m every {_STRIDE.value:g} m ({grid['rows']} x "
                   f"{grid['cols']}, {grid['side']} px each, {source.metres_per_pixel:.3f} m per pixel)")  # fmt: skip
    print(
        f"Indexed {_MAP.value}: {windows}; "
        f"embedded {summary['embedded']} in {summary['seconds']:.1f} s ({summary['tiles_per_s']:.1f} tiles/s)"
    )
    line = f"Search: {record['kind']} over {record['windows']} windows, {record['bytes_per_window']} bytes per window"
    if "recall_at_10" in record:
        line += f", {record['spec']} nprobe {record['nprobe']}: recall@10 against exact {record['recall_at_10']:.3f}"
    print(line)
    print(f"Index: {_OUT.value}")
    source.close()


def run():
    run_command(main)


if __name__ == "__main__":
    run()
