"""``cvft-compare --run LABEL=WORKDIR [--run ...] --out DIR``: evaluated runs side by side.

Reads each ``WORKDIR/eval`` (written by ``cvft-eval``); runs given the same LABEL (seeds of
one variant) make one row. Writes ``DIR/table.md`` (mean and lowest-highest r@1/5/10/1% per
label, and chance) and ``DIR/recall_curves.png`` (mean r@K per label), and prints the table.

    cvft-compare --run cvft=runs/t1/cvft-0 --run cvft=runs/t1/cvft-1 --run vgg_gp=runs/t1/vgg_gp-0 --out runs/t1
"""

import os

from absl import app, flags

from cvft_tf.cli.common import reports_user_errors
from cvft_tf.cli.exits import run_command
from cvft_tf.evaluation import compare, figures, recall
from cvft_tf.output_dirs import atomic_path, make_output_directory

_RUNS = flags.DEFINE_multi_string("run", None, "LABEL=WORKDIR of an evaluated run; repeat it.")
_OUT = flags.DEFINE_string("out", None, "Directory for table.md and recall_curves.png.")
_MAX_K = flags.DEFINE_integer("max_k", 25, "Largest K of the r@K plot.", lower_bound=1)
_TITLE = flags.DEFINE_string("title", "", "A line written above the table.")
flags.mark_flags_as_required(["run", "out"])


def parse_runs(specs):
    """``["label=workdir", ...]`` -> dict label -> list of workdirs, in order of first mention."""
    runs = {}
    for spec in specs:
        label, separator, workdir = spec.partition("=")
        if not separator or not label or not workdir:
            raise app.UsageError(f"--run {spec!r}: expected LABEL=WORKDIR")
        runs.setdefault(label, []).append(workdir)
    return runs


@reports_user_errors
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    workdirs = parse_runs(_RUNS.value)
    runs = {
        label: [compare.read_run(os.path.join(workdir, "eval"), _MAX_K.value) for workdir in dirs]
        for label, dirs in workdirs.items()
    }
    summaries = compare.summarize_runs(runs)
    chance = recall.chance_levels(summaries[0].num_queries)
    table = compare.markdown_table(summaries, chance)
    header = f"{_TITLE.value}\n\n" if _TITLE.value else ""
    make_output_directory(_OUT.value, "--out directory")
    table_path = os.path.join(_OUT.value, "table.md")
    with atomic_path(table_path) as partial, open(partial, "w") as handle:
        handle.write(header + table)
    plot_path = os.path.join(_OUT.value, "recall_curves.png")
    figures.save_png(compare.recall_plot(summaries, title="Mean recall at K over each method's runs"), plot_path)
    print(header + table, end="")
    print(f"table: {table_path}\nplot: {plot_path}")


def run():
    run_command(main)


if __name__ == "__main__":
    run()
