"""``cvft-eval --config NAME|FILE.py --workdir DIR [--weights FILE]``: recall and figures.

Embeds the evaluation split once (``config.eval.split``: ``val``; CVACT also ``test``),
prints r@1, r@5, r@10, r@1% with their chance levels and writes into ``DIR/eval`` (or ``--out``),
which it replaces as a whole once every file is written (a failed run leaves the earlier
folder as it was, never a mix of two runs' files):

* ``metrics.json``: ``r@1``, ``r@5``, ``r@10``, ``r@1%`` in percent, ``curve`` (r@K for
  K = 1..top-1%), ``num_queries``, ``chance`` (the same r@K for a random ranking),
  ``one_percent_k`` (the r@1% K, floor(0.01 N) as in the paper's table), ``backend``; for
  CVACT_test also ``geo`` (one of the top K within ``config.eval.geo_radius_m``, 25 m);
  ``ground_fov_deg`` / ``unknown_heading`` / ``heading_seed`` (the queries: see
  ``data.field_of_view``), and for a model that estimates headings (``dsm``) ``heading``:
  the median heading error and the shares within 10 and 20 degrees over the queries whose
  own tile is ranked first (``evaluation.heading``);
* ``ground_descriptors.npy``, ``aerial_descriptors.npy`` (maps for ``dsm``), ``utm.npy``
  and, for cut queries, ``headings.npy`` (the true heading of each query, degrees); for a
  map matcher ``ranks.npy`` (the rank of each query's own tile);
* ``recall_curve.png`` (with the curves of ``--compare`` workdirs), ``retrievals.png``
  (top-5 per query, green/red borders), ``feature_alignment.png`` and
  ``transport_plan.png`` (map variants).

``--strategy`` / ``--logical_cpus`` (``config.distribute``) embed the split with each batch
split among the strategy's replicas; with ``multi_worker`` every worker embeds its share
and only the chief writes.
"""

import os

import numpy as np
from absl import app, flags, logging
from cvft_tf.configs import define_config_flag

from cvft_tf import checkpoints, distribute
from cvft_tf.cli.common import (
    apply_strategy_flags,
    configured_strategy,
    define_strategy_flags,
    load_trained_model,
    reports_user_errors,
)
from cvft_tf.config_schema import check_dataset_sections, check_model_section
from cvft_tf.cli.exits import run_command
from cvft_tf.evaluation import compare, embed, figure_sources, figures, recall, scoring
from cvft_tf.output_dirs import directory_replaced_whole, make_output_directory
from cvft_tf.write_failures import reported_write_failures
from cvft_tf.data.from_config import eval_dataset, read_split

_CONFIG = define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir (model and output location).")
_WEIGHTS = flags.DEFINE_string("weights", None, "Weights file (.weights.h5, .keras or TF1 prefix) to evaluate.")
_OUT = flags.DEFINE_string("out", None, "Output directory (default: WORKDIR/eval).")
_NOISE = flags.DEFINE_float("orientation_noise_deg", None, "Turn each panorama by U(-D, D) degrees (paper: 20).")
_MAP_SIZE = flags.DEFINE_list("map_size", None, "Output feature map h,w (must match the weights).")
_COMPARE = flags.DEFINE_list("compare", [], "Other workdirs whose eval/metrics.json curves join the plot.")
_BACKEND = flags.DEFINE_enum(
    "backend", None, ["numpy", "tensorflow"], "Distance blocks in numpy or TensorFlow (GPU); sets config.eval.backend."
)
_STRATEGY, _LOGICAL_CPUS = define_strategy_flags()
flags.mark_flags_as_required(["config", "workdir"])

REPORTED = recall.REPORTED_METRICS


def recall_table(metrics, label, header=True):
    """The printed table: a header (unless ``header=False``) and one row of percentages."""
    row = f"{label:<14}" + "".join(f"{metrics[k]:>9.2f}" for k in REPORTED)
    if not header:
        return row
    return f"{'':<14}" + "".join(f"{k:>9}" for k in REPORTED) + "\n" + row


def heading_line(summary):
    """The printed heading error of the correctly retrieved queries (``heading.summarize_heading``)."""
    if not summary["num_correct"]:
        return "heading error: no query retrieved its own tile first"
    return (
        f"heading error over the {summary['num_correct']} queries retrieved first: median "
        f"{summary['median_error_deg']:.1f} deg, within 10 deg {summary['within_10deg']:.1f} %, "
        f"within 20 deg {summary['within_20deg']:.1f} %"
    )


def map_size_flag(values):
    """``--map_size h,w`` -> (h, w), two positive integers."""
    try:
        size = tuple(int(value) for value in values)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise app.UsageError(f"--map_size takes two positive integers h,w; got {','.join(values)!r}.")
    return size


def compared_curves(workdirs):
    """The r@K curves of ``--compare`` workdirs, by workdir name, read before any work is done.

    Raises:
        FileNotFoundError, compare.EvaluationFolderError: a workdir without a readable ``eval/metrics.json``.
    """
    return {
        os.path.basename(os.path.normpath(workdir)): compare.read_metrics(os.path.join(workdir, "eval"))["curve"]
        for workdir in workdirs
    }


