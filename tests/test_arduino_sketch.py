"""The sketch's portable C++ without TFLM (runs in CI): the feature provider built with the
microfrontend sources of the pymicro-features sdist, bit for bit against tflm_kws.frontend (1 s
clips, >= 10 minutes of audio captured in random chunk sizes through the audio ring buffer, and
non-default frontend configs); the ring buffer; the recognizer on scripted score sequences; the C
array."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from conftest import REPO, TFLM_TESTDATA, require, write_wav

SKETCH = REPO / "arduino" / "tflm_kws"
HOST_TEST = REPO / "arduino" / "host_test"
BUILD = REPO / "build"
PYMICRO = "pymicro-features==2.0.2"
CLIPS = ["yes_1000ms.wav", "no_1000ms.wav", "noise_1000ms.wav", "silence_1000ms.wav"]

# pymicro-features 2.0.2 rewrote the microfrontend's table set-up (mel scale, filterbank weight
# rounding, Hann window) in single precision, which moves features by up to ~130 raw units on
# tflm_testdata. These restore the double-precision expressions of TFLM (and of TensorFlow's op).
UPSTREAM_MATH = {
    "filterbank_util.cc": [
        ("return 1127.0f * log1pf(freq / 700.0f);", "return 1127.0 * log1p(freq / 700.0);"),
        ("*weight = floorf(float_weight * (1 << kFilterbankBits) + 0.5f);",
         "*weight = floor(float_weight * (1 << kFilterbankBits) + 0.5);"),
        ("*unweight = floorf((1.0f - float_weight) * (1 << kFilterbankBits) + 0.5f);",
         "*unweight = floor((1.0 - float_weight) * (1 << kFilterbankBits) + 0.5);"),
        ("const float hz_per_sbin = 0.5f * sample_rate", "const float hz_per_sbin = 0.5 * sample_rate"),
        ("state->start_index = 1.5f + config->lower_band_limit",
         "state->start_index = 1.5 + config->lower_band_limit"),
    ],
    "window_util.cc": [
        ("const float arg = (float)M_PI * 2.0f / ((float)state->size);",
         "const float arg = M_PI * 2.0 / ((float)state->size);"),
        ("float float_value = 0.5f - (0.5f * cosf(arg * (i + 0.5f)));",
         "float float_value = 0.5 - (0.5 * cos(arg * (i + 0.5)));"),
        ("floorf(float_value * (1 << kFrontendWindowBits) + 0.5f);",
         "floor(float_value * (1 << kFrontendWindowBits) + 0.5);"),
    ],
}


def require_model_data():
    for name in ("model_data.h", "model_data.cc"):
        if not (SKETCH / name).exists():
            pytest.skip(f"{SKETCH / name} not found: run `python -m conversion.convert "
                        f"--arduino_dir arduino/tflm_kws` first")


def require_tools(*tools):
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found on PATH")


def make(*args):
    proc = subprocess.run(["make", "-j2", "-C", str(HOST_TEST), *args], capture_output=True, text=True)
    assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="session")
def pymicro_frontend_tree():
    """The microfrontend C sources from the pymicro-features sdist (PyPI), TFLM's math restored."""
    require_tools("make", "g++", "gcc")
    root = BUILD / "pymicro_features"
    tree = root / "pymicro_features-2.0.2"
    done = root / "patched.ok"
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:",
                               "--no-deps", "--dest", str(root), PYMICRO],
                              capture_output=True, text=True)
        sdists = sorted(root.glob("pymicro_features-2.0.2.tar.gz"))
        if proc.returncode != 0 or not sdists:
            pytest.skip(f"could not download the {PYMICRO} sdist: {proc.stderr.strip()[-300:]}")
        shutil.rmtree(tree, ignore_errors=True)
        with tarfile.open(sdists[0]) as tar:
            tar.extractall(root, filter="data")
        lib = tree / "tensorflow" / "lite" / "experimental" / "microfrontend" / "lib"
        for name, replacements in UPSTREAM_MATH.items():
            text = (lib / name).read_text()
            for old, new in replacements:
                assert text.count(old) == 1, f"{lib / name}: expected exactly one '{old}'"
                text = text.replace(old, new)
            (lib / name).write_text(text)
        done.write_text(PYMICRO + "\n")
    return tree


