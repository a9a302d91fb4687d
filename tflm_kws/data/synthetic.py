"""A wake-word data set made from text with espeak-ng: no recordings, no internet.

Positives: the wake word in many accents and voice variants, speaking rates and pitches, with random
gain, time shift, synthetic room reverb and background noise at a random SNR. Negatives
(`_unknown_`): near misses derived from the wake word (single words, swapped order, changed onsets
and endings; anything espeak pronounces like the wake word is dropped) and other common words and
phrases. `_silence_`: synthetic background noise at random levels. Splits are by voice, so validation
and test voices are never heard in training. Deterministic by seed.
"""
import dataclasses
import hashlib
import math

import numpy as np

from tflm_kws.data import espeak, noise, piper_tts
from tflm_kws.data.spec import SILENCE_LABEL, UNKNOWN_LABEL

GENERATOR_VERSION = 1

ACCENTS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc")
VARIANTS = ("", "f1", "f2", "f3", "f4", "f5", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8",
            "klatt", "klatt2", "klatt3", "klatt4", "klatt6", "whisper", "croak", "Andy", "Annie",
            "anika", "belinda", "benjamin", "david", "ed", "edward", "grandma", "grandpa", "john",
            "linda", "max", "paul", "rob", "robert", "steph", "travis", "victor", "zac")
RATE_RANGE = (120, 220)     # words per minute
PITCH_RANGE = (20, 80)      # espeak pitch 0-100
GAIN_DBFS_RANGE = (-25.0, -1.0)
REVERB_PROBABILITY = 0.5
RT60_RANGE_S = (0.15, 0.7)
NOISE_PROBABILITY = 0.8
SNR_DB_RANGE = (5.0, 30.0)
# Vocal-tract warp factors (DataSpec.warp_probability): adult vocal tracts differ by about
# +-15 % in length, and espeak-ng's variants move pitch more than formants.
WARP_RANGE = (0.85, 1.15)
SILENCE_DBFS_RANGE = (-75.0, -25.0)

OTHER_WORDS = (
    "yes no up down left right on off stop go zero one two three four five six seven eight nine "
    "hello okay computer light music weather time today tomorrow morning evening coffee water "
    "house garden window kitchen table chair phone camera play pause next previous louder quieter "
    "open close start finish cancel repeat again maybe later never always thanks please sorry "
    "great good bad happy tired hungry dinner lunch breakfast bird cat dog tree river mountain "
    "city street car bike train ticket money shopping market friend family brother sister mother "
    "father baby teacher doctor window paper pencil letter number color yellow purple orange"
).split()
OTHER_PHRASES = (
    "what time is it", "turn on the light", "how are you", "good morning", "see you later",
    "thank you very much", "I don't know", "come over here", "let's go home", "play some music",
    "is it raining", "that is fine", "not right now", "call me back", "where is my phone",
    "set a timer", "hey there", "hi there", "okay then", "listen to this",
)
ONSETS = ("", "b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y",
          "z", "sh", "ch", "th", "bl", "br", "fl", "fr", "gr", "pl", "pr", "sl", "st", "tr")
VOWELS = "aeiouy"


@dataclasses.dataclass
class SyntheticSet:
    audio: np.ndarray          # int16 [N, clip_samples]
    labels: np.ndarray         # int32 [N], index into `label_names`
    splits: list               # str per clip
    descriptions: list         # str per clip: text, voice, rate, pitch
    label_names: list
    noises: dict               # name -> float32 noise, for augmentation


def _split_onset(word):
    i = 0
    while i < len(word) and word[i] not in VOWELS:
        i += 1
    return word[:i], word[i:]


