"""Mixing in the training data: mixup within a batch, synthetic speech added to real training data.

Data: the committed mini Speech Commands fixture (runs without ../shared).
"""
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tflm_kws import data, frontend
from tflm_kws.data import loader

MINI = pathlib.Path(__file__).parent / "fixtures" / "speech_commands_mini"
CONFIG = frontend.FrontendConfig()
WORDS = ["yes", "no"]


def spec_for(**kwargs):
    return data.DataSpec(data_dir=str(MINI), wanted_words=WORDS, augment_variants=1, **kwargs)


# ------------------------------------------------------------------------------------------------
# mixup
# ------------------------------------------------------------------------------------------------
def _distinct_batch(size=8):
    """Example i: features all equal to i, label i (one-hot): a mix's weights can be read off."""
    x = tf.constant(np.arange(size, dtype=np.float32)[:, None, None, None]
                    * np.ones((1, 49, 40, 1), np.float32))
    return x, tf.one_hot(np.arange(size), size)


def test_mixup_makes_convex_mixes_of_features_and_labels_alike():
    x, y = _distinct_batch()
    mixed_x, mixed_y = loader.mixup(x, y, 0.2, tf.constant([3, 4], tf.int64))
    weights = mixed_y.numpy()
    assert weights.shape == (8, 8) and weights.dtype == np.float32
    assert np.all(weights >= 0.0) and np.all(weights <= 1.0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    # Each example mixes at most two clips, and its features are the same mix of the inputs.
    assert np.all(np.count_nonzero(weights > 1e-7, axis=1) <= 2)
    expected = np.einsum("ij,jabc->iabc", weights, x.numpy())
    np.testing.assert_allclose(mixed_x.numpy(), expected, atol=1e-5)
    assert np.min(np.max(weights, axis=1)) < 0.999, "no example was mixed"
    # Stateless: the same seed gives the same mix, another seed another one.
    again_x, again_y = loader.mixup(x, y, 0.2, tf.constant([3, 4], tf.int64))
    np.testing.assert_array_equal(again_x, mixed_x)
    np.testing.assert_array_equal(again_y, mixed_y)
    assert not np.array_equal(loader.mixup(x, y, 0.2, tf.constant([5, 6], tf.int64))[1], mixed_y)


def test_mixup_alpha_zero_is_the_identity():
    x, y = _distinct_batch()
    mixed_x, mixed_y = loader.mixup(x, y, 0.0, tf.constant([3, 4], tf.int64))
    np.testing.assert_array_equal(mixed_x, x)
    np.testing.assert_array_equal(mixed_y, y)


def test_training_dataset_with_mixup(tmp_path):
    kws = data.load(spec_for(), CONFIG, tmp_path / "cache")  # a seed fixes the epoch, masks too
    num_classes = len(kws.labels)
    plain = [(bx.numpy(), by.numpy()) for bx, by in kws.dataset("training", 5, True, seed=1)]
    # mixup_alpha=0: the very same batches as without the argument.
    for (px, py), (zx, zy) in zip(plain, kws.dataset("training", 5, True, seed=1,
                                                     mixup_alpha=0.0)):
        np.testing.assert_array_equal(px, zx.numpy())
        np.testing.assert_array_equal(py, zy.numpy())
    mixed = [(bx.numpy(), by.numpy())
             for bx, by in kws.dataset("training", 5, True, seed=1, mixup_alpha=0.4)]
    assert [bx.shape for bx, _ in mixed] == [bx.shape for bx, _ in plain]
    labels = np.concatenate([by for _, by in mixed])
    assert labels.dtype == np.float32 and labels.shape == (kws.num_examples("training"),
                                                           num_classes)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
    assert np.any(np.max(labels, axis=1) < 0.99), "nothing was mixed"
    inputs = np.concatenate([bx for bx, _ in mixed])
    assert inputs.min() >= -1.0 and inputs.max() <= 127 / 128  # convex mixes stay in range
    with pytest.raises(ValueError, match="mixup_alpha"):
        kws.dataset("training", 5, True, mixup_alpha=-1.0)
    with pytest.raises(ValueError, match="training"):
        kws.dataset("validation", 5, False, mixup_alpha=0.2)


# ------------------------------------------------------------------------------------------------
# synthetic_fraction
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_and_mixed(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return (data.load(spec_for(), CONFIG, cache),
            data.load(spec_for(synthetic_fraction=1.5), CONFIG, cache), cache)


def test_synthetic_fraction_adds_speech_to_training_only(real_and_mixed):
    real, mixed, _ = real_and_mixed
    assert mixed.labels == real.labels
    for split in ("validation", "testing"):
        for a, b in zip(real.features(split), mixed.features(split)):
            np.testing.assert_array_equal(a, b)
        assert mixed.files(split) == real.files(split)
    n = real.num_examples("training")
    x, y = mixed.features("training")
    real_x, real_y = real.features("training")
    # The real clips come first, unchanged; the synthetic ones after them.
    np.testing.assert_array_equal(x[:n], real_x)
    np.testing.assert_array_equal(y[:n], real_y)
    origins = mixed.files("training")
    assert origins[:n] == real.files("training")
    assert all(o.startswith("synthetic: ") for o in origins[n:])
    # Per speech class: round(1.5 x its real training clips); none for _silence_.
    added = y[n:]
    for label, name in enumerate(real.labels):
        expected = 0 if name == data.SILENCE_LABEL else int(np.floor(1.5 * np.sum(real_y == label)
                                                                    + 0.5))
        assert np.sum(added == label) == expected, name
    assert len(added) > 0
    # Each clip says its label's word; _unknown_ ones say the data set's other words.
    for origin, label in zip(origins[n:], added):
        name = real.labels[label]
        text = origin.split("'")[1].strip("!?.,").lower()
        if name == data.UNKNOWN_LABEL:
            assert text in ("bed", "cat"), origin
        else:
            assert text == name, origin
    # Distinct clips, and augmentation variants of them like of the real training clips.
    assert len({clip.tobytes() for clip in x[n:]}) == len(added)
    assert mixed._arrays["training_aug"].shape[1] == len(y)


def test_synthetic_fraction_is_deterministic_by_seed_and_keys_the_cache(real_and_mixed, tmp_path):
    real, mixed, cache = real_and_mixed
    assert mixed.cache_path != real.cache_path
    assert data.load(spec_for(synthetic_fraction=0.5), CONFIG, cache).cache_path not in (
        real.cache_path, mixed.cache_path)
    rebuilt = data.load(spec_for(synthetic_fraction=1.5), CONFIG, tmp_path / "other_cache")
    n = real.num_examples("training")
    np.testing.assert_array_equal(rebuilt.features("training")[0], mixed.features("training")[0])
    assert rebuilt.files("training") == mixed.files("training")
    other_seed = data.load(spec_for(synthetic_fraction=1.5, seed=1), CONFIG, cache)
    other_n = data.load(spec_for(seed=1), CONFIG, cache).num_examples("training")
    assert other_seed.files("training")[other_n:] != mixed.files("training")[n:]


def test_synthetic_fraction_field():
    assert "synthetic_fraction" not in data.DataSpec().to_dict()  # earlier keys stay valid
    spec = spec_for(synthetic_fraction=1.0)
    assert spec.to_dict()["synthetic_fraction"] == 1.0
    assert data.DataSpec.from_dict(spec.to_dict()) == spec
    assert spec.cache_fields()["synthetic_fraction"] == 1.0
    for bad in (-0.5, float("nan"), "1"):
        with pytest.raises(ValueError, match="synthetic_fraction"):
            spec_for(synthetic_fraction=bad)
    with pytest.raises(ValueError, match="synthetic_fraction.*data_dir"):
        data.DataSpec(synthetic_fraction=1.0)
