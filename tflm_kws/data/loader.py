"""`load()`: clips -> cached int8 features (clean + audio-augmented variants) -> tf.data pipelines.

Decoding, audio-domain augmentation (time shift, background noise at a random SNR) and the frontend
run once; the results are cached on disk under a key made of the frontend config, the DataSpec and
the file list (paths, sizes, modification times), so a change to any of them builds a new cache.
Each epoch then picks one cached variant per training clip at random and applies SpecAugment on the
fly, which keeps the input pipeline far faster than training.
"""
import hashlib
import json
import logging
import math
import os

import numpy as np
import tensorflow as tf
import tensorflow_io as tfio

from tflm_kws import audio, frontend, io_utils
from tflm_kws.data import espeak, noise, sources, synthetic
from tflm_kws.data.spec import DataSpec, SILENCE_LABEL

CACHE_VERSION = 1
MIXUP_STREAM = 0x6D6978  # "mix": the mixup random stream of a dataset seed
MAX_SKIP_WARNINGS = 10
SPLITS = sources.SPLITS
logger = logging.getLogger(__name__)


class KwsData:
    """Labels and per-split int8 features of one DataSpec + FrontendConfig."""

    def __init__(self, spec, config, labels, arrays, cache_path, skipped):
        self.spec = spec
        self.config = config
        self.labels = list(labels)
        self.cache_path = cache_path
        self.skipped = list(skipped)  # [(path, reason)] of clips that could not be used
        self._arrays = arrays

    @property
    def source(self) -> str:
        return self.spec.data_dir or f"synthetic wake word {self.spec.wake_word!r}"

    def num_examples(self, split) -> int:
        self._check_split(split)
        return int(self._arrays[f"{split}_y"].shape[0])

    def _check_split(self, split):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")

    def _nonempty(self, split):
        if self.num_examples(split) == 0:
            raise ValueError(f"split {split!r} of {self.source} has no clips (a test-set layout puts "
                             f"every clip in 'testing'; with speaker-hash splits check "
                             f"validation_percentage / testing_percentage)")

    def features(self, split):
        """(int8 [N, frames, channels], int32 [N]): clean features, no augmentation."""
        self._nonempty(split)
        return self._arrays[f"{split}_x"], self._arrays[f"{split}_y"]

    def files(self, split) -> list:
        """Where each example came from: a file path, or a description of a generated clip."""
        self._check_split(split)
        return [str(s) for s in self._arrays[f"{split}_origin"]]

    def class_counts(self, split) -> dict:
        y = self._arrays[f"{split}_y"]
        return {label: int(np.sum(y == i)) for i, label in enumerate(self.labels)}

    def dataset(self, split, batch_size, training, seed=0, mixup_alpha=0.0) -> tf.data.Dataset:
        """(float32 [B, frames, channels, 1] model input, int32 [B] label) batches.

        training=True: reshuffled every epoch, each clip one of its cached audio-augmented variants
        (or the clean one) at random, then SpecAugment time/frequency masks, then, with
        mixup_alpha > 0, `mixup` within the batch: the labels are then float32 [B, num_classes]
        soft labels.
        """
        if mixup_alpha < 0.0 or not math.isfinite(mixup_alpha):
            raise ValueError(f"mixup_alpha must be a number >= 0, got {mixup_alpha!r}")
        if mixup_alpha > 0.0 and not training:
            raise ValueError("mixup is a training augmentation (training=True only)")
        x, y = self.features(split)
        if not training:
            ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
            return ds.map(_to_model_input_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
        variants = self._arrays.get(f"{split}_aug")
        table = x[np.newaxis] if variants is None else np.concatenate([x[np.newaxis], variants])
        num_variants, n = table.shape[0], x.shape[0]
        table = tf.constant(table.reshape((-1,) + x.shape[1:]))
        labels = tf.constant(y)
        spec = self.spec

        def pick_and_mask(index, random):
            variant = tf.math.floormod(random, num_variants)
            features = tf.gather(table, variant * n + index)
            model_input = tf.cast(features, tf.float32) * frontend.FEATURE_SCALE
            model_input = tf.map_fn(lambda f: spec_augment(f, spec), model_input)
            return model_input[..., tf.newaxis], tf.gather(labels, index)

        indices = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
        randoms = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
        ds = tf.data.Dataset.zip((indices, randoms)).batch(batch_size)
        ds = ds.map(pick_and_mask, num_parallel_calls=tf.data.AUTOTUNE)
        if mixup_alpha > 0.0:
            num_classes = len(self.labels)
            # A stream of its own (not `seed`'s, which picks the variants), two int64 per batch.
            mix_seeds = tf.data.Dataset.random(
                seed=int(np.random.default_rng([seed, MIXUP_STREAM]).integers(2 ** 31)),
                rerandomize_each_iteration=True).batch(2)

            def mix(batch, mix_seed):
                model_input, label = batch
                return mixup(model_input, tf.one_hot(label, num_classes), mixup_alpha, mix_seed)
            ds = tf.data.Dataset.zip((ds, mix_seeds)).map(mix, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(2)


def mixup(model_input, one_hot_labels, alpha, seed):
    """Mixup (Zhang et al. 2018) within a batch, one mixing weight per example.

    Example i becomes lam_i * (x_i, y_i) + (1 - lam_i) * (x_p(i), y_p(i)), with p a random
    permutation of the batch and lam_i ~ Beta(alpha, alpha) drawn per example. model_input:
    float [B, ...]; one_hot_labels: float [B, num_classes] (one-hot or already soft); seed: int
    [2], a stateless seed (same seed, same mix). alpha == 0 returns the batch unchanged.
    """
    if alpha == 0.0:
        return model_input, one_hot_labels
    gamma_seed, other_seed, permutation_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3))
    size = tf.shape(model_input)[0]
    # Beta(a, a) as G1 / (G1 + G2), G ~ Gamma(a); float64 keeps small-alpha draws from
    # underflowing (if both do, lam = 0: the partner alone, still a valid mix).
    g1 = tf.random.stateless_gamma([size], gamma_seed, alpha, dtype=tf.float64)
    g2 = tf.random.stateless_gamma([size], other_seed, alpha, dtype=tf.float64)
    lam = tf.math.divide_no_nan(g1, g1 + g2)
    partner = tf.argsort(tf.random.stateless_uniform([size], permutation_seed))
    lam_x = tf.reshape(tf.cast(lam, model_input.dtype),
                       tf.concat([[size], tf.ones([tf.rank(model_input) - 1], tf.int32)], 0))
    lam_y = tf.cast(lam, one_hot_labels.dtype)[:, tf.newaxis]
    mixed_input = lam_x * model_input + (1.0 - lam_x) * tf.gather(model_input, partner)
    mixed_labels = lam_y * one_hot_labels + (1.0 - lam_y) * tf.gather(one_hot_labels, partner)
    return mixed_input, mixed_labels


