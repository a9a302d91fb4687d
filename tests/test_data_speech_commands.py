"""The loader on ../shared/data/speech_commands_v2_dev: the standard 12-class task."""
import math
import os

import numpy as np
import pytest

from tflm_kws import data, frontend
from tflm_kws.data import sources

from conftest import SPEECH_COMMANDS, require


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    root = require(SPEECH_COMMANDS)
    # Clean features only (no augmented variants) to keep the test fast.
    spec = data.DataSpec(data_dir=str(root), augment_variants=0)
    return root, data.load(spec, frontend.FrontendConfig(), tmp_path_factory.mktemp("cache"))


def _list(root, name):
    return {os.path.splitext(line.strip())[0] for line in open(root / name) if line.strip()}


def test_twelve_classes_and_counts(dev):
    root, kws = dev
    assert kws.labels == ["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right",
                          "on", "off", "stop", "go"]
    validation, testing = _list(root, "validation_list.txt"), _list(root, "testing_list.txt")
    for split in sources.SPLITS:
        counts = kws.class_counts(split)
        for word in data.STANDARD_WORDS:
            keys = {f"{word}/{os.path.splitext(f)[0]}" for f in os.listdir(root / word)}
            expected = {"validation": keys & validation, "testing": keys & testing,
                        "training": keys - validation - testing}[split]
            assert counts[word] == len(expected), (split, word)
        words = sum(counts[w] for w in data.STANDARD_WORDS)
        assert counts["_silence_"] == math.ceil(words * 0.1)
        assert counts["_unknown_"] == math.ceil(words * 0.1)
    x, y = kws.features("training")
    assert x.dtype == np.int8 and x.shape[1:] == (49, 40) and len(y) == kws.num_examples("training")


def test_list_files_honoured_and_speakers_disjoint(dev):
    root, kws = dev
    validation, testing = _list(root, "validation_list.txt"), _list(root, "testing_list.txt")
    speaker_split = {}
    for split in sources.SPLITS:
        for path in kws.files(split):
            if path.startswith("silence:"):
                continue
            key = os.path.splitext(os.path.relpath(path, root))[0]
            assert split == ("validation" if key in validation else
                             "testing" if key in testing else "training"), path
            assert speaker_split.setdefault(sources.speaker_of(path), split) == split, path
    # Unknown clips come from the non-target words only.
    unknown = [p for p in kws.files("training") if not p.startswith("silence:")
               and os.path.basename(os.path.dirname(p)) not in data.STANDARD_WORDS]
    assert len(unknown) == kws.class_counts("training")["_unknown_"]
