"""The TFLM microfrontend and micro_speech's int8 feature mapping: one config, identical on the device.

Features come from the TensorFlow Lite Micro microfrontend (`tensorflow/lite/experimental/
microfrontend/lib`), called through the op that ships in the TensorFlow wheel. The Arduino sketch runs
the same C library. `compute_features` is the reference: the device's feature provider must produce
the same int8 array for a clip of `clip_samples` samples fed contiguously into a freshly initialised
(or `FrontendReset`) frontend state. See docs/data.md, "Frontend contract".
"""
import dataclasses
import json
import os

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np
import tensorflow as tf
from tensorflow.lite.experimental.microfrontend.python.ops import audio_microfrontend_op

from tflm_kws import io_utils

# Model input = int8 feature * FEATURE_SCALE, so the int8 model input equals the int8 feature when
# the model's input quantization is (scale 1/128, zero point 0).
FEATURE_SCALE = 1.0 / 128.0

# micro_speech's mapping of the frontend's uint16 output (roughly 0..670) to int8:
# value = (x * 256 + value_div / 2) / value_div - 128, value_div = int(25.6 * 26.0 + 0.5) = 666.
INT8_VALUE_SCALE = 256
INT8_VALUE_DIV = 666


@dataclasses.dataclass(frozen=True)
class FrontendConfig:
    """All microfrontend parameters; defaults are TFLM micro_speech's."""
    sample_rate: int = 16000
    clip_duration_ms: int = 1000
    window_size_ms: int = 30
    window_stride_ms: int = 20
    num_channels: int = 40
    lower_band_limit: float = 125.0
    upper_band_limit: float = 7500.0
    smoothing_bits: int = 10
    even_smoothing: float = 0.025
    odd_smoothing: float = 0.06
    min_signal_remaining: float = 0.05
    enable_pcan: bool = True
    pcan_strength: float = 0.95
    pcan_offset: float = 80.0
    gain_bits: int = 21
    enable_log: bool = True
    scale_shift: int = 6

    def __post_init__(self):
        for name in ("sample_rate", "clip_duration_ms", "window_size_ms", "window_stride_ms",
                     "num_channels"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"FrontendConfig.{name} must be positive, got {getattr(self, name)!r}")
        if self.clip_samples < self.window_samples:
            raise ValueError(f"FrontendConfig: clip_duration_ms={self.clip_duration_ms} is shorter than "
                             f"window_size_ms={self.window_size_ms}")
        if not 0 < self.lower_band_limit < self.upper_band_limit <= self.sample_rate / 2:
            raise ValueError(f"FrontendConfig: need 0 < lower_band_limit ({self.lower_band_limit}) < "
                             f"upper_band_limit ({self.upper_band_limit}) <= sample_rate / 2")

    @property
    def clip_samples(self) -> int:
        return self.sample_rate * self.clip_duration_ms // 1000

    @property
    def window_samples(self) -> int:
        return self.sample_rate * self.window_size_ms // 1000

    @property
    def stride_samples(self) -> int:
        return self.sample_rate * self.window_stride_ms // 1000

    @property
    def num_frames(self) -> int:
        return 1 + (self.clip_samples - self.window_samples) // self.stride_samples

    @property
    def feature_shape(self) -> tuple:
        return (self.num_frames, self.num_channels)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FrontendConfig":
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"FrontendConfig: unknown key(s) {unknown}; valid keys: {sorted(fields)}")
        return cls(**{k: fields[k](v) for k, v in d.items()})


def _microfrontend(audio_int16: tf.Tensor, config: FrontendConfig) -> tf.Tensor:
    """uint16 [num_frames, num_channels] from int16 [clip_samples]; fresh frontend state per call."""
    return audio_microfrontend_op.audio_microfrontend(
            audio_int16,
            sample_rate=config.sample_rate,
            window_size=config.window_size_ms,
            window_step=config.window_stride_ms,
            num_channels=config.num_channels,
            upper_band_limit=config.upper_band_limit,
            lower_band_limit=config.lower_band_limit,
            smoothing_bits=config.smoothing_bits,
            even_smoothing=config.even_smoothing,
            odd_smoothing=config.odd_smoothing,
            min_signal_remaining=config.min_signal_remaining,
            enable_pcan=config.enable_pcan,
            pcan_strength=config.pcan_strength,
            pcan_offset=config.pcan_offset,
            gain_bits=config.gain_bits,
            enable_log=config.enable_log,
            scale_shift=config.scale_shift,
            out_scale=1,
            out_type=tf.uint16)


