"""Frontend: shape, dtype, micro_speech's int8 mapping, config round trip, features.json."""
import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tflm_kws import audio, frontend
from tflm_kws.frontend import FrontendConfig
from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

from conftest import TFLM_TESTDATA

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
    # micro_features_generator.cpp: value = (x * 256 + 666 / 2) / 666 - 128, clamped to int8.
    x = np.array([0, 1, 332, 333, 334, 665, 666, 670, 1000, 65535], np.uint16)
    expected = np.array([(int(v) * 256 + 333) // 666 - 128 for v in x])
    expected = np.clip(expected, -128, 127)
    assert frontend.frontend_output_to_int8(x).tolist() == expected.tolist()
    assert frontend.frontend_output_to_int8(tf.constant(x)).numpy().tolist() == expected.tolist()
    assert frontend.frontend_output_to_int8(np.array([333, 666], np.uint16)).tolist() == [0, 127]


@pytest.mark.parametrize("path", _yes_clips(), ids=lambda p: p.parent.name)
def test_features_of_yes_clip(path):
    config = FrontendConfig()
    clip = audio.load_audio(path)
    assert clip.dtype == np.int16 and clip.shape == (16000,)
    features = frontend.compute_features(clip, config)
    assert features.dtype == np.int8 and features.shape == (49, 40)
    raw = audio_microfrontend_op.audio_microfrontend(
        tf.constant(clip), sample_rate=16000, window_size=30, window_step=20, num_channels=40,
        out_scale=1, out_type=tf.uint16).numpy().astype(np.int64)
    assert raw.shape == (49, 40)
    expected = np.clip((raw * 256 + 333) // 666 - 128, -128, 127)
    np.testing.assert_array_equal(features, expected)
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
