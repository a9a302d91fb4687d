"""Which clips a data directory holds, their labels and their splits (no audio is decoded here)."""
import dataclasses
import hashlib
import math
import os
import re

import numpy as np

from tflm_kws import audio
from tflm_kws.data.spec import (BACKGROUND_NOISE_DIR, SILENCE_LABEL, STANDARD_WORDS,
                                UNKNOWN_LABEL)

SPLITS = ("training", "validation", "testing")
MAX_NUM_WAVS_PER_CLASS = 2 ** 27 - 1  # Speech Commands' which_set() constant


@dataclasses.dataclass
class Item:
    """One example: a file, or a generated silence clip (path None)."""
    path: str
    label: int
    split: str
    expect_speech: bool


@dataclasses.dataclass
class Listing:
    labels: list
    items: list                 # [Item]
    noise_files: list           # paths of background noise recordings
    layout: str                 # "speech_commands" (folder per label) or "test_set"
    silence_per_split: dict     # split -> number of silence clips to make from background noise
    unknown_words: list = dataclasses.field(default_factory=list)  # word folders not wanted


def which_set(filename: str, validation_percentage: float, testing_percentage: float) -> str:
    """Speech Commands' standard split rule: a SHA-1 of the speaker part of the file name
    ('<speaker>_nohash_<n>.wav'), so all clips of a speaker land in the same split."""
    base_name = os.path.basename(filename)
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    if hash_name == base_name:  # not Speech Commands naming: each file is its own "speaker"
        hash_name = os.path.splitext(base_name)[0]
    hashed = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage_hash = ((int(hashed, 16) % (MAX_NUM_WAVS_PER_CLASS + 1))
                       * (100.0 / MAX_NUM_WAVS_PER_CLASS))
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < testing_percentage + validation_percentage:
        return "testing"
    return "training"


def speaker_of(path: str) -> str:
    base_name = os.path.basename(path)
    return re.sub(r"_nohash_.*$", "", base_name)


def audio_files(directory):
    return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                  if audio.is_audio_file(f) and os.path.isfile(os.path.join(directory, f)))


def _read_list(path):
    """'word/file.wav' entries as 'word/file' (extension dropped: lists may name .wav for .flac)."""
    with open(path) as f:
        return {os.path.splitext(line.strip())[0] for line in f if line.strip()}


def word_dirs(data_dir):
    return sorted(d for d in os.listdir(data_dir)
                  if os.path.isdir(os.path.join(data_dir, d)) and not d.startswith((".", "_")))


def list_data(data_dir: str, spec) -> Listing:
    """The examples of `data_dir` per `spec`. Raises for a missing directory or unknown words."""
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data_dir {data_dir!r} does not exist or is not a directory")
    if (os.path.isdir(os.path.join(data_dir, SILENCE_LABEL))
            and os.path.isdir(os.path.join(data_dir, UNKNOWN_LABEL))):
        return _list_test_set(data_dir, spec)
    return _list_word_folders(data_dir, spec)


def _wanted_words(data_dir, spec, words):
    if spec.wanted_words is not None:
        missing = [w for w in spec.wanted_words if w not in words]
        if missing:
            raise ValueError(f"wanted word(s) {missing} not found in {data_dir}; available words: "
                             f"{', '.join(words) or '(none)'}")
        return list(spec.wanted_words)
    if all(w in words for w in STANDARD_WORDS):
        return list(STANDARD_WORDS)
    if not words:
        raise ValueError(f"{data_dir} has no word folders (one folder of audio files per label)")
    # Every word folder; Speech Commands words keep their usual order.
    return [w for w in STANDARD_WORDS if w in words] + [w for w in words if w not in STANDARD_WORDS]


def split_rule(data_dir, spec):
    """split_of(word, path): the tree's validation/testing lists when it has both, else the
    speaker-hash rule."""
    list_files = [os.path.join(data_dir, n) for n in ("validation_list.txt", "testing_list.txt")]
    if all(os.path.isfile(p) for p in list_files):
        validation, testing = (_read_list(p) for p in list_files)

        def split_of(word, path):
            key = word + "/" + os.path.splitext(os.path.basename(path))[0]
            return "validation" if key in validation else "testing" if key in testing else "training"
        return split_of
    return lambda word, path: which_set(path, spec.validation_percentage, spec.testing_percentage)


def _noise_files(data_dir):
    noise_dir = os.path.join(data_dir, BACKGROUND_NOISE_DIR)
    return audio_files(noise_dir) if os.path.isdir(noise_dir) else []


