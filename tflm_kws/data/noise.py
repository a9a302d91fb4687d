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
