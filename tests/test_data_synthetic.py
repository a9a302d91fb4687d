"""The synthetic wake-word set (espeak-ng): deterministic by seed, real speech-like clips."""
import numpy as np
import pytest

from tflm_kws import data, frontend
from tflm_kws.data import espeak, synthetic

CONFIG = frontend.FrontendConfig()


def small_spec(seed=0, **kwargs):
    return data.DataSpec(synthetic_positives=24, synthetic_negatives=24, seed=seed, **kwargs)


@pytest.fixture(scope="module")
def generated():
    return synthetic.generate(small_spec(), CONFIG)


def test_deterministic_by_seed(generated):
    again = synthetic.generate(small_spec(), CONFIG)
    np.testing.assert_array_equal(again.audio, generated.audio)
    assert again.splits == generated.splits and again.descriptions == generated.descriptions
    other = synthetic.generate(small_spec(seed=1), CONFIG)
    assert not np.array_equal(other.audio[:24], generated.audio[:24])


def test_clips_are_speech_at_16khz(generated):
    assert generated.label_names == ["_silence_", "_unknown_", "hey_tiny"]
    assert generated.audio.dtype == np.int16 and generated.audio.shape[1] == 16000
    counts = np.bincount(generated.labels, minlength=3)
    assert counts[1] == 24 and counts[2] == 24 and counts[0] >= 1
    speech = generated.audio[generated.labels > 0].astype(np.float64)
    peaks = np.abs(speech).max(axis=1)
    assert peaks.min() > 500  # gain is at most -25 dBFS below full scale: clearly audible
    # Speech comes and goes (words, gaps), unlike steady noise: in every clip the loudest 100 ms
    # hold more than twice the energy of the median 100 ms.
    energy = (speech.reshape(len(speech), -1, 1600) ** 2).mean(axis=2)
    assert np.all(energy.max(axis=1) > 2 * np.median(energy, axis=1))
    assert set(generated.splits) <= {"training", "validation", "testing"}


def test_near_misses_exclude_the_wake_word_sound():
    engine = espeak.Espeak()
    misses = synthetic.near_misses("hey tiny", engine.phonemes)
    assert "hey" in misses and "tiny" in misses and "hey shiny" in misses
    assert "hay tiny" not in misses  # pronounced like the wake word
    target = engine.phonemes("hey tiny")
    assert all(engine.phonemes(m) != target for m in misses)


def test_voices_exist_and_are_checked():
    engine = espeak.Espeak()
    voices = synthetic.voices(engine)
    assert len(voices) > 100 and "en-us+f3" in voices
    with pytest.raises(ValueError, match="no voice variant 'f99'"):
        engine.synthesize("hello", "en-us+f99", 150, 50)


def test_voices_split_disjoint_and_load(tmp_path):
    kws = data.load(small_spec(augment_variants=1), CONFIG, tmp_path / "cache")
    assert kws.labels == ["_silence_", "_unknown_", "hey_tiny"]
    voices = {split: {f.split()[1] for f in kws.files(split) if not f.startswith("synthetic: silence")}
              for split in ("training", "validation", "testing")}
    assert not voices["training"] & voices["validation"]
    assert not voices["training"] & voices["testing"]
    x, y = next(iter(kws.dataset("training", 8, training=True)))
    assert x.shape == (8, 49, 40, 1) and y.shape == (8,)