@dataclasses.dataclass
class OtherSpeech:
    """Real negatives for a synthetic wake word (DataSpec.negatives_dir)."""
    items: list                 # [Item] labelled `_unknown_` (label 1)
    noise_files: list


def list_other_speech(directory, spec, sounds_like_wake_word) -> OtherSpeech:
    """Per split at most spec.real_negatives training clips (an eighth of that in validation and
    in testing; a seeded draw) of `directory`'s word folders, except those for which
    sounds_like_wake_word(word) holds."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"negatives_dir {directory!r} does not exist or is not a directory")
    words = word_dirs(directory)
    left_out = [w for w in words if sounds_like_wake_word(w.replace("_", " "))]
    used = [w for w in words if w not in left_out]
    split_of = split_rule(directory, spec)
    pool = {s: [] for s in SPLITS}
    for word in used:
        for p in audio_files(os.path.join(directory, word)):
            pool[split_of(word, p)].append(p)
    if not any(pool.values()):
        note = f"; left out as the wake word: {', '.join(left_out)}" if left_out else ""
        raise ValueError(f"negatives_dir {directory!r} has no audio files in word folders (one "
                         f"folder of audio files per word{note})")
    items = []
    for split in SPLITS:
        cap = spec.real_negatives if split == "training" else math.ceil(spec.real_negatives / 8)
        rng = np.random.default_rng([spec.seed, 11, SPLITS.index(split)])
        take = min(cap, len(pool[split]))
        chosen = sorted(rng.choice(len(pool[split]), size=take, replace=False)) if take else []
        items += [Item(pool[split][i], 1, split, True) for i in chosen]
    return OtherSpeech(items, _noise_files(directory))


def list_recordings(directory) -> list:
    """The audio files of `directory` and its subfolders, sorted."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"positives_dir {directory!r} does not exist or is not a directory")
    found = audio.audio_files_under(directory)
    if not found:
        raise ValueError(f"positives_dir {directory!r} holds no audio files")
    return found


def _list_word_folders(data_dir, spec) -> Listing:
    words = [w for w in word_dirs(data_dir) if w not in spec.exclude_words]
    wanted = _wanted_words(data_dir, spec, words)
    labels = [SILENCE_LABEL, UNKNOWN_LABEL] + wanted
    split_of = split_rule(data_dir, spec)
    wanted_items, unknown_pool = [], {s: [] for s in SPLITS}
    for word in words:
        files = audio_files(os.path.join(data_dir, word))
        if word in wanted:
            if not files:
                raise ValueError(f"wanted word {word!r} has no audio files in "
                                 f"{os.path.join(data_dir, word)}")
            wanted_items += [Item(p, labels.index(word), split_of(word, p), True) for p in files]
        else:
            for p in files:
                unknown_pool[split_of(word, p)].append(p)

    items = list(wanted_items)
    silence_per_split = {}
    for split in SPLITS:
        count = sum(1 for it in wanted_items if it.split == split)
        # Standard recipe: _unknown_ and _silence_ each a percentage of the wanted-word clips.
        rng = np.random.default_rng([spec.seed, SPLITS.index(split)])
        pool = unknown_pool[split]
        take = min(len(pool), math.ceil(count * spec.unknown_percentage / 100.0))
        chosen = sorted(rng.choice(len(pool), size=take, replace=False)) if take else []
        items += [Item(pool[i], labels.index(UNKNOWN_LABEL), split, True) for i in chosen]
        silence_per_split[split] = math.ceil(count * spec.silence_percentage / 100.0)
    return Listing(labels, items, _noise_files(data_dir), "speech_commands", silence_per_split,
                   [w for w in words if w not in wanted])


def _list_test_set(data_dir, spec) -> Listing:
    """Canonical test-set layout: `_silence_`, `_unknown_` and word folders; all clips are 'testing'."""
    words = word_dirs(data_dir)
    wanted = _wanted_words(data_dir, spec, words)
    labels = [SILENCE_LABEL, UNKNOWN_LABEL] + wanted
    items = []
    for folder in [SILENCE_LABEL, UNKNOWN_LABEL] + words:
        label = labels.index(folder) if folder in labels else labels.index(UNKNOWN_LABEL)
        files = audio_files(os.path.join(data_dir, folder))
        if folder in wanted and not files:
            raise ValueError(f"wanted word {folder!r} has no audio files in "
                             f"{os.path.join(data_dir, folder)}")
        items += [Item(p, label, "testing", folder != SILENCE_LABEL) for p in files]
    return Listing(labels, items, [], "test_set", {s: 0 for s in SPLITS})
