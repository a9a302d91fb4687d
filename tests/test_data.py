"""Data loading on the committed mini Speech Commands fixture (runs without ../shared)."""
import logging
import os
import pathlib
import shutil

import numpy as np
import pytest

from tflm_kws import audio, data, frontend
from tflm_kws.data import loader, sources

from conftest import write_wav

MINI = pathlib.Path(__file__).parent / "fixtures" / "speech_commands_mini"
CONFIG = frontend.FrontendConfig()


def spec_for(path, **kwargs):
    kwargs.setdefault("augment_variants", 1)
    return data.DataSpec(data_dir=str(path), **kwargs)


@pytest.fixture
def mini_copy(tmp_path):
    root = tmp_path / "data"
    shutil.copytree(MINI, root)
    return root


def test_mini_labels_counts_and_list_files(tmp_path):
    kws = data.load(spec_for(MINI, wanted_words=["yes", "no"]), CONFIG, tmp_path / "cache")
    assert kws.labels == ["_silence_", "_unknown_", "yes", "no"]
    validation = {line.strip().split(".")[0] for line in open(MINI / "validation_list.txt")}
    testing = {line.strip().split(".")[0] for line in open(MINI / "testing_list.txt")}
    for split in sources.SPLITS:
        for path in kws.files(split):
            if path.startswith("silence:"):
                continue
            key = os.path.relpath(path, MINI).split(".")[0]
            expected = ("validation" if key in validation else "testing" if key in testing
                        else "training")
            assert split == expected, path
    # 5 training clips per word; _unknown_ and _silence_ are 10% of the 10 word clips -> 1 each.
    assert kws.class_counts("training") == {"_silence_": 1, "_unknown_": 1, "yes": 5, "no": 5}
    assert kws.class_counts("validation") == {"_silence_": 1, "_unknown_": 1, "yes": 2, "no": 2}
    x, y = kws.features("training")
    assert x.dtype == np.int8 and x.shape == (12, 49, 40) and y.dtype == np.int32
    # Clean features are exactly compute_features of the decoded clip.
    first = kws.files("training").index(str(MINI / "yes" / sorted(os.listdir(MINI / "yes"))[0]))
    clip = audio.fit_to_length(audio.load_audio(kws.files("training")[first]), 16000)
    np.testing.assert_array_equal(x[first], frontend.compute_features(clip, CONFIG))


def test_dataset_batches(tmp_path):
    kws = data.load(spec_for(MINI, wanted_words=["yes", "no"], augment_variants=2), CONFIG,
                    tmp_path / "cache")
    x, y = kws.features("validation")
    batches = list(kws.dataset("validation", 4, training=False))
    inputs = np.concatenate([b[0].numpy() for b in batches])
    assert inputs.dtype == np.float32 and inputs.shape == (6, 49, 40, 1)
    np.testing.assert_array_equal(inputs, frontend.features_to_model_input(x))
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)
    train = kws.dataset("training", 5, training=True, seed=1)
    epoch = [(bx.numpy(), by.numpy()) for bx, by in train]
    assert [bx.shape for bx, _ in epoch] == [(5, 49, 40, 1), (5, 49, 40, 1), (2, 49, 40, 1)]
    labels = np.concatenate([by for _, by in epoch])
    assert sorted(labels) == sorted(kws.features("training")[1])  # each clip once per epoch
    clean = frontend.features_to_model_input(kws.features("training")[0])
    augmented = np.concatenate([bx for bx, _ in epoch])
    # Augmented inputs stay in the int8 grid and range, and are not just the clean features.
    assert augmented.min() >= -1.0 and augmented.max() <= 127 / 128
    np.testing.assert_array_equal(augmented * 128, np.round(augmented * 128))
    assert not any(np.array_equal(a, c) for a in augmented for c in clean)
    # A seed fixes the epoch, SpecAugment masks included (tf.data runs the calls in parallel);
    # the next epoch of the same dataset is another one.
    again = [(bx.numpy(), by.numpy()) for bx, by in kws.dataset("training", 5, training=True,
                                                                 seed=1)]
    for (ax, ay), (bx, by) in zip(again, epoch):
        np.testing.assert_array_equal(ax, bx)
        np.testing.assert_array_equal(ay, by)
    second_epoch = np.concatenate([bx.numpy() for bx, _ in train])
    assert not np.array_equal(second_epoch, augmented)


