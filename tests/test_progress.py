"""Progress of the long steps: a count, a rate and an ETA, in plain lines when stdout is not a terminal."""

from cvft_tf import progress as progress_module
from cvft_tf.progress import Progress


def test_progress_in_a_pipe_is_line_based_with_count_rate_and_eta(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "PIPE_INTERVAL_S", 0.0)
    progress = Progress(10, unit="pair")
    for _ in range(5):
        progress.add(2)
    progress.finish()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2/10 pairs, ") and "pairs/s, ETA " in lines[0], lines
    assert lines[-1].startswith("10/10 pairs, ") and "ETA" not in lines[-1], lines
    assert not any("\r" in line or "\b" in line for line in lines), lines


def test_a_pipe_gets_one_line_per_interval(capsys):
    progress = Progress(1000, unit="pair")
    for _ in range(100):
        progress.add(10)
    progress.finish()
    assert capsys.readouterr().out.splitlines()[-1].startswith("1000/1000 pairs, ")


def test_progress_of_an_unknown_total(capsys):
    Progress(None, unit="tile").add(3).add(4).finish()
    assert capsys.readouterr().out.startswith("7 tiles, ")


def test_the_last_line_is_not_printed_twice(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "PIPE_INTERVAL_S", 0.0)
    Progress(4, unit="step").add(2).add(2).finish()
    assert [line.split(",")[0] for line in capsys.readouterr().out.splitlines()] == ["2/4 steps", "4/4 steps"]
