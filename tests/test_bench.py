"""The benchmark (tflm_kws.bench): table rows, targets, flags, and the --quick run end to end."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, SPEECH_COMMANDS, assert_is_plot, require
from tflm_kws import bench

_ROW_KEYS = {"model", "seeds", "params", "macs", "flatbuffer_bytes", "arena_bytes",
             "float_accuracy", "int8_accuracy", "tflm_accuracy", "tflm_latency_ms", "train_seconds",
             "int8_drop", "tflm_identical", "test_clips"}


def _fake_result(tmp_path, model, seed, labels, float_correct, tflm_correct, macs=1000,
                 float_accuracy=None, int8_accuracy=None, identical=None, arena=7000,
                 latency=None):
    run_dir = tmp_path / f"{model}-{seed}"
    run_dir.mkdir()
    wrong = (labels + 1) % 12
    float_test = np.where(float_correct, labels, wrong)
    tflm_test = np.where(tflm_correct, labels, wrong)
    np.savez(run_dir / "predictions.npz", test_labels=labels, val_labels=labels,
             float_test=float_test, float_val=float_test, tflm_test=tflm_test)
    float_accuracy = float(np.mean(float_correct)) if float_accuracy is None else float_accuracy
    tflm_accuracy = float(np.mean(tflm_correct))
    int8_accuracy = tflm_accuracy if int8_accuracy is None else int8_accuracy
    return {"model": model, "seed": seed, "run_dir": str(run_dir),
            "predictions": str(run_dir / "predictions.npz"), "params": 100, "macs": macs,
            "flatbuffer_bytes": 5000, "arena_bytes": arena, "float_accuracy": float_accuracy,
            "int8_accuracy": int8_accuracy, "tflm_accuracy": tflm_accuracy,
            "int8_drop": float_accuracy - int8_accuracy, "fused_val_accuracy": float_accuracy,
            "tflm_latency_ms": 1.0 + seed if latency is None else latency,
            "train_seconds": 10.0 * (seed + 1),
            "tflm_identical": len(labels) if identical is None else identical,
            "test_clips": len(labels), "ops": ["CONV_2D"], "quantization": "qat"}


def _mask(n_correct, n=100):
    return np.arange(n) < n_correct


def test_aggregate_means_and_spread(tmp_path):
    labels = np.arange(100) % 12
    results = [_fake_result(tmp_path, "cnn", s, labels, _mask(c), _mask(c))
               for s, c in enumerate((80, 82, 84))]
    row = bench.aggregate("cnn", results)
    assert _ROW_KEYS <= set(row)
    assert row["seeds"] == [0, 1, 2]
    assert row["float_accuracy"] == pytest.approx(0.82)
    assert row["float_accuracy_std"] == pytest.approx(0.02)
    assert (row["float_accuracy_min"], row["float_accuracy_max"]) == (0.80, 0.84)
    assert row["train_seconds"] == pytest.approx(20.0)
    assert (row["tflm_identical"], row["test_clips"]) == (300, 300)


def test_aggregate_refuses_seeds_with_different_graphs(tmp_path):
    labels = np.arange(10) % 12
    results = [_fake_result(tmp_path, "cnn", 0, labels, _mask(5, 10), _mask(5, 10), macs=1),
               _fake_result(tmp_path, "cnn", 1, labels, _mask(5, 10), _mask(5, 10), macs=2)]
    with pytest.raises(ValueError, match="macs differs between seeds"):
        bench.aggregate("cnn", results)


def test_targets_met_and_not_met(tmp_path):
    labels = np.arange(100) % 12
    results = {
        # repcnn: 4-6 errors per seed; cnn: 10-12 on the same clips (6/11 fewer errors).
        "repcnn": [_fake_result(tmp_path, "repcnn", s, labels, _mask(c), _mask(c), macs=900)
                   for s, c in enumerate((96, 95, 94))],
        "cnn": [_fake_result(tmp_path, "cnn", s, labels, _mask(c), _mask(c), macs=900)
                for s, c in enumerate((90, 89, 88))],
        "ds_cnn": [_fake_result(tmp_path, "ds_cnn", 0, labels, _mask(96), _mask(96), macs=3000)],
        # tiny_conv: int8 loses 2 points and TFLM differs from TFLite on one clip.
        "tiny_conv": [_fake_result(tmp_path, "tiny_conv", 0, labels, _mask(80), _mask(78),
                                   macs=300, float_accuracy=0.80, int8_accuracy=0.78,
                                   identical=99)],
    }
    rows = [bench.aggregate(m, r) for m, r in results.items()]
    targets = bench.evaluate_targets(rows, results)
    # twin (p = 2 / 2**18), repcnn >= 0.87, BC-ResNets absent, ds_cnn, int8 drop, no stream.
    assert [t["met"] for t in targets] == [True, True, None, None, False, False, None, None]
    assert targets[0]["tflm"]["relative_error_reduction"] == pytest.approx(6 / 11)
    assert targets[0]["tflm"]["mcnemar"]["a_only"] == 6 + 6 + 6
    assert "(>= 30%: True" in targets[0]["detail"]
    assert "MAC ratio 0.300" in targets[4]["detail"]  # cheap enough, but less accurate
    assert "tiny_conv drop up to 2.00 points" in targets[5]["detail"]
    assert "99 of 100" in targets[5]["detail"]


@pytest.mark.parametrize("bc_correct,arena,latency,met", [
    ((95, 94, 96), 14000, 10.0, True),    # as accurate, 2x the arena, 10x the latency
    ((99, 99, 99), 14000, 10.0, False),   # significantly more accurate (12 vs 0 clips)
    ((95, 94, 96), 13000, 10.0, False),   # arena ratio 1.86
    ((95, 94, 96), 14000, 9.0, False),    # runtime ratio 9
])
def test_bc_resnet_claim(tmp_path, bc_correct, arena, latency, met):
    labels = np.arange(100) % 12
    results = {
        "repcnn": [_fake_result(tmp_path, "repcnn", s, labels, _mask(c), _mask(c), latency=1.0)
                   for s, c in enumerate((96, 95, 94))],
        "bc_resnet-1": [_fake_result(tmp_path, "bc_resnet-1", s, labels, _mask(c), _mask(c),
                                     arena=arena, latency=latency)
                        for s, c in enumerate(bc_correct)],
    }
    rows = [bench.aggregate(m, r) for m, r in results.items()]
    claim = bench.evaluate_targets(rows, results)[2]
    assert claim["name"].startswith("repcnn vs bc_resnet-1") and claim["met"] is met
    assert claim["arena_ratio"] == pytest.approx(arena / 7000)
    assert claim["cost_ratio"] == pytest.approx(latency)
    assert claim["cost_measure"] == "host_latency"
    # With the emulated M4's instruction counts, they decide the runtime ratio.
    rows[0]["m4_invoke_instructions"], rows[1]["m4_invoke_instructions"] = 1_000_000, 9_000_000
    claim = bench.evaluate_targets(rows, results)[2]
    assert claim["cost_measure"] == "m4_instructions" and claim["cost_ratio"] == pytest.approx(9)
    assert claim["met"] is False and "M4 instructions per inference 1,000,000 vs 9,000,000" in (
        claim["detail"])


def test_targets_not_evaluated_without_the_models(tmp_path):
    labels = np.arange(10) % 12
    results = {"tiny_conv": [_fake_result(tmp_path, "tiny_conv", 0, labels, _mask(9, 10),
                                          _mask(9, 10))]}
    targets = bench.evaluate_targets([bench.aggregate("tiny_conv", results["tiny_conv"])], results)
    assert [t["met"] for t in targets] == [None, None, None, None, None, True, None, None]


@pytest.mark.parametrize("identical,model_step,step,met", [
    (100, 90_000, 190_000, True),
    (99, 90_000, 190_000, False),    # one clip differs from the whole-window model
    (100, 110_000, 190_000, False),  # the model over 100 k a step
    (100, 90_000, 210_000, False),   # the whole step over 200 k
])
def test_streaming_target(tmp_path, identical, model_step, step, met):
    labels = np.arange(100) % 12
    results = {"repcnn-stream": [dict(_fake_result(tmp_path, "repcnn-stream", 0, labels,
                                                   _mask(90), _mask(90)),
                                      stream_identical=identical)]}
    rows = [bench.aggregate("repcnn-stream", results["repcnn-stream"])]
    assert bench.evaluate_targets(rows, results)[6]["met"] is None  # no M4 columns: not judged
    rows[0].update(m4_model_step_instructions=model_step, m4_step_instructions=step)
    target = bench.evaluate_targets(rows, results)[6]
    assert target["met"] is met and f"identical on {identical} of 100" in target["detail"]


@pytest.mark.parametrize("instructions,correct,arena,met", [
    (2_900_000, (95, 94, 95), 12_000, True),    # +5.5 % cost, 0.33 points below: within 1
    (3_100_000, (95, 94, 95), 12_000, False),   # +12.7 % cost
    (2_900_000, (93, 94, 94), 12_000, False),   # 1.33 points below repcnn
    (2_900_000, (95, 94, 95), 17_000, False),   # arena over 16 KB
])
def test_rep_inceptionnext_target(tmp_path, instructions, correct, arena, met):
    labels = np.arange(100) % 12
    results = {
        "repcnn": [_fake_result(tmp_path, "repcnn", s, labels, _mask(c), _mask(c))
                   for s, c in enumerate((96, 95, 94))],
        "rep_inceptionnext": [_fake_result(tmp_path, "rep_inceptionnext", s, labels, _mask(c),
                                           _mask(c)) for s, c in enumerate(correct)],
        "rep_inceptionnext-single": [_fake_result(tmp_path, "rep_inceptionnext-single", s, labels,
                                                  _mask(90), _mask(90)) for s in range(3)],
    }
    rows = [bench.aggregate(m, r) for m, r in results.items()]
    unjudged = bench.evaluate_targets(rows, results)[7]
    assert unjudged["met"] is None and "multi-branch vs single" in unjudged["detail"]  # no M4
    rows[0].update(m4_invoke_instructions=2_750_000, m4_arena_bytes=7_000)
    rows[1].update(m4_invoke_instructions=instructions, m4_arena_bytes=arena)
    target = bench.evaluate_targets(rows, results)[7]
    assert target["met"] is met
    assert "multi-branch vs single-branch training" in target["detail"]
    assert target["ablation"]["seeds"] == [0, 1, 2]


def _bench(*args, timeout=600):
    # The M4 columns have their own tests (test_m4_cost.py); here they would only add a build.
    env = {k: v for k, v in os.environ.items() if k != "TFLM_ARDUINO_SRC"}
    return subprocess.run([sys.executable, "-m", "tflm_kws.bench", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_bad_flags_are_named(tmp_path):
    result = _bench("--models=repcnn,resnet", f"--output_dir={tmp_path}", f"--work_dir={tmp_path}")
    assert result.returncode != 0
    assert "--models: unknown ['resnet']" in result.stderr and "ds_cnn" in result.stderr
    result = _bench("--train_flags={\"seed\": 1}", f"--output_dir={tmp_path}")
    assert result.returncode != 0 and "--train_flags may not set ['seed']" in result.stderr
    result = _bench(f"--data_dir={tmp_path / 'absent'}", f"--output_dir={tmp_path}")
    assert result.returncode != 0 and "is not a directory" in result.stderr


def test_quick_run_writes_results_and_resumes(tmp_path):
    data_dir = require(SPEECH_COMMANDS)
    out, work = tmp_path / "out", tmp_path / "work"
    # Two models, not the zoo: the verdicts' rules are tested above on made-up rows; this run
    # proves that the real pipeline's rows reach them (bc_resnet-1: residual ADD and PAD ops).
    # Post-training int8 (--qat_epochs=0): QAT's conversion is tested in test_convert, and took
    # two thirds of this test's time (bc_resnet's QAT graph converts in minutes).
    args = ("--quick", "--qat_epochs=0", "--models=repcnn,bc_resnet-1", f"--data_dir={data_dir}",
            f"--output_dir={out}", f"--work_dir={work}")
    first = _bench(*args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    summary = json.loads((out / "results.json").read_text())
    assert summary["command"].startswith("python -m tflm_kws.bench --quick")
    assert summary["machine"]["cpu_cores"] >= 1 and summary["machine"]["cpu_model"]
    assert summary["epochs"] == 1 and summary["qat_epochs"] == 0 and summary["quick"] is True
    assert [row["model"] for row in summary["rows"]] == ["repcnn", "bc_resnet-1"]
    for row in summary["rows"]:
        assert _ROW_KEYS <= set(row), row
        assert row["seeds"] == [0]
        for key in ("float_accuracy", "int8_accuracy", "tflm_accuracy"):
            assert 0.0 <= row[key] <= 1.0
        assert row["tflm_latency_ms"] > 0 and row["arena_bytes"] > 0 and row["macs"] > 0
        assert row["tflm_identical"] == row["test_clips"] > 0
    # Each verdict follows from the rows it judges; those whose models did not run say so.
    by_model = {row["model"]: row for row in summary["rows"]}
    rep = by_model["repcnn"]
    assert summary["targets"][1]["met"] == (rep["tflm_accuracy"] >= bench.TARGET_REPCNN_ACCURACY)
    for twin_or_ds in (0, 4):
        assert summary["targets"][twin_or_ds]["met"] is None
    assert summary["targets"][5]["met"] == all(
        row["int8_drop_max"] <= 0.005 and row["tflm_identical"] == row["test_clips"]
        for row in summary["rows"])
    bc = by_model["bc_resnet-1"]
    assert summary["targets"][2]["arena_ratio"] == pytest.approx(
        bc["arena_bytes"] / rep["arena_bytes"])
    assert summary["targets"][3]["met"] is None  # bc_resnet-3 not run
    assert {"ADD", "PAD"} <= set(bc["ops"])
    markdown = (out / "results.md").read_text()
    assert "| repcnn | 1 |" in markdown and "## Targets" in markdown
    assert_is_plot(out / "accuracy_vs_macs.png")

    # A second invocation reuses every finished run instead of training again.
    finished = {p: p.stat().st_mtime_ns for p in work.rglob("result_qat0.json")}
    assert len(finished) == 2
    second = _bench(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in work.rglob("result_qat0.json")} == finished
    assert "[experiment] training" not in second.stdout
    assert "[experiment] converting" not in second.stdout
    rerun = json.loads((out / "results.json").read_text())
    assert rerun["rows"] == summary["rows"]