def _to_model_input_batch(x, y):
    return (tf.cast(x, tf.float32) * frontend.FEATURE_SCALE)[..., tf.newaxis], y


def spec_augment(features, spec):
    """SpecAugment on one [frames, channels] model input (tensorflow-io masks).

    tfio's masks write zeros; the features are shifted so that a masked cell reads as silence
    (int8 -128, model input -1.0) rather than as a mid-level value.
    """
    shifted = features + 1.0
    for _ in range(spec.time_masks):
        shifted = tfio.audio.time_mask(shifted, param=spec.time_mask_max_frames + 1)
    for _ in range(spec.freq_masks):
        shifted = tfio.audio.freq_mask(shifted, param=spec.freq_mask_max_channels + 1)
    return shifted - 1.0


def load(spec: DataSpec, config: frontend.FrontendConfig, cache_dir) -> KwsData:
    """Features of `spec` under `config`, from the cache in `cache_dir` or built (then cached)."""
    if spec.data_dir is None:
        listing = None
        source_key = {"synthetic": synthetic.GENERATOR_VERSION, "espeak": espeak.data_version()}
    else:
        listing = sources.list_data(spec.data_dir, spec)
        source_key = _file_list_key(spec.data_dir, listing)
        if spec.synthetic_fraction > 0.0:
            source_key["synthetic"] = {"generator": synthetic.GENERATOR_VERSION,
                                       "espeak": espeak.data_version(),
                                       "unknown_words": listing.unknown_words}
    key = hashlib.sha1(json.dumps({
        "version": CACHE_VERSION, "frontend": config.to_dict(), "spec": spec.cache_fields(),
        "source": source_key}, sort_keys=True).encode()).hexdigest()[:20]
    cache_path = os.path.join(os.fspath(cache_dir), f"kws_features_{key}.npz")
    if os.path.isfile(cache_path):
        with np.load(cache_path, allow_pickle=False) as cached:
            arrays = {k: cached[k] for k in cached.files}
        labels = [str(s) for s in arrays.pop("labels")]
        skipped = [tuple(s.split("\t", 1)) for s in arrays.pop("skipped").tolist()]
        if skipped:
            logger.warning("%d clip(s) of %s could not be used and are left out (cached result; "
                           "first: %s)", len(skipped), spec.data_dir, skipped[0][0])
        return KwsData(spec, config, labels, arrays, cache_path, skipped)

    if listing is None:
        labels, arrays, skipped = _build_synthetic(spec, config)
    else:
        labels, arrays, skipped = _build_from_files(spec, config, listing)
    with io_utils.atomic_write(cache_path, "wb") as f:
        np.savez(f, labels=np.array(labels),
                 skipped=np.array(["\t".join(s) for s in skipped], dtype=str), **arrays)
    return KwsData(spec, config, labels, arrays, cache_path, skipped)


