"""`load()`: clips -> int8 features (clean + audio-augmented variants) in an on-disk store ->
tf.data pipelines.

Decoding, audio-domain augmentation (time shift, background noise at a random SNR) and the frontend
run once; the results go to a feature store (tflm_kws.data.store: memory-mapped arrays) under a key
made of the frontend config, the DataSpec and the file list (paths, sizes, modification times), so
a change to any of them builds a new store. The build runs in shards of SHARD_CLIPS clips, in
parallel processes for large sets, each shard committed on its own, so a killed build resumes.
Each epoch then picks one stored variant per training clip at random and applies SpecAugment on
the fly; batches are gathered from the memory maps, never held as one graph constant.
"""
import concurrent.futures
import hashlib
import json
import logging
import math
import multiprocessing
import os
import sys
import time

import numpy as np
import tensorflow as tf

from tflm_kws import audio, frontend
from tflm_kws.data import espeak, noise, sources, store, synthetic
from tflm_kws.data.spec import DataSpec, SILENCE_LABEL

CACHE_VERSION = 2  # 2: the sharded, memory-mapped store; a clip's random stream is its job index
SHARD_CLIPS = 2000  # clips per shard of the build (one unit of resumption and of parallel work)
MIXUP_STREAM = 0x6D6978  # "mix": the mixup random stream of a dataset seed
MASK_STREAM = 0x6D736B  # "msk": SpecAugment's stream of each example's random number
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
        n = x.shape[0]
        if not training:
            ds = tf.data.Dataset.range(n).batch(batch_size)
            ds = ds.map(_gather_batch(x, y), num_parallel_calls=tf.data.AUTOTUNE)
            return ds.map(_to_model_input_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
        variants = self._arrays.get(f"{split}_aug")  # [V, N, frames, channels], memory-mapped
        gather = _gather_batch(x, y, variants)
        spec = self.spec

        def pick_and_mask(index, random):
            features, labels = gather(index, random)
            model_input = tf.cast(features, tf.float32) * frontend.FEATURE_SCALE
            # Each example's masks come from its own random number (the one that picked its
            # variant, on another stream): stateless, so parallel calls cannot reorder them.
            seeds = tf.stack([random, tf.fill(tf.shape(random), tf.constant(MASK_STREAM,
                                                                             tf.int64))], axis=1)
            model_input = tf.map_fn(lambda example: spec_augment(example[0], spec, example[1]),
                                    (model_input, seeds), fn_output_signature=tf.float32)
            return model_input[..., tf.newaxis], labels

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


def _gather_batch(x, y, variants=None):
    """A tf.data map function: (int64 [B] indices[, int64 [B] randoms]) -> (int8 [B, frames,
    channels], int32 [B]) read from the (memory-mapped) arrays, each example the clean features
    or, with `variants` [V, N, ...], variant `random mod (V + 1)` (0: clean)."""
    num_variants = 1 + (0 if variants is None else variants.shape[0])

    def read(indices, randoms=None):
        features = np.asarray(x[indices])
        if randoms is not None and num_variants > 1:
            choice = np.mod(randoms, num_variants)
            for v in range(1, num_variants):
                picked = choice == v
                if picked.any():
                    features[picked] = variants[v - 1][indices[picked]]
        return features, np.asarray(y[indices], np.int32)

    def fn(indices, randoms=None):
        args = [indices] if randoms is None else [indices, randoms]
        features, labels = tf.numpy_function(read, args, (tf.int8, tf.int32), stateful=False)
        features.set_shape((None,) + tuple(x.shape[1:]))
        labels.set_shape((None,))
        return features, labels
    return fn


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


def spec_augment(features, spec, seed):
    """SpecAugment on one [frames, channels] model input: `spec.time_masks` masks of 0 to
    `time_mask_max_frames` frames, then `freq_masks` of 0 to `freq_mask_max_channels` channels,
    each at a uniform start (tensorflow-io's time_mask / freq_mask draws). Masked cells read as
    silence (int8 -128, model input -1.0), not as a mid-level value.

    seed: int64 [2]. Stateless draws (tfio's are stateful): the same seed gives the same masks,
    so a seeded training run sees the same masks whatever order tf.data runs its calls in.
    """
    masks = [(0, spec.time_mask_max_frames)] * spec.time_masks + [
        (1, spec.freq_mask_max_channels)] * spec.freq_masks
    if not masks:
        return features
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2 * len(masks))
    shape = tf.shape(features)
    for i, (axis, max_width) in enumerate(masks):
        width = tf.random.stateless_uniform((), seeds[2 * i], 0, max_width + 1, tf.int32)
        start = tf.random.stateless_uniform((), seeds[2 * i + 1], 0, shape[axis] - width,
                                            tf.int32)
        position = tf.range(shape[axis])
        inside = (position >= start) & (position < start + width)
        inside = inside[:, tf.newaxis] if axis == 0 else inside[tf.newaxis, :]
        features = tf.where(inside, tf.constant(-1.0, features.dtype), features)
    return features


