"""espeak-ng through espeakng-loader's bundled library and voice data (ctypes; no internet, no system
install)."""
import ctypes
import os
import shutil
import tempfile
import threading

import espeakng_loader
import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_PITCH = 3
_ESPEAK_PHONEMES_IPA = 0x02

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


class Espeak:
    """A private espeak-ng engine.

    espeak-ng keeps synthesis state across utterances in static variables (the same call gives
    different samples depending on what was spoken before), and espeak_ng_SetRandSeed does not
    cover it. So each engine loads its own copy of the library: a fresh engine plus the same
    sequence of calls gives the same audio.
    """

    def __init__(self):
        self.data_path = espeakng_loader.get_data_path()
        with tempfile.TemporaryDirectory(prefix="tflm_kws_espeak_") as tmp:
            # dlopen shares an already-loaded path; a copy under a new path gets fresh statics. The
            # file can go once mapped.
            copy = shutil.copy(espeakng_loader.get_library_path(), tmp)
            self._lib = ctypes.CDLL(copy, mode=ctypes.RTLD_LOCAL)
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.sample_rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                                       self.data_path.encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (data at {self.data_path})")
        self._chunks = []
        self._callback = _SYNTH_CALLBACK(self._on_samples)  # kept alive with the engine
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()
        self.version = self._data_version()

    def _on_samples(self, wav, num_samples, events):
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def _data_version(self) -> str:
        return data_version()

    def has_language(self, name: str) -> bool:
        if not hasattr(self, "_languages"):
            self._languages = {f.lower() for _, _, files in os.walk(os.path.join(self.data_path, "lang"))
                               for f in files}
        return name.lower() in self._languages

    def has_variant(self, name: str) -> bool:
        # espeak_SetVoiceByName returns success for a missing variant and silently falls back to the
        # plain voice, so check the variant file itself.
        return os.path.isfile(os.path.join(self.data_path, "voices", "!v", name))

    def _set_voice(self, voice: str) -> None:
        language, _, variant = voice.partition("+")
        if not self.has_language(language):
            raise ValueError(f"espeak-ng: no language/accent {language!r} in {self.data_path}")
        if variant and not self.has_variant(variant):
            raise ValueError(f"espeak-ng: no voice variant {variant!r} in {self.data_path}/voices/!v")
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng: cannot select voice {voice!r}")

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, seed: int = 0) -> np.ndarray:
        """int16 samples at `self.sample_rate` of `text` spoken by `voice` (e.g. 'en-us+f3').

        espeak-ng randomizes parts of its voices (jitter, aspiration noise); `seed` fixes them.
        """
        with self._lock:
            self._set_voice(voice)
            self._lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
            self._lib.espeak_SetParameter(_ESPEAK_RATE, int(rate), 0)
            self._lib.espeak_SetParameter(_ESPEAK_PITCH, int(pitch), 0)
            self._chunks = []
            data = text.encode("utf-8")
            self._lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8,
                                   None, None)
            self._lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    def phonemes(self, text: str, voice: str = "en-us") -> str:
        """IPA phonemes of `text`, stress marks and word gaps removed (to compare pronunciations)."""
        with self._lock:
            self._set_voice(voice)
            buffer = ctypes.c_char_p(text.encode("utf-8"))
            pointer = ctypes.pointer(buffer)
            parts = []
            while buffer.value:
                result = self._lib.espeak_TextToPhonemes(pointer, _ESPEAK_CHARS_UTF8,
                                                         _ESPEAK_PHONEMES_IPA)
                if result is None:
                    break
                parts.append(result.decode("utf-8"))
        return "".join(ch for ch in "".join(parts) if ch not in "ˈˌ _-")


def data_version() -> str:
    """Identifies the voice data (for cache keys): sizes of the phoneme data and the dictionary."""
    data_path = espeakng_loader.get_data_path()
    return ",".join(str(os.path.getsize(os.path.join(data_path, name)))
                    for name in ("phondata", "phontab", "en_dict"))