def test_spec_augment_masks_are_seeded_and_within_their_limits():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    spec = data.DataSpec(time_masks=2, time_mask_max_frames=5, freq_masks=1,
                         freq_mask_max_channels=4)
    features = tf.fill((49, 40), 0.5)
    widths = {"time": set(), "freq": set()}
    for i in range(200):
        seed = tf.constant([i, 7], tf.int64)
        masked = loader.spec_augment(features, spec, seed).numpy()
        np.testing.assert_array_equal(masked, loader.spec_augment(features, spec, seed))
        assert set(np.unique(masked)) <= {0.5, -1.0}  # masked cells read as silence
        rows = np.all(masked == -1.0, axis=1)  # whole frames: time masks
        cols = np.all(masked == -1.0, axis=0)  # whole channels: the frequency mask
        # Every masked cell is in a masked frame or a masked channel.
        assert np.array_equal(masked == -1.0, rows[:, None] | cols[None, :])
        widths["time"].add(int(rows.sum()))
        widths["freq"].add(int(cols.sum()))
        assert rows.sum() <= 2 * 5 and cols.sum() <= 4
    assert widths["freq"] == set(range(5))  # 0 to 4 channels, all drawn
    assert max(widths["time"]) > 5  # two masks
    assert not np.array_equal(loader.spec_augment(features, spec, tf.constant([1, 7], tf.int64)),
                              loader.spec_augment(features, spec, tf.constant([2, 7], tf.int64)))
    off = data.DataSpec(time_masks=0, freq_masks=0)
    np.testing.assert_array_equal(loader.spec_augment(features, off, tf.constant([1, 7])),
                                  features)