def load(spec: DataSpec, config: frontend.FrontendConfig, cache_dir, workers=None) -> KwsData:
    """Features of `spec` under `config`, from the store in `cache_dir`, built first if needed.

    workers: processes for building a large store (default: one per core when there are several
    shards of work; small sets build in this process)."""
    if spec.data_dir is None:
        listing = _synthetic_listing(spec)
        source_key = {"synthetic": synthetic.GENERATOR_VERSION, "espeak": espeak.data_version()}
        if spec.tts != "espeak":
            source_key["tts"] = synthetic.tts_version(spec.tts)
        if listing.other_speech is not None or listing.positives:
            source_key["real"] = [_stat(p) for p in listing.real_files()]
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
    store_dir = os.path.join(os.fspath(cache_dir), f"{store.PREFIX}{key}")
    built = False
    if not store.is_complete(store_dir):
        if isinstance(listing, _SyntheticListing):
            _build_synthetic(spec, config, listing, store_dir)
        else:
            _build_from_files(spec, config, listing, store_dir, workers)
        built = True
    labels, arrays, skipped = store.open_store(store_dir)
    if skipped and not built:
        logger.warning("%d clip(s) of %s could not be used and are left out (cached result; "
                       "first: %s)", len(skipped), spec.data_dir, skipped[0][0])
    return KwsData(spec, config, labels, arrays, store_dir, skipped)


def _stat(path, root=None):
    """[path (relative to root, else absolute), size, mtime] for a cache key."""
    st = os.stat(path)
    return [os.path.relpath(path, root) if root else os.path.abspath(path), st.st_size,
            st.st_mtime_ns]


class _SyntheticListing:
    """The real files a synthetic wake-word set adds: other speech (spec.negatives_dir) and the
    few-shot recordings (spec.real_positives of spec.positives_dir)."""

    def __init__(self, other_speech, positives):
        self.other_speech = other_speech
        self.positives = positives

    def real_files(self):
        files = list(self.positives)
        if self.other_speech is not None:
            files += [it.path for it in self.other_speech.items] + self.other_speech.noise_files
        return files


def _synthetic_listing(spec):
    other_speech, positives = None, []
    if spec.negatives_dir:
        engine = espeak.Espeak()
        wake = engine.phonemes(spec.wake_word)
        other_speech = sources.list_other_speech(spec.negatives_dir, spec,
                                                 lambda word: engine.phonemes(word) == wake)
    if spec.real_positives:
        found = sources.list_recordings(spec.positives_dir)
        if len(found) < spec.real_positives:
            raise ValueError(f"real_positives={spec.real_positives} but positives_dir "
                             f"{spec.positives_dir!r} holds {len(found)} audio file(s)")
        order = np.random.default_rng([spec.seed, 13]).permutation(len(found))
        positives = [found[i] for i in sorted(order[:spec.real_positives])]
    return _SyntheticListing(other_speech, positives)


def _file_list_key(data_dir, listing):
    def stat(path):
        return _stat(path, data_dir)
    extra = [os.path.join(data_dir, n) for n in ("validation_list.txt", "testing_list.txt")]
    return {"layout": listing.layout, "labels": listing.labels,
            "items": [stat(it.path) + [it.label, it.split] for it in listing.items],
            "noise": [stat(p) for p in listing.noise_files],
            "lists": [stat(p) for p in extra if os.path.isfile(p)]}


def clip_features(clip, split, index, is_silence, spec, config, noises):
    """(clean int8 features, int8 [V, ...] augmented variants or None) of one clip of any length
    (cropped centred for the clean copy, randomly for the variants). The variants' random stream
    is (spec.seed, job index, variant): the same clip gets the same variants in any process."""
    clean = frontend.compute_features(audio.fit_to_length(clip, config.clip_samples), config)
    if split != "training" or not spec.augment_variants:
        return clean, None
    variants = []
    for v in range(spec.augment_variants):
        rng = np.random.default_rng([spec.seed, 1, index, v])
        if is_silence:
            x, _ = synthetic.silence_clip(rng, noises, config.clip_samples,
                                          spec.silence_transients, config.sample_rate)
        else:
            x = audio.fit_to_length(clip, config.clip_samples, rng).astype(np.float64) / 32768.0
            max_shift = int(spec.time_shift_ms * config.sample_rate / 1000)
            x = noise.time_shift(x, int(rng.integers(-max_shift, max_shift + 1)))
            if rng.random() < spec.background_frequency:
                name = sorted(noises)[int(rng.integers(len(noises)))]
                segment = noise.noise_segment(rng, noises[name], config.clip_samples)
                x = noise.mix_at_snr(x, segment, rng.uniform(spec.snr_db_min, spec.snr_db_max))
        variants.append(frontend.compute_features(synthetic.to_int16(x), config))
    return clean, np.stack(variants)


