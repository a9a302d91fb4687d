"""The host build of the sketch against real TFLM (needs TFLM_TREE, see docs/arduino.md): its model
inputs are the Python features bit for bit, and its outputs are the tflite_micro runtime's (for a
streaming model in model_data.cc: call by call, states carried by model_runner.cpp)."""
import json
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest

from conftest import REPO, TFLM_TESTDATA, require
from test_arduino_sketch import (CLIPS, SKETCH, make, model_bytes, model_labels, require_model_data,
                                 require_tools)

BUILD = REPO / "build" / "arduino_host" / "tflm"


@pytest.fixture(scope="module")
def kws_host():
    tree = os.environ.get("TFLM_TREE")
    if not tree:
        pytest.skip("TFLM_TREE not set")
    require_model_data()
    require_tools("make", "g++", "gcc")
    make(f"TFLM_TREE={pathlib.Path(tree).resolve()}", f"BUILD={BUILD}")
    return BUILD / "kws_host"


@pytest.fixture(scope="module")
def dumps(kws_host, tmp_path_factory):
    """kws_host's feature window, model input and raw output for each 1 s tflm_testdata clip."""
    data = require(TFLM_TESTDATA)
    out = tmp_path_factory.mktemp("kws_host_dumps")
    proc = subprocess.run([str(kws_host), f"--dump_dir={out}", *[str(data / c) for c in CLIPS]],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {clip: json.loads((out / f"{clip}.json").read_text()) for clip in CLIPS}


@pytest.fixture(scope="module")
def python_tflm():
    from tflite_micro.python.tflite_micro import runtime
    return runtime.Interpreter.from_bytes(model_bytes())


def test_model_inputs_are_python_features(dumps, python_tflm):
    from tflm_kws import audio, frontend
    config = frontend.FrontendConfig()
    details = dict(python_tflm.get_input_details(0), shape=(1, *config.feature_shape, 1))
    in_scale = details["quantization_parameters"]["scales"][0]
    in_zero = details["quantization_parameters"]["zero_points"][0]
    for clip, dump in dumps.items():
        features = frontend.compute_features(audio.load_audio(TFLM_TESTDATA / clip), config)
        device_features = np.array(dump["features"], np.int8).reshape(config.feature_shape)
        assert np.array_equal(device_features, features), f"{clip}: features differ"
        # The device's quantization of the features (round half away from zero, clamped).
        scaled = features.astype(np.float64) * frontend.FEATURE_SCALE / in_scale
        expected = np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + in_zero, -128, 127)
        device_input = np.array(dump["input"], np.int8).reshape(details["shape"])
        assert np.array_equal(device_input, expected.astype(np.int8).reshape(details["shape"])), clip
        assert dump["arena_used_bytes"] > 0


def test_model_outputs_equal_tflite_micro_runtime(dumps):
    """The device's last output per clip is the tflite_micro runtime's: on the window for a
    whole-window model; for a streaming model, after the same calls (2 slices each, from a fresh
    state, the clip's odd last slice still pending)."""
    from tflm_kws import evaluate, frontend, streaming
    config = frontend.FrontendConfig()
    tflite = model_bytes()
    frames_per_call, _ = streaming.layout(tflite)
    differing = {}
    for clip, dump in dumps.items():
        features = np.array(dump["features"], np.int8).reshape(config.feature_shape)
        assert dump["slices"] == config.num_frames  # a 1 s clip fills exactly one window
        if frames_per_call:
            python_output = streaming.StreamingRunner(tflite).run(features)[-1].tolist()
        else:
            python_output = evaluate.run_tflite(tflite, features[None], "tflm")[0].tolist()
        if dump["output"] != python_output:
            differing[clip] = (dump["output"], python_output)
    assert not differing, f"TFLM_TREE output != tflite_micro runtime output (host, python): {differing}"


def run_host(kws_host, *args):
    return subprocess.run([str(kws_host), *map(str, args)], capture_output=True, text=True)


def test_expected_labels_pass_and_mismatch_fails(kws_host, tmp_path):
    data = require(TFLM_TESTDATA)
    files = [data / c for c in CLIPS]
    first = run_host(kws_host, *files)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("arena used:") == len(CLIPS)
    # What the host detected (strongest detection, "_silence_" for none) must pass as expected.
    expected = tmp_path / "expected.txt"
    detected = [re.search(r"detected: (\S+)", block).group(1)
                for block in first.stdout.split("\n/")]
    labels = model_labels()
    silence = "_silence_"
    rows = []
    for clip, found in zip(CLIPS, detected):
        rows.append((clip, silence if found == "(none)" else strongest(first.stdout, clip, found)))
    expected.write_text("".join(f"{c} {l}\n" for c, l in rows))
    ok = run_host(kws_host, f"--expected={expected}", *files)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Any other label for the first clip is a mismatch.
    wrong = next(l for l in labels if l != rows[0][1])
    expected.write_text("".join(f"{c} {wrong if i == 0 else l}\n" for i, (c, l) in enumerate(rows)))
    bad = run_host(kws_host, f"--expected={expected}", *files)
    assert bad.returncode == 1 and "MISMATCH" in bad.stdout


def strongest(stdout, clip, found):
    """The highest-scoring 'Heard' line of `clip`'s block (what --expected compares)."""
    block = stdout.split(clip, 1)[1].split("\n/", 1)[0]
    heard = re.findall(r"Heard (\S+) \((\d+)\)", block)
    assert heard, f"{clip}: detected {found} but no Heard line"
    return max(heard, key=lambda h: int(h[1]))[0]


def test_arena_too_small_is_reported_never_an_abort(kws_host):
    """Arenas below the measured use are refused with a message before TFLM sees them: TFLM itself
    aborts inside its allocator for some of them (2-3 KB with the committed model)."""
    data = require(TFLM_TESTDATA)
    header = (SKETCH / "model_data.h").read_text()
    arena = int(re.search(r"kTensorArenaSize\s*=\s*(\d+)", header).group(1))
    used = int(re.search(r"kTensorArenaUsedBytes\s*=\s*(\d+)", header).group(1))
    for size in (512, 2048, 3000, arena // 2, used - 16):
        proc = run_host(kws_host, f"--arena_bytes={size}", data / CLIPS[0])
        assert proc.returncode == 1, (size, proc.returncode, proc.stderr[-500:])
        assert (f"Tensor arena of {size} bytes is smaller than the {used} bytes this model was "
                "measured to use") in proc.stderr
    proc = run_host(kws_host, f"--arena_bytes={used}", data / CLIPS[0])
    assert proc.returncode == 0, proc.stderr[-500:]


def test_unknown_expected_label_is_rejected(kws_host, tmp_path):
    data = require(TFLM_TESTDATA)
    expected = tmp_path / "expected.txt"
    expected.write_text(f"{CLIPS[0]} no_such_label\n")
    proc = run_host(kws_host, f"--expected={expected}", data / CLIPS[0])
    assert proc.returncode == 2 and "no_such_label" in proc.stderr
