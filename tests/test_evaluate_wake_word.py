"""The wake-word evaluation (tflm_kws.evaluate_wake_word): its recognizer is the sketch's
(identical decisions to recognize_commands.cpp on the same score sequences), its threshold sweep
is that recognizer at each threshold, a streaming model scores a file as its whole-window form
does, and on the reference clips it reports what the host binary detects."""
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, long_signal
from test_arduino_sketch import (FIXTURES, Recognizer, core_tools, model_bytes,  # noqa: F401
                                 model_labels, write_wav)
from tflm_kws import evaluate_wake_word as eww
from tflm_kws import frontend, recognizer


def _score_sequence(labels, seed, n=400):
    """Bursts of one label's high scores over background, at 20 or 40 ms steps with gaps."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 60, (n, len(labels)))
    start = 0
    while start < n:
        length = int(rng.integers(5, 60))
        scores[start:start + length, int(rng.integers(len(labels)))] = rng.integers(150, 256)
        start += length + int(rng.integers(0, 40))
    steps = rng.choice([20, 40, 40, 20, 300], n)
    return scores.astype(np.uint8), np.cumsum(steps).astype(np.int64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_python_recognizer_equals_the_sketchs(core_tools, seed):  # noqa: F811
    labels = model_labels()
    scores, times = _score_sequence(labels, seed)
    device = Recognizer(core_tools).run(list(zip(times.tolist(), scores.tolist())))
    python = recognizer.RecognizeCommands(labels)
    for (t, row), line in zip(zip(times, scores), device):
        d = python.process(row, t)
        assert line == [str(d.time_ms), d.label, str(d.score), str(int(d.is_new_command))]
    assert sum(line[3] == "1" for line in device) > 3  # the sequences do trigger commands


@pytest.mark.parametrize("seed", [3, 5, 7])
def test_threshold_sweep_is_the_recognizer_at_each_threshold(seed):
    labels = ["_silence_", "_unknown_", "yes", "no"]
    scores, times = _score_sequence(labels, seed)
    stream = eww.ScoreStream("x", 0.0, scores, times)
    swept = eww.firings(stream, labels, 2, [120, 180, 200, 240])
    for threshold, fired in swept.items():
        expected = [t for t, label in recognizer.detections(scores, times, labels, threshold)
                    if label == "yes"]
        assert fired == expected, threshold
    assert swept[120] and len(swept[240]) <= len(swept[120])


def test_streaming_model_scores_a_file_as_its_whole_window_form():
    from tflm_kws import export, models, streaming
    from tflm_kws.reparameterize import reparameterize
    rng = np.random.default_rng(0)
    window = export.convert_int8(reparameterize(models.build("cnn", channels=4, padding="valid")),
                                 rng.integers(-128, 128, (20, 49, 40)).astype(np.int8), 20)
    stream_bytes, _ = streaming.streaming_model(window)
    audio = rng.integers(-4000, 4000, 16000 * 3).astype(np.int16)
    config = frontend.FrontendConfig()
    whole = eww.score_stream(eww.DeviceModel(window), audio, config)
    streamed = eww.score_stream(eww.DeviceModel(stream_bytes), audio, config)
    # Once the window is full (the sketch's window starts as zeros, the states at zero point).
    full = streamed.times_ms >= whole.times_ms[48]
    by_time = dict(zip(whole.times_ms.tolist(), whole.scores.tolist()))
    assert full.sum() > 20
    for t, row in zip(streamed.times_ms[full], streamed.scores[full]):
        assert by_time[int(t)] == row.tolist()


def test_reference_clips_as_the_host_binary_detects_them(tmp_path):
    """The committed model: `yes` fires on yes_1000ms.wav at the sketch's threshold (the host
    binary's detection), and "no", silence and noise give no false accept."""
    positives, negatives = tmp_path / "pos", tmp_path / "neg"
    positives.mkdir()
    negatives.mkdir()
    clips = FIXTURES / "tflm_testdata"
    shutil.copy(clips / "yes_1000ms.wav", positives)
    shutil.copy(clips / "no_1000ms.wav", negatives)
    write_wav(negatives / "silence.wav", np.zeros(32000, np.int16))
    write_wav(negatives / "noise.wav",
              np.random.default_rng(0).integers(-300, 300, 32000).astype(np.int16))
    (negatives / "broken.wav").write_bytes(b"RIFF0000WAVE")
    report = eww.evaluate(model_bytes(), frontend.FrontendConfig(), model_labels(), "yes",
                          eww.audio_files(positives, "positives"),
                          eww.audio_files(negatives, "negatives"), log=lambda m: None)
    at_device = report["at_device_threshold"]
    assert at_device["frr"] == 0.0 and at_device["false_accepts"] == 0
    assert [s["path"] for s in report["skipped"]] == [str(negatives / "broken.wav")]
    assert report["threshold_for_target"]["frr"] == 0.0
    assert report["negative_hours"] == pytest.approx(5 / 3600, rel=0.05)


