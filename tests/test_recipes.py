"""Per-model default recipes: what training uses when an option is not given, that each default is
a recipe-search candidate that won on validation, and the search report never shows test figures."""
import json
import pathlib

import pytest

from tflm_kws import models, recipe_search, recipes, training

REPO = pathlib.Path(__file__).resolve().parents[1]
SEARCH_JSON = REPO / "bench" / "recipe_search.json"


@pytest.mark.parametrize("model", sorted(models.MODELS))
def test_training_defaults_are_the_models_recipe(model):
    recipe = recipes.recipe(model)
    config = training.config_from_options("/tmp/unused", model=model)
    for name in recipes.TRAINING_OPTIONS:
        assert getattr(config, name) == recipe[name], name
    data = config.data_spec.to_dict()
    for name in recipes.DATA_OPTIONS:
        assert data[name] == recipe["data_params"][name], name


def test_given_options_win_key_by_key():
    recipe = recipes.recipe("repcnn")
    config = training.config_from_options(
        "/tmp/unused", model="repcnn", epochs=3, learning_rate=None,
        data_params={"time_masks": 0})
    assert config.epochs == 3  # given
    assert config.learning_rate == recipe["learning_rate"]  # None: the recipe's
    assert config.data_spec.time_masks == 0
    assert config.data_spec.freq_masks == recipe["data_params"]["freq_masks"]


def test_recipes_only_set_known_options():
    for model in models.MODELS:
        recipe = recipes.recipe(model)
        assert set(recipe) == set(recipes.TRAINING_OPTIONS) | {"data_params"}
        assert set(recipe["data_params"]) == set(recipes.DATA_OPTIONS)


def test_every_searched_default_is_the_searchs_best_candidate_on_validation():
    """A default recipe is a finding: a search candidate, and the best of its model in the
    committed report (which lists validation accuracy only)."""
    by_recipe = {}
    for candidate in recipe_search.CANDIDATES:
        by_recipe.setdefault(candidate.model, []).append(candidate)
    report = json.loads(SEARCH_JSON.read_text()) if SEARCH_JSON.exists() else None
    for model in models.MODELS:
        if not recipes.searched(model):
            continue
        matching = [c.name for c in by_recipe.get(model, []) if c.recipe() == recipes.recipe(model)]
        assert matching, f"{model}'s default recipe is no recipe_search candidate"
        assert report is not None, f"{SEARCH_JSON} is missing"
        assert report["best"][model] in matching, (model, report["best"][model], matching)
    if report is not None:
        text = json.dumps(report)
        assert "test_accuracy" not in text and "fused_test" not in text
        assert "test" not in (REPO / "bench" / "recipe_search.md").read_text().split(
            "| candidate |")[1].lower().replace("the test split", "")


def test_candidates_are_unique_and_complete():
    names = [c.name for c in recipe_search.CANDIDATES]
    assert len(names) == len(set(names))
    for candidate in recipe_search.CANDIDATES:
        recipe = candidate.recipe()
        assert set(recipe) == set(recipes.TRAINING_OPTIONS) | {"data_params"}, candidate.name
        assert candidate.model in models.MODELS


def test_quick_search_reports_validation_only_and_reuses_runs(tmp_path):
    import subprocess
    import sys
    from conftest import SPEECH_COMMANDS, require
    data_dir = require(SPEECH_COMMANDS)
    out, work = tmp_path / "out", tmp_path / "work"
    args = [sys.executable, "-m", "tflm_kws.recipe_search", "--quick", f"--data_dir={data_dir}",
            f"--output_dir={out}", f"--work_dir={work}", "--finalists=1", "--finalist_seeds=2"]
    first = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    report = json.loads((out / "recipe_search.json").read_text())
    assert [e["name"] for e in report["candidates"]] == list(recipe_search.QUICK_CANDIDATES)
    assert report["selection"] == "validation split"
    assert set(report["best"]) == {"repcnn", "cnn"}
    for entry in report["candidates"]:
        assert entry["status"] == "done" and 0.0 <= entry["val_accuracy"]["mean"] <= 1.0
        # One candidate per model: each is its model's finalist, run on 2 seeds.
        assert entry["finalist"] and entry["seeds"] == [0, 1] and entry["val_accuracy"]["n"] == 2
    assert report["best"] == {"repcnn": "repcnn_base", "cnn": "cnn_base"}
    assert "test_accuracy" not in json.dumps(report)
    second = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0 and "[experiment] training" not in second.stdout
    bad = subprocess.run(args[:3] + ["--candidates=repcnn_nope"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and "--candidates: unknown ['repcnn_nope']" in bad.stderr


def test_finalists_and_best_are_chosen_on_validation_means():
    def entry(name, model, mean, finalist=False):
        return {"name": name, "model": model, "status": "done", "finalist": finalist,
                "val_accuracy": {"mean": mean}}
    first = [entry("a", "m", 0.80), entry("b", "m", 0.85), entry("c", "m", 0.85),
             entry("d", "n", 0.70), {"name": "e", "model": "m", "status": "failed"}]
    assert recipe_search.finalists(first, 2) == {"m": ["b", "c"], "n": ["d"]}  # ties: listed first
    assert recipe_search.best_per_model(first) == {"m": "b", "n": "d"}
    # After the second round only finalists count, by their (more-seed) means.
    second = [entry("a", "m", 0.90), entry("b", "m", 0.84, True), entry("c", "m", 0.86, True),
              entry("d", "n", 0.71, True)]
    assert recipe_search.best_per_model(second) == {"m": "c", "n": "d"}
