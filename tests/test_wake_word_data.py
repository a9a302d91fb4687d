"""The wake-word set's levers: Piper voices, the microphone channel, transients in silence, real
negatives, few-shot recordings and transfer from another run."""
import os

import numpy as np
import pytest

from tflm_kws import audio, data, frontend, training
from tflm_kws.data import noise, piper_tts, sources, synthetic

from conftest import REPO

CONFIG = frontend.FrontendConfig()
MINI = REPO / "tests" / "fixtures" / "speech_commands_mini"


def test_piper_fresh_engine_repeats_and_warps_change_the_voice():
    def sequence():
        engine = piper_tts.Piper(seed=3)
        return [engine.synthesize("computer", voice, 170, 50, seed=7)
                for voice in ("piper-joe+w0.88", "piper-joe+w1.12")]
    first, again = sequence(), sequence()
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    low, high = first
    assert low.dtype == np.int16 and np.abs(low).max() > 10000
    # The duration is set by the rate, not by the warp (length_scale compensates it): within 25 %.
    assert abs(len(low) - len(high)) < 0.25 * len(low)

    def centroid(x):
        spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
        return float(np.sum(spectrum * np.arange(len(spectrum))) / np.sum(spectrum) / len(x))
    assert centroid(high) > centroid(low)  # a shorter vocal tract: higher formants
    with pytest.raises(ValueError, match="no voice 'en-us'"):
        piper_tts.Piper().synthesize("x", "en-us", 170, 50)


def test_speakers_mix_engines_and_the_set_stays_deterministic():
    speakers = synthetic.Speakers("espeak+piper", 0)
    voices = speakers.voices()
    assert "en-us+f3" in voices and "piper-joe+w1.00" in voices
    assert synthetic.Speakers("piper", 0).voices() == piper_tts.Piper.voices()
    spec = data.DataSpec(synthetic_positives=12, synthetic_negatives=12, tts="piper",
                         channel_probability=0.5)
    first, again = synthetic.generate(spec, CONFIG), synthetic.generate(spec, CONFIG)
    np.testing.assert_array_equal(first.audio, again.audio)
    assert all("piper-joe" in d for d, y in zip(first.descriptions, first.labels) if y > 0)
    assert any("channel hp=" in d for d in first.descriptions)


def test_near_miss_fraction_picks_the_negatives_texts():
    misses = set(synthetic.near_misses("bed", synthetic.Speakers("espeak", 0).espeak.phonemes))

    def negative_texts(fraction):
        spec = data.DataSpec(wake_word="bed", synthetic_positives=1, synthetic_negatives=16,
                             near_miss_fraction=fraction)
        made = synthetic.generate(spec, CONFIG)
        return [d.split("'")[1] for d, y in zip(made.descriptions, made.labels) if y == 1]
    none, only = negative_texts(0.0), negative_texts(1.0)
    assert len(none) == len(only) == 16
    assert not misses & set(none)
    assert set(only) <= misses


def test_microphone_channel_band_limits_and_keeps_the_peak():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000) * 0.1
    y, description = noise.microphone_channel(np.random.default_rng(1), x, 16000)
    assert description.startswith("channel hp=")
    spectrum_x, spectrum_y = (np.abs(np.fft.rfft(v)) ** 2 for v in (x, y))
    freqs = np.fft.rfftfreq(16000, 1 / 16000)
    band = (freqs > 1000) & (freqs < 2000)
    edge = freqs > 7800
    ratio_band = spectrum_y[band].sum() / spectrum_x[band].sum()
    ratio_edge = spectrum_y[edge].sum() / spectrum_x[edge].sum()
    assert ratio_edge < 0.5 * ratio_band  # above the low-pass corner (<= 7.5 kHz) it falls off
    assert np.isclose(np.abs(y).max(), np.abs(x).max())