def near_misses(wake_word: str, phonemes) -> list:
    """Words and phrases close to the wake word but pronounced differently (sorted, deterministic)."""
    words = wake_word.lower().split()
    candidates = set()
    if len(words) > 1:
        candidates.update(words)
        candidates.add(" ".join(reversed(words)))
        candidates.update(" ".join(words[:i]) for i in range(1, len(words)))
        candidates.update(" ".join(words[i:]) for i in range(1, len(words)))
    for i, word in enumerate(words):
        onset, rest = _split_onset(word)
        replaced = []
        for new_onset in ONSETS:
            if new_onset != onset and rest:
                replaced.append(new_onset + rest)
        if len(word) > 2:
            replaced += [word[:-1], word + "s", word + "er", word[:-1] + "o", word[:-1] + "a"]
        for new_word in replaced:
            candidates.add(" ".join(words[:i] + [new_word] + words[i + 1:]))
    candidates.add(wake_word.lower() + " there")
    candidates.add("hey " + wake_word.lower() if words[0] != "hey" else "okay " + " ".join(words[1:]))
    target = phonemes(wake_word)
    return sorted(c for c in candidates if c.strip() and phonemes(c) != target)


def _which_split(voice: str, validation_percentage: float, testing_percentage: float) -> str:
    """Voices are split like Speech Commands speakers: by a hash of the voice name."""
    value = int(hashlib.sha1(voice.encode()).hexdigest(), 16) % 10000 / 100.0
    if value < validation_percentage:
        return "validation"
    if value < validation_percentage + testing_percentage:
        return "testing"
    return "training"


def voices(engine) -> list:
    return [accent + ("+" + variant if variant else "") for accent in ACCENTS
            if engine.has_language(accent) for variant in VARIANTS
            if not variant or engine.has_variant(variant)]


class Speakers:
    """The voices of the text-to-speech engines `tts` names (one of spec.TTS_CHOICES, checked by
    DataSpec), behind one synthesize(text, voice, rate, pitch, seed) at `sample_rate`.
    espeak-ng is always loaded: it also gives the phonemes that near misses are checked with."""

    def __init__(self, tts: str, seed: int):
        self.espeak = espeak.Espeak()  # fresh engine: see Espeak on determinism
        self.sample_rate = self.espeak.sample_rate
        self.piper = piper_tts.Piper(seed) if "piper" in tts else None
        self._voices = ((voices(self.espeak) if "espeak" in tts else [])
                        + (self.piper.voices() if self.piper else []))

    def voices(self) -> list:
        return list(self._voices)

    def synthesize(self, text, voice, rate, pitch, seed=0):
        if self.piper is not None and self.piper.is_voice(voice):
            raw = self.piper.synthesize(text, voice, rate, pitch, seed)
            if self.piper.sample_rate == self.sample_rate:
                return raw
            return to_int16(resample_fft(raw / 32768.0, self.piper.sample_rate, self.sample_rate))
        return self.espeak.synthesize(text, voice, rate, pitch, seed)


def tts_version(tts: str) -> str:
    """Identifies the voices `tts` uses (for cache keys)."""
    return espeak.data_version() + ("," + piper_tts.data_version() if "piper" in tts else "")