def write_outputs(out_dir, embeddings, metrics):
    """The descriptors, positions, headings, ranks (popped from ``metrics``) and
    ``metrics.json`` of one evaluation, into the new folder ``out_dir``."""
    np.save(os.path.join(out_dir, "ground_descriptors.npy"), embeddings.ground)
    np.save(os.path.join(out_dir, "aerial_descriptors.npy"), embeddings.aerial)
    if embeddings.utm is not None:
        np.save(os.path.join(out_dir, "utm.npy"), embeddings.utm)
    if embeddings.heading is not None:
        np.save(os.path.join(out_dir, "headings.npy"), embeddings.heading)
    if "ranks" in metrics:
        np.save(os.path.join(out_dir, "ranks.npy"), metrics.pop("ranks"))
    checkpoints.write_json_atomic(metrics, os.path.join(out_dir, "metrics.json"))


def write_figures(model, dataset, split, embeddings, metrics, out_dir, num_queries, other_curves):
    """Writes the PNG figures of one evaluation into ``out_dir``; returns their file names."""
    curves = {"this run": metrics["curve"], **other_curves}
    images = {"recall_curve": figures.recall_curve_figure(curves, title="Recall at K")}
    count = min(num_queries, len(embeddings.ground))
    top = scoring.top_k_tiles(embeddings, count, min(5, len(embeddings.aerial)), model.matcher)
    images["retrievals"] = figures.retrieval_figure(
        [figure_sources.display_image(p, 128) for p in split.ground_paths[:count]],
        figure_sources.AerialTiles(split.aerial_paths, 128),
        top,
        true_index=np.arange(count),
    )
    images.update(figure_sources.feature_figures(model, dataset))
    names = []
    for name, image in images.items():
        figures.save_png(image, os.path.join(out_dir, f"{name}.png"))
        names.append(f"{name}.png")
    return names


@reports_user_errors
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    if _NOISE.value is not None:
        config.eval.orientation_noise_deg = _NOISE.value
    if _MAP_SIZE.value:
        config.model.map_size = map_size_flag(_MAP_SIZE.value)
    if _BACKEND.value:
        config.eval.backend = _BACKEND.value
    check_model_section(config)
    check_dataset_sections(config)
    apply_strategy_flags(config, _STRATEGY, _LOGICAL_CPUS)
    strategy = configured_strategy(config)
    chief = distribute.is_chief(strategy)
    out_dir = _OUT.value or os.path.join(_WORKDIR.value, "eval")
    other_curves = compared_curves(_COMPARE.value)

    split = read_split(config.data, config.eval.split)
    with strategy.scope():
        model = load_trained_model(config, _WORKDIR.value, _WEIGHTS.value)
    if chief:
        make_output_directory(out_dir, "evaluation output directory")
    dataset = eval_dataset(config, split)
    logging.info("Embedding %d pairs of %s", len(split), split.name)
    embeddings = embed.embed_split(model, dataset, strategy, total=len(split))
    geo_radius = config.eval.geo_radius_m if config.eval.split == "test" else None
    metrics = scoring.score(
        embeddings,
        chunk_size=config.eval.chunk_size,
        geo_radius_m=geo_radius,
        backend=config.eval.backend,
        matcher=model.matcher,
    )
    metrics.update(
        split=split.name,
        variant=model.variant,
        orientation_noise_deg=float(config.eval.orientation_noise_deg),
        ground_fov_deg=float(config.data.ground_fov_deg),
        unknown_heading=bool(config.data.unknown_heading),
        heading_seed=int(config.eval.orientation_seed),
        chance=recall.chance_levels(len(embeddings.aerial)),
        one_percent_k=recall.top_one_percent_k(len(embeddings.aerial)),
        backend=config.eval.backend,
    )
    if not chief:
        logging.info("r@1 %.2f; the chief writes the results.", metrics["r@1"])
        return

    with reported_write_failures(out_dir), directory_replaced_whole(out_dir) as staging:
        write_outputs(staging, embeddings, metrics)
        figure_names = write_figures(
            model, dataset, split, embeddings, metrics, staging, config.eval.num_figure_queries, other_curves
        )
    figure_paths = [os.path.join(out_dir, name) for name in figure_names]

    print(f"{split.name}: {metrics['num_queries']} queries, variant {model.variant}")
    print(recall_table(metrics, "recall (%)"))
    print(recall_table(metrics["chance"], "chance (%)", header=False))
    if "geo" in metrics:
        print(recall_table(metrics["geo"], f"within {metrics['geo']['radius_m']:g} m"))
    if "heading" in metrics:
        print(heading_line(metrics["heading"]))
    print(f"metrics: {os.path.join(out_dir, 'metrics.json')}")
    print("figures: " + ", ".join(figure_paths))


def run():
    run_command(main)


if __name__ == "__main__":
    run()
