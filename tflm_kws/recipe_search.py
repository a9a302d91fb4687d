r"""The training-recipe search: which recipe trains each zoo model best, judged on validation only.

  python -m tflm_kws.recipe_search      # every candidate on 1 seed, then the best 2 per model on 3
  python -m tflm_kws.recipe_search --candidates=repcnn_e80,cnn_e80 --finalists=0
  python -m tflm_kws.recipe_search --quick --output_dir=/tmp/search_quick   # smoke run (minutes)

Each candidate is a complete recipe (epochs and every training flag spelled out over
`recipes.BASE_RECIPE`, the defaults the project had before this search), so what a candidate
means never changes when the defaults change. Every candidate is trained on the training split
and measured on the **validation split only** (float accuracy of the fused deploy graph: fusion is
exact, and the benchmark shows what int8 costs); the report never shows test figures, so nothing
here can be tuned on the test split. A first round runs every candidate on --seeds seeds; the
--finalists best of each model run again on --finalist_seeds seeds, and the best finalist is the
model's best. The per-model defaults in `tflm_kws.recipes` are those, and `bench/recipe_search.md`
is the evidence for them. Runs live in --work_dir (the benchmark's), so the benchmark reuses the
finalists' runs, and a killed search continues.
"""
import dataclasses
import json
import os
import time

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from absl import app, flags

from tflm_kws import cli, experiment, markdown, recipes