def test_cache_reused_and_invalidated(tmp_path, mini_copy, monkeypatch):
    cache = tmp_path / "cache"
    spec = spec_for(mini_copy, wanted_words=["yes", "no"])
    first = data.load(spec, CONFIG, cache)
    assert os.path.isfile(os.path.join(first.cache_path, "meta.json"))  # a complete store

    def no_rebuild(*args):
        raise AssertionError("cache was rebuilt")
    monkeypatch.setattr(loader, "_build_from_files", no_rebuild)
    again = data.load(spec, CONFIG, cache)
    assert again.cache_path == first.cache_path
    np.testing.assert_array_equal(again.features("training")[0], first.features("training")[0])
    # SpecAugment settings are applied on the fly: same cache.
    assert data.load(spec_for(mini_copy, wanted_words=["yes", "no"], time_masks=0), CONFIG,
                     cache).cache_path == first.cache_path
    monkeypatch.undo()
    # A different frontend config, an added file, a changed file: each builds a new cache.
    other_config = data.load(spec, frontend.FrontendConfig(num_channels=32), cache)
    assert other_config.cache_path != first.cache_path
    assert other_config.features("training")[0].shape[1:] == (49, 32)
    shutil.copy(mini_copy / "yes" / sorted(os.listdir(mini_copy / "yes"))[0],
                mini_copy / "yes" / "ffffffff_nohash_9.flac")
    added = data.load(spec, CONFIG, cache)
    assert added.cache_path not in (first.cache_path, other_config.cache_path)
    assert added.class_counts("training")["yes"] == first.class_counts("training")["yes"] + 1
    target = mini_copy / "no" / sorted(os.listdir(mini_copy / "no"))[0]
    write_wav(target.with_suffix(".wav"), audio.load_audio(target) // 2)
    target.unlink()
    assert data.load(spec, CONFIG, cache).cache_path != added.cache_path


def test_bad_files_skipped_with_warnings(tmp_path, mini_copy, caplog):
    word = mini_copy / "yes"
    good = audio.load_audio(word / sorted(os.listdir(word))[0])
    (word / "empty_nohash_0.wav").write_bytes(b"")
    (word / "corrupt_nohash_0.flac").write_bytes(b"\x00garbage" * 300)
    write_wav(word / "full_nohash_0.wav", good)
    (word / "truncated_nohash_0.wav").write_bytes((word / "full_nohash_0.wav").read_bytes()[:3000])
    (word / "full_nohash_0.wav").unlink()
    write_wav(word / "silent_nohash_0.wav", np.zeros(16000, np.int16))
    nan = np.full(16000, np.nan, "<f4").tobytes()
    fmt = (b"fmt " + (16).to_bytes(4, "little") + (3).to_bytes(2, "little") + (1).to_bytes(2, "little")
           + (16000).to_bytes(4, "little") + (64000).to_bytes(4, "little")
           + (4).to_bytes(2, "little") + (32).to_bytes(2, "little"))
    body = b"WAVE" + fmt + b"data" + len(nan).to_bytes(4, "little") + nan
    (word / "nan_nohash_0.wav").write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)
    for i in range(6):  # more than 10 bad files in all: only the first 10 get a line each
        (word / f"bad{i}_nohash_0.wav").write_bytes(b"RIFFxxxx")
    with caplog.at_level(logging.WARNING, logger="tflm_kws.data.loader"):
        kws = data.load(spec_for(mini_copy, wanted_words=["yes", "no"]), CONFIG, tmp_path / "c")
    assert len(kws.skipped) == 11
    reasons = dict(kws.skipped)
    assert "empty" in reasons[str(word / "empty_nohash_0.wav")]
    assert "cannot decode" in reasons[str(word / "corrupt_nohash_0.flac")]
    assert "cannot decode" in reasons[str(word / "truncated_nohash_0.wav")]
    assert "silent" in reasons[str(word / "silent_nohash_0.wav")]
    assert "NaN" in reasons[str(word / "nan_nohash_0.wav")]
    lines = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("skipping ") for m in lines) == 10
    assert any(m.startswith("skipped 11 of") for m in lines)
    assert kws.class_counts("training")["yes"] == 5  # the good clips are all there


def test_missing_dir_unknown_word_empty_word_and_empty_split(tmp_path, mini_copy):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.load(spec_for(tmp_path / "nowhere"), CONFIG, tmp_path / "c")
    with pytest.raises(ValueError, match=r"\['maybe'\].*available words: bed, cat, no, yes"):
        data.load(spec_for(mini_copy, wanted_words=["yes", "maybe"]), CONFIG, tmp_path / "c")
    (mini_copy / "hush").mkdir()
    with pytest.raises(ValueError, match="'hush' has no audio files"):
        data.load(spec_for(mini_copy, wanted_words=["yes", "hush"]), CONFIG, tmp_path / "c")
    write_wav(mini_copy / "hush" / "a_nohash_0.wav", np.zeros(16000, np.int16))
    with pytest.raises(ValueError, match="'hush' has no usable clips"):
        data.load(spec_for(mini_copy, wanted_words=["yes", "hush"]), CONFIG, tmp_path / "c")
    (mini_copy / "testing_list.txt").write_text("")
    (mini_copy / "validation_list.txt").write_text("")
    kws = data.load(spec_for(mini_copy, wanted_words=["yes"]), CONFIG, tmp_path / "c")
    assert kws.num_examples("testing") == 0
    with pytest.raises(ValueError, match=f"split 'testing' of {mini_copy} has no clips"):
        kws.features("testing")


