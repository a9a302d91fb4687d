"""Frontend: shape, dtype, micro_speech's int8 mapping, config round trip, features.json."""
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tflm_kws import audio, frontend
from tflm_kws.frontend import FrontendConfig
from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

from conftest import TFLM_TESTDATA, long_signal

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _yes_clips():
    """The micro_speech 'yes' clip from ../shared when present, and the committed fixture copy."""
    paths = [FIXTURES / "tflm_testdata" / "yes_1000ms.wav"]
    if (TFLM_TESTDATA / "yes_1000ms.wav").exists():
        paths.append(TFLM_TESTDATA / "yes_1000ms.wav")
    return paths


def test_config_defaults_are_micro_speech():
    config = FrontendConfig()
    assert config.clip_samples == 16000
    assert config.num_frames == 49
    assert config.feature_shape == (49, 40)
    assert FrontendConfig.from_dict(config.to_dict()) == config


def test_config_rejects_unknown_key_and_bad_values():
    with pytest.raises(ValueError, match="unknown key.*'window_ms'"):
        FrontendConfig.from_dict({"window_ms": 30})
    with pytest.raises(ValueError, match="num_channels"):
        FrontendConfig(num_channels=0)
    with pytest.raises(ValueError, match="upper_band_limit"):
        FrontendConfig(upper_band_limit=9000.0)


def test_int8_mapping_matches_micro_speech_integer_formula():
    # micro_features_generator.cpp: value = (x * 256 + 666 / 2) / 666 - 128, clamped to int8;
    # the expected values are worked out by hand from that line.
    x = np.array([0, 1, 2, 100, 200, 332, 333, 500, 600, 664, 665, 666, 1000, 65535], np.uint16)
    expected = [-128, -128, -127, -90, -51, 0, 0, 64, 103, 127, 127, 127, 127, 127]
    assert frontend.frontend_output_to_int8(x).tolist() == expected
    assert frontend.frontend_output_to_int8(tf.constant(x)).numpy().tolist() == expected


@pytest.mark.parametrize("path", _yes_clips(), ids=lambda p: p.parent.name)
def test_features_of_yes_clip(path):
    config = FrontendConfig()
    clip = audio.load_audio(path)
    assert clip.dtype == np.int16 and clip.shape == (16000,)
    features = frontend.compute_features(clip, config)
    assert features.dtype == np.int8 and features.shape == (49, 40)
    raw = audio_microfrontend_op.audio_microfrontend(
        tf.constant(clip), sample_rate=16000, window_size=30, window_step=20, num_channels=40,
        out_scale=1, out_type=tf.uint16).numpy()
    assert raw.shape == (49, 40)
    np.testing.assert_array_equal(features, frontend.frontend_output_to_int8(raw))
    # A spoken word spans the range: quiet channels near -128, the word well above zero.
    assert features.min() < -100 and features.max() > 60
    model_input = frontend.features_to_model_input(features)
    assert model_input.dtype == np.float32 and model_input.shape == (49, 40, 1)
    np.testing.assert_array_equal(model_input[..., 0] * 128.0, features.astype(np.float32))


def test_batch_path_equals_per_clip_path():
    config = FrontendConfig()
    clip = audio.load_audio(FIXTURES / "tflm_testdata" / "yes_1000ms.wav")
    other = audio.load_audio(FIXTURES / "tflm_testdata" / "no_1000ms.wav")
    batch = frontend.compute_features_batch(np.stack([clip, other, clip]), config)
    np.testing.assert_array_equal(batch[0], frontend.compute_features(clip, config))
    np.testing.assert_array_equal(batch[1], frontend.compute_features(other, config))
    # Fresh frontend state per clip: clip 3 is not influenced by clips 1 and 2.
    np.testing.assert_array_equal(batch[2], batch[0])


def test_compute_features_rejects_wrong_input():
    config = FrontendConfig()
    with pytest.raises(ValueError, match=r"shape \(16000,\)"):
        frontend.compute_features(np.zeros(8000, np.int16), config)
    with pytest.raises(TypeError, match="int16"):
        frontend.compute_features(np.zeros(16000, np.float32), config)


