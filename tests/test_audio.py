"""Audio decoding: formats, rates and channel counts give the same features; bad files are named."""
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_io as tfio

from tflm_kws import audio, frontend
from tflm_kws.audio import AudioDecodeError

from conftest import write_wav

YES_WAV = pathlib.Path(__file__).parent / "fixtures" / "tflm_testdata" / "yes_1000ms.wav"

# Tolerance for resampled audio. The frontend amplifies quiet passages (PCAN), so on these clips even
# +-1 LSB of random dither -- the precision limit of 16-bit audio -- moves int8 features by 2.5-3.5
# steps on average. A 16 kHz -> 44.1 kHz stereo -> 16 kHz round trip must change the features by no
# more than that dither does, and by at most RESAMPLED_MEAN_ABS_DIFF steps (about 1% of the range).
RESAMPLED_MEAN_ABS_DIFF = 3.0


@pytest.fixture(scope="module")
def yes_clip():
    return audio.load_audio(YES_WAV)


@pytest.fixture(scope="module")
def yes_features(yes_clip):
    return frontend.compute_features(yes_clip, frontend.FrontendConfig())


def test_wav_and_flac_are_bit_exact(tmp_path, yes_clip, yes_features):
    flac = tmp_path / "yes.flac"
    flac.write_bytes(tfio.audio.encode_flac(tf.constant(yes_clip[:, None]), rate=16000).numpy())
    decoded = audio.load_audio(flac)
    np.testing.assert_array_equal(decoded, yes_clip)
    np.testing.assert_array_equal(frontend.compute_features(decoded, frontend.FrontendConfig()),
                                  yes_features)


def _resampled_44k_stereo(clip):
    up = audio.resample(clip / 32768.0, 16000, 44100)
    return np.clip(np.round(np.stack([up, up], axis=1) * 32768.0), -32768, 32767)


@pytest.mark.parametrize("name", ["yes_1000ms.wav", "no_1000ms.wav"])
def test_44k_stereo_wav_matches_within_tolerance(tmp_path, name):
    config = frontend.FrontendConfig()
    clip = audio.load_audio(YES_WAV.parent / name)
    reference = frontend.compute_features(clip, config).astype(int)
    path = tmp_path / "clip_44k_stereo.wav"
    write_wav(path, _resampled_44k_stereo(clip), 44100)
    decoded = audio.load_audio(path)
    assert decoded.dtype == np.int16 and decoded.shape == (16000,)
    resampled_diff = np.abs(frontend.compute_features(decoded, config) - reference).mean()
    dither = np.random.default_rng(0).integers(-1, 2, clip.shape)
    dithered = np.clip(clip.astype(int) + dither, -32768, 32767).astype(np.int16)
    dither_diff = np.abs(frontend.compute_features(dithered, config) - reference).mean()
    assert resampled_diff <= min(dither_diff, RESAMPLED_MEAN_ABS_DIFF)


def test_ogg_44k_stereo_decodes_close(tmp_path, yes_clip, yes_features):
    stereo = _resampled_44k_stereo(yes_clip).astype(np.float32) / 32768.0
    path = tmp_path / "yes.ogg"
    path.write_bytes(tfio.audio.encode_vorbis(tf.constant(stereo), rate=44100).numpy())
    decoded = audio.load_audio(path)
    assert decoded.shape == (16000,)
    # Lossy codec: compare the waveform's envelope, not bits.
    corr = np.corrcoef(decoded.astype(float), yes_clip.astype(float))[0, 1]
    assert corr > 0.95


def test_stereo_channels_are_mixed(tmp_path, yes_clip):
    path = tmp_path / "half.wav"
    write_wav(path, np.stack([yes_clip, np.zeros_like(yes_clip)], axis=1), 16000)
    decoded = audio.load_audio(path)
    np.testing.assert_array_equal(decoded, np.round(yes_clip / 2.0).astype(np.int16))


