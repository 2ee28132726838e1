"""The built wheel, installed without the checkout, trains by config name (``--config=synthetic:smoke``)."""

import os
import subprocess
import sys
import sysconfig

import pytest

from tests.faults.harness import REPO, data_overrides, write_world


def _site_packages(venv):
    (path,) = [os.path.join(venv, "lib", name, "site-packages") for name in os.listdir(os.path.join(venv, "lib"))]
    return path


@pytest.mark.large
def test_an_installed_wheel_trains_by_config_name(tmp_path):
    run = dict(capture_output=True, text=True, timeout=600, cwd=tmp_path)
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), REPO], **run)
    assert built.returncode == 0, built.stderr[-3000:]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, **run)
    # The dependencies come from this environment (a path line, so its editable cvft_tf finder is not loaded).
    with open(os.path.join(_site_packages(venv), "dependencies.pth"), "w") as handle:
        handle.write(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = wheels.glob("cvft_tf-*.whl")
    python = str(venv / "bin" / "python")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", str(wheel)], **run
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    where = subprocess.run([python, "-c", "import cvft_tf; print(cvft_tf.__file__)"], **run)
    assert where.stdout.startswith(_site_packages(venv)), where.stdout + where.stderr

    world = write_world(tmp_path / "world")
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    trained = subprocess.run(
        [str(venv / "bin" / "cvft-train"), "--config=synthetic:smoke", f"--workdir={tmp_path / 'run'}",
         "--config.train.epochs=1", *data_overrides(world)],
        env=environment, **run,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (tmp_path / "run" / "best.keras").exists()
    assert "cpu_feature_guard" not in trained.stderr and "training.py:" not in trained.stderr, trained.stderr[-3000:]
    with open(tmp_path / "run" / "log.txt") as log:
        assert "training.py:" in log.read()
