"""tflm_kws.wake_word_study: which real files a wake word is judged on, and the report."""
import numpy as np

from conftest import write_wav
from tflm_kws import wake_word_study as study


def _tree(tmp_path):
    sc, pd = tmp_path / "sc", tmp_path / "pd"
    for word, speakers in (("happy", ("a1", "b2", "c3")), ("bed", ("a1", "d4"))):
        (sc / word).mkdir(parents=True)
        for s in speakers:
            write_wav(sc / word / f"{s}_nohash_0.wav", np.full(1600, 500, np.int16))
    (sc / "validation_list.txt").write_text("happy/b2_nohash_0.wav\nbed/d4_nohash_0.wav\n")
    (sc / "testing_list.txt").write_text("happy/c3_nohash_0.wav\n")
    for folder in ("computer", "athena", "amelia", "LICENSES"):
        (pd / folder).mkdir(parents=True)
        write_wav(pd / folder / "x.wav", np.full(1600, 500, np.int16))
    return sc, pd


def test_speech_commands_word_is_judged_on_its_split(tmp_path):
    sc, pd = _tree(tmp_path)
    pos, neg = study.evaluation_files("happy", "validation", str(sc), str(pd))
    assert [p.split("/")[-1] for p in pos] == ["b2_nohash_0.wav"]
    # The split's other words, and the pd folder kept for validation (athena).
    assert sorted(p.split("/")[-2] for p in neg) == ["athena", "bed"]
    pos, neg = study.evaluation_files("happy", "testing", str(sc), str(pd))
    assert [p.split("/")[-1] for p in pos] == ["c3_nohash_0.wav"]
    assert sorted(p.split("/")[-2] for p in neg) == ["amelia", "computer"]  # no testing bed


def test_pd_phrase_uses_all_its_recordings(tmp_path):
    sc, pd = _tree(tmp_path)
    pos, neg = study.evaluation_files("computer", "testing", str(sc), str(pd))
    assert [p.split("/")[-2] for p in pos] == ["computer"]
    assert sorted(p.split("/")[-2] for p in neg) == ["amelia", "happy"]


def test_missing_recordings_are_named(tmp_path):
    sc, pd = _tree(tmp_path)
    import pytest
    with pytest.raises(ValueError, match="no real recordings of 'jarvis'"):
        study.evaluation_files("jarvis", "testing", str(sc), str(pd))


def test_markdown_rows_and_scores():
    point = {"threshold": 180, "frr": 0.25, "false_accepts": 0, "fa_per_hour": 0.0}
    report = {"positives": 8, "negative_hours": 0.4, "threshold_for_target": point,
              "at_device_threshold": dict(point, threshold=200, frr=0.5), "run": "r"}
    assert study.score([report]) == (0.75, 0.5)
    # A final row's threshold is the one set on the validation negatives.
    final = dict(report, at_chosen_threshold=dict(point, threshold=190, frr=0.375))
    r = study.row("x", "y", [final])
    assert (r["threshold"], r["recall_at_target"]) == (190, 0.625)
    text = study.markdown({"wake_word": "happy", "split": "testing", "final": True,
                           "target_fa_per_hour": 1.0, "epochs": 40, "kept": ["transfer"],
                           "rows": [dict(r, kept="final")], "command": "c", "seeds": [0]})
    assert "| x | y | 0.500 | 0.0 | 190 | 0.625 | 0.0 | final |" in text
    assert "set on the validation split's negatives" in text
    assert "training seed 0." in text


def test_several_seeds_are_averaged_and_listed():
    def report(frr_target, frr_200, fa_200, threshold):
        return {"positives": 8, "negative_hours": 0.4, "run": "r",
                "threshold_for_target": None if threshold is None else {
                    "threshold": threshold, "frr": frr_target, "fa_per_hour": 0.0},
                "at_device_threshold": {"threshold": 200, "frr": frr_200, "fa_per_hour": fa_200}}
    import pytest
    reports = [report(0.5, 0.25, 2.0, 210), report(0.75, 0.5, 0.0, 190),
               report(None, 1.0, 7.0, None)]
    # A seed with no threshold within the target counts as recall 0 there.
    assert study.score(reports) == pytest.approx((0.25, 1.25 / 3))
    r = study.row("+warp", "w", reports)
    assert r["recall_at_target"] == 0.25 and r["fa_per_hour_at_200"] == 3.0
    assert r["fa_per_hour_at_target"] is None  # not every seed has an operating point
    assert [s["threshold"] for s in r["seeds"]] == [210, 190, None]
    text = study.markdown({"wake_word": "bed", "split": "validation", "final": False,
                           "target_fa_per_hour": 1.0, "epochs": 40, "kept": [],
                           "rows": [dict(r, kept="no")], "command": "c", "seeds": [0, 1, 2]})
    assert "| +warp | w | 0.417 | 3.0 | 210 / 190 / none | 0.500 / 0.250 / 0.000 | 0.250 | no |" \
        in text
    assert "training seeds 0, 1, 2: each figure is the mean" in text


def test_bad_seeds_are_named(tmp_path, capsys):
    sc, _ = _tree(tmp_path)
    assert study.main(["--wake_word=happy", "--seeds=0", f"--data_dir={sc}",
                       f"--work_dir={tmp_path / 'work'}", f"--output_dir={tmp_path / 'out'}"]) == 2
    assert "--seeds: at least one seed, each once; got []" in capsys.readouterr().err
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()


def test_unknown_lever_is_named_before_any_run(tmp_path):
    sc, _ = _tree(tmp_path)
    import pytest
    for kwargs, option in (({"lever_names": ["channel", "louder"]}, "--levers"),
                           ({"few_shot_levers": ["louder"]}, "--few_shot_levers")):
        with pytest.raises(ValueError, match=rf"{option}: no lever\(s\) \['louder'\]"):
            study.run_study("happy", "validation", str(tmp_path / "work"), str(tmp_path / "cache"),
                            str(tmp_path / "out"), data_dir=str(sc), **kwargs)
    assert not (tmp_path / "work").exists() and not (tmp_path / "out").exists()