def test_bad_files_raise_with_path_and_reason(tmp_path, yes_clip):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(b"not audio at all " * 64)
    good = tmp_path / "good.wav"
    write_wav(good, yes_clip, 16000)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:4000])
    silent = tmp_path / "silent.wav"
    write_wav(silent, np.zeros(16000, np.int16), 16000)
    nan = tmp_path / "nan.wav"
    _write_float_wav(nan, np.full(16000, np.nan, np.float32), 16000)
    cases = {empty: "empty", garbage: "cannot decode", truncated: "cannot decode",
             tmp_path / "missing.wav": "not found", nan: "NaN"}
    for path, reason in cases.items():
        with pytest.raises(AudioDecodeError, match=reason) as info:
            audio.load_audio(path)
        assert info.value.path == str(path) and str(path) in str(info.value)
    assert audio.load_audio(silent).max() == 0  # silence is fine where no speech is expected
    with pytest.raises(AudioDecodeError, match="silent throughout"):
        audio.load_audio(silent, expect_speech=True)


def _write_float_wav(path, samples, rate):
    """IEEE-float WAV (format tag 3), which the standard `wave` module cannot write."""
    data = np.asarray(samples, "<f4").tobytes()
    fmt = (b"fmt " + (16).to_bytes(4, "little") + (3).to_bytes(2, "little")
           + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
           + (rate * 4).to_bytes(4, "little") + (4).to_bytes(2, "little")
           + (32).to_bytes(2, "little"))
    body = b"WAVE" + fmt + b"data" + len(data).to_bytes(4, "little") + data
    pathlib.Path(path).write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)


def test_fit_to_length_crops_centred_or_random_and_pads():
    clip = np.arange(10, dtype=np.int16)
    np.testing.assert_array_equal(audio.fit_to_length(clip, 4), [3, 4, 5, 6])
    rng = np.random.default_rng(0)
    starts = {int(audio.fit_to_length(clip, 4, rng)[0]) for _ in range(50)}
    assert len(starts) > 3 and min(starts) >= 0 and max(starts) <= 6
    np.testing.assert_array_equal(audio.fit_to_length(clip[:2], 6), [0, 0, 0, 1, 0, 0])


def test_resample_keeps_timing():
    # tfio.audio.resample alone delays its output by the filter's group delay; ours does not.
    impulse = np.zeros(16000, np.float32)
    impulse[8000] = 1.0
    for rate in (8000, 22050, 44100, 48000):
        up = audio.resample(impulse, 16000, rate)
        assert abs(int(np.argmax(np.abs(up))) - 8000 * rate / 16000) <= 1


@pytest.mark.parametrize("rate,channels,kind", [(16000, 1, "wav"), (16000, 1, "flac"),
                                                 (44100, 2, "wav"), (8000, 1, "wav"),
                                                 (22050, 1, "float")])
def test_audio_blocks_are_the_whole_file(tmp_path, rate, channels, kind):
    """Read 2 s at a time, a 7.3 s file's blocks join to load_audio's samples (resampled ones
    within 1 LSB: each block is resampled with 1 s of context either side)."""
    rng = np.random.default_rng(rate)
    n = int(rate * 7.3)
    envelope = np.abs(np.sin(np.arange(n) / (rate / 3)))[:, np.newaxis]
    samples = rng.standard_normal((n, channels)) * 6000 * envelope
    path = tmp_path / f"long.{'flac' if kind == 'flac' else 'wav'}"
    if kind == "float":
        _write_float_wav(path, (samples[:, 0] / 32768).astype(np.float32), rate)
    elif kind == "flac":
        path.write_bytes(tfio.audio.encode_flac(
            tf.constant(np.clip(samples, -32768, 32767).astype(np.int16)), rate=rate).numpy())
    else:
        write_wav(path, np.clip(samples, -32768, 32767).astype(np.int16), rate)
    whole = audio.load_audio(path)
    blocks = list(audio.audio_blocks(path, block_seconds=2))
    assert len(blocks) == 4 and all(len(b) == 32000 for b in blocks[:3])
    joined = np.concatenate(blocks)
    assert joined.shape == whole.shape
    tolerance = 0 if rate == 16000 else 1
    assert np.abs(joined.astype(np.int32) - whole).max() <= tolerance


def test_audio_blocks_name_a_bad_file(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all " * 64)
    with pytest.raises(AudioDecodeError, match="cannot decode") as info:
        list(audio.audio_blocks(garbage))
    assert info.value.path == str(garbage)