def _sketch_threshold():
    import re  # pylint: disable=import-outside-toplevel
    header = (REPO / "arduino" / "tflm_kws" / "model_data.h").read_text()
    return int(re.search(r"kDetectionThreshold = (\d+);", header).group(1))


@pytest.mark.parametrize("clip", ["yes_30ms.wav", "no_30ms.wav"])
def test_30ms_of_speech_in_silence_fires_nothing(clip):
    """The committed model, as the host binary streams a file (1 s of silence either side): a
    30 ms sound is far too short for a command and must not fire one, at the sketch's threshold
    or anywhere near it."""
    from tflm_kws import audio  # pylint: disable=import-outside-toplevel
    config = frontend.FrontendConfig()
    silence = np.zeros(16000, np.int16)
    samples = audio.load_audio(FIXTURES / "tflm_testdata" / clip, config.sample_rate)
    stream = eww.score_stream(eww.DeviceModel(model_bytes()), np.concatenate(
        [silence, samples, silence]), config)
    labels = model_labels()
    threshold = _sketch_threshold()
    for word in labels[2:]:
        fired = eww.firings(stream, labels, labels.index(word), [threshold - 20, threshold])
        assert not any(fired.values()), (word, fired)


def test_negatives_alone_set_the_lowest_threshold_within_the_rate(tmp_path):
    noise = tmp_path / "noise.wav"
    write_wav(noise, np.random.default_rng(1).integers(-300, 300, 48000).astype(np.int16))
    report = eww.evaluate(model_bytes(), frontend.FrontendConfig(), model_labels(), "yes", [],
                          [str(noise)], log=lambda m: None)
    assert all(p["frr"] is None for p in report["curve"]) and report["positives"] == 0
    within = [p["threshold"] for p in report["curve"] if p["fa_per_hour"] <= 1.0]
    assert report["threshold_for_target"]["threshold"] == min(within)


def test_summary_line_says_what_the_negatives_can_show():
    point = {"threshold": 180, "frr": 0.25, "false_accepts": 0, "fa_per_hour": 0.0}
    report = {"wake_word": "yes", "positives": 8, "negative_hours": 0.3, "curve": [point],
              "threshold_for_target": point, "at_device_threshold": dict(point, threshold=200),
              "target_fa_per_hour": 1.0}
    line = eww.summary_line(report)
    assert "recall 0.750 at threshold 180" in line and "under 1 h of negatives" in line
    assert "no threshold reaches" in eww.summary_line(dict(report, threshold_for_target=None,
                                                           negative_hours=2.0))


def test_bad_input_is_named(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "tflm_kws.evaluate_wake_word", *args],
                              cwd=REPO, capture_output=True, text=True)
    (tmp_path / "empty").mkdir()
    proc = run(f"--model_dir={tmp_path}", "--wake_word=yes", f"--positives={tmp_path}/none",
               f"--negatives={tmp_path}")
    assert proc.returncode == 2 and "features.json" in proc.stderr
    with pytest.raises(FileNotFoundError, match="--positives=.*is not a directory"):
        eww.audio_files(str(tmp_path / "none"), "positives")
    with pytest.raises(FileNotFoundError, match="no audio files"):
        eww.audio_files(str(tmp_path / "empty"), "negatives")
    with pytest.raises(ValueError, match="--wake_word='hey' is not one of"):
        eww.evaluate(model_bytes(), frontend.FrontendConfig(), model_labels(), "hey", [], [])


def test_negatives_follow_on_as_one_recording_read_in_blocks(tmp_path):
    """70 s of speech in noise scored as one file read 60 s at a time, read 3 s at a time, and
    cut into four files: the same firings at every threshold (one continuous frontend, model
    and recognizer state across blocks and files)."""
    signal = long_signal(seconds=70, seed=3)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    whole.mkdir()
    parts.mkdir()
    write_wav(whole / "long.wav", signal)
    cuts = [0, 11 * 16000, 12 * 16000 + 320, 40 * 16000, len(signal)]
    for i, (a, b) in enumerate(zip(cuts, cuts[1:])):
        write_wav(parts / f"{i}.wav", signal[a:b])
    config, labels = frontend.FrontendConfig(), model_labels()

    def curve(folder, block_seconds):
        report = eww.evaluate(model_bytes(), config, labels, "yes", [],
                              eww.audio_files(folder, "negatives"),
                              thresholds=range(0, 255, 10), block_seconds=block_seconds,
                              log=lambda m: None)
        assert report["negative_hours"] == pytest.approx(len(signal) / 16000 / 3600)
        return [p["false_accepts"] for p in report["curve"]]

    reference = curve(whole, 60)
    assert sum(reference) > 0  # low thresholds do fire on this audio
    assert curve(whole, 3) == reference
    assert curve(parts, 60) == reference