def _file_list_key(data_dir, listing):
    def stat(path):
        st = os.stat(path)
        return [os.path.relpath(path, data_dir), st.st_size, st.st_mtime_ns]
    extra = [os.path.join(data_dir, n) for n in ("validation_list.txt", "testing_list.txt")]
    return {"layout": listing.layout, "labels": listing.labels,
            "items": [stat(it.path) + [it.label, it.split] for it in listing.items],
            "noise": [stat(p) for p in listing.noise_files],
            "lists": [stat(p) for p in extra if os.path.isfile(p)]}


class _Builder:
    """Accumulates clean features and augmented variants per split."""

    def __init__(self, spec, config, noises):
        self.spec, self.config, self.noises = spec, config, noises
        self.x = {s: [] for s in SPLITS}
        self.y = {s: [] for s in SPLITS}
        self.origin = {s: [] for s in SPLITS}
        self.aug = []  # per training clip: int8 [V, frames, channels]
        self.count = 0

    def add(self, clip, label, split, origin, is_silence):
        """clip: int16 of any length (cropped centred for the clean copy, randomly for variants)."""
        config, spec = self.config, self.spec
        index = self.count
        self.count += 1
        clean = audio.fit_to_length(clip, config.clip_samples)
        self.x[split].append(frontend.compute_features(clean, config))
        self.y[split].append(label)
        self.origin[split].append(origin)
        if split != "training":
            return
        variants = []
        for v in range(spec.augment_variants):
            rng = np.random.default_rng([spec.seed, 1, index, v])
            if is_silence:
                x, _ = synthetic.silence_clip(rng, self.noises, config.clip_samples)
            else:
                x = audio.fit_to_length(clip, config.clip_samples, rng).astype(np.float64) / 32768.0
                max_shift = int(spec.time_shift_ms * config.sample_rate / 1000)
                x = noise.time_shift(x, int(rng.integers(-max_shift, max_shift + 1)))
                if rng.random() < spec.background_frequency:
                    name = sorted(self.noises)[int(rng.integers(len(self.noises)))]
                    segment = noise.noise_segment(rng, self.noises[name], config.clip_samples)
                    x = noise.mix_at_snr(x, segment, rng.uniform(spec.snr_db_min, spec.snr_db_max))
            variants.append(frontend.compute_features(synthetic.to_int16(x), config))
        self.aug.append(np.stack(variants) if variants else None)

    def arrays(self):
        shape = self.config.feature_shape
        out = {}
        for s in SPLITS:
            out[f"{s}_x"] = np.array(self.x[s], np.int8).reshape((-1,) + shape)
            out[f"{s}_y"] = np.array(self.y[s], np.int32)
            out[f"{s}_origin"] = np.array(self.origin[s], dtype=str)
        if self.spec.augment_variants and self.aug:
            out["training_aug"] = np.stack(self.aug, axis=1)  # [V, N, frames, channels]
        return out


