"""python -m conversion.convert: bad input, and the whole pipeline on a one-epoch model."""
import subprocess
import sys

from tests.conftest import REPO


def _convert(*args):
    return subprocess.run([sys.executable, "-m", "conversion.convert", *args], cwd=REPO,
                          capture_output=True, text=True)


def test_missing_model_dir_is_named(tmp_path):
    missing = tmp_path / "no_such_run"
    result = _convert(f"--model_dir={missing}")
    assert result.returncode != 0
    assert f"--model_dir is not a directory: {missing}" in result.stderr


def test_missing_fused_model_is_named(tmp_path):
    result = _convert(f"--model_dir={tmp_path}", "--qat_epochs=0")
    assert result.returncode != 0
    assert f"fused plain-graph model (fused.keras) not found: {tmp_path / 'fused.keras'}" \
        in result.stderr
