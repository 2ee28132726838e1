"""``cvft-localize``: localize ground panoramas in an index built by ``cvft-index``.

    cvft-localize --index runs/index --image_dir runs/world/map/queries --out runs/localized \\
        [--top_k 10] [--truth runs/world/map/queries.csv]
    cvft-localize --index runs/index --images q1.jpg q2.jpg --out runs/localized

The queries are embedded with the ground branch of the index's model. An index never runs
code on its own (docs/security.md): a model the index records as a training workdir is
loaded from its ``.keras`` file in safe mode; one it records as a SavedModel, which runs its
own graph, is loaded only when the user names it with ``--saved_model`` (``--workdir`` /
``--saved_model`` must name the index's model). For each query it writes
``OUT/<name>/matches.json`` and ``matches.csv`` (the top-K positions with their scores: map
coordinates, latitude and longitude; at least ``--min_separation_m`` apart, 25 m by default,
so that they are K distinct places) and ``heatmap.png`` (the scores over the map, the
matches and, when known, the truth). ``OUT/matches.csv`` holds every query's matches. With
``--truth`` (CSV ``image,x,y`` in the map's CRS, images relative to the CSV) it prints and
writes (``OUT/summary.json``) the median and 90th-percentile error in metres and the share
of queries within 25, 50 and 100 m at top-1 and top-10. A model that matches maps (``dsm``)
scores every window with its matcher and also gives each match's heading (``heading_deg``).
"""

import os

from absl import app, flags, logging

from cvft_tf.cli.common import reports_user_errors
from cvft_tf.cli.exits import run_command
from cvft_tf.evaluation.figures import save_png
from cvft_tf.localization import encoders as model_encoders
from cvft_tf.localization import localize, search
from cvft_tf.localization.errors import MapError
from cvft_tf.localization.geomap import open_map
from cvft_tf.localization.heatmap import heatmap_figure, map_extent
from cvft_tf.localization.index import check_model, is_tiles
from cvft_tf.output_dirs import make_output_directory, write_json_atomic

_INDEX = flags.DEFINE_string("index", None, "Index directory of cvft-index.")
_IMAGES = flags.DEFINE_multi_string("images", [], "Query panoramas (repeat the flag or list them after it).")
_IMAGE_DIR = flags.DEFINE_string("image_dir", None, "Folder of query panoramas (JPEG/PNG).")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_TOP_K = flags.DEFINE_integer("top_k", 10, "Matches per query.", lower_bound=1)
_SEPARATION = flags.DEFINE_float(
    "min_separation_m",
    25.0,
    "Matches at least this far apart (non-maximum suppression; 0: plain top-K).",
    lower_bound=0,
)
_TRUTH = flags.DEFINE_string("truth", None, "CSV image,x,y of the true positions (map CRS).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Use this workdir's model (must be the index's).")
_SAVED_MODEL = flags.DEFINE_string("saved_model", None, "Use this SavedModel (must be the index's model).")
_NPROBE = flags.DEFINE_integer("nprobe", search.DEFAULT_NPROBE, "IVF-PQ cells visited per query.", lower_bound=1)
_HEATMAPS = flags.DEFINE_bool("heatmaps", True, "Draw a heatmap per query.")
flags.mark_flags_as_required(["index", "out"])
OVERVIEW_SIDE = 1024


def output_names(paths):
    """A distinct folder name per query: its file name without the suffix (numbered on a clash)."""
    names, seen = [], {}
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names


def heatmap_entry(loaded, record):
    """The map to draw for a query: the one holding the truth, else the top-1 match's."""
    point = record.get("truth") or record["matches"][0]
    for entry in loaded.entries:
        west, east, south, north = map_extent(entry)
        if west <= point["x"] <= east and south <= point["y"] <= north:
            return entry
    return loaded.entries[0]


def overviews(entries, crs):
    """RGB overview of each map entry's map (None for a tile folder, or where the map file
    cannot be read now); ``crs``: the index's, for a map whose files hold none."""
    pictures = {}
    for entry in entries:
        if is_tiles(entry):
            pictures[entry["number"]] = None
            continue
        try:
            geomap = open_map(entry["map"]["path"], crs)
            pictures[entry["number"]] = geomap.overview(OVERVIEW_SIDE)[..., ::-1]
            geomap.close()
        except MapError as error:
            logging.warning("Heatmaps without the map picture: %s", error)
            pictures[entry["number"]] = None
    return pictures