def _build_from_files(spec, config, listing):
    skipped = []

    def skip(path, reason):
        skipped.append((path, reason))
        if len(skipped) <= MAX_SKIP_WARNINGS:
            logger.warning("skipping %s: %s", path, reason)

    noises = {}
    for path in listing.noise_files:
        try:
            noises[os.path.basename(path)] = (audio.load_audio(path, config.sample_rate)
                                              .astype(np.float32) / 32768.0)
        except audio.AudioDecodeError as e:
            skip(e.path, e.reason)
    if not noises:
        # No _background_noise_ folder (a user's own tree): synthesize noise instead.
        noises = noise.synthetic_noises(spec.seed, config.sample_rate)
    builder = _Builder(spec, config, noises)
    for item in listing.items:
        try:
            clip = audio.load_audio(item.path, config.sample_rate, expect_speech=item.expect_speech)
        except audio.AudioDecodeError as e:
            skip(e.path, e.reason)
            continue
        builder.add(clip, item.label, item.split, item.path,
                    listing.labels[item.label] == SILENCE_LABEL)
    silence = listing.labels.index(SILENCE_LABEL)
    for split in SPLITS:
        for index in range(listing.silence_per_split[split]):
            rng = np.random.default_rng([spec.seed, 2, SPLITS.index(split), index])
            clip, description = synthetic.silence_clip(rng, noises, config.clip_samples)
            builder.add(synthetic.to_int16(clip), silence, split, "silence: " + description, True)
    if spec.synthetic_fraction > 0.0:
        _add_synthetic_speech(spec, config, builder, listing)
    if skipped:
        logger.warning("skipped %d of %d clips that could not be used (the first %d are listed "
                       "above)", len(skipped), len(listing.items) + len(listing.noise_files),
                       min(len(skipped), MAX_SKIP_WARNINGS))
    arrays = builder.arrays()
    all_labels = np.concatenate([arrays[f"{s}_y"] for s in SPLITS])
    for index, label in enumerate(listing.labels):
        if label in listing.labels[2:] and not np.any(all_labels == index):
            raise ValueError(f"wanted word {label!r} has no usable clips in "
                             f"{os.path.join(spec.data_dir, label)} (all were skipped)")
    if listing.layout != "test_set" and arrays["training_y"].shape[0] == 0:
        raise ValueError(f"the training split of {spec.data_dir} is empty")
    return listing.labels, arrays, skipped


def _add_synthetic_speech(spec, config, builder, listing):
    """Adds espeak-ng speech to the training split: per speech class, synthetic_fraction times the
    class's usable real training clips (rounded half up)."""
    real = np.array(builder.y["training"], np.int32)
    silence = listing.labels.index(SILENCE_LABEL)
    counts = {label: int(math.floor(spec.synthetic_fraction * np.sum(real == label) + 0.5))
              for label in range(len(listing.labels)) if label != silence}
    for clip, label, description in synthetic.speech_for_labels(
            spec.seed, counts, listing.labels, listing.unknown_words, builder.noises, config):
        builder.add(clip, label, "training", "synthetic: " + description, False)


def _build_synthetic(spec, config):
    generated = synthetic.generate(spec, config)
    builder = _Builder(spec, config, generated.noises)
    for clip, label, split, description in zip(generated.audio, generated.labels,
                                               generated.splits, generated.descriptions):
        builder.add(clip, int(label), split, "synthetic: " + description, label == 0)
    return generated.label_names, builder.arrays(), []