def resample_fft(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Band-limited resampling by spectrum truncation (fast; fine for synthetic speech, which has
    little energy near the band edge). Zero padding keeps the circular wrap-around out of the clip;
    padding to whole multiples of rate_in / gcd keeps the rate ratio and the alignment exact."""
    unit = rate_in // math.gcd(rate_in, rate_out)
    pad = unit * -(-(rate_in // 20) // unit)
    total = unit * -(-(x.shape[0] + 2 * pad) // unit)
    padded = np.zeros(total)
    padded[pad:pad + x.shape[0]] = x
    n_out = total * rate_out // rate_in
    y = np.fft.irfft(np.fft.rfft(padded)[:n_out // 2 + 1], n_out) * (n_out / total)
    start = pad * rate_out // rate_in
    return y[start:start + round(x.shape[0] * rate_out / rate_in)]


def _speech_clip(engine, rng, text, voice, noises, clip_samples, sample_rate,
                 channel_probability=0.0, warp_probability=0.0):
    rate = int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1))
    pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
    raw = engine.synthesize(text, voice, rate, pitch, seed=int(rng.integers(1 << 30))).astype(np.float32) / 32768.0
    active = np.nonzero(np.abs(raw) > 0.02 * np.max(np.abs(raw)))[0]
    raw = raw[active[0]:active[-1] + 1]
    description = f"{voice} rate={rate} pitch={pitch} {text!r}"
    # (No draw when off, as for the channel below: clips made before the warp stay the same.)
    if warp_probability and rng.random() < warp_probability:
        factor = rng.uniform(*WARP_RANGE)
        raw = noise.vocal_tract_warp(raw, factor)
        description += f" warp={factor:.2f}"
    speech = resample_fft(raw, engine.sample_rate, sample_rate)
    speech *= 10.0 ** (rng.uniform(*GAIN_DBFS_RANGE) / 20.0) / np.max(np.abs(speech))
    if rng.random() < REVERB_PROBABILITY:
        rt60 = rng.uniform(*RT60_RANGE_S)
        rir = noise.room_impulse_response(rng, sample_rate, rt60)
        speech = noise.reverberate(np.concatenate([speech, np.zeros(rir.shape[0] // 2)]), rir)
        description += f" rt60={rt60:.2f}"
    # (No draw when off: the clips made before the channel existed stay the same.)
    if channel_probability and rng.random() < channel_probability:
        speech, channel = noise.microphone_channel(rng, speech, sample_rate)
        description += " " + channel
    # Random placement in the window (time shift); a too-long phrase is cropped at random.
    if speech.shape[0] >= clip_samples:
        start = int(rng.integers(0, speech.shape[0] - clip_samples + 1))
        clip = speech[start:start + clip_samples]
    else:
        clip = np.zeros(clip_samples)
        start = int(rng.integers(0, clip_samples - speech.shape[0] + 1))
        clip[start:start + speech.shape[0]] = speech
    if rng.random() < NOISE_PROBABILITY:
        name = sorted(noises)[int(rng.integers(len(noises)))]
        snr = rng.uniform(*SNR_DB_RANGE)
        clip = noise.mix_at_snr(clip, noise.noise_segment(rng, noises[name], clip_samples), snr)
        description += f" {name}@{snr:.0f}dB"
    return clip, description


def spoken_forms(phrase: str) -> list:
    """Ways to write `phrase` that espeak-ng speaks with different prosody."""
    return [phrase, phrase + "!", phrase + "?", phrase.replace(" ", ", ", 1),
            phrase.capitalize() + "."]


def speech_clips(engine, stream, count, choose_text, voice_names, noises, config,
                 channel_probability=0.0, warp_probability=0.0):
    """Yields `count` (int16 clip, voice, description): a text from `choose_text(rng)` spoken in a
    random voice, rate and pitch, with random vocal-tract warp (with `warp_probability`), gain,
    placement, reverb, microphone channel (with `channel_probability`) and noise (`noises`).

    Clip i depends only on (*stream, i), e.g. stream = (data seed, kind), and on a fresh `engine`
    being given the same sequence of clips (see espeak.Espeak).
    """
    for index in range(count):
        rng = np.random.default_rng([*stream, index])
        voice = voice_names[int(rng.integers(len(voice_names)))]
        text = choose_text(rng)
        clip, description = _speech_clip(engine, rng, text, voice, noises, config.clip_samples,
                                         config.sample_rate, channel_probability,
                                         warp_probability)
        yield to_int16(clip), voice, description


def silence_clip(rng, noises, clip_samples, transient_probability=0.0, sample_rate=16000):
    """Background noise alone at a random level (float); with `transient_probability`, plus a
    click or burst far too short to be a word (noise.transient), which must stay `_silence_`."""
    name = sorted(noises)[int(rng.integers(len(noises)))]
    segment = noise.noise_segment(rng, noises[name], clip_samples).astype(np.float64)
    level = rng.uniform(*SILENCE_DBFS_RANGE)
    clip = segment * 10.0 ** (level / 20.0) / (noise.rms(segment) + 1e-12)
    description = f"{name}@{level:.0f}dBFS"
    # (No draw when off: the clips made before transients existed stay the same.)
    if transient_probability and rng.random() < transient_probability:
        burst, what = noise.transient(rng, clip_samples, sample_rate)
        clip, description = clip + burst, description + " " + what
    return clip, description


def to_int16(x):
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def generate(spec, config, noises=None) -> SyntheticSet:
    """The synthetic wake-word set for `spec` (wake_word, tts, seed, sizes, percentages).

    noises: {name: float32 noise} mixed into the clips and making `_silence_` (default: this
    module's synthetic noises)."""
    speakers = Speakers(spec.tts, spec.seed)
    engine = speakers.espeak
    all_voices = speakers.voices()
    voice_split = {v: _which_split(v, spec.validation_percentage, spec.testing_percentage)
                   for v in all_voices}
    for split in ("training", "validation", "testing"):
        if split != "training" and not any(s == split for s in voice_split.values()):
            # Small percentages can leave a split without a voice: give it the first training voice.
            first = next(v for v in all_voices if voice_split[v] == "training")
            voice_split[first] = split
    label_names = [SILENCE_LABEL, UNKNOWN_LABEL, spec.wake_label]
    if noises is None:
        noises = noise.synthetic_noises(spec.seed, config.sample_rate)
    misses = near_misses(spec.wake_word, engine.phonemes)
    others = list(OTHER_WORDS) + list(OTHER_PHRASES)
    wake_phonemes = engine.phonemes(spec.wake_word)
    others = [w for w in others if engine.phonemes(w) != wake_phonemes]
    wake_texts = spoken_forms(spec.wake_word)

    clips, labels, splits, descriptions = [], [], [], []

    def add(kind, count, label):
        if label == 2:
            def choose_text(rng):
                return wake_texts[int(rng.integers(len(wake_texts)))]
        else:
            def choose_text(rng):
                pool = misses if rng.random() < spec.near_miss_fraction else others
                return pool[int(rng.integers(len(pool)))]
        for clip, voice, description in speech_clips(speakers, (spec.seed, kind), count, choose_text,
                                                     all_voices, noises, config,
                                                     spec.channel_probability,
                                                     spec.warp_probability):
            clips.append(clip)
            labels.append(label)
            splits.append(voice_split[voice])
            descriptions.append(description)

    add(2, spec.synthetic_positives, 2)
    add(1, spec.synthetic_negatives, 1)
    for split in ("training", "validation", "testing"):
        positives = sum(1 for s, y in zip(splits, labels) if s == split and y == 2)
        for index in range(math.ceil(positives * spec.silence_percentage / 100.0)):
            rng = np.random.default_rng([spec.seed, 0, index, len(split)])
            clip, description = silence_clip(rng, noises, config.clip_samples,
                                             spec.silence_transients, config.sample_rate)
            clips.append(to_int16(clip))
            labels.append(0)
            splits.append(split)
            descriptions.append("silence " + description)
    return SyntheticSet(np.stack(clips), np.array(labels, np.int32), splits, descriptions,
                        label_names, noises)


def speech_for_labels(seed, counts, label_names, unknown_words, noises, config):
    """Synthetic speech to mix into a real data set: [(int16 clip, label index, description)].

    counts: label index -> number of clips. A word label is spoken as its name ('hey_tiny' ->
    'hey tiny'); `_unknown_` as one of `unknown_words` (the data set's other words; when there are
    none, this module's other words and phrases), leaving out any pronounced like a wanted word.
    `_silence_` gets no speech. Every voice is used (the clips are for training only). Deterministic
    by `seed`.
    """
    engine = espeak.Espeak()  # fresh engine: see Espeak on determinism
    voice_names = voices(engine)
    wanted = [name for name in label_names if name not in (SILENCE_LABEL, UNKNOWN_LABEL)]
    wanted_texts = {name: spoken_forms(name.replace("_", " ")) for name in wanted}
    wanted_sounds = {engine.phonemes(name.replace("_", " ")) for name in wanted}
    others = ([w.replace("_", " ") for w in unknown_words]
              or list(OTHER_WORDS) + list(OTHER_PHRASES))
    others = sorted({w for w in others if engine.phonemes(w) not in wanted_sounds})
    out = []
    for label, count in sorted(counts.items()):
        name = label_names[label]
        if name == SILENCE_LABEL or count == 0:
            continue
        texts = others if name == UNKNOWN_LABEL else wanted_texts[name]
        if not texts:
            raise ValueError(f"no synthetic {UNKNOWN_LABEL} words: every candidate sounds like a "
                             f"wanted word")

        def choose_text(rng, texts=texts):
            return texts[int(rng.integers(len(texts)))]
        for clip, _, description in speech_clips(engine, (seed, 3, label), count, choose_text,
                                                 voice_names, noises, config):
            out.append((clip, label, description))
    return out