def test_speaker_hash_split_without_list_files(tmp_path, mini_copy):
    (mini_copy / "validation_list.txt").unlink()
    (mini_copy / "testing_list.txt").unlink()
    # The fixture's speakers all hash to 10-20% (they come from the official test partition), so
    # split that range.
    kws = data.load(spec_for(mini_copy, wanted_words=["yes", "no"], validation_percentage=14,
                             testing_percentage=3), CONFIG, tmp_path / "c")
    seen = {}
    for split in sources.SPLITS:
        for path in kws.files(split):
            if not path.startswith("silence:"):
                assert split == sources.which_set(path, 14, 3)
                assert seen.setdefault(sources.speaker_of(path), split) == split
    assert len(set(seen.values())) == 3


def test_which_set_matches_speech_commands_rule():
    # Same speaker -> same split, whatever the utterance index, folder or extension.
    assert len({sources.which_set(f"{w}/3df9a3d4_nohash_{i}.{e}", 10, 10)
                for w in ("yes", "no") for i in range(3) for e in ("wav", "flac")}) == 1
    assert sources.which_set("x/0a7c2a8d_nohash_0.wav", 0, 0) == "training"
    assert sources.which_set("x/0a7c2a8d_nohash_0.wav", 100, 0) == "validation"


def test_test_set_layout_and_user_tree(tmp_path):
    clip = audio.load_audio(MINI / "yes" / sorted(os.listdir(MINI / "yes"))[0])
    root = tmp_path / "test_set"
    for folder in ("_silence_", "_unknown_", "yes", "no"):
        (root / folder).mkdir(parents=True)
    write_wav(root / "_silence_" / "s1.wav", np.zeros(16000, np.int16))  # silence is fine here
    write_wav(root / "_unknown_" / "u1.wav", clip[::-1])
    write_wav(root / "yes" / "y1.wav", clip)
    # A longer clip is centred in evaluation, a shorter one padded.
    write_wav(root / "no" / "n1.wav", np.concatenate([np.zeros(4000, np.int16), clip,
                                                      np.zeros(4000, np.int16)]))
    write_wav(root / "no" / "n2.wav", clip[4000:12000])
    kws = data.load(data.DataSpec(data_dir=str(root)), CONFIG, tmp_path / "c")
    assert kws.labels == ["_silence_", "_unknown_", "yes", "no"]
    assert kws.num_examples("training") == 0 and kws.num_examples("testing") == 5
    x, y = kws.features("testing")
    assert sorted(y.tolist()) == [0, 1, 2, 3, 3]
    files = kws.files("testing")
    np.testing.assert_array_equal(x[files.index(str(root / "no" / "n1.wav"))],
                                  x[files.index(str(root / "yes" / "y1.wav"))])
    padded = np.concatenate([np.zeros(4000, np.int16), clip[4000:12000], np.zeros(4000, np.int16)])
    np.testing.assert_array_equal(x[files.index(str(root / "no" / "n2.wav"))],
                                  frontend.compute_features(padded, CONFIG))
    with pytest.raises(ValueError, match="split 'training'"):
        kws.dataset("training", 8, training=True)

    # A user's tree: any names, rates and channel counts, no _background_noise_.
    user = tmp_path / "user"
    (user / "hey_tiny").mkdir(parents=True)
    (user / "other").mkdir()
    for i in range(6):
        write_wav(user / "hey_tiny" / f"me{i}_nohash_{i}.wav", np.roll(clip, 800 * i))
        up = audio.resample(np.roll(clip, -800 * i) / 32768.0, 16000, 44100)
        stereo = np.clip(np.round(np.stack([up, up], 1) * 32768), -32768, 32767)
        write_wav(user / "other" / f"you{i}_nohash_0.wav", stereo, 44100)
    kws = data.load(data.DataSpec(data_dir=str(user), augment_variants=1, unknown_percentage=50,
                                  wanted_words=["hey_tiny"], validation_percentage=0,
                                  testing_percentage=0), CONFIG, tmp_path / "c")
    assert kws.labels == ["_silence_", "_unknown_", "hey_tiny"]
    assert kws.class_counts("training") == {"_silence_": 1, "_unknown_": 3, "hey_tiny": 6}