QUICK_CANDIDATES = ("repcnn_base", "cnn_base")
QUICK_EPOCHS = 1
QUICK_CLIPS_PER_SPLIT = (6, 2, 2)


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One recipe for one model: BASE_RECIPE updated with `changes` ("data_params" merges)."""
    name: str
    model: str
    description: str
    changes: dict = dataclasses.field(default_factory=dict)
    hparams: dict = dataclasses.field(default_factory=dict)

    def recipe(self):
        return experiment.merge_train_flags(recipes.BASE_RECIPE, self.changes)


_MILD_NOISE = {"background_frequency": 0.5, "snr_db_min": 5.0}


def _ladder(model, prefix=None):
    """The levers tried for one model, one at a time over a longer schedule, then combined."""
    p = prefix or model
    e80 = {"epochs": 80}
    return [
        Candidate(f"{p}_base", model, "the old default recipe (30 epochs)"),
        Candidate(f"{p}_e80", model, "80 epochs", e80),
        Candidate(f"{p}_e80_spec_light", model, "80 epochs, SpecAugment 1 x 3 frames, 1 x 2 "
                  "channels (was 2 x 5, 2 x 4)",
                  dict(e80, data_params=recipes.LIGHT_SPECAUGMENT)),
        Candidate(f"{p}_e80_noise_mild", model, "80 epochs, background noise on 50 % of clips at "
                  "5-20 dB (was 80 % at 0-20 dB)", dict(e80, data_params=_MILD_NOISE)),
        Candidate(f"{p}_e80_lr01", model, "80 epochs, peak learning rate 0.01 (was 0.003)",
                  dict(e80, learning_rate=0.01)),
        Candidate(f"{p}_e80_bs50", model, "80 epochs, batch 50 (twice the steps)",
                  dict(e80, batch_size=50)),
        Candidate(f"{p}_e80_wd0", model, "80 epochs, no weight decay", dict(e80, weight_decay=0.0)),
        Candidate(f"{p}_e80_ls01", model, "80 epochs, label smoothing 0.1",
                  dict(e80, label_smoothing=0.1)),
        Candidate(f"{p}_e160", model, "160 epochs", {"epochs": 160}),
    ]


def _short_ladder(model):
    """Fewer levers for a model that trains slower: the schedule, SpecAugment, label smoothing."""
    return [c for c in _ladder(model) if c.name.split(model + "_")[1] in (
        "base", "e80", "e80_spec_light", "e80_ls01", "e160")]


def _combined(model):
    """The levers that helped one at a time (on repcnn and cnn, and the learning rate that helped
    bc_resnet), together."""
    spec_light = {"data_params": recipes.LIGHT_SPECAUGMENT}
    return [
        Candidate(f"{model}_e160_spec_light", model, "160 epochs, light SpecAugment",
                  dict(spec_light, epochs=160)),
        Candidate(f"{model}_e160_spec_light_noise_mild", model, "160 epochs, light SpecAugment, "
                  "mild noise",
                  {"epochs": 160, "data_params": dict(recipes.LIGHT_SPECAUGMENT, **_MILD_NOISE)}),
        Candidate(f"{model}_e80_spec_light_lr01", model, "80 epochs, light SpecAugment, peak "
                  "learning rate 0.01", dict(spec_light, epochs=80, learning_rate=0.01)),
        Candidate(f"{model}_e160_spec_light_lr01", model, "160 epochs, light SpecAugment, peak "
                  "learning rate 0.01", dict(spec_light, epochs=160, learning_rate=0.01)),
    ]


def _bc_resnet_extra():
    """BC-ResNet underfits most (training accuracy 0.71 at 80 epochs): faster and longer."""
    spec_light = {"data_params": recipes.LIGHT_SPECAUGMENT}
    return [
        Candidate("bc_resnet_e80_spec_light_lr01", "bc_resnet", "80 epochs, light SpecAugment, "
                  "peak learning rate 0.01", dict(spec_light, epochs=80, learning_rate=0.01)),
        Candidate("bc_resnet_e160_spec_light", "bc_resnet", "160 epochs, light SpecAugment",
                  dict(spec_light, epochs=160)),
    ]


# bc_resnet's recipe is searched at width 1 and used at every width (width 3 trains ~4x slower).
CANDIDATES = (_ladder("repcnn") + _combined("repcnn") + _ladder("cnn") + _combined("cnn")
              + _short_ladder("bc_resnet") + _bc_resnet_extra())

FLAGS = flags.FLAGS


def define_flags():
    """Registers the command-line flags (__main__ calls it: importing defines none)."""
    flags.DEFINE_list("candidates", None, "Candidates to run (names from CANDIDATES); default: "
                      f"all (with --quick: {', '.join(QUICK_CANDIDATES)}).")
    flags.DEFINE_integer("seeds", 1, "Seeds (0..N-1) per candidate.", lower_bound=1)
    flags.DEFINE_integer("finalists", 2, "Per model, this many candidates with the best mean "
                         "validation accuracy are run again with --finalist_seeds seeds; the "
                         "best finalist is the model's best. 0: no second round.", lower_bound=0)
    flags.DEFINE_integer("finalist_seeds", 3, "Seeds (0..N-1) of each finalist.", lower_bound=1)
    experiment.define_run_flags("recipe_search.md and recipe_search.json")
    flags.DEFINE_bool("quick", False, "Smoke run: 1 epoch, a few clips per word; writes to "
                      "--output_dir/--work_dir when given, else to a new temp directory (never "
                      "bench/).")


def run_candidate(candidate, seeds, data_dir, work_dir, cache_dir, epochs=None, extra_flags=None):
    """Trains a candidate on every seed (float, no conversion); returns its report entry."""
    recipe = experiment.merge_train_flags(candidate.recipe(), extra_flags or {})
    recipe_epochs = int(epochs or recipe.pop("epochs"))
    recipe.pop("epochs", None)
    entry = {"name": candidate.name, "model": candidate.model,
             "description": candidate.description, "hparams": candidate.hparams,
             "changes": candidate.changes, "epochs": recipe_epochs, "train_flags": recipe,
             "seeds": list(seeds)}
    rows = []
    for seed in seeds:
        exp = experiment.Experiment(model=candidate.model, hparams=candidate.hparams, seed=seed,
                                    epochs=recipe_epochs, data_dir=data_dir, train_flags=recipe,
                                    qat_epochs=None)
        print(f"[recipe_search] {candidate.name}: seed {seed}", flush=True)
        try:
            rows.append(experiment.run(exp, work_dir, cache_dir))
        except RuntimeError as e:
            entry.update(status="failed", error=str(e))
            return entry
    entry.update(status="done",
                 val_accuracy=experiment.summarize([r["fused_val_accuracy"] for r in rows]),
                 train_seconds=experiment.summarize([r["train_seconds"] for r in rows]),
                 params=rows[0]["params"], macs=rows[0]["macs"],
                 runs=[r["run_dir"] for r in rows])
    return entry


def finalists(entries, count):
    """model -> names of its `count` candidates with the highest mean validation accuracy (ties:
    the one listed first)."""
    by_model = {}
    for e in entries:
        if e["status"] == "done":
            by_model.setdefault(e["model"], []).append(e)
    return {model: [e["name"] for e in sorted(done, key=lambda e: -e["val_accuracy"]["mean"])
                    [:count]] for model, done in by_model.items()}


def best_per_model(entries):
    """model -> name of its candidate with the highest mean validation accuracy, among its
    finalists when there was a second round."""
    best = {}
    final_round = any(e.get("finalist") for e in entries)
    for e in entries:
        if e["status"] != "done" or (final_round and not e.get("finalist")):
            continue
        current = best.get(e["model"])
        if current is None or e["val_accuracy"]["mean"] > current["val_accuracy"]["mean"]:
            best[e["model"]] = e
    return {model: e["name"] for model, e in best.items()}


def search_markdown(report):
    lines = markdown.header(
        "Training-recipe search (validation split only)", report["command"], report["machine"],
        f"`{report['data_dir']}`; seeds {report['seeds']}", report["wall_seconds"],
        details=[f"Base recipe: `{json.dumps(recipes.BASE_RECIPE, sort_keys=True)}`"],
        wall_note=" (runs reused from an earlier invocation are not counted)")
    lines += ["Float accuracy of the fused deploy graph on the **validation** split, % (mean ± "
              "sample std over seeds when more than one). The test split is not reported here: "
              "the defaults in `tflm_kws/recipes.py` are chosen from this table, and the "
              "benchmark reads the test split once, with them. Train s: wall time of one "
              "training run on this machine.", "",
              "| candidate | model | what changes | epochs | seeds | val % | train s |",
              "|---|---|---|---:|---:|---:|---:|"]
    best = set(best_per_model(report["candidates"]).values())
    for e in report["candidates"]:
        if e["status"] != "done":
            lines.append(f"| {e['name']} | {e['model']} | {e['description']} | {e['epochs']} | "
                         f"| {e['status']}: {e.get('error', '')[:80]} | |")
            continue
        v, t = e["val_accuracy"], e["train_seconds"]
        spread = f" ± {100 * v['std']:.2f}" if v["n"] > 1 else ""
        name = f"**{e['name']}**" if e["name"] in best else e["name"]
        name += " (finalist)" if e.get("finalist") else ""
        lines.append(f"| {name} | {e['model']} | {e['description']} | {e['epochs']} | "
                     f"{v['n']} | {100 * v['mean']:.2f}{spread} | {t['mean']:.0f} |")
    lines += ["", "Finalist: among the best candidates of its model on the first round's seeds, "
              "run again with more seeds; bold: the best finalist of its model (the model's "
              "default recipe)."]
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.quiet_unless_verbose(FLAGS)
    by_name = {c.name: c for c in CANDIDATES}
    names = experiment.selected_names("candidates", FLAGS.candidates, list(by_name),
                                      QUICK_CANDIDATES, FLAGS.quick)
    if cli.json_object(FLAGS.train_flags, "train_flags"):
        raise app.UsageError("--train_flags: a candidate is a whole recipe; add a Candidate to "
                             "CANDIDATES instead")
    data_dir = experiment.checked_data_dir(FLAGS)
    output_dir, work_dir, epochs, extra = FLAGS.output_dir, FLAGS.work_dir, None, None
    if FLAGS.quick:
        output_dir, work_dir = experiment.quick_dirs(FLAGS, "tflm_kws_recipe_search_quick_")
        epochs, extra = QUICK_EPOCHS, {"data_params": {"augment_variants": 1}}
        data_dir = experiment.make_data_subset(data_dir, os.path.join(work_dir, "data_subset"),
                                               QUICK_CLIPS_PER_SPLIT)
    cache_dir = FLAGS.cache_dir or os.path.join(work_dir, "cache")
    seeds = list(range(FLAGS.seeds))
    start = time.time()
    report = {"command": experiment.entry_point_command("tflm_kws.recipe_search"),
              "machine": experiment.machine_description(), "data_dir": data_dir,
              "work_dir": os.path.abspath(work_dir), "seeds": seeds,
              "selection": "validation split", "quick": bool(FLAGS.quick), "candidates": []}
    def record():  # after every run, so an interrupted search still reports what it has
        report["wall_seconds"] = time.time() - start
        report["best"] = best_per_model(report["candidates"])
        experiment.write_report(output_dir, "recipe_search", report, search_markdown(report))

    for name in names:
        report["candidates"].append(run_candidate(by_name[name], seeds, data_dir, work_dir,
                                                  cache_dir, epochs, extra))
        record()
    # Second round: one seed says little on a ~480-clip validation split (+-1.5 points).
    finalist_seeds = list(range(FLAGS.finalist_seeds))
    report["finalist_seeds"] = finalist_seeds
    for model, chosen in finalists(report["candidates"], FLAGS.finalists).items():
        for name in chosen:
            index = [e["name"] for e in report["candidates"]].index(name)
            entry = run_candidate(by_name[name], finalist_seeds, data_dir, work_dir, cache_dir,
                                  epochs, extra)
            report["candidates"][index] = dict(entry, finalist=True)
            record()
    print(search_markdown(report))
    print(f"[recipe_search] wrote {output_dir}/recipe_search.md and recipe_search.json")
    return 1 if any(e["status"] == "failed" for e in report["candidates"]) else 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
