"""The over-parameterization study (tflm_kws.study): configs, conclusion, --quick end to end."""
import json
import subprocess
import sys

from conftest import REPO, SPEECH_COMMANDS, require
from tflm_kws import study


def test_configs_are_named_uniquely_and_twins_drop_training_form_hparams():
    names = [c.name for c in study.CONFIGS]
    assert len(names) == len(set(names))
    assert set(study.QUICK_CONFIGS) <= set(names)
    axes = {c.axis for c in study.CONFIGS}
    for axis in ("branch set", "copies K", "linear expansion", "identity", "regularization",
                 "epochs", "synthetic speech"):
        assert axis in axes
    assert study.twin_hparams({"branches": [[7, 1]], "identity": True, "num_copies": 2,
                               "expansion": 2, "dropout": 0.3}) == {"dropout": 0.3}


def test_every_runnable_config_keeps_the_twin_deploy_graph():
    """Before any training: repcnn's fused graph equals cnn's for every configuration that runs."""
    for config in study.CONFIGS:
        if study.missing_knobs(config):
            continue
        assert (study.deploy_graph_signature("repcnn", config.hparams)
                == study.deploy_graph_signature("cnn", study.twin_hparams(config.hparams))), config


def test_mixup_and_synthetic_mix_have_their_knobs():
    by_name = {c.name: c for c in study.CONFIGS}
    assert study.missing_knobs(by_name["mixup"]) == []
    assert study.missing_knobs(by_name["synthetic_mix"]) == []


def test_missing_knobs_are_named():
    config = study.StudyConfig("x", "regularization", "x", {"no_such_hparam": 1},
                               {"no_such_flag": 1, "data_params": {"no_such_field": 2}})
    missing = study.missing_knobs(config)
    assert "model 'repcnn' has no hyper-parameter 'no_such_hparam'" in missing
    assert "training.train has no --no_such_flag flag" in missing
    assert "tflm_kws.data.DataSpec has no field 'no_such_field' (--data_params)" in missing


def _entry(name, val_rer, test_rer, p_value, beyond=True):
    def comparison(rer):
        return {"relative_error_reduction": rer, "beyond_seed_spread": beyond,
                "accuracy": {"mean": 0.9}, "baseline_accuracy": {"mean": 0.85},
                "mcnemar": {"p_value": p_value}}
    return {"name": name, "description": name, "status": "done",
            "validation": comparison(val_rer), "test": comparison(test_rer)}


def test_conclusion_selects_on_validation_not_on_test():
    entries = [_entry("best_on_test", 0.05, 0.50, 0.001), _entry("best_on_val", 0.40, 0.35, 0.01),
               {"name": "mixup", "status": "missing knob", "missing": ["no --mixup_alpha"]}]
    result = study.conclusion(entries)
    assert result["best_by_validation"] == "best_on_val"
    assert result["target_met"] is True
    assert "better: best_on_test, best_on_val" in result["text"]
    assert "`mixup` (missing knob: no --mixup_alpha)" in result["text"]
    entries[1]["test"]["mcnemar"]["p_value"] = 0.2  # not significant on test: not met
    assert study.conclusion(entries)["target_met"] is False
    assert study.conclusion([])["best_by_validation"] is None


def _study(*args):
    return subprocess.run([sys.executable, "-m", "tflm_kws.study", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_unknown_config_is_named(tmp_path):
    result = _study("--configs=baseline,nope", f"--output_dir={tmp_path}")
    assert result.returncode != 0
    assert "--configs: unknown ['nope']" in result.stderr and "copies_k2" in result.stderr


def test_quick_run_writes_the_study(tmp_path):
    data_dir = require(SPEECH_COMMANDS)
    out, work = tmp_path / "out", tmp_path / "work"
    result = _study("--quick", f"--data_dir={data_dir}", f"--output_dir={out}",
                    f"--work_dir={work}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "overparam_study.json").read_text())
    assert report["command"].startswith("python -m tflm_kws.study --quick")
    assert report["seeds"] == [0] and report["epochs"] == 1
    entries = {e["name"]: e for e in report["configs"]}
    assert list(entries) == list(study.QUICK_CONFIGS)
    for name in ("baseline", "copies_k2", "mixup"):
        entry = entries[name]
        assert entry["status"] == "done", entry
        assert entry["params"] == entry["twin_params"] and entry["macs"] == entry["twin_macs"]
        for split in ("validation", "test"):
            cmp = entry[split]
            assert 0.0 <= cmp["accuracy"]["mean"] <= 1.0
            assert 0.0 < cmp["mcnemar"]["p_value"] <= 1.0
            assert set(cmp["sign_test"]) == {"wins", "losses", "ties", "p_value"}
    assert entries["copies_k2"]["train_params"] > entries["baseline"]["train_params"]
    # baseline and copies_k2 share one twin run (same cnn recipe), trained once; mixup's recipe
    # differs (--mixup_alpha), so its twin is trained with mixup too.
    assert entries["baseline"]["runs"]["twin"] == entries["copies_k2"]["runs"]["twin"]
    assert entries["mixup"]["runs"]["twin"] != entries["baseline"]["runs"]["twin"]
    assert len(list(work.glob("cnn-*/seed0"))) == 2
    assert entries["mixup"]["train_flags"]["mixup_alpha"] == 0.2
    assert report["conclusion"]["best_by_validation"] in ("baseline", "copies_k2", "mixup")
    markdown = (out / "overparam_study.md").read_text()
    assert "| baseline | reference |" in markdown and "## Conclusion" in markdown


def test_invalid_config_is_reported_not_run(tmp_path):
    config = study.StudyConfig("bad", "copies K", "K=0", {"num_copies": 0})
    entry = study.run_config(config, [0], 1, str(tmp_path), {}, str(tmp_path / "work"),
                             str(tmp_path / "cache"))
    assert entry["status"] == "invalid configuration"
    assert "num_copies" in entry["missing"][0]
    assert not (tmp_path / "work").exists()
