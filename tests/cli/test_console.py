"""The terminal of a command: no TensorFlow start-up noise, plain progress lines, a log file in the workdir."""

import os
import subprocess

from cvft_tf.cli import console
from tests.faults.harness import REPO, command_path

NOISE = (
    "absl::InitializeLog()",
    "oneDNN custom operations",
    "Could not find cuda drivers",
    "cuInit",
    "cpu_feature_guard",
    "common.py:",
)
"""Start-up lines and absl prefixes that must not reach a user's terminal."""


def _train(tmp_path, *extra, env=None):
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    args = [command_path("cvft-train"), "--config=configs/synthetic.py:smoke", f"--workdir={tmp_path / 'run'}",
            f"--config.data.root={tmp_path / 'missing'}", *extra]  # fmt: skip
    return subprocess.run(args, cwd=REPO, env=dict(environment, **(env or {})), capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_a_command_prints_no_start_up_noise(tmp_path):
    result = _train(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    for noise in NOISE:
        assert noise not in output, f"{noise!r} reached the terminal:\n{output[-3000:]}"
    assert "Strategy default: 1 replica(s) in sync" in output
    assert "error: Dataset root" in output


def test_verbosity_lets_the_start_up_logs_through(tmp_path):
    result = _train(tmp_path, "--verbosity=0")
    assert "common.py:" in result.stderr, result.stderr[-3000:]


def test_the_users_own_log_level_is_kept(tmp_path):
    result = _train(tmp_path, env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert "oneDNN custom operations" in result.stderr or "cpu_feature_guard" in result.stderr, result.stderr[-3000:]


def test_start_up_noise_is_dropped_and_other_lines_kept():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796687512.886142    5047 port.cc:153] oneDNN custom operations are on.\n"
        "E0000 00:00:1796687521.633282    5047 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with flags.\n"
        "E0000 00:00:1796687521.633282    5047 op_kernel.cc:12] a real error\n"
    )
    assert console.kept_lines(text) == ["E0000 00:00:1796687521.633282    5047 op_kernel.cc:12] a real error\n"]


def test_wants_logs():
    assert not console.wants_logs(["cvft-train", "--config=x"], {})
    assert not console.wants_logs(["cvft-train"], {"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert console.wants_logs(["cvft-train"], {"TF_CPP_MIN_LOG_LEVEL": "1"})
    assert console.wants_logs(["cvft-train", "-v", "1"], {})
    assert console.wants_logs(["cvft-train", "--verbosity=1"], {})
    assert not console.wants_logs(["cvft-train", "--vocabulary=1"], {})


def test_the_terminal_keeps_the_commands_info_lines_and_libraries_warnings():
    import logging

    import tensorflow as tf

    def record(level, path):
        return logging.LogRecord("absl", level, path, 1, "message", None, None)

    library = os.path.join(os.path.dirname(tf.__file__), "python", "saved_model", "save.py")
    own = os.path.join(os.path.dirname(console.__file__), "train.py")
    assert not console._own_info_only(record(logging.INFO, library))
    assert console._own_info_only(record(logging.WARNING, library))
    assert console._own_info_only(record(logging.INFO, own))
