"""tflm_kws.shape_cost: the grid, bad input, and (with the M4 tools) one measured shape."""
import os
import subprocess
import sys

import pytest

from conftest import REPO
from tflm_kws import complexity, m4_cost, models, shape_cost
from tflm_kws.reparameterize import reparameterize


def test_grid_is_every_combination():
    assert shape_cost.shapes({"b": [1, 2], "a": ["x"]}) == [{"a": "x", "b": 1}, {"a": "x", "b": 2}]
    with pytest.raises(ValueError, match="'a' must map to a non-empty list"):
        shape_cost.shapes({"a": 3})


def test_bad_input_is_named(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "tflm_kws.shape_cost", "--model=cnn",
                               f"--output_dir={tmp_path}", *args], cwd=REPO, capture_output=True,
                              text=True, env=dict(os.environ, TFLM_ARDUINO_SRC=""))
    proc = run("--shapes={}")
    assert proc.returncode == 2 and "--shapes must be a JSON list" in proc.stderr
    proc = run("--grid={\"channels\": [4]}")
    assert proc.returncode == 2 and ("no TFLM source" in proc.stderr
                                     or "missing tools" in proc.stderr)
    assert not list(tmp_path.iterdir())  # nothing written


def test_one_shape_measured_on_the_m4(tmp_path):
    src = os.environ.get(m4_cost.TFLM_ARDUINO_SRC_ENV)
    if m4_cost.missing_tools() or not src:
        pytest.skip("needs gcc-arm-none-eabi, qemu-system-arm and $TFLM_ARDUINO_SRC "
                    "(docs/arduino.md)")
    hparams = {"channels": 8, "num_blocks": 1}
    (row,) = shape_cost.measure_shapes("rep_inceptionnext", [hparams], src, log=lambda m: None)
    fused = reparameterize(models.build("rep_inceptionnext", **hparams))
    # complexity also counts the average pooling's additions (25 frames x 8 channels).
    assert row["macs"] == complexity.count_params_and_macs(fused)["macs"] - 25 * 8
    assert row["instructions"] > row["macs"] / 2  # never faster than 2 MACs an instruction
    assert [op["op"] for op in row["ops"]].count("ADD") == 1 and row["arena_bytes"] > 0
