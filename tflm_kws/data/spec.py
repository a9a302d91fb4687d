"""DataSpec: everything that decides which clips, labels, splits and augmentations a run uses."""
import dataclasses
import math
from typing import Optional

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
BACKGROUND_NOISE_DIR = "_background_noise_"
# The 10 words of the standard 12-class Speech Commands task, in the usual label order.
# Text-to-speech engines of the synthetic wake-word set (tflm_kws.data.synthetic.Speakers).
TTS_CHOICES = ("espeak", "piper", "espeak+piper")
STANDARD_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


@dataclasses.dataclass
class DataSpec:
    """Where the data comes from and how it is split and augmented.

    data_dir=None selects the synthetic wake-word set (espeak-ng); otherwise data_dir is a Speech
    Commands raw layout, a canonical test-set layout (folders `_silence_`, `_unknown_`, ...), or any
    folder-per-label tree.
    """
    data_dir: Optional[str] = None
    # Words that are classes; None -> the 10 standard words when data_dir holds all of them, else
    # every word folder. Other word folders feed `_unknown_`.
    wanted_words: Optional[list] = None
    wake_word: str = "hey tiny"
    # Word folders of data_dir left out altogether (e.g. words kept apart to test wake words on).
    exclude_words: list = dataclasses.field(default_factory=list)
    # Sizes of `_silence_` and `_unknown_`, as % of the wanted-word clips in each split.
    silence_percentage: float = 10.0
    unknown_percentage: float = 10.0
    # Used only when validation_list.txt / testing_list.txt are absent (speaker-hash rule).
    validation_percentage: float = 10.0
    testing_percentage: float = 10.0
    seed: int = 0
    # Audio-domain augmentation, computed once per training clip and cached: this many variants,
    # each with a random time shift and, with probability background_frequency, background noise
    # at a random SNR in [snr_db_min, snr_db_max].
    augment_variants: int = 4
    time_shift_ms: float = 100.0
    background_frequency: float = 0.8
    snr_db_min: float = 0.0
    snr_db_max: float = 20.0
    # SpecAugment, applied on the fly in tf.data: masks of up to this many frames / channels.
    time_masks: int = 2
    time_mask_max_frames: int = 5
    freq_masks: int = 2
    freq_mask_max_channels: int = 4
    # Fraction of `_silence_` clips (and of their augmented variants) that get a click or burst
    # of 5-80 ms: too short for a word, so a 30 ms sound in silence must not fire a command.
    silence_transients: float = 0.0
    # Synthetic set (data_dir=None): clips of the wake word and of other words / near misses.
    synthetic_positives: int = 1200
    synthetic_negatives: int = 1200
    # Real data (data_dir set): espeak-ng speech of the wanted words (and of other words for
    # `_unknown_`) added to the training split only, this many clips per real training clip of
    # each speech class (1.0: as many synthetic clips as real ones). Validation/testing stay real.
    synthetic_fraction: float = 0.0
    # Synthetic wake-word set only (data_dir=None; docs/wake_word.md):
    # text-to-speech engines of its speech: "espeak", "piper" (neural, one speaker, warped) or
    # "espeak+piper".
    tts: str = "espeak"
    # Probability that a synthetic clip goes through a random microphone channel (band limits and
    # a spectral tilt) after the room.
    channel_probability: float = 0.0
    # Probability that a synthetic clip's speech is played back faster or slower by a random
    # factor in synthetic.WARP_RANGE before the room (a vocal-tract-length and speed perturbation).
    warp_probability: float = 0.0
    # Fraction of the synthetic negatives that are near misses of the wake word (the others are
    # other words and phrases).
    near_miss_fraction: float = 0.5
    # Real audio of other speech (a Speech Commands tree or any folder per word): its word folders
    # (but those spoken like the wake word) feed `_unknown_`, split by its lists or speakers, at
    # most `real_negatives` training clips (an eighth of that each in validation and testing); its
    # `_background_noise_` replaces the synthetic noises.
    negatives_dir: Optional[str] = None
    real_negatives: int = 4000
    # Few-shot: `real_positives` recordings of the wake word from the audio files in
    # `positives_dir` (a seeded draw; the loudest second of each), added to the training split.
    positives_dir: Optional[str] = None
    real_positives: int = 0

    # Fields that change the cached features (everything but the on-the-fly SpecAugment).
    ON_THE_FLY = ("time_masks", "time_mask_max_frames", "freq_masks", "freq_mask_max_channels")
    # Fields added after runs and feature caches existed: to_dict() leaves them out at their
    # default, so the run identities (resume) and cache keys made before them stay valid.
    OMITTED_AT_DEFAULT = ("synthetic_fraction", "exclude_words", "silence_transients", "tts",
                          "channel_probability", "near_miss_fraction", "negatives_dir",
                          "real_negatives", "positives_dir", "real_positives",
                          "warp_probability")

    def __post_init__(self):
        if self.wanted_words is not None:
            if isinstance(self.wanted_words, str):
                self.wanted_words = [w.strip() for w in self.wanted_words.split(",") if w.strip()]
            self.wanted_words = [str(w) for w in self.wanted_words]
            if not self.wanted_words:
                raise ValueError("DataSpec.wanted_words is empty; give at least one word or None")
            duplicates = sorted({w for w in self.wanted_words if self.wanted_words.count(w) > 1})
            if duplicates:
                raise ValueError(f"DataSpec.wanted_words repeats {duplicates}")
            reserved = [w for w in self.wanted_words if w in (SILENCE_LABEL, UNKNOWN_LABEL)]
            if reserved:
                raise ValueError(f"DataSpec.wanted_words must not contain {reserved} (added "
                                 f"automatically)")
        self.exclude_words = [str(w) for w in self.exclude_words]
        both = sorted(set(self.wanted_words or []) & set(self.exclude_words))
        if both:
            raise ValueError(f"DataSpec: {both} both in wanted_words and in exclude_words")
        for name in ("silence_percentage", "unknown_percentage", "validation_percentage",
                     "testing_percentage"):
            value = getattr(self, name)
            if not 0.0 <= value <= 100.0:
                raise ValueError(f"DataSpec.{name} must be in [0, 100], got {value}")
        if self.validation_percentage + self.testing_percentage >= 100.0:
            raise ValueError("DataSpec: validation_percentage + testing_percentage must be < 100")
        if not self.wake_word.strip():
            raise ValueError("DataSpec.wake_word is empty")
        if self.augment_variants < 0 or self.synthetic_positives < 1 or self.synthetic_negatives < 1:
            raise ValueError("DataSpec: augment_variants must be >= 0 and synthetic_* >= 1")
        if not 0.0 <= self.background_frequency <= 1.0:
            raise ValueError(f"DataSpec.background_frequency must be in [0, 1], got "
                             f"{self.background_frequency}")
        if self.snr_db_min > self.snr_db_max:
            raise ValueError("DataSpec: snr_db_min must be <= snr_db_max")
        if not (isinstance(self.synthetic_fraction, (int, float))
                and math.isfinite(self.synthetic_fraction) and self.synthetic_fraction >= 0.0):
            raise ValueError(f"DataSpec.synthetic_fraction must be a number >= 0, got "
                             f"{self.synthetic_fraction!r}")
        if self.tts not in TTS_CHOICES:
            raise ValueError(f"DataSpec.tts must be one of {list(TTS_CHOICES)}, got {self.tts!r}")
        if not 0.0 <= self.silence_transients <= 1.0:
            raise ValueError(f"DataSpec.silence_transients must be in [0, 1], got "
                             f"{self.silence_transients!r}")
        for name in ("channel_probability", "warp_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"DataSpec.{name} must be in [0, 1], got "
                                 f"{getattr(self, name)!r}")
        if not 0.0 <= self.near_miss_fraction <= 1.0:
            raise ValueError(f"DataSpec.near_miss_fraction must be in [0, 1], got "
                             f"{self.near_miss_fraction!r}")
        for name in ("real_negatives", "real_positives"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"DataSpec.{name} must be an int >= 0, got "
                                 f"{getattr(self, name)!r}")
        if self.real_positives and not self.positives_dir:
            raise ValueError("DataSpec.real_positives needs positives_dir (the recordings of the "
                             "wake word to draw them from)")
        if self.data_dir is not None and (self.negatives_dir or self.positives_dir):
            raise ValueError("DataSpec.negatives_dir / positives_dir belong to the synthetic "
                             "wake-word set (data_dir None); a real data_dir has its own clips")
        if self.synthetic_fraction > 0.0 and self.data_dir is None:
            raise ValueError("DataSpec.synthetic_fraction mixes synthetic speech into a real "
                             "data_dir's training split; without data_dir the data set is "
                             "synthetic already")

    @property
    def wake_label(self) -> str:
        """Label of the synthetic wake word ('hey tiny' -> 'hey_tiny')."""
        return "_".join(self.wake_word.lower().split())

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for f in dataclasses.fields(self):
            default = (f.default_factory() if f.default is dataclasses.MISSING
                       else f.default)
            if f.name in self.OMITTED_AT_DEFAULT and d[f.name] == default:
                del d[f.name]
        if d["wanted_words"] is not None:
            d["wanted_words"] = list(d["wanted_words"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DataSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"DataSpec: unknown key(s) {unknown}; valid keys: {sorted(names)}")
        return cls(**d)

    def cache_fields(self) -> dict:
        """The fields the cached features depend on."""
        d = self.to_dict()
        for name in self.ON_THE_FLY:
            d.pop(name)
        return d