def test_vocal_tract_warp_moves_the_spectrum_and_the_length():
    t = np.arange(16000) / 16000
    x = np.sin(2 * np.pi * 1000 * t)
    for factor in (0.85, 1.15):
        y = noise.vocal_tract_warp(x, factor)
        assert len(y) == round(16000 / factor)
        peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * 16000 / len(y)
        assert abs(peak_hz - 1000 * factor) < 2


def test_warp_only_when_asked_and_deterministic():
    def made(probability):
        spec = data.DataSpec(synthetic_positives=8, synthetic_negatives=8,
                             warp_probability=probability)
        return synthetic.generate(spec, CONFIG)
    plain, off, on = made(0.0), made(0.0), made(1.0)
    np.testing.assert_array_equal(plain.audio, off.audio)
    np.testing.assert_array_equal(on.audio, made(1.0).audio)
    speech = [i for i, y in enumerate(on.labels) if y > 0]
    assert all(" warp=" in on.descriptions[i] for i in speech)
    assert not any(" warp=" in d for d in plain.descriptions)
    factors = [float(on.descriptions[i].split(" warp=")[1].split()[0]) for i in speech]
    assert all(synthetic.WARP_RANGE[0] <= f <= synthetic.WARP_RANGE[1] for f in factors)
    assert not np.array_equal(plain.audio[speech], on.audio[speech])
    # Everything before the warp is drawn the same: the voice and text of each clip.
    assert all(plain.descriptions[i].startswith(on.descriptions[i].split(" warp=")[0] + " ")
               or plain.descriptions[i] == on.descriptions[i].split(" warp=")[0] for i in speech)


def test_transients_are_short_and_only_when_asked():
    rng = np.random.default_rng(0)
    for _ in range(20):
        burst, description = noise.transient(rng, 16000)
        active = np.nonzero(np.abs(burst) > 0)[0]
        assert 0 < active[-1] - active[0] + 1 <= 80 * 16 and "transient" in description
        assert -41 < 20 * np.log10(np.abs(burst).max()) < -2.9
    noises = noise.synthetic_noises(0, 16000)
    plain = synthetic.silence_clip(np.random.default_rng(5), noises, 16000)
    off = synthetic.silence_clip(np.random.default_rng(5), noises, 16000, 0.0)
    np.testing.assert_array_equal(plain[0], off[0])  # off draws nothing: old clips unchanged
    on = synthetic.silence_clip(np.random.default_rng(5), noises, 16000, 1.0)
    added = np.nonzero(on[0] - plain[0])[0]
    assert "transient" in on[1] and 0 < added[-1] - added[0] + 1 <= 80 * 16


@pytest.mark.parametrize("fields, message", [
    ({"tts": "festival"}, "tts must be one of"),
    ({"channel_probability": 1.5}, "channel_probability must be in"),
    ({"warp_probability": -0.5}, "warp_probability must be in"),
    ({"silence_transients": -0.1}, "silence_transients must be in"),
    ({"near_miss_fraction": 1.01}, "near_miss_fraction must be in"),
    ({"real_positives": 5}, "needs positives_dir"),
    ({"real_negatives": -1}, "real_negatives must be an int"),
    ({"data_dir": "x", "negatives_dir": "y"}, "belong to the synthetic"),
    ({"wanted_words": ["yes"], "exclude_words": ["yes"]}, "both in wanted_words and in exclude"),
])
def test_bad_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        data.DataSpec(**fields)


def test_new_fields_leave_existing_run_identities_alone():
    assert set(data.DataSpec().to_dict()) == {
        "data_dir", "wanted_words", "wake_word", "silence_percentage", "unknown_percentage",
        "validation_percentage", "testing_percentage", "seed", "augment_variants",
        "time_shift_ms", "background_frequency", "snr_db_min", "snr_db_max", "time_masks",
        "time_mask_max_frames", "freq_masks", "freq_mask_max_channels", "synthetic_positives",
        "synthetic_negatives"}
    assert data.DataSpec(exclude_words=["bed"]).to_dict()["exclude_words"] == ["bed"]


