"""Audio file decoding: WAV, FLAC, MP3 or OGG at any rate and channel count -> int16 mono.

Decoding goes through tensorflow-io, which sniffs the container from the file's content. 16-bit
files at the target rate come back bit-exact (no float round trip), so a WAV and a FLAC of the same
clip give identical samples and identical features.
"""
import functools
import os

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import numpy as np
import tensorflow as tf
import tensorflow_io as tfio
from tensorflow_io.python.ops import core_ops

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")

# A clip whose peak stays below this (int16 units, about -66 dBFS) holds no audible speech.
SILENCE_PEAK = 16


class AudioDecodeError(Exception):
    """An audio file that cannot be used; `path` and `reason` say which and why."""

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def is_audio_file(path) -> bool:
    return os.fspath(path).lower().endswith(AUDIO_EXTENSIONS)


def audio_files_under(directory) -> list:
    """The audio files of `directory` and its subfolders, sorted."""
    return sorted(os.path.join(root, name) for root, _, names in os.walk(directory)
                  for name in names if is_audio_file(name))


def _op_message(error: tf.errors.OpError) -> str:
    """The useful part of a tensorflow-io error (drops the '{{function_node ...}}' prefix)."""
    message = error.message.split("}}")[-1].split("[Op:")[0].strip()
    return message or type(error).__name__


def _to_float(samples: np.ndarray) -> np.ndarray:
    """float64 in [-1, 1) from whatever sample type the decoder produced."""
    if samples.dtype == np.int16:
        return samples.astype(np.float64) / 32768.0
    if samples.dtype == np.int32:
        return samples.astype(np.float64) / 2147483648.0
    if samples.dtype == np.uint8:
        return (samples.astype(np.float64) - 128.0) / 128.0
    return samples.astype(np.float64)


