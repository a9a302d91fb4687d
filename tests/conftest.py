import pathlib

import pytest

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SPEECH_COMMANDS = SHARED_DATA / "speech_commands_v2_dev"
TFLM_TESTDATA = SHARED_DATA / "tflm_testdata"


def require(path: pathlib.Path) -> pathlib.Path:
    """Skip the calling test when shared data is absent (fresh clone without ../shared)."""
    if not path.exists():
        pytest.skip(f"{path} not found: shared data is absent on this machine")
    return path
