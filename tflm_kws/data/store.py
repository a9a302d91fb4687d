"""The on-disk feature store: int8 features of one data set, memory-mapped, never held in RAM whole.

A store is a directory `<cache_dir>/kws_features_<key>/`:
  meta.json                   labels, per-split counts, feature shape, augmentation variants, the
                              clips that could not be used; written last: a store without it is
                              unfinished
  <split>_x.npy               int8 [N, frames, channels]   clean features
  <split>_y.npy               int32 [N]                    labels
  <split>_origin.npy          str [N]                      where each example came from
  training_aug.npy            int8 [V, N, frames, channels] audio-augmented variants (V >= 1)
  shards/<start>-<end>.npz    while building: the examples of build jobs [start, end), each shard
                              written atomically, so a killed build resumes at the first missing one

Reading maps the .npy files (np.load mmap_mode="r"): the input pipeline gathers batches from them,
so memory stays bounded by the page cache whatever the size of the set. `entries`, `prune` and
`clear` bound the cache directory (`python -m tflm_kws.data.cache`).
"""
import json
import os
import shutil

import numpy as np

from tflm_kws import io_utils

META = "meta.json"
SHARDS = "shards"
SPLITS = ("training", "validation", "testing")
PREFIX = "kws_features_"


def is_complete(store_dir):
    return os.path.isfile(os.path.join(store_dir, META))


def shard_path(store_dir, start, end):
    return os.path.join(store_dir, SHARDS, f"{start:09d}-{end:09d}.npz")


def write_shard(path, rows, skipped, feature_shape):
    """rows: [(split, int8 x, label, origin, int8 aug [V, ...] or None)] of one job range."""
    arrays = {}
    for split in SPLITS:
        mine = [r for r in rows if r[0] == split]
        arrays[f"{split}_x"] = np.array([r[1] for r in mine], np.int8).reshape(
            (-1,) + tuple(feature_shape))
        arrays[f"{split}_y"] = np.array([r[2] for r in mine], np.int32)
        arrays[f"{split}_origin"] = np.array([r[3] for r in mine], dtype=str)
        if split == "training":
            augs = [r[4] for r in mine if r[4] is not None]
            if augs:
                arrays["training_aug"] = np.stack(augs)  # [n, V, frames, channels]
    arrays["skipped"] = np.array(["\t".join(s) for s in skipped], dtype=str)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with io_utils.atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def read_shard_summary(path):
    """({split: int32 labels}, [(path, reason)] of skipped files) of a finished shard."""
    with np.load(path, allow_pickle=False) as shard:
        return ({split: shard[f"{split}_y"] for split in SPLITS},
                [tuple(s.split("\t", 1)) for s in shard["skipped"].tolist()])