def _to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def _resample_raw(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    # The op behind tfio.audio.resample, called directly: the public wrapper traces a
    # tf.vectorized_map on every call (~30 ms per clip).
    return core_ops.io_audio_resample(tf.constant(samples[:, np.newaxis], tf.float32),
                                      rate_in=rate_in, rate_out=rate_out).numpy()[:, 0]


@functools.lru_cache(maxsize=None)
def _resampler_delay(rate_in: int, rate_out: int) -> int:
    """Output samples by which tfio.audio.resample delays its input (its filter's group delay)."""
    position = rate_in // 25  # 40 ms in: well past the filter's reach
    impulse = np.zeros(2 * position, np.float32)
    impulse[position] = 1.0
    response = _resample_raw(impulse, rate_in, rate_out)
    return max(0, int(np.argmax(np.abs(response))) - round(position * rate_out / rate_in))


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """float mono resampled with tensorflow-io, its filter delay removed so words stay in place."""
    samples = np.asarray(samples, np.float32)
    if rate_in == rate_out:
        return samples
    # Zero-pad to whole seconds: tfio's op is retraced for every new input shape (~20 ms each).
    padded = np.zeros(-(-samples.shape[0] // rate_in) * rate_in, np.float32)
    padded[:samples.shape[0]] = samples
    out = _resample_raw(padded, rate_in, rate_out)
    # tfio.audio.resample shifts the signal later by its filter delay (measured: 32 samples for
    # 44.1 kHz -> 16 kHz); uncorrected, a resampled clip's features no longer line up with the
    # original's.
    delay = _resampler_delay(rate_in, rate_out)
    out = np.concatenate([out[delay:], np.zeros(delay, np.float32)])
    return out[:round(samples.shape[0] * rate_out / rate_in)]


def _open(path):
    """(tensorflow-io's lazy reader, its sample rate, its length in samples) of an audio file, or
    AudioDecodeError."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioDecodeError(path, "file not found")
    if os.path.getsize(path) == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)")
    try:
        io_tensor = tfio.audio.AudioIOTensor(path)
        rate = int(io_tensor.rate.numpy())
        shape = io_tensor.shape.numpy()
    except tf.errors.OpError as e:
        raise AudioDecodeError(path, f"cannot decode (corrupt, truncated or not audio): "
                               f"{_op_message(e)}") from None
    if len(shape) != 2 or shape[0] == 0:
        raise AudioDecodeError(path, "decodes to no samples")
    if rate <= 0:
        raise AudioDecodeError(path, f"invalid sample rate {rate}")
    return io_tensor, rate, int(shape[0])


def _read(path, io_tensor, start=None, stop=None) -> np.ndarray:
    """Samples [start:stop] (all by default) of an open file, checked."""
    try:
        samples = (io_tensor.to_tensor() if start is None else io_tensor[start:stop]).numpy()
    except tf.errors.OpError as e:
        raise AudioDecodeError(path, f"cannot decode (corrupt, truncated or not audio): "
                               f"{_op_message(e)}") from None
    if samples.dtype.kind == "f" and not np.all(np.isfinite(samples)):
        raise AudioDecodeError(path, "decodes to NaN or infinite samples")
    return samples


def _as_int16(mono: np.ndarray) -> np.ndarray:
    """int16 samples of `_mono`'s output (its exact int16 passes through unchanged)."""
    return mono if mono.dtype == np.int16 else _to_int16(mono)


def _mono(samples: np.ndarray, exact: bool) -> np.ndarray:
    """int16 mono of int16 samples when `exact` (bit-exact), else float64 mono in [-1, 1)."""
    if exact and samples.dtype == np.int16:
        # Exact path: mono stays bit-exact, channels are averaged in integers.
        if samples.shape[1] == 1:
            return samples[:, 0].copy()
        return np.round(samples.astype(np.float64).mean(axis=1)).astype(np.int16)
    return _to_float(samples).mean(axis=1)


def load_audio(path, sample_rate=16000, expect_speech=False) -> np.ndarray:
    """int16 mono samples of an audio file, resampled to `sample_rate`.

    Raises AudioDecodeError for a missing, empty, corrupt or truncated file, one that decodes to NaN
    or infinity, and (with expect_speech=True) one that is silent throughout.
    """
    io_tensor, rate, _ = _open(path)
    mono = _mono(_read(path, io_tensor), exact=rate == sample_rate)
    if rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
    audio = _as_int16(mono)
    if audio.size == 0:
        raise AudioDecodeError(path, f"too short to resample to {sample_rate} Hz")
    if expect_speech and int(np.max(np.abs(audio.astype(np.int32)))) < SILENCE_PEAK:
        raise AudioDecodeError(path, f"silent throughout (peak below {SILENCE_PEAK}/32768) where speech "
                               f"is expected")
    return audio


def audio_blocks(path, sample_rate=16000, block_seconds=60):
    """int16 mono blocks of an audio file in order, at `sample_rate`, decoded `block_seconds` at a
    time, so that an hours-long recording is never held whole. Their concatenation is
    `load_audio`'s samples: exactly at the file's own rate, within 1 LSB when resampled (each
    block is resampled with 1 s of the file either side, then trimmed; tested).

    Raises AudioDecodeError as load_audio does (a block that fails mid-file, once blocks before it
    have been returned)."""
    io_tensor, rate, total = _open(path)
    block = max(1, int(block_seconds)) * rate  # whole seconds: block edges map to whole samples
    context = rate if rate != sample_rate else 0
    for start in range(0, total, block):
        stop = min(start + block, total)
        first = max(0, start - context)
        mono = _mono(_read(path, io_tensor, first, min(total, stop + context)),
                     exact=rate == sample_rate)
        if rate == sample_rate:
            out = _as_int16(mono)
        else:
            resampled = resample(mono, rate, sample_rate)
            skip = (start - first) * sample_rate // rate
            keep = round(stop * sample_rate / rate) - start * sample_rate // rate
            out = _to_int16(resampled[skip:skip + keep])
        if out.size:
            yield out


def fit_to_length(audio: np.ndarray, length: int, rng=None) -> np.ndarray:
    """Crops a longer clip (random offset with `rng`, centred without) or zero-pads a shorter one."""
    n = audio.shape[0]
    if n > length:
        start = int(rng.integers(0, n - length + 1)) if rng is not None else (n - length) // 2
        return audio[start:start + length]
    if n < length:
        # Centre a short clip so a word near either end is not pushed off by the time-shift augmentation.
        before = (length - n) // 2
        return np.pad(audio, (before, length - n - before))
    return audio


def loudest_window(audio: np.ndarray, length: int) -> np.ndarray:
    """The `length` samples of `audio` with the most energy (a recording longer than a clip, with
    silence around the phrase); a shorter one as is."""
    if audio.shape[0] <= length:
        return audio
    energy = np.concatenate([[0.0], np.cumsum(np.square(audio.astype(np.float64)))])
    start = int(np.argmax(energy[length:] - energy[:-length]))
    return audio[start:start + length]
