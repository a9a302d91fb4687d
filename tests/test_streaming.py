"""The streaming rewrite (tflm_kws.streaming): bit-exact with the whole-window int8 model in TFLM
on every call of a long frame sequence, for several stride / kernel layouts; what cannot stream is
refused with the op and the reason."""
import numpy as np
import pytest

from tflm_kws import bench
from tflm_kws import carray
from tflm_kws import evaluate
from tflm_kws import export
from tflm_kws import frontend
from tflm_kws import models
from tflm_kws import streaming
from tflm_kws.reparameterize import reparameterize


def _int8(model, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.integers(-128, 128, (40, 49, 40)).astype(np.int8)
    return export.convert_int8(reparameterize(model), features, num_samples=40)


def _frames(count, seed=1):
    # Speech-like statistics are not needed: every int8 value must stream exactly.
    return np.random.default_rng(seed).integers(-128, 128, (count, 40)).astype(np.int8)

# rep_inceptionnext's 2-D layout as the benchmark runs it.
TIME_FREQ = bench.TIME_FREQ

LAYOUTS = {
    # name: (model, hparams) -- every one valid in time, so it streams.
    "repcnn": ("repcnn", dict(channels=8, num_copies=1, padding="valid")),
    "strides_2_1_2_kernel_5": ("cnn", dict(channels=6, strides=(2, 1, 2), kernel_size=(5, 1),
                                           padding="valid")),
    "stride_1": ("cnn", dict(channels=4, strides=(1, 1), kernel_size=(9, 1), padding="valid")),
    # 2-D maps: stem stride (2, 4), depthwise time and frequency convs, PAD in frequency.
    "rep_inceptionnext": ("rep_inceptionnext", dict(TIME_FREQ, channels=4, hidden=8,
                                                    time_padding="valid")),
}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def converted(request):
    name, hparams = LAYOUTS[request.param]
    window_bytes = _int8(models.build(name, **hparams))
    stream_bytes, info = streaming.streaming_model(window_bytes)
    return request.param, window_bytes, stream_bytes, info


def test_every_call_equals_the_whole_window_model_on_the_last_frames(converted):
    name, window_bytes, stream_bytes, info = converted
    frames = _frames(160)
    runner = streaming.StreamingRunner(stream_bytes)
    outputs = runner.run(frames)
    assert runner.stride == info.stride and len(outputs) == 160 // info.stride
    # Call j has consumed frames [0, (j + 1) * stride): compare every call whose window is full.
    calls = [j for j in range(len(outputs)) if (j + 1) * info.stride >= info.window_frames]
    windows = np.stack([frames[(j + 1) * info.stride - info.window_frames:(j + 1) * info.stride]
                        for j in calls])
    expected = evaluate.run_tflite(window_bytes, windows, "tflm")
    assert np.array_equal(outputs[calls], expected), name


def test_one_window_from_a_fresh_state(converted):
    _, window_bytes, stream_bytes, _ = converted
    runner = streaming.StreamingRunner(stream_bytes)
    windows = _frames(49 * 6, seed=2).reshape(6, 49, 40)
    expected = evaluate.run_tflite(window_bytes, windows, "tflm")
    got = np.stack([streaming.stream_window(runner, w) for w in windows])
    assert np.array_equal(got, expected)


def test_streaming_graph_keeps_weights_and_quantization(converted):
    _, window_bytes, stream_bytes, info = converted
    ops, tensors = export.ops_details(stream_bytes)
    w_ops, w_tensors = export.ops_details(window_bytes)
    convs = [op for op in ops if op["op_name"] == "CONV_2D"]
    w_convs = [op for op in w_ops if op["op_name"] == "CONV_2D"]
    assert len(convs) == len(w_convs)
    for op, w_op in zip(convs, w_convs):
        for slot in (1, 2):  # kernel and bias: the same int8 / int32 values and scales
            got, want = tensors[op["inputs"][slot]], w_tensors[w_op["inputs"][slot]]
            assert np.array_equal(got["quantization_parameters"]["scales"],
                                  want["quantization_parameters"]["scales"])
        out, w_out = tensors[op["outputs"][0]], w_tensors[w_op["outputs"][0]]
        assert out["quantization"] == w_out["quantization"]
        assert out["shape"][1] < w_out["shape"][1]  # only the new outputs
    assert set(export.op_names(stream_bytes)) <= set(export.TFLM_OPS)
    frames, state_bytes = streaming.layout(stream_bytes)
    assert (frames, state_bytes) == (info.stride, info.state_bytes) and state_bytes > 0
    assert streaming.layout(window_bytes) == (0, 0)


def test_header_says_how_the_model_streams(converted):
    _, _, stream_bytes, info = converted
    text = carray.header_text(frontend.FrontendConfig(), ["a", "b"], 4096, ["CONV_2D"], 3000,
                              *streaming.layout(stream_bytes))
    assert f"constexpr int kModelStreamFrames = {info.stride};" in text
    assert f"constexpr int kModelStateBytes = {info.state_bytes};" in text


@pytest.mark.parametrize("name, hparams, reason", [
    ("repcnn", dict(channels=4, num_copies=1), "pads in time"),
    ("cnn", dict(channels=4, strides=(2, 1), kernel_size=(4, 1), padding="valid"),
     "last frames are not used"),
    ("ds_cnn", {}, "pads in time"),
    ("rep_inceptionnext", dict(TIME_FREQ, channels=4, hidden=8), "pads in time"),
    # The paper's block adds its input back: ADD does not stream (yet).
    ("rep_inceptionnext", dict(channels=4, num_blocks=1), "pads in time|ADD"),
    # BC-ResNet's receptive field (97 frames) exceeds the window: it cannot be valid in time.
    ("bc_resnet", {}, "pads in time"),
])
def test_what_cannot_stream_is_named(name, hparams, reason):
    with pytest.raises(streaming.NotStreamableError, match=reason):
        streaming.streaming_model(_int8(models.build(name, **hparams)))


def test_verify_reports_identity_and_accuracy():
    window_bytes = _int8(models.build("cnn", channels=4, padding="valid"))
    clips = _frames(49 * 5, seed=3).reshape(5, 49, 40)
    outputs = evaluate.run_tflite(window_bytes, clips, "tflm")
    labels = np.argmax(outputs, axis=1)
    stream_bytes, report = streaming.verify(window_bytes, clips, labels, outputs)
    assert report["identical_outputs"] == report["clips"] == 5
    assert report["accuracy"] == 1.0 and report["frames_per_call"] == 2
    assert report["arena_used_bytes"] > 0 and stream_bytes is not None
    outputs[0, 0] += 1  # a differing reference is counted
    assert streaming.verify(window_bytes, clips, labels, outputs)[1]["identical_outputs"] == 4
    none, report = streaming.verify(_int8(models.build("cnn", channels=4)), clips, labels, outputs)
    assert none is None and not report["streamable"] and "SAME" in report["reason"]
