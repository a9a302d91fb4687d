"""The on-disk feature store: memory-mapped, resumable, parallel builds equal serial ones, the input
pipeline streams from it (no graph constant, every example once an epoch), the cache is bounded."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
from tflm_kws import data, frontend
from tflm_kws.data import loader, store

FIXTURE = REPO / "tests" / "fixtures" / "speech_commands_mini"
CONFIG = frontend.FrontendConfig()


def _spec(**overrides):
    return data.DataSpec(data_dir=str(FIXTURE), wanted_words=["yes", "no"],
                         **dict(dict(augment_variants=2), **overrides))


def _all_arrays(kws):
    return {name: np.asarray(array) for name, array in kws._arrays.items()}  # pylint: disable=protected-access


def test_store_is_memory_mapped(tmp_path):
    kws = data.load(_spec(), CONFIG, tmp_path / "cache")
    x, _ = kws.features("training")
    assert isinstance(x, np.memmap) and not x.flags.writeable
    assert isinstance(kws._arrays["training_aug"], np.memmap)  # pylint: disable=protected-access
    assert sorted(os.listdir(kws.cache_path)) == sorted(
        ["meta.json", "training_aug.npy"] + [f"{s}_{k}.npy" for s in store.SPLITS
                                             for k in ("x", "y", "origin")])


def test_killed_build_resumes_from_its_committed_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "SHARD_CLIPS", 5)
    real_rows, calls = loader._job_rows, []  # pylint: disable=protected-access

    def dies_at_third_shard(jobs, start, *args):
        calls.append(start)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real_rows(jobs, start, *args)
    monkeypatch.setattr(loader, "_job_rows", dies_at_third_shard)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        data.load(_spec(), CONFIG, cache, workers=1)
    (store_dir,) = [p for p in cache.iterdir()]
    assert not store.is_complete(store_dir)
    assert len(os.listdir(store_dir / "shards")) == 2
    calls.clear()
    monkeypatch.setattr(loader, "_job_rows", lambda jobs, start, *a: (calls.append(start),
                                                                      real_rows(jobs, start, *a))[1])
    resumed = data.load(_spec(), CONFIG, cache, workers=1)
    assert 0 not in calls and 5 not in calls  # the two committed shards were not rebuilt
    assert not (store_dir / "shards").exists()
    fresh = data.load(_spec(), CONFIG, tmp_path / "fresh", workers=1)
    for name, array in _all_arrays(fresh).items():
        np.testing.assert_array_equal(_all_arrays(resumed)[name], array, err_msg=name)


def test_parallel_build_equals_serial_build(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "SHARD_CLIPS", 8)
    serial = data.load(_spec(), CONFIG, tmp_path / "serial", workers=1)
    parallel = data.load(_spec(), CONFIG, tmp_path / "parallel", workers=2)
    assert parallel.labels == serial.labels
    for name, array in _all_arrays(serial).items():
        np.testing.assert_array_equal(_all_arrays(parallel)[name], array, err_msg=name)


def _synthetic_store(store_dir, n, variants=2, seed=0):
    """A store of n random 'clips' whose first feature value encodes the clip's index."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        x = rng.integers(-128, 128, CONFIG.feature_shape).astype(np.int8)
        x[0, :2] = (i // 256 - 128, i % 256 - 128)
        aug = np.stack([x] * variants)
        rows.append(("training", x, i % 3, f"clip {i}", aug))
    path = store.shard_path(store_dir, 0, n)
    store.write_shard(path, rows, [], CONFIG.feature_shape)
    store.finalize(store_dir, [path], ["_silence_", "_unknown_", "yes"], CONFIG.feature_shape,
                   variants)
    labels, arrays, skipped = store.open_store(store_dir)
    return loader.KwsData(data.DataSpec(time_masks=0, freq_masks=0), CONFIG, labels, arrays,
                          str(store_dir), skipped)


def test_training_pipeline_streams_every_example_once_an_epoch(tmp_path):
    n = 3000  # 5.9 MB of clean features, 17.6 MB with the variants
    kws = _synthetic_store(tmp_path / "store", n)
    ds = kws.dataset("training", 128, training=True, seed=3)
    # The features are read from the memory maps, not baked into the graph.
    assert len(ds._as_serialized_graph().numpy()) < 200_000  # pylint: disable=protected-access
    for _ in range(2):
        seen = []
        for x, y in ds:
            codes = np.round(x.numpy()[:, 0, :2, 0] * 128).astype(int) + 128
            index = codes[:, 0] * 256 + codes[:, 1]
            seen.append(index)
            np.testing.assert_array_equal(y.numpy(), index % 3)
        seen = np.concatenate(seen)
        assert sorted(seen.tolist()) == list(range(n))  # none duplicated, none dropped
    validation = kws.dataset("training", 100, training=False)
    assert np.concatenate([y.numpy() for _, y in validation]).tolist() == [i % 3 for i in range(n)]


def test_variants_are_picked_per_example(tmp_path):
    kws = _synthetic_store(tmp_path / "store", 600, variants=2)
    # Make variant v of every clip recognisable: its last value is v.
    for v in range(2):
        aug = np.lib.format.open_memmap(os.path.join(kws.cache_path, "training_aug.npy"), "r+")
        aug[v, :, -1, -1] = 10 + v
        aug.flush()
        del aug
    labels, arrays, skipped = store.open_store(kws.cache_path)
    kws = loader.KwsData(kws.spec, CONFIG, labels, arrays, kws.cache_path, skipped)
    x = np.concatenate([b.numpy() for b, _ in kws.dataset("training", 100, training=True)])
    last = np.round(x[:, -1, -1, 0] * 128).astype(int)
    clean = np.asarray(kws.features("training")[0][:, -1, -1])
    picked_variant = np.isin(last, [10, 11])
    assert 0.5 < picked_variant.mean() < 0.85  # 2 of 3 choices are variants
    assert {10, 11} <= set(last.tolist()) and (~picked_variant).sum() > 0
    assert set(last[~picked_variant].tolist()) <= set(clean.tolist())


def test_prune_drops_least_recently_used_and_clear_drops_all(tmp_path):
    cache = tmp_path / "cache"
    old = data.load(_spec(), CONFIG, cache)
    os.utime(os.path.join(old.cache_path, "meta.json"), (1, 1))  # long unused
    new = data.load(_spec(augment_variants=1), CONFIG, cache)
    sizes = {path: size for path, size, _, _ in store.entries(cache)}
    assert set(sizes) == {old.cache_path, new.cache_path}
    assert store.prune(cache, sizes[new.cache_path]) == [old.cache_path]
    assert [e[0] for e in store.entries(cache)] == [new.cache_path]
    listing = subprocess.run([sys.executable, "-m", "tflm_kws.data.cache", f"--cache_dir={cache}"],
                             cwd=REPO, capture_output=True, text=True)
    assert listing.returncode == 0 and "1 store(s)" in listing.stdout
    cleared = subprocess.run([sys.executable, "-m", "tflm_kws.data.cache", f"--cache_dir={cache}",
                              "--clear"], cwd=REPO, capture_output=True, text=True)
    assert cleared.returncode == 0 and f"removed {new.cache_path}" in cleared.stdout
    assert store.entries(cache) == []
    # A cleared store is rebuilt on its next use.
    again = data.load(_spec(augment_variants=1), CONFIG, cache)
    np.testing.assert_array_equal(again.features("training")[0], new.features("training")[0])


def test_tf_data_reads_are_not_graph_constants_for_evaluation_either(tmp_path):
    kws = _synthetic_store(tmp_path / "store", 2000)
    ds = kws.dataset("training", 100, training=False)
    assert len(ds._as_serialized_graph().numpy()) < 200_000  # pylint: disable=protected-access
    assert isinstance(ds.element_spec[0], tf.TensorSpec)
