"""Paired statistics of the benchmark and the study (tflm_kws.experiment), on known values."""
import fractions
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tflm_kws import experiment


def _two_sided_p_by_enumeration(k, n):
    """Sum of the probabilities of all outcomes at most as likely as k (exact, Fractions)."""
    probability = [fractions.Fraction(math.comb(n, i), 2 ** n) for i in range(n + 1)]
    return float(min(1, sum(p for p in probability if p <= probability[k])))


def test_binomial_p_known_values():
    assert experiment.binomial_two_sided_p(0, 5) == pytest.approx(2 / 32)
    assert experiment.binomial_two_sided_p(1, 10) == pytest.approx(2 * 11 / 1024)
    # Exact McNemar for 10 vs 2 discordant pairs: 2 * (1 + 12 + 66) / 4096.
    assert experiment.binomial_two_sided_p(2, 12) == pytest.approx(0.03857421875)
    assert experiment.binomial_two_sided_p(5, 10) == 1.0
    assert experiment.binomial_two_sided_p(0, 0) == 1.0
    # Three seeds all on one side: the smallest p a 3-seed sign test can give.
    assert experiment.binomial_two_sided_p(3, 3) == pytest.approx(0.25)


def test_binomial_p_large_n_is_finite_and_tiny():
    p = experiment.binomial_two_sided_p(100, 1000)
    assert 0.0 <= p < 1e-100


@given(st.integers(min_value=1, max_value=60), st.data())
def test_binomial_p_matches_enumeration_and_is_symmetric(n, data):
    k = data.draw(st.integers(min_value=0, max_value=n))
    p = experiment.binomial_two_sided_p(k, n)
    assert p == pytest.approx(_two_sided_p_by_enumeration(k, n), rel=1e-12)
    assert p == experiment.binomial_two_sided_p(n - k, n)


@pytest.mark.parametrize("k,n", [(-1, 3), (4, 3), (0, -1)])
def test_binomial_p_rejects_bad_counts(k, n):
    with pytest.raises(ValueError, match="0 <= k <= n"):
        experiment.binomial_two_sided_p(k, n)


def test_mcnemar_counts_discordant_pairs():
    a = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0], dtype=bool)
    b = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0], dtype=bool)
    result = experiment.mcnemar_exact(a, b)
    assert (result["a_only"], result["b_only"]) == (10, 2)
    assert result["p_value"] == pytest.approx(0.03857421875)
    with pytest.raises(ValueError, match="differ in length"):
        experiment.mcnemar_exact(a, b[:-1])


def test_sign_test_drops_ties():
    result = experiment.sign_test([0.9, 0.8, 0.85], [0.8, 0.8, 0.7])
    assert (result["wins"], result["losses"], result["ties"]) == (2, 0, 1)
    assert result["p_value"] == pytest.approx(0.5)


def test_summarize_and_relative_error_reduction():
    summary = experiment.summarize([0.8, 0.9, 1.0])
    assert summary["mean"] == pytest.approx(0.9)
    assert summary["std"] == pytest.approx(0.1)  # sample std (ddof=1)
    assert (summary["min"], summary["max"], summary["n"]) == (0.8, 1.0, 3)
    assert experiment.summarize([0.5])["std"] == 0.0
    assert experiment.relative_error_reduction(0.9, 0.8) == pytest.approx(0.5)
    assert experiment.relative_error_reduction(0.7, 0.8) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="undefined"):
        experiment.relative_error_reduction(0.9, 1.0)


def _fake_result(tmp_path, name, labels, predictions):
    run_dir = tmp_path / name
    run_dir.mkdir()
    np.savez(run_dir / "predictions.npz", test_labels=labels, val_labels=labels,
             float_test=predictions, float_val=predictions)
    return {"run_dir": str(run_dir), "predictions": str(run_dir / "predictions.npz")}