@pytest.fixture(scope="session")
def feature_tools(pymicro_frontend_tree):
    require_model_data()
    build = BUILD / "arduino_host" / "features"
    make("features", f"FRONTEND_TREE={pymicro_frontend_tree}", f"BUILD={build}")
    return build


def model_bytes(sketch=None):
    """The flatbuffer held by model_data.cc (of the committed sketch, or of folder `sketch`)."""
    text = ((sketch or SKETCH) / "model_data.cc").read_text()
    block = re.search(r"g_model_data\[\]\s*=\s*\{(.*?)\};", text, re.S)
    assert block, "model_data.cc has no g_model_data initializer"
    data = bytes(int(v, 0) for v in re.findall(r"0x[0-9a-fA-F]+|\b\d+\b", block.group(1)))
    length = re.search(r"g_model_data_len\s*=\s*(\d+)", text)
    assert length and int(length.group(1)) == len(data)
    return data


def model_labels():
    text = (SKETCH / "model_data.cc").read_text()
    block = re.search(r"kCategoryLabels\[kCategoryCount\]\s*=\s*\{(.*?)\};", text, re.S)
    assert block, "model_data.cc defines no kCategoryLabels"
    return re.findall(r'"((?:[^"\\]|\\.)*)"', block.group(1))


def test_model_data_compiles_alone():
    require_model_data()
    require_tools("g++")
    out = BUILD / "arduino_host" / "model_data_alone.o"
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["g++", "-std=gnu++14", "-Wall", "-Wextra", "-Werror", f"-I{SKETCH}", "-c",
                           str(SKETCH / "model_data.cc"), "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    nm = subprocess.run(["nm", "-C", str(out)], capture_output=True, text=True).stdout
    for symbol in ("g_model_data", "g_model_data_len", "kCategoryLabels"):
        assert symbol in nm, f"model_data.cc does not define {symbol}"


def test_features_bit_identical_to_python(feature_tools, tmp_path):
    from tflm_kws import audio, frontend
    data = require(TFLM_TESTDATA)
    config = frontend.FrontendConfig()
    proc = subprocess.run([str(feature_tools / "kws_features"), f"--dump_dir={tmp_path}",
                           *[str(data / c) for c in CLIPS]], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for clip in CLIPS:
        dump = json.loads((tmp_path / f"{clip}.json").read_text())
        assert dump["slices"] == config.num_frames
        device = np.array(dump["features"], np.int8).reshape(config.feature_shape)
        reference = frontend.compute_features(audio.load_audio(data / clip), config)
        assert np.array_equal(device, reference), (
            f"{clip}: {int((device != reference).sum())} of {device.size} features differ")


def test_features_reject_bad_wav(feature_tools, tmp_path):
    bad = tmp_path / "stereo.wav"
    import wave
    with wave.open(str(bad), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0" * 6400)
    proc = subprocess.run([str(feature_tools / "kws_features"), f"--dump_dir={tmp_path}", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "stereo.wav" in proc.stderr and "mono" in proc.stderr


class Recognizer:
    """Runs recognize_commands_driver on (time_ms, scores) rows."""

    def __init__(self, build):
        self.binary = build / "recognize_commands_driver"
        self.labels = model_labels()

    def run(self, rows):
        text = "".join(f"{t} {' '.join(str(s) for s in scores)}\n" for t, scores in rows)
        proc = subprocess.run([str(self.binary)], input=text, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].split()[1:] == self.labels
        return [line.split() for line in lines[1:]]

    def scores(self, label, value=250):
        """One-hot-ish scores: `value` for `label`, the rest shared out below it."""
        scores = [0] * len(self.labels)
        scores[self.labels.index(label)] = value
        return scores


@pytest.fixture(scope="session")
def core_tools():
    """The recognizer driver and the ring buffer test: neither TFLM nor the microfrontend."""
    require_model_data()
    require_tools("make", "g++")
    build = BUILD / "arduino_host" / "core"
    make("core", f"BUILD={build}")
    return build


@pytest.fixture(scope="module")
def recognizer(core_tools):
    r = Recognizer(core_tools)
    if len(r.labels) < 2:
        pytest.skip("the model has a single label")
    return r


def keyword(recognizer):
    return next(l for l in recognizer.labels if l not in ("_silence_", "_unknown_"))


def test_recognizer_waits_for_minimum_results(recognizer):
    word = keyword(recognizer)
    # Two results, and then results spanning less than a quarter of the averaging window: no verdict.
    out = recognizer.run([(0, recognizer.scores(word)), (20, recognizer.scores(word)),
                          (240, recognizer.scores(word))])
    assert [row[3] for row in out] == ["0", "0", "0"]
    assert [row[2] for row in out] == ["0", "0", "0"]
    out = recognizer.run([(t, recognizer.scores(word)) for t in (0, 20, 250)])
    assert out[-1][1:] == [word, "250", "1"]


def test_recognizer_threshold_and_averaging(recognizer):
    word = keyword(recognizer)
    # Alternating 250 and 150 average at most 200: never above the threshold of 200.
    values = [250 if i % 2 else 150 for i in range(20)]
    out = recognizer.run([(20 * i, recognizer.scores(word, v)) for i, v in enumerate(values)])
    assert all(row[3] == "0" and int(row[2]) <= 200 for row in out)
    # Then a run of 240s: it triggers at the first result whose 1000 ms window (results every
    # 20 ms: the last 51) averages above 200, and reports that integer average.
    values += [240] * 60
    out = recognizer.run([(20 * i, recognizer.scores(word, v)) for i, v in enumerate(values)])
    averages = [sum(values[max(0, k - 50):k + 1]) // len(values[max(0, k - 50):k + 1])
                for k in range(len(values))]
    expected_first = next(k for k, a in enumerate(averages) if k >= 13 and a > 200)
    first = next(i for i, row in enumerate(out) if row[3] == "1")
    assert first == expected_first and int(out[first][2]) == averages[first]


def test_recognizer_suppresses_repeats_but_not_new_labels(recognizer):
    labels = [l for l in recognizer.labels if l != "_silence_"]
    if len(labels) < 2:
        pytest.skip("needs two non-silence labels")
    first, second = labels[0], labels[1]
    rows = [(t, recognizer.scores(first)) for t in range(0, 3000, 20)]
    out = recognizer.run(rows)
    fired = [int(row[0]) for row in out if row[3] == "1"]
    # It fires, then again only once more than 1500 ms have passed.
    assert len(fired) >= 2 and all(b - a > 1500 for a, b in zip(fired, fired[1:]))
    # A different label is reported as soon as it wins the average.
    rows = [(t, recognizer.scores(first)) for t in range(0, 600, 20)]
    rows += [(t, recognizer.scores(second)) for t in range(600, 2000, 20)]
    out = recognizer.run(rows)
    fired = [(int(row[0]), row[1]) for row in out if row[3] == "1"]
    assert fired[0][1] == first and fired[1][1] == second and fired[1][0] - fired[0][0] < 1500


def test_recognizer_rejects_time_going_backwards(recognizer):
    word = keyword(recognizer)
    out = recognizer.run([(100, recognizer.scores(word)), (80, recognizer.scores(word))])
    assert out[1] == ["80", "error"]
    # Times count from the start of the audio: a negative one (found by the fuzzer: near
    # INT32_MIN the window arithmetic overflowed) is refused, and the recognizer carries on.
    out = recognizer.run([(-2147483000, recognizer.scores(word)), (0, recognizer.scores(word))])
    assert out[0] == ["-2147483000", "error"] and out[1][0] == "0" and out[1][1] != "error"


def test_audio_ring_buffer(core_tools):
    proc = subprocess.run([str(core_tools / "audio_ring_buffer_test")], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passed = int(re.search(r"(\d+) passed, 0 failed", proc.stdout).group(1))
    assert passed > 1000  # every chunk of ~200 wraps was checked


# --- The feature provider on long audio, captured in random chunk sizes (as on the board, where
# each inference takes 2-3 slices and the PDM callback delivers blocks of its own size). ---

FIXTURES = REPO / "tests" / "fixtures"
STREAM_SECONDS = 600


def _stream_audio(seconds, seed):
    """int16 audio of at least `seconds`: the committed fixture clips (speech and noise) in a seeded
    random order and gain, so it runs the same with or without ../shared."""
    from tflm_kws import audio
    paths = sorted((FIXTURES / "speech_commands_mini").rglob("*.flac"))
    paths += sorted((FIXTURES / "tflm_testdata").glob("*.wav"))
    clips = [audio.load_audio(p).astype(np.float32) for p in paths]
    rng = np.random.default_rng(seed)
    pieces, total = [], 0
    while total < seconds * 16000:
        clip = clips[rng.integers(len(clips))] * rng.uniform(0.1, 3.0)
        pieces.append(clip)
        total += len(clip)
    return np.clip(np.concatenate(pieces), -32768, 32767).astype(np.int16)


def _stream_records(path, config):
    dtype = np.dtype([("sample_count", "<i8"), ("slices", "<i8"), ("new_slices", "<i4"),
                      ("window", "i1", (config.num_frames * config.num_channels,))])
    return np.fromfile(path, dtype)


def _expected_windows(samples, records, config):
    """The windows the documented contract asks for (feature_provider.h): after each call, the
    newest num_frames slices of a frontend that ran contiguously over the stream since the last
    restart; a restart (fresh state at the oldest slice still needed) happens when more than a
    window is pending; slices before the stream starts are zeros."""
    frames, stride, window = config.num_frames, config.stride_samples, config.window_samples
    next_slice, restarts, plan = 0, [0], []
    for sample_count in records["sample_count"]:
        available = (int(sample_count) - window) // stride + 1
        pending = available - next_slice
        if pending > frames:
            restarts.append(available - frames)
            pending = frames
        plan.append((available, pending, len(restarts) - 1))
        next_slice = available
    segments = []
    for i, start in enumerate(restarts):
        last = max([available for available, _, seg in plan if seg == i], default=start)
        segments.append(frontend_stream(samples[start * stride:(last - 1) * stride + window],
                                        config))
    expected = np.zeros((len(records), frames, config.num_channels), np.int8)
    for row, (available, _, segment) in enumerate(plan):
        start = restarts[segment]
        for k in range(max(available - frames, start), available):
            expected[row, k - (available - frames)] = segments[segment][k - start]
    return expected, np.array([p[0] for p in plan]), np.array([p[1] for p in plan])


def frontend_stream(audio, config):
    from tflm_kws import frontend
    return frontend.compute_stream_features(audio, config)


def _run_stream(binary, wav, out, *flags):
    proc = subprocess.run([str(binary), f"--out={out}", *flags, str(wav)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr


def _assert_stream_matches(binary, samples, tmp_path, config, *flags):
    wav, out = tmp_path / "stream.wav", tmp_path / "stream.bin"
    write_wav(wav, samples)
    _run_stream(binary, wav, out, *flags)
    records = _stream_records(out, config)
    expected, slices, new_slices = _expected_windows(samples, records, config)
    assert records["slices"].tolist() == slices.tolist()
    assert records["new_slices"].tolist() == new_slices.tolist()
    device = records["window"].reshape(expected.shape)
    bad = np.flatnonzero((device != expected).any(axis=(1, 2)))
    assert not len(bad), (f"{len(bad)} of {len(records)} windows differ from Python's, first at "
                          f"sample {records['sample_count'][bad[0]]}")
    return records


def test_feature_provider_matches_python_on_ten_minutes_in_random_chunks(feature_tools, tmp_path):
    from tflm_kws import frontend
    config = frontend.FrontendConfig()
    samples = _stream_audio(STREAM_SECONDS, seed=0)
    records = _assert_stream_matches(feature_tools / "kws_stream_features", samples, tmp_path,
                                     config, "--seed=7", "--max_chunk=2000")
    # The stream is long enough to wrap the 16384-sample ring buffer hundreds of times, and the
    # calls saw 1, 2, 3 and more pending slices.
    assert records["sample_count"][-1] >= STREAM_SECONDS * 16000 - config.stride_samples
    assert records["sample_count"][-1] / 16384 > 500
    assert {1, 2, 3} <= set(records["new_slices"].tolist())
    assert records["new_slices"].max() > 3


def test_feature_provider_restarts_when_more_than_a_window_is_pending(feature_tools, tmp_path):
    from tflm_kws import frontend
    config = frontend.FrontendConfig()
    records = _assert_stream_matches(feature_tools / "kws_stream_features",
                                     _stream_audio(90, seed=1), tmp_path, config, "--seed=3",
                                     "--max_chunk=1500", "--big_every=20")
    assert (records["new_slices"] == config.num_frames).sum() >= 3  # restarts happened


# Every field the sketch reads from model_data.h changed from micro_speech's default at once.
NON_DEFAULT_FRONTENDS = {
    "all_fields": dict(clip_duration_ms=800, window_size_ms=25, window_stride_ms=10,
                       num_channels=32, lower_band_limit=200.0, upper_band_limit=6000.0,
                       smoothing_bits=8, even_smoothing=0.04, odd_smoothing=0.1,
                       min_signal_remaining=0.2, pcan_strength=0.8, pcan_offset=40.0,
                       gain_bits=18, scale_shift=5),
    "no_pcan_no_log": dict(enable_pcan=False, enable_log=False, scale_shift=4, smoothing_bits=12),
}


@pytest.mark.parametrize("name", sorted(NON_DEFAULT_FRONTENDS))
def test_feature_provider_follows_non_default_frontend_config(pymicro_frontend_tree, tmp_path,
                                                              name):
    """model_data.h for another FrontendConfig: the sketch's features equal Python's, and differ
    from the default config's (the setting reaches both sides)."""
    from tflm_kws import carray, frontend
    require_model_data()
    config = frontend.FrontendConfig(**NON_DEFAULT_FRONTENDS[name])
    sketch = tmp_path / "sketch"
    sketch.mkdir()
    for path in SKETCH.iterdir():
        if path.suffix in (".h", ".cpp", ".cc") and not path.name.startswith("model_data"):
            shutil.copy(path, sketch / path.name)
    labels = model_labels()
    (sketch / "model_data.h").write_text(carray.header_text(config, labels, 16, ["RESHAPE"], 16))
    (sketch / "model_data.cc").write_text(carray.source_text(b"\0" * 16, labels))
    build = tmp_path / "build"
    make("features", f"FRONTEND_TREE={pymicro_frontend_tree}", f"SKETCH_DIR={sketch}",
         f"BUILD={build}")
    samples = _stream_audio(60, seed=2)
    _assert_stream_matches(build / "kws_stream_features", samples, tmp_path, config, "--seed=5")
    ours = frontend.compute_stream_features(samples, config)
    default = frontend.compute_stream_features(samples, frontend.FrontendConfig())
    assert ours.shape != default.shape or (ours != default).mean() > 0.1


# --- The sketch's model glue with the committed model's real outputs (no TFLM tree needed: the
# tflite_micro runtime computes the outputs, the C++ turns them into inputs, scores, detections). ---

@pytest.fixture(scope="module")
def committed_model():
    from tflm_kws import evaluate, streaming
    require_model_data()
    tflite_bytes = model_bytes()
    runner = (streaming.StreamingRunner(tflite_bytes) if streaming.layout(tflite_bytes)[0]
              else evaluate.make_runner(tflite_bytes, "tflm"))
    return tflite_bytes, runner, evaluate.ends_in_softmax(tflite_bytes)


def _raw_outputs(runner, windows):
    """The model's raw outputs on whole windows (a streaming model: fed each window's frames,
    which it answers exactly as its whole-window form does)."""
    from tflm_kws import evaluate, streaming
    if isinstance(runner, streaming.StreamingRunner):
        return np.stack([streaming.stream_window(runner, w) for w in windows])
    inputs = evaluate.quantize_input(windows, runner.input_detail)
    shape = tuple(runner.input_detail["shape"])
    return np.stack([runner.run(x.reshape(shape)).reshape(-1) for x in inputs])


def _scale_zero(detail):
    q = detail["quantization_parameters"]
    return float(q["scales"][0]), int(q["zero_points"][0])


def test_model_input_table_is_the_python_quantization(core_tools, committed_model):
    from tflm_kws import evaluate
    _, runner, _ = committed_model
    values = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 256)
    requests = [_scale_zero(runner.input_detail), (1 / 64, 5), (1 / 300, -20), (0.05, 0)]
    text = "".join(f"table {scale!r} {zero}\n" for scale, zero in requests)
    proc = subprocess.run([str(core_tools / "model_scores_driver")], input=text,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for (scale, zero), line in zip(requests, proc.stdout.splitlines()):
        detail = {"dtype": np.int8, "quantization": (np.float32(scale), zero)}
        expected = evaluate.quantize_input(values, detail).reshape(-1)
        assert [int(v) for v in line.split()] == expected.tolist(), (scale, zero)


def test_model_scores_are_the_python_scores_on_real_clips(core_tools, committed_model):
    """The model's raw outputs on real clips -> the scores the recognizer sees, in C++ and in
    tflm_kws.evaluate.device_scores (what the wake-word evaluation uses)."""
    from tflm_kws import audio, evaluate, frontend
    _, runner, is_probability = committed_model
    config = frontend.FrontendConfig()
    paths = [p for p in sorted((FIXTURES / "speech_commands_mini").glob("*/*.flac"))
             if p.parent.name != "_background_noise_"]
    paths += sorted((FIXTURES / "tflm_testdata").glob("*.wav"))
    clips = [audio.load_audio(p)[:config.clip_samples] for p in paths]
    windows = np.stack([frontend.compute_features(np.pad(c, (0, config.clip_samples - len(c))),
                                                  config) for c in clips])
    raw = _raw_outputs(runner, windows)
    scale, zero = _scale_zero(runner.output_detail)
    lines = [f"scores {scale!r} {zero} {int(is_probability)} " + " ".join(map(str, row))
             for row in raw.tolist()]
    # Also both conversions at once, and saturated outputs.
    lines += [f"scores {scale!r} {zero} {p} " + " ".join(["127"] + ["-128"] * (raw.shape[1] - 1))
              for p in (0, 1)]
    proc = subprocess.run([str(core_tools / "model_scores_driver")], input="\n".join(lines) + "\n",
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    device = np.array([[int(v) for v in line.split()] for line in proc.stdout.splitlines()])
    extremes = np.array([[127] + [-128] * (raw.shape[1] - 1)] * 2, np.int8)
    expected = np.concatenate([
        evaluate.device_scores(raw, runner.output_detail, is_probability),
        evaluate.device_scores(extremes[:1], runner.output_detail, False),
        evaluate.device_scores(extremes[1:], runner.output_detail, True)]).astype(int)
    assert np.abs(device - expected).max() <= 1  # float exp: 1 ulp apart at a rounding edge
    assert (device == expected).mean() > 0.99
    assert device[-2, 0] == 255 and device[-2, 1:].max() == 0  # one logit far above the rest


def _spotter(binary, wav, windows, *flags):
    return _spotter_resets(binary, wav, windows, *flags)[0]


@pytest.mark.parametrize("clip,word", [("yes_1000ms.wav", "yes"), ("no_1000ms.wav", None),
                                       ("silence_1000ms.wav", None)])
def test_keyword_spotter_with_the_real_model(feature_tools, committed_model, tmp_path, clip, word):
    """keyword_spotter.cpp on a clip with 1 s of silence either side: every window the model gets
    is the newest of Python's continuous features, its time is the window's end, its scores are the
    model's (replayed from the tflite_micro runtime), and the recognizer reports the word once
    (the committed model's "no" on no_1000ms.wav stays below the threshold: no detection)."""
    from tflm_kws import audio, evaluate, frontend
    _, runner, is_probability = committed_model
    config = frontend.FrontendConfig()
    clip_audio = audio.load_audio(FIXTURES / "tflm_testdata" / clip) if (
        FIXTURES / "tflm_testdata" / clip).exists() else audio.load_audio(require(TFLM_TESTDATA) / clip)
    silence = np.zeros(16000, np.int16)
    samples = np.concatenate([silence, clip_audio, silence])
    wav = tmp_path / "stream.wav"
    write_wav(wav, samples)
    binary = feature_tools / "kws_spotter_replay"
    first = _spotter(binary, wav, tmp_path / "windows1.bin")
    windows = np.fromfile(tmp_path / "windows1.bin", np.int8).reshape(-1, *config.feature_shape)
    # One inference per 20 ms slice; its window is the newest num_frames slices of the stream.
    stream = frontend.compute_stream_features(samples, config)
    padded = np.concatenate([np.zeros((config.num_frames - 1, config.num_channels), np.int8), stream])
    assert len(windows) == len(first) == len(stream)
    for k in (0, 1, 48, 49, 50, len(stream) - 1):
        np.testing.assert_array_equal(windows[k], padded[k:k + config.num_frames])
    assert [int(row[0]) for row in first] == [20 * k + 30 for k in range(len(stream))]
    # Replay the real model's outputs on those windows.
    raw = _raw_outputs(runner, windows)
    (tmp_path / "outputs.bin").write_bytes(raw.astype(np.int8).tobytes())
    scale, zero = _scale_zero(runner.output_detail)
    rows = _spotter(binary, wav, tmp_path / "windows2.bin", f"--outputs={tmp_path / 'outputs.bin'}",
                    f"--output_scale={scale!r}", f"--output_zero_point={zero}",
                    *(["--probability"] if is_probability else []))
    assert (tmp_path / "windows2.bin").read_bytes() == (tmp_path / "windows1.bin").read_bytes()
    scores = np.array([[int(v) for v in row[4:]] for row in rows])
    expected = evaluate.device_scores(raw, runner.output_detail, is_probability).astype(int)
    assert np.abs(scores - expected).max() <= 1
    detections = [row[1] for row in rows if row[3] == "1" and row[1] != "_silence_"]
    assert detections == ([word] if word else []), detections


def _spotter_resets(binary, wav, windows, *flags):
    """kws_spotter_replay's output lines (split) and how often it reset the model's state."""
    proc = subprocess.run([str(binary), f"--windows_out={windows}", *map(str, flags), str(wav)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [line.split() for line in proc.stdout.splitlines()], int(proc.stderr.split()[-1])


@pytest.mark.parametrize("chunk_ms", [20, 60, 100])
def test_streaming_model_gets_every_frame_once_in_order(feature_tools, tmp_path, chunk_ms):
    """keyword_spotter.cpp with a streaming stand-in model (2 frames a call), audio arriving 1, 3
    or 5 slices at a time: the calls' frames, concatenated, are Python's continuous features, each
    call's time is the end of its newest frame, and the state is never reset mid-stream."""
    from tflm_kws import frontend
    config = frontend.FrontendConfig()
    samples = np.random.default_rng(7).integers(-3000, 3000, 16000 * 3).astype(np.int16)
    wav = tmp_path / "stream.wav"
    write_wav(wav, samples)
    rows, resets = _spotter_resets(feature_tools / "kws_spotter_replay", wav, tmp_path / "f.bin",
                                   "--frames_per_call=2", f"--chunk_ms={chunk_ms}")
    frames = np.fromfile(tmp_path / "f.bin", np.int8).reshape(-1, config.num_channels)
    stream = frontend.compute_stream_features(samples, config)
    calls = len(stream) // 2
    assert len(frames) == 2 * calls and resets == 0
    np.testing.assert_array_equal(frames, stream[:2 * calls])
    # One output line per Process() that ran the model: its time is its last call's.
    times = [int(row[0]) for row in rows]
    slices_per_chunk = chunk_ms // 20
    assert times == sorted(set(times)) and all((t - 30) % 40 == 20 for t in times)
    assert times[-1] == 20 * (2 * calls - 1) + 30
    assert len(rows) >= calls // max(1, slices_per_chunk // 2 + 1)


def test_streaming_state_resets_when_the_provider_restarts(feature_tools, tmp_path):
    """Whole seconds of audio per Process(): every call starts a fresh window (the frontend
    restarts), so the spotter resets the streaming model's state before feeding it."""
    samples = np.random.default_rng(8).integers(-3000, 3000, 16000 * 3).astype(np.int16)
    wav = tmp_path / "stream.wav"
    write_wav(wav, samples)
    _, resets = _spotter_resets(feature_tools / "kws_spotter_replay", wav, tmp_path / "f.bin",
                                "--frames_per_call=2", "--chunk_ms=1000")
    frames = np.fromfile(tmp_path / "f.bin", np.int8).reshape(-1, 2, 40)
    assert resets == 3 and len(frames) == 3 * 24  # 49 new slices each: 24 calls, 1 left over


# --- The CMSIS-NN scratch written into kTensorArenaSize, against CMSIS-NN's own functions
# (needs CMSIS_NN_TREE, e.g. the Arduino library's src/third_party/cmsis_nn; see docs/arduino.md). ---

def _cmsis_nn_requests(tflite_bytes):
    """One cmsis_nn_scratch_main request per conv / depthwise / average-pool op, with the dims,
    strides, dilation and padding TFLM's cmsis_nn kernels pass (padding as TFLM computes it)."""
    from tensorflow.lite.python import schema_py_generated as schema
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tflite_bytes, 0))
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    requests = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = names[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D"):
            continue
        _, in_h, in_w, c_in = graph.tensors[op.inputs[0]].shape
        _, out_h, out_w, c_out = graph.tensors[op.outputs[0]].shape
        if name == "AVERAGE_POOL_2D":
            requests.append((name, f"avgpool {out_w} {c_in}"))
            continue
        options = op.builtinOptions
        _, k_h, k_w, _ = graph.tensors[op.inputs[1]].shape
        pads = []
        for size, k, stride, dilation, out in ((in_h, k_h, options.strideH,
                                                options.dilationHFactor, out_h),
                                               (in_w, k_w, options.strideW,
                                                options.dilationWFactor, out_w)):
            effective = (k - 1) * dilation + 1
            total = max((out - 1) * stride + effective - size, 0)
            pads.append(total // 2 if options.padding == schema.Padding.SAME else 0)
        kind = "conv" if name == "CONV_2D" else "depthwise"
        requests.append((name, f"{kind} {in_h} {in_w} {c_in} {k_h} {k_w} {out_h} {out_w} {c_out} "
                               f"{options.strideH} {options.strideW} {pads[0]} {pads[1]} "
                               f"{options.dilationHFactor} {options.dilationWFactor}"))
    return requests


def test_cmsis_nn_scratch_is_what_cmsis_nn_asks_for(tmp_path):
    import tf_keras as keras
    from tflm_kws import export
    tree = os.environ.get("CMSIS_NN_TREE")
    if not tree:
        pytest.skip("CMSIS_NN_TREE not set")
    require_tools("make", "g++", "gcc")
    build = BUILD / "arduino_host" / "cmsis_nn"
    make("cmsis_nn_scratch", f"CMSIS_NN_TREE={pathlib.Path(tree).resolve()}", f"BUILD={build}")
    L = keras.layers
    inputs = keras.Input((49, 40, 1))
    x = L.Conv2D(8, (5, 3), strides=2, padding="same", activation="relu")(inputs)
    x = L.Conv2D(12, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(12, 1, activation="relu")(x)
    x = L.Conv2D(12, 1, strides=2, activation="relu")(x)
    x = L.DepthwiseConv2D((3, 1), padding="same")(x)
    x = L.DepthwiseConv2D((1, 3), padding="valid")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = L.Conv2D(16, (7, 1), strides=(2, 1), padding="valid")(x)
    x = L.AveragePooling2D((3, 4))(x)
    zoo = keras.Model(inputs, L.Dense(3)(L.Flatten()(x)))
    features = np.random.default_rng(0).integers(-128, 128, (10, 49, 40)).astype(np.int8)
    for name, tflite_bytes in (("committed model", model_bytes()),
                               ("every kernel", export.convert_int8(zoo, features))):
        requests = _cmsis_nn_requests(tflite_bytes)
        proc = subprocess.run([str(build / "cmsis_nn_scratch")],
                              input="".join(r + "\n" for _, r in requests), capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        measured = [int(v) for v in proc.stdout.split()]
        ours = [size for _, _, size in export.cmsis_nn_scratch_per_op(tflite_bytes)]
        assert ours == measured, (name, list(zip([n for n, _ in requests], ours, measured)))
        assert export.cmsis_nn_scratch_bytes(tflite_bytes) == max(measured)
    # The committed sketch's arena covers TFLM's own use plus the largest measured scratch.
    arena = int(re.search(r"kTensorArenaSize\s*=\s*(\d+)",
                          (SKETCH / "model_data.h").read_text()).group(1))
    committed = model_bytes()
    assert arena >= export.tflm_arena_used_bytes(committed) + export.cmsis_nn_scratch_bytes(committed)


# --- libFuzzer targets of the portable files (clang; `make -C arduino/host_test fuzz`). ---

def test_fuzz_targets_run_clean(pymicro_frontend_tree):
    """Each fuzz target (5: WAV reader, feature provider, recognizer, scores, spotter with a
    streaming stand-in) runs 10 s under ASan + UBSan without a finding (longer runs: FUZZ_SECONDS;
    they found two integer overflows, now fixed: a negative result time in the recognizer and a
    tiny input scale in the input table)."""
    require_tools("clang", "clang++")
    require_model_data()
    build = BUILD / "arduino_host" / "fuzz"
    proc = subprocess.run(["make", "-C", str(HOST_TEST), "fuzz", f"BUILD={build}",
                           f"FRONTEND_TREE={pymicro_frontend_tree}", "FUZZ_SECONDS=10"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = re.findall(r"stat::number_of_executed_units: (\d+)", proc.stdout)
    assert len(runs) == 5 and all(int(n) > 100 for n in runs), proc.stdout[-3000:]