def finalize(store_dir, shard_paths, labels, feature_shape, num_variants, extra_skipped=()):
    """Concatenates the shards (in order) into the store's memory-mapped arrays, writes meta.json,
    removes the shards. Streams shard by shard: memory stays at one shard. extra_skipped: unusable
    files found outside the shards (noise recordings)."""
    counts = {split: 0 for split in SPLITS}
    skipped = list(extra_skipped)
    for path in shard_paths:
        labels_by_split, shard_skipped = read_shard_summary(path)
        for split in SPLITS:
            counts[split] += len(labels_by_split[split])
        skipped += shard_skipped
    outputs = {}
    for split in SPLITS:
        outputs[f"{split}_x"] = _open(store_dir, f"{split}_x", np.int8,
                                      (counts[split],) + tuple(feature_shape))
        outputs[f"{split}_y"] = _open(store_dir, f"{split}_y", np.int32, (counts[split],))
    if num_variants:
        outputs["training_aug"] = _open(store_dir, "training_aug", np.int8,
                                        (num_variants, counts["training"]) + tuple(feature_shape))
    origins = {split: [] for split in SPLITS}
    offsets = {split: 0 for split in SPLITS}
    for path in shard_paths:
        with np.load(path, allow_pickle=False) as shard:
            for split in SPLITS:
                n = len(shard[f"{split}_y"])
                at = slice(offsets[split], offsets[split] + n)
                outputs[f"{split}_x"][at] = shard[f"{split}_x"]
                outputs[f"{split}_y"][at] = shard[f"{split}_y"]
                if split == "training" and num_variants and n:
                    outputs["training_aug"][:, at] = np.moveaxis(shard["training_aug"], 1, 0)
                origins[split].append(shard[f"{split}_origin"])
                offsets[split] += n
    for array in outputs.values():
        array.flush()
    del outputs
    for split in SPLITS:
        origin = (np.concatenate(origins[split]) if origins[split] else np.array([], dtype=str))
        with io_utils.atomic_write(os.path.join(store_dir, f"{split}_origin.npy"), "wb") as f:
            np.save(f, origin.astype(str))
    for name in os.listdir(store_dir):  # the memory maps were written under temporary names
        if name.endswith(".npy.part"):
            os.replace(os.path.join(store_dir, name), os.path.join(store_dir, name[:-5]))
    io_utils.atomic_write_json(os.path.join(store_dir, META), {
        "labels": list(labels), "counts": counts, "feature_shape": list(feature_shape),
        "augment_variants": int(num_variants), "skipped": [list(s) for s in skipped]})
    shutil.rmtree(os.path.join(store_dir, SHARDS), ignore_errors=True)


def _open(store_dir, name, dtype, shape):
    return np.lib.format.open_memmap(os.path.join(store_dir, f"{name}.npy.part"), mode="w+",
                                     dtype=dtype, shape=shape)


def open_store(store_dir):
    """(labels, {name: read-only memory-mapped array}, skipped [(path, reason)]) of a store."""
    with open(os.path.join(store_dir, META)) as f:
        meta = json.load(f)
    arrays = {}
    for split in SPLITS:
        for kind in ("x", "y", "origin"):
            path = os.path.join(store_dir, f"{split}_{kind}.npy")
            # np.memmap cannot map a 0-byte array; empty splits are read normally.
            arrays[f"{split}_{kind}"] = np.load(
                path, mmap_mode="r" if meta["counts"][split] and kind != "origin" else None,
                allow_pickle=False)
    if meta["augment_variants"] and meta["counts"]["training"]:
        arrays["training_aug"] = np.load(os.path.join(store_dir, "training_aug.npy"),
                                         mmap_mode="r", allow_pickle=False)
    os.utime(os.path.join(store_dir, META))  # last use, for `prune`
    return meta["labels"], arrays, [tuple(s) for s in meta["skipped"]]


def entries(cache_dir):
    """[(store dir, bytes, last use time, complete)] of every store in cache_dir, newest first."""
    found = []
    if not os.path.isdir(cache_dir):
        return found
    for name in os.listdir(cache_dir):
        path = os.path.join(cache_dir, name)
        if not (name.startswith(PREFIX) and os.path.isdir(path)):
            continue
        size = sum(os.path.getsize(os.path.join(root, f))
                   for root, _, files in os.walk(path) for f in files)
        meta = os.path.join(path, META)
        used = os.path.getmtime(meta if os.path.exists(meta) else path)
        found.append((path, size, used, os.path.exists(meta)))
    return sorted(found, key=lambda e: -e[2])


def prune(cache_dir, max_bytes, keep=()):
    """Removes the least recently used stores until the cache holds <= max_bytes (never those in
    `keep`); returns the removed directories."""
    removed, total = [], sum(e[1] for e in entries(cache_dir))
    for path, size, _, _ in reversed(entries(cache_dir)):
        if total <= max_bytes:
            break
        if os.path.abspath(path) in {os.path.abspath(k) for k in keep}:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        total -= size
    return removed


def clear(cache_dir):
    """Removes every store of cache_dir; returns them."""
    removed = [e[0] for e in entries(cache_dir)]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