def write_heatmaps(loaded, encoders, records, descriptors, folders):
    """``heatmap.png`` in each query's folder: exact scores against every window of its map."""
    windows = loaded.descriptors()
    pictures = overviews(loaded.entries, loaded.manifest["crs"])
    for record, descriptor, folder in zip(records, descriptors, folders):
        entry = heatmap_entry(loaded, record)
        inside = loaded.map_of == entry["number"]
        scores = localize.window_scores(windows[inside], descriptor[None], encoders)[0][0]
        truth = (record["truth"]["x"], record["truth"]["y"]) if "truth" in record else None
        title = os.path.basename(record["image"])
        if truth is not None:
            title += f": top-1 error {record['error_m']:.0f} m"
        image = heatmap_figure(entry, scores, pictures[entry["number"]],
                               [(m["x"], m["y"]) for m in record["matches"]], truth, title,
                               positions=loaded.positions[inside])  # fmt: skip
        save_png(image, os.path.join(folder, "heatmap.png"))


def recorded_source(manifest, index_dir):
    """The model source an index records, when loading it runs no code from the index.

    Raises:
        app.UsageError: the index records a SavedModel (its graph is code, and whoever wrote
            the manifest chose it): the user must name it with ``--saved_model``.
    """
    source = manifest["model"]["source"]
    if "saved_model" in source:
        raise app.UsageError(
            f"the index {index_dir} was built with the SavedModel {source['saved_model']}; a SavedModel runs "
            f"its own code, so cvft-localize loads one only when you name it: pass --saved_model PATH "
            "(or the model's training workdir with --workdir)"
        )
    return source


@reports_user_errors
def main(argv):
    images = _IMAGES.value + argv[1:]
    if images and _IMAGE_DIR.value:
        raise app.UsageError("give --images or --image_dir, not both")
    if _WORKDIR.value and _SAVED_MODEL.value:
        raise app.UsageError("give at most one of --workdir and --saved_model")
    paths = localize.query_paths(images, _IMAGE_DIR.value)
    truth = localize.read_truth(_TRUTH.value) if _TRUTH.value else None
    loaded = localize.open_index(_INDEX.value, _NPROBE.value)
    if _SAVED_MODEL.value:
        source = {"saved_model": _SAVED_MODEL.value}
    elif _WORKDIR.value:
        source = {"workdir": os.path.abspath(_WORKDIR.value)}
    else:
        source = recorded_source(loaded.manifest, _INDEX.value)
    encoders = model_encoders.from_source(source)
    check_model(loaded.manifest, encoders, _INDEX.value)
    make_output_directory(_OUT.value, "--out directory")

    records, descriptors = localize.localize(
        loaded, encoders, paths, _TOP_K.value, truth, min_separation_m=_SEPARATION.value
    )
    folders = [os.path.join(_OUT.value, name) for name in output_names(paths)]
    rows = []
    for record, folder in zip(records, folders):
        make_output_directory(folder, "query output directory")
        write_json_atomic(record, os.path.join(folder, "matches.json"))
        matches = localize.match_rows(record)
        localize.write_csv(matches, os.path.join(folder, "matches.csv"))
        rows += matches
    localize.write_csv(rows, os.path.join(_OUT.value, "matches.csv"))
    if _HEATMAPS.value:
        write_heatmaps(loaded, encoders, records, descriptors, folders)

    for record in records:
        best = record["matches"][0]
        line = f"{record['image']}: top-1 x={best['x']:.1f} y={best['y']:.1f} (lat {best['lat']:.6f}, "
        line += f"lon {best['lon']:.6f}) score {best['score']:.3f}"
        if "heading_deg" in record:
            line += f", heading {record['heading_deg']:.0f} deg"
        if "error_m" in record:
            line += f", error {record['error_m']:.1f} m"
        print(line)
    summary = localize.error_summary(records)
    if truth is not None and summary is None:
        logging.warning("None of the queries is listed in %s", _TRUTH.value)
    if summary is not None:
        summary.update(
            top_k=_TOP_K.value,
            min_separation_m=_SEPARATION.value,
            index=os.path.abspath(_INDEX.value),
            search=loaded.manifest["search"],
        )
        write_json_atomic(summary, os.path.join(_OUT.value, "summary.json"))
        print(localize.summary_table(summary))
    print(f"Results: {_OUT.value} (per query: matches.json, matches.csv, heatmap.png)")


def run():
    run_command(main)


if __name__ == "__main__":
    run()