def test_features_json_round_trip(tmp_path):
    config = FrontendConfig(num_channels=32)
    path = tmp_path / "features.json"
    frontend.save_features_json(path, config, ["_silence_", "_unknown_", "yes"], {"seed": 3})
    loaded_config, labels, data = frontend.load_features_json(path)
    assert loaded_config == config
    assert labels == ["_silence_", "_unknown_", "yes"]
    assert data == {"seed": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["features.json"]  # no temp file left behind
    obj = json.loads(path.read_text())
    obj["frontend"]["bogus"] = 1
    path.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match="bogus"):
        frontend.load_features_json(path)


# A value for each FrontendConfig field that shapes the features, other than its default.
CHANGED_FIELDS = dict(lower_band_limit=300.0, upper_band_limit=5000.0, smoothing_bits=5,
                      even_smoothing=0.1, odd_smoothing=0.2, min_signal_remaining=0.3,
                      enable_pcan=False, pcan_strength=0.5, pcan_offset=20.0, gain_bits=16,
                      enable_log=False, scale_shift=4, window_size_ms=25)


@pytest.mark.parametrize("field", sorted(CHANGED_FIELDS))
def test_every_frontend_field_changes_the_features(field):
    """A --frontend_params setting reaches the microfrontend (tests/test_arduino_sketch.py checks
    that the device computes the same features for non-default configs)."""
    import dataclasses
    clips = [audio.load_audio(FIXTURES / "tflm_testdata" / f"{w}_1000ms.wav") for w in ("yes", "no")]
    stream = np.concatenate(clips)
    default = frontend.FrontendConfig()
    changed = dataclasses.replace(default, **{field: CHANGED_FIELDS[field]})
    base = frontend.compute_stream_features(stream, default)
    ours = frontend.compute_stream_features(stream, changed)
    assert ours.shape == base.shape
    assert (ours != base).mean() > 0.01, f"{field}={CHANGED_FIELDS[field]} left the features alone"


def test_shape_fields_set_the_feature_shape():
    clip = audio.load_audio(FIXTURES / "tflm_testdata" / "yes_1000ms.wav")
    config = frontend.FrontendConfig(window_stride_ms=10, num_channels=20, clip_duration_ms=800)
    features = frontend.compute_features(clip[:12800], config)
    assert features.shape == config.feature_shape == (78, 20)


def test_stream_features_carry_state_across_windows():
    """The continuous stream's second second differs from a fresh start on that second (noise
    estimate and gain carry over), and its first second is the per-clip features."""
    config = frontend.FrontendConfig()
    yes, no = (audio.load_audio(FIXTURES / "tflm_testdata" / f"{w}_1000ms.wav") for w in ("yes", "no"))
    stream = frontend.compute_stream_features(np.concatenate([yes, no]), config)
    assert stream.shape == (1 + (32000 - 480) // 320, 40)
    np.testing.assert_array_equal(stream[:49], frontend.compute_features(yes, config))
    assert (stream[50:99] != frontend.compute_features(no, config)).any()
    assert frontend.compute_stream_features(np.zeros(100, np.int16), config).shape == (0, 40)
    with pytest.raises(TypeError, match="1-D int16"):
        frontend.compute_stream_features(np.zeros(16000, np.float32), config)


@pytest.mark.parametrize("block", [3 * 16000 + 7, 16000 * 60])
def test_feature_stream_in_blocks_equals_the_whole_stream(block):
    config = frontend.FrontendConfig()
    signal = long_signal()
    whole = frontend.compute_stream_features(signal, config)
    stream = frontend.FeatureStream(config)
    pieces = [stream.push(signal[i:i + block]) for i in range(0, len(signal), block)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)


def test_feature_stream_needs_its_warmup():
    """With 1 s of warm-up the restarted noise estimate has not caught up: the blocks' features
    differ from the continuous stream's (what STREAM_WARMUP_SECONDS is for)."""
    config = frontend.FrontendConfig()
    signal = long_signal()
    stream = frontend.FeatureStream(config, warmup_seconds=1)
    pieces = [stream.push(signal[i:i + 48000]) for i in range(0, len(signal), 48000)]
    assert (np.concatenate(pieces) != frontend.compute_stream_features(signal, config)).any()
    with pytest.raises(TypeError, match="1-D int16"):
        stream.push(np.zeros(10, np.float32))