def _load_noises(noise_files, spec, config):
    """({name: float32 noise}, [(path, reason)] of noise files that could not be decoded)."""
    noises, skipped = {}, []
    for path in noise_files:
        try:
            noises[os.path.basename(path)] = (audio.load_audio(path, config.sample_rate)
                                              .astype(np.float32) / 32768.0)
        except audio.AudioDecodeError as e:
            skipped.append((e.path, e.reason))
    if not noises:
        # No _background_noise_ folder (a user's own tree): synthesize noise instead.
        noises = noise.synthetic_noises(spec.seed, config.sample_rate)
    return noises, skipped


def _job_rows(jobs, start, spec, config, noises):
    """Store rows and skipped files of build jobs[start:start + len(jobs)] (see _file_jobs)."""
    rows, skipped = [], []
    for offset, job in enumerate(jobs):
        index = start + offset
        if job[0] in ("file", "phrase"):
            _, path, label, split, expect_speech, is_silence = job
            try:
                clip = audio.load_audio(path, config.sample_rate, expect_speech=expect_speech)
            except audio.AudioDecodeError as e:
                skipped.append((e.path, e.reason))
                continue
            if job[0] == "phrase":  # a recording of the phrase with silence around it
                clip = audio.loudest_window(clip, config.clip_samples)
            origin = path
        else:  # ("silence", split, k, label): background noise alone
            _, split, k, label = job
            rng = np.random.default_rng([spec.seed, 2, SPLITS.index(split), k])
            noise_clip, description = synthetic.silence_clip(rng, noises, config.clip_samples,
                                                             spec.silence_transients,
                                                             config.sample_rate)
            clip, is_silence = synthetic.to_int16(noise_clip), True
            origin = "silence: " + description
        x, aug = clip_features(clip, split, index, is_silence, spec, config, noises)
        rows.append((split, x, label, origin, aug))
    return rows, skipped


def _file_jobs(listing):
    """The build jobs of a file listing, in store order: its files, then _silence_ clips."""
    silence = listing.labels.index(SILENCE_LABEL)
    jobs = [("file", item.path, item.label, item.split, item.expect_speech,
             item.label == silence) for item in listing.items]
    jobs += [("silence", split, k, silence) for split in SPLITS
             for k in range(listing.silence_per_split[split])]
    return jobs


_WORKER = {}


def _init_worker(spec_dict, config_dict, noise_files):
    spec = DataSpec.from_dict(spec_dict)
    config = frontend.FrontendConfig.from_dict(config_dict)
    _WORKER.update(spec=spec, config=config, noises=_load_noises(noise_files, spec, config)[0])


def _build_shard(store_dir, start, jobs, spec, config, noises):
    """Computes build jobs[start:start + len(jobs)] and commits them as one shard."""
    rows, skipped = _job_rows(jobs, start, spec, config, noises)
    store.write_shard(store.shard_path(store_dir, start, start + len(jobs)), rows, skipped,
                      config.feature_shape)
    return len(jobs)


def _build_shard_in_worker(store_dir, start, jobs):
    return _build_shard(store_dir, start, jobs, _WORKER["spec"], _WORKER["config"],
                        _WORKER["noises"])


class _Progress:
    """One line per finished shard on stderr, when the build has several."""

    def __init__(self, total_shards, total_clips):
        self.total_shards, self.total_clips = total_shards, total_clips
        self.done_shards, self.done_clips, self.start = 0, 0, time.perf_counter()

    def shard_done(self, clips):
        self.done_shards += 1
        self.done_clips += clips
        if self.total_shards > 1:
            rate = self.done_clips / max(time.perf_counter() - self.start, 1e-9)
            print(f"[features] shard {self.done_shards}/{self.total_shards}: {self.done_clips} of "
                  f"{self.total_clips} clips, {rate:.0f} clips/s", file=sys.stderr, flush=True)