def test_paired_comparison_pools_clips_over_seeds(tmp_path):
    labels = np.arange(10) % 3
    wrong = (labels + 1) % 3
    rep = [_fake_result(tmp_path, "rep0", labels, np.where(np.arange(10) < 9, labels, wrong)),
           _fake_result(tmp_path, "rep1", labels, np.where(np.arange(10) < 8, labels, wrong))]
    twin = [_fake_result(tmp_path, "twin0", labels, np.where(np.arange(10) < 6, labels, wrong)),
            _fake_result(tmp_path, "twin1", labels, np.where(np.arange(10) < 7, labels, wrong))]
    cmp = experiment.paired_comparison(rep, twin, "float_test")
    assert cmp["accuracy"]["mean"] == pytest.approx(0.85)
    assert cmp["baseline_accuracy"]["mean"] == pytest.approx(0.65)
    assert cmp["relative_error_reduction"] == pytest.approx((0.35 - 0.15) / 0.35)
    assert cmp["beyond_seed_spread"]  # rep errors {0.1, 0.2} all below twin errors {0.4, 0.3}
    assert (cmp["mcnemar"]["a_only"], cmp["mcnemar"]["b_only"]) == (3 + 1, 0)
    assert cmp["mcnemar"]["p_value"] == pytest.approx(2 / 16)
    assert (cmp["sign_test"]["wins"], cmp["sign_test"]["losses"]) == (2, 0)


def test_paired_comparison_refuses_different_test_clips(tmp_path):
    a = _fake_result(tmp_path, "a", np.array([0, 1, 2]), np.array([0, 1, 2]))
    b = _fake_result(tmp_path, "b", np.array([0, 1, 1]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="same clips"):
        experiment.paired_comparison([a], [b])
    # Same labels, different clips (e.g. other silence clips): refused as well.
    c = _fake_result(tmp_path, "c", np.array([0, 1, 2]), np.array([0, 1, 2]))
    a["test_features_sha1"], c["test_features_sha1"] = "1" * 40, "2" * 40
    with pytest.raises(ValueError, match="same clips"):
        experiment.paired_comparison([a], [c])


def test_merge_train_flags_merges_data_params():
    merged = experiment.merge_train_flags({"data_params": {"a": 1, "b": 2}, "weight_decay": 0.1},
                                          {"data_params": {"b": 3}, "batch_size": 50})
    assert merged == {"data_params": {"a": 1, "b": 3}, "weight_decay": 0.1, "batch_size": 50}


def test_experiment_run_dir_depends_on_recipe_not_on_seed(tmp_path):
    base = experiment.Experiment(model="cnn", hparams={"dropout": 0.1}, seed=0, epochs=3)
    converted = experiment.Experiment(model="cnn", hparams={"dropout": 0.1}, seed=0, epochs=3,
                                      qat_epochs=2)
    # Conversion is not part of the training recipe: both measure the same trained model.
    assert base.run_dir(tmp_path) == converted.run_dir(tmp_path)
    assert (base.stage(), converted.stage()) == ("float", "qat2")
    other_seed = experiment.Experiment(model="cnn", hparams={"dropout": 0.1}, seed=1, epochs=3)
    other_recipe = experiment.Experiment(model="cnn", hparams={"dropout": 0.2}, seed=0, epochs=3)
    assert base.recipe_hash() == other_seed.recipe_hash() != other_recipe.recipe_hash()
    assert base.run_dir(tmp_path) != other_seed.run_dir(tmp_path)
    argv = experiment.train_argv(
        experiment.Experiment(model="cnn", hparams={}, seed=2, epochs=1,
                              train_flags={"data_params": {"x": 1}, "resume": True}),
        "/out", "/cache")
    assert "--data_params={\"x\": 1}" in argv and "--resume=true" in argv
    assert "--seed=2" in argv and "--model=cnn" in argv and "--output_dir=/out" in argv


def test_recipe_hash_uses_effective_hyper_parameters():
    # dropout 0.1 is cnn's default: spelled out or left to the default, it is the same recipe,
    # so a changed default can never reuse runs trained under the old one.
    implicit = experiment.Experiment(model="cnn", hparams={}, seed=0, epochs=3)
    explicit = experiment.Experiment(model="cnn", hparams={"dropout": 0.1}, seed=0, epochs=3)
    assert implicit.recipe_hash() == explicit.recipe_hash()