def test_exclude_words_leaves_folders_out():
    listing = sources.list_data(str(MINI), data.DataSpec(data_dir=str(MINI), wanted_words=["yes"],
                                                         exclude_words=["cat"],
                                                         unknown_percentage=100.0))
    used = {os.path.basename(os.path.dirname(it.path)) for it in listing.items}
    assert "cat" not in used and "bed" in used and "cat" not in listing.unknown_words


def test_real_negatives_and_few_shot_positives(tmp_path):
    spec = data.DataSpec(wake_word="bed", synthetic_positives=10, synthetic_negatives=10,
                         augment_variants=1, negatives_dir=str(MINI), real_negatives=8,
                         positives_dir=str(MINI / "bed"), real_positives=3)
    loaded = data.load(spec, CONFIG, tmp_path)
    assert loaded.labels == ["_silence_", "_unknown_", "bed"]
    origins = {split: loaded.files(split) for split in ("training", "validation", "testing")}
    real = {split: [o for o in origins[split] if not o.startswith(("synthetic", "silence"))]
            for split in origins}
    train_real = real["training"]
    # The wake word's own folder never feeds _unknown_; real positives come from positives_dir.
    _, y = loaded.features("training")
    negatives = [o for o, label in zip(origins["training"], y) if label == 1
                 and not o.startswith("synthetic")]
    positives = [o for o, label in zip(origins["training"], y) if label == 2
                 and not o.startswith("synthetic")]
    assert 0 < len(negatives) <= 8 and all("/bed/" not in o for o in negatives)
    assert len(set(positives)) == 3 and all("/bed/" in o for o in positives)
    assert len(positives) == max(1, round(0.1 * 10 / 3)) * 3
    # Validation / testing real clips are that split's (the tree's lists), an eighth of the cap.
    listed = open(MINI / "validation_list.txt").read()
    assert all(os.path.relpath(o, MINI).replace(".flac", ".wav") in listed
               or os.path.relpath(o, MINI) in listed for o in real["validation"])
    assert len(real["validation"]) <= 1 and len(train_real) == len(negatives) + len(positives)


def test_real_sources_errors_name_the_folder(tmp_path):
    with pytest.raises(ValueError, match="positives_dir .* holds 9 audio file"):
        data.load(data.DataSpec(positives_dir=str(MINI / "bed"), real_positives=50,
                                synthetic_positives=2, synthetic_negatives=2), CONFIG, tmp_path)
    with pytest.raises(FileNotFoundError, match="negatives_dir .*nowhere"):
        data.load(data.DataSpec(negatives_dir=str(tmp_path / "nowhere")), CONFIG, tmp_path)


def test_loudest_window_finds_the_phrase():
    x = np.zeros(48000, np.int16)
    x[30000:34000] = 8000
    window = audio.loudest_window(x, 16000)
    assert len(window) == 16000 and np.count_nonzero(window) == 4000
    assert len(audio.loudest_window(x[:1000], 16000)) == 1000


def test_initialize_from_copies_all_but_the_classifier(tmp_path):
    import tf_keras as keras
    from tflm_kws import models
    source = models.build("cnn", (49, 40, 1), 12, channels=8)
    source.save(tmp_path / training.TRAIN_MODEL)
    target = models.build("cnn", (49, 40, 1), 3, channels=8)
    copied = training.initialize_from(target, str(tmp_path))
    with_weights = [layer for layer in target.layers if layer.get_weights()]
    assert copied == [layer.name for layer in with_weights[:-1]]  # all but the 3-way classifier
    by_name = {layer.name: layer for layer in source.layers}
    for layer in with_weights[:-1]:
        for a, b in zip(layer.get_weights(), by_name[layer.name].get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(training.UserInputError, match="no layer of its model matches"):
        training.initialize_from(models.build("cnn", (49, 40, 1), 3, channels=4), str(tmp_path))
    with pytest.raises(training.UserInputError, match="no train_model.keras"):
        training.initialize_from(target, str(tmp_path / "empty"))
    keras.backend.clear_session()