def _build_from_files(spec, config, listing, store_dir, workers):
    noises, noise_skipped = _load_noises(listing.noise_files, spec, config)
    jobs = _file_jobs(listing)
    ranges = [(a, min(a + SHARD_CLIPS, len(jobs))) for a in range(0, len(jobs), SHARD_CLIPS)]
    todo = [r for r in ranges if not os.path.exists(store.shard_path(store_dir, *r))]
    progress = _Progress(len(todo), sum(b - a for a, b in todo))
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers > 1:
        # Fresh interpreters (spawn): TensorFlow's state does not survive a fork.
        with concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(spec.to_dict(), config.to_dict(), listing.noise_files)) as pool:
            futures = [pool.submit(_build_shard_in_worker, store_dir, a, jobs[a:b])
                       for a, b in todo]
            for future in concurrent.futures.as_completed(futures):
                progress.shard_done(future.result())
    else:
        for a, b in todo:
            progress.shard_done(_build_shard(store_dir, a, jobs[a:b], spec, config, noises))
    shard_paths = [store.shard_path(store_dir, *r) for r in ranges]
    if spec.synthetic_fraction > 0.0:
        shard_paths.append(_add_synthetic_speech(spec, config, listing, store_dir, shard_paths,
                                                 len(jobs), noises))
    skipped = list(noise_skipped)
    labels_by_split = {split: [] for split in SPLITS}
    for path in shard_paths:
        shard_labels, shard_skipped = store.read_shard_summary(path)
        skipped += shard_skipped
        for split in SPLITS:
            labels_by_split[split].append(shard_labels[split])
    for path, reason in skipped[:MAX_SKIP_WARNINGS]:
        logger.warning("skipping %s: %s", path, reason)
    if skipped:
        logger.warning("skipped %d of %d clips that could not be used (the first %d are listed "
                       "above)", len(skipped), len(listing.items) + len(listing.noise_files),
                       min(len(skipped), MAX_SKIP_WARNINGS))
    all_labels = np.concatenate([y for ys in labels_by_split.values() for y in ys])
    for index, label in enumerate(listing.labels):
        if label in listing.labels[2:] and not np.any(all_labels == index):
            raise ValueError(f"wanted word {label!r} has no usable clips in "
                             f"{os.path.join(spec.data_dir, label)} (all were skipped)")
    if listing.layout != "test_set" and not sum(len(y) for y in labels_by_split["training"]):
        raise ValueError(f"the training split of {spec.data_dir} is empty")
    store.finalize(store_dir, shard_paths, listing.labels, config.feature_shape,
                   spec.augment_variants, extra_skipped=noise_skipped)


def _add_synthetic_speech(spec, config, listing, store_dir, shard_paths, first_index, noises):
    """A shard of espeak-ng speech for the training split: per speech class, synthetic_fraction
    times the class's usable real training clips (rounded half up). Returns its path."""
    real = np.concatenate([store.read_shard_summary(p)[0]["training"] for p in shard_paths])
    silence = listing.labels.index(SILENCE_LABEL)
    counts = {label: int(math.floor(spec.synthetic_fraction * np.sum(real == label) + 0.5))
              for label in range(len(listing.labels)) if label != silence}
    rows = []
    for offset, (clip, label, description) in enumerate(synthetic.speech_for_labels(
            spec.seed, counts, listing.labels, listing.unknown_words, noises, config)):
        x, aug = clip_features(clip, "training", first_index + offset, False, spec, config, noises)
        rows.append(("training", x, label, "synthetic: " + description, aug))
    path = store.shard_path(store_dir, first_index, first_index + len(rows))
    store.write_shard(path, rows, [], config.feature_shape)
    return path


# A few-shot recording is repeated (each copy with its own augmented variants) to make up this
# fraction of the synthetic positives, so 5 recordings weigh about as much as 25.
FEW_SHOT_SHARE = 0.1


def _build_synthetic(spec, config, listing, store_dir):
    noises, noise_skipped = None, []
    if listing.other_speech is not None and listing.other_speech.noise_files:
        noises, noise_skipped = _load_noises(listing.other_speech.noise_files, spec, config)
    generated = synthetic.generate(spec, config, noises)
    rows = []
    for index, (clip, label, split, description) in enumerate(zip(
            generated.audio, generated.labels, generated.splits, generated.descriptions)):
        x, aug = clip_features(clip, split, index, label == 0, spec, config, generated.noises)
        rows.append((split, x, int(label), "synthetic: " + description, aug))
    jobs = []
    if listing.other_speech is not None:
        jobs += [("file", it.path, it.label, it.split, True, False)
                 for it in listing.other_speech.items]
    if listing.positives:
        repeats = max(1, round(FEW_SHOT_SHARE * spec.synthetic_positives / len(listing.positives)))
        jobs += [("phrase", path, len(generated.label_names) - 1, "training", True, False)
                 for path in listing.positives for _ in range(repeats)]
    real_rows, real_skipped = _job_rows(jobs, len(rows), spec, config, generated.noises)
    for path, reason in (noise_skipped + real_skipped)[:MAX_SKIP_WARNINGS]:
        logger.warning("skipping %s: %s", path, reason)
    path = store.shard_path(store_dir, 0, len(rows) + len(jobs))
    store.write_shard(path, rows + real_rows, real_skipped, config.feature_shape)
    store.finalize(store_dir, [path], generated.label_names, config.feature_shape,
                   spec.augment_variants, extra_skipped=noise_skipped)
