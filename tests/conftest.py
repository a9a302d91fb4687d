import pathlib
import wave

import numpy as np
import pytest

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SPEECH_COMMANDS = SHARED_DATA / "speech_commands_v2_dev"
TFLM_TESTDATA = SHARED_DATA / "tflm_testdata"


def require(path: pathlib.Path) -> pathlib.Path:
    """Skip the calling test when shared data is absent (fresh clone without ../shared)."""
    if not path.exists():
        pytest.skip(f"{path} not found: shared data is absent on this machine")
    return path


def assert_is_plot(path: pathlib.Path, min_size=(200, 200)):
    """`path` is a PNG that decodes to a picture of at least `min_size` (w, h) with content on it
    (not one flat colour)."""
    import matplotlib.image  # pylint: disable=import-outside-toplevel
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pixels = matplotlib.image.imread(str(path))
    height, width = pixels.shape[:2]
    assert width >= min_size[0] and height >= min_size[1], f"{path}: {width}x{height}"
    rgb = pixels[..., :3].reshape(-1, 3)
    assert len({tuple(v) for v in rgb[:: max(1, len(rgb) // 20000)]}) > 3, f"{path} is blank"


def write_wav(path, samples, rate=16000):
    """16-bit PCM WAV of int16 samples [N] (mono) or [N, channels]."""
    samples = np.asarray(samples, np.int16)
    if samples.ndim == 1:
        samples = samples[:, np.newaxis]
    with wave.open(str(path), "wb") as f:
        f.setnchannels(samples.shape[1])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.astype("<i2").tobytes())


def long_signal(seconds=180, seed=0):
    """Speech (the fixture clips at random gains) over noise whose level jumps every few seconds
    (-60 to -10 dBFS), with stretches of digital silence: the noise estimate keeps moving."""
    from tflm_kws import audio  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(seed)
    clips = [audio.load_audio(REPO / "tests" / "fixtures" / "tflm_testdata" / f"{w}_1000ms.wav")
             for w in ("yes", "no")]
    parts, length = [], 0
    while length < seconds * 16000:
        n = int(rng.integers(1, 6)) * 16000
        if rng.random() < 0.15:
            part = np.zeros(n)
        else:
            part = rng.standard_normal(n) * 32768 * 10 ** (rng.uniform(-60, -10) / 20)
            clip = clips[int(rng.integers(2))] * rng.uniform(0.1, 2.0)
            at = int(rng.integers(0, n - 16000 + 1))
            part[at:at + 16000] += clip
        parts.append(part)
        length += n
    return np.clip(np.concatenate(parts), -32768, 32767).astype(np.int16)
