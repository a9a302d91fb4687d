"""Audio-domain augmentation: background noise at a random SNR, time shift, synthetic room reverb."""
import numpy as np


def colored_noise(rng: np.random.Generator, num_samples: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    freqs = np.fft.rfftfreq(num_samples)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-exponent / 2.0)
    noise = np.fft.irfft(spectrum, num_samples)
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def synthetic_noises(seed: int, sample_rate: int, seconds: float = 10.0) -> dict:
    """Background noises made from scratch when the data has no `_background_noise_` folder.

    White, pink and brown noise, mains hum with harmonics under pink noise, and pink noise with a
    slow loudness wobble (fan / traffic like). float32, peak about 0.3 of full scale.
    """
    rng = np.random.default_rng([seed, 7919])
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    noises = {
        "white": colored_noise(rng, n, 0.0),
        "pink": colored_noise(rng, n, 1.0),
        "brown": colored_noise(rng, n, 2.0),
        "hum": (sum(np.sin(2 * np.pi * 50.0 * k * t + rng.uniform(0, 2 * np.pi)) / k
                    for k in (1, 2, 3, 5)) + 0.3 * colored_noise(rng, n, 1.0)),
        "wobble": colored_noise(rng, n, 1.0) * (1.0 + 0.6 * np.sin(2 * np.pi * 0.4 * t)),
    }
    return {name: (0.3 * x / np.max(np.abs(x))).astype(np.float32) for name, x in noises.items()}


def noise_segment(rng: np.random.Generator, noise: np.ndarray, num_samples: int) -> np.ndarray:
    if noise.shape[0] <= num_samples:
        return np.resize(noise, num_samples)
    start = int(rng.integers(0, noise.shape[0] - num_samples + 1))
    return noise[start:start + num_samples]


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise scaled so that 20 log10(rms(speech) / rms(noise)) == snr_db (float arrays)."""
    speech_rms, noise_rms = rms(speech), rms(noise)
    if speech_rms == 0.0 or noise_rms == 0.0:
        return speech.copy()
    return speech + noise * (speech_rms / noise_rms) * 10.0 ** (-snr_db / 20.0)


def time_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """Shifts later (shift > 0) or earlier (< 0), filling with zeros; same length."""
    if shift == 0:
        return x.copy()
    out = np.zeros_like(x)
    if shift > 0:
        out[shift:] = x[:-shift]
    else:
        out[:shift] = x[-shift:]
    return out


def room_impulse_response(rng: np.random.Generator, sample_rate: int, rt60_s: float) -> np.ndarray:
    """A simple synthetic room: direct sound, then exponentially decaying noise (late reverb)
    whose level falls by 60 dB in rt60_s, starting after a short pre-delay."""
    length = int(rt60_s * sample_rate)
    predelay = int(rng.uniform(0.002, 0.01) * sample_rate)
    t = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * 10.0 ** (-3.0 * t / rt60_s)
    tail[:predelay] = 0.0
    rir = tail * rng.uniform(0.2, 0.6) / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    rir[0] = 1.0
    return rir


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """x convolved with rir (FFT), same length as x, same peak level as x."""
    n = x.shape[0] + rir.shape[0] - 1
    size = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(rir, size), size)[:x.shape[0]]
    peak_in, peak_out = np.max(np.abs(x)), np.max(np.abs(y))
    return y * (peak_in / peak_out) if peak_out > 0 else y


HIGHPASS_HZ_RANGE = (50.0, 400.0)
LOWPASS_HZ_RANGE = (3000.0, 7500.0)
TILT_DB_PER_OCTAVE_RANGE = (-3.0, 3.0)


def microphone_channel(rng: np.random.Generator, x: np.ndarray, sample_rate: int):
    """`x` through a random microphone / amplifier response: second-order high- and low-pass
    magnitudes at random corners and a spectral tilt around 1 kHz (zero phase, by FFT). Returns
    (filtered float array, description)."""
    high = rng.uniform(*HIGHPASS_HZ_RANGE)
    low = rng.uniform(*LOWPASS_HZ_RANGE)
    tilt = rng.uniform(*TILT_DB_PER_OCTAVE_RANGE)
    n = x.shape[0]
    f = np.maximum(np.fft.rfftfreq(n, 1.0 / sample_rate), 1.0)
    gain = (1.0 / np.sqrt(1.0 + (high / f) ** 4)) * (1.0 / np.sqrt(1.0 + (f / low) ** 4))
    gain *= 10.0 ** (tilt * np.log2(f / 1000.0) / 20.0)
    y = np.fft.irfft(np.fft.rfft(x) * gain, n)
    peak = np.max(np.abs(y))
    if peak > 0:
        y *= np.max(np.abs(x)) / peak  # the level is the gain stage's, drawn before
    return y, f"channel hp={high:.0f} lp={low:.0f} tilt={tilt:+.1f}dB/oct"


def vocal_tract_warp(x: np.ndarray, factor: float) -> np.ndarray:
    """`x` played back `factor` times faster (n samples become n / factor): formants, pitch and
    tempo all move by `factor`, as a shorter (> 1) or longer vocal tract and a faster speaker do.
    Linear interpolation: enough for factors near 1."""
    n_out = max(1, int(round(x.shape[0] / factor)))
    return np.interp(np.arange(n_out) * factor, np.arange(x.shape[0]), x)


TRANSIENT_MS_RANGE = (5.0, 80.0)
TRANSIENT_PEAK_DBFS_RANGE = (-40.0, -3.0)


def transient(rng: np.random.Generator, num_samples: int, sample_rate: int = 16000):
    """A click or burst: white to brown noise under a Hann envelope, 5-80 ms, peak -40..-3 dBFS,
    at a random place in `num_samples`. Returns (float array, description)."""
    ms = rng.uniform(*TRANSIENT_MS_RANGE)
    length = max(2, int(ms * sample_rate / 1000))
    exponent = rng.uniform(0.0, 2.0)
    peak = rng.uniform(*TRANSIENT_PEAK_DBFS_RANGE)
    burst = colored_noise(rng, length, exponent) * np.hanning(length)
    burst *= 10.0 ** (peak / 20.0) / (np.max(np.abs(burst)) + 1e-12)
    out = np.zeros(num_samples)
    start = int(rng.integers(0, max(1, num_samples - length)))
    out[start:start + length] = burst[:num_samples - start]
    return out, f"transient {ms:.0f}ms@{peak:.0f}dBFS"