def frontend_output_to_int8(values):
    """micro_speech's integer mapping of uint16 frontend output to int8 (numpy or tf tensors)."""
    if isinstance(values, tf.Tensor):
        v = tf.cast(values, tf.int32)
        v = (v * INT8_VALUE_SCALE + INT8_VALUE_DIV // 2) // INT8_VALUE_DIV - 128
        return tf.cast(tf.clip_by_value(v, -128, 127), tf.int8)
    v = np.asarray(values).astype(np.int32)
    # Values are >= 0, so floor division equals C's truncating division.
    v = (v * INT8_VALUE_SCALE + INT8_VALUE_DIV // 2) // INT8_VALUE_DIV - 128
    return np.clip(v, -128, 127).astype(np.int8)


def _check_clip(audio_int16: np.ndarray, config: FrontendConfig) -> np.ndarray:
    audio = np.asarray(audio_int16)
    if audio.dtype != np.int16:
        raise TypeError(f"compute_features: audio must be int16, got {audio.dtype}")
    if audio.shape != (config.clip_samples,):
        raise ValueError(f"compute_features: audio must have shape ({config.clip_samples},) "
                         f"for a {config.clip_duration_ms} ms clip at {config.sample_rate} Hz, "
                         f"got {audio.shape}")
    return audio


def compute_features(audio_int16: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """int8 [num_frames, num_channels] features of one clip, as the device computes them."""
    return compute_stream_features(_check_clip(audio_int16, config), config)


def compute_stream_features(audio_int16: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """int8 [num_slices, num_channels] of audio of any length fed into one frontend state.

    This is what the device computes when it runs continuously: slice k covers samples
    [k * stride, k * stride + window); its noise-reduction and gain state carries over from every
    earlier slice (so it differs from `compute_features` of a window cut out of the stream).
    """
    audio = np.asarray(audio_int16)
    if audio.dtype != np.int16 or audio.ndim != 1:
        raise TypeError(f"compute_stream_features: audio must be 1-D int16, got {audio.dtype} "
                        f"{audio.shape}")
    if len(audio) < config.window_samples:
        return np.zeros((0, config.num_channels), np.int8)
    return frontend_output_to_int8(_microfrontend(tf.constant(audio), config).numpy())


# Audio re-run before each block of a FeatureStream so that the noise-reduction estimate (an
# exponential average in integers, started afresh by each op call) reaches the value it has in the
# continuous stream. Measured on 11 minutes of Speech Commands speech, background noise and
# silence in 3-60 s blocks: 10 s left up to 3 slices different, 15 s none; 30 s for margin.
STREAM_WARMUP_SECONDS = 30


class FeatureStream:
    """The frontend over audio that arrives in blocks, e.g. an hours-long recording read a minute
    at a time: `push(block)` returns the int8 slices that the block completes, and the slices of
    all blocks equal `compute_stream_features` of the whole audio (tested), without holding it.

    The TF op keeps no state between calls, so each block is computed together with the
    STREAM_WARMUP_SECONDS of audio before it, whose slices (already returned) are dropped."""

    def __init__(self, config: FrontendConfig, warmup_seconds: float = STREAM_WARMUP_SECONDS):
        self.config = config
        stride = config.stride_samples
        self._warmup = -(-int(warmup_seconds * config.sample_rate) // stride) * stride
        self._audio = np.zeros(0, np.int16)  # the stream from sample self._start on
        self._start = 0   # a multiple of the stride: the slice it starts is slice _start/stride
        self._emitted = 0  # slices returned so far

    def push(self, audio_int16: np.ndarray) -> np.ndarray:
        block = np.asarray(audio_int16)
        if block.dtype != np.int16 or block.ndim != 1:
            raise TypeError(f"FeatureStream.push: audio must be 1-D int16, got {block.dtype} "
                            f"{block.shape}")
        config, stride = self.config, self.config.stride_samples
        self._audio = np.concatenate([self._audio, block])
        end = self._start + len(self._audio)
        complete = 0 if end < config.window_samples else \
            1 + (end - config.window_samples) // stride
        if complete <= self._emitted:
            return np.zeros((0, config.num_channels), np.int8)
        features = compute_stream_features(self._audio, config)
        new = features[self._emitted - self._start // stride:]
        self._emitted = complete
        # Keep what the next block's first new slice needs (its window) plus the warm-up.
        keep_from = max(0, self._emitted * stride - self._warmup)
        self._audio = self._audio[keep_from - self._start:]
        self._start = keep_from
        return new


def features_graph(audio_int16: tf.Tensor, config: FrontendConfig) -> tf.Tensor:
    """TF-graph form of `compute_features` for one int16 [clip_samples] tensor (for tf.data)."""
    features = frontend_output_to_int8(_microfrontend(audio_int16, config))
    return tf.ensure_shape(features, config.feature_shape)


def compute_features_batch(audio_int16: np.ndarray, config: FrontendConfig,
                           batch_size: int = 256) -> np.ndarray:
    """int8 [N, num_frames, num_channels] for int16 [N, clip_samples]: a fresh frontend per clip.

    Runs the op inside a traced tf.function over batches (much faster than N eager calls).
    """
    audio = np.asarray(audio_int16)
    if audio.ndim != 2 or audio.shape[1] != config.clip_samples or audio.dtype != np.int16:
        raise ValueError(f"compute_features_batch: need int16 [N, {config.clip_samples}], "
                         f"got {audio.dtype} {audio.shape}")
    out = np.empty((audio.shape[0],) + config.feature_shape, np.int8)
    if audio.shape[0] == 0:
        return out
    fn = _batch_fn(config)
    for start in range(0, audio.shape[0], batch_size):
        out[start:start + batch_size] = fn(tf.constant(audio[start:start + batch_size])).numpy()
    return out


_BATCH_FNS = {}


def _batch_fn(config: FrontendConfig):
    if config not in _BATCH_FNS:
        @tf.function(input_signature=[tf.TensorSpec([None, config.clip_samples], tf.int16)])
        def fn(batch):
            return tf.map_fn(lambda clip: features_graph(clip, config), batch,
                             fn_output_signature=tf.TensorSpec(config.feature_shape, tf.int8),
                             parallel_iterations=4)
        _BATCH_FNS[config] = fn
    return _BATCH_FNS[config]


def features_to_model_input(int8_features) -> np.ndarray:
    """float32 [..., num_frames, num_channels, 1] model input from int8 features."""
    x = np.asarray(int8_features)
    if x.dtype != np.int8:
        raise TypeError(f"features_to_model_input: expected int8 features, got {x.dtype}")
    return (x.astype(np.float32) * np.float32(FEATURE_SCALE))[..., np.newaxis]


def save_features_json(path, config: FrontendConfig, labels, data_spec: dict) -> None:
    """Writes features.json (frontend config, label list, how the data was made) atomically."""
    labels = [str(label) for label in labels]
    if not labels:
        raise ValueError(f"save_features_json({path}): empty label list")
    io_utils.atomic_write_json(path, {"frontend": config.to_dict(), "labels": labels,
                                      "data": dict(data_spec or {})})


def load_features_json(path):
    """Returns (FrontendConfig, labels, data_spec dict) from features.json."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"features.json not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in ("frontend", "labels") if k not in obj]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    labels = obj["labels"]
    if not isinstance(labels, list) or not labels:
        raise ValueError(f"{path}: 'labels' must be a non-empty list")
    return FrontendConfig.from_dict(obj["frontend"]), [str(x) for x in labels], obj.get("data", {})
