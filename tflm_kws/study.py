r"""The over-parameterization study: which training-time forms make the same deploy graph better?

  python -m tflm_kws.study                       # every configuration of CONFIGS, 3 seeds each
  python -m tflm_kws.study --configs=baseline,copies_k2
  python -m tflm_kws.study --quick --output_dir=/tmp/study_quick   # smoke run (minutes)

Every configuration trains `repcnn` in some over-parameterized form and its uni-branch twin `cnn`
(the same hyper-parameters minus the training-only ones: the same deploy graph, checked before
training) with the same recipe and the same seeds. Reported per configuration: mean and spread
over seeds on the validation and the testing split, relative error reduction, an exact McNemar test
on per-clip outcomes (pooled over seed pairs) and a sign test over seeds. The best configuration
is *selected on validation*; the testing split only reports.

Conversion is skipped: the float accuracy of the fused plain graph is exactly the deploy graph's
float accuracy (fusion is exact), and the benchmark shows what int8 costs. A configuration whose
knob training or the models do not have is not run; the report lists it with the missing knob.
Runs live in --work_dir (the benchmark's, by default) and are reused, so a killed study continues
where it stopped.
"""
import dataclasses
import inspect
import json
import os
import time

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from absl import app, flags

from tflm_kws import cli, experiment, markdown, recipes

REP_MODEL, TWIN_MODEL = "repcnn", "cnn"
# Hyper-parameters that shape only the training form; the twin is built without them.
TRAINING_FORM_HPARAMS = ("branches", "identity", "num_copies", "expansion")
TARGET_ERROR_REDUCTION = 0.30
SIGNIFICANCE = 0.05
QUICK_CONFIGS = ("baseline", "copies_k2", "mixup")
QUICK_EPOCHS = 1
QUICK_CLIPS_PER_SPLIT = (6, 2, 2)


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """One configuration: repcnn's training form and recipe; the twin gets the same recipe.

    hparams: repcnn hyper-parameters over BASE_HPARAMS.
    train_flags: training.train flags for both sides; "data_params" is merged into the study's.
    epochs_factor: epochs = round(--epochs * epochs_factor).
    """
    name: str
    axis: str
    description: str
    hparams: dict = dataclasses.field(default_factory=dict)
    train_flags: dict = dataclasses.field(default_factory=dict)
    epochs_factor: float = 1.0


# The design every configuration varies: repcnn as first written, before this study chose its
# default. Spelled out so that a later change of repcnn's defaults (the study's own outcome
# included) never changes what a configuration here means, or which runs it reuses.
BASE_HPARAMS = {"channels": 30, "strides": [1, 2, 1, 1], "kernel_size": [7, 1],
                "branches": [[7, 1], [5, 1], [3, 1], [1, 1]], "identity": True, "num_copies": 1,
                "expansion": None, "dropout": 0.1}

# Every configuration tried. Add new ones here; --configs selects by name. repcnn's default form
# (temporal 7/5/3/1 + identity, K=1, no expansion) is `baseline`. Its convs are temporal (k, 1)
# over a (49, 1, 40) time-major tensor, so 2-D (ACNet 3x3 + 1x3 + 3x1) branch sets do not apply.
CONFIGS = [
    StudyConfig("baseline", "reference", "repcnn's default: temporal 7/5/3/1 + identity"),
    # Branch set.
    StudyConfig("branches_73_identity", "branch set", "temporal 7/3 + identity",
                {"branches": [[7, 1], [3, 1]]}),
    StudyConfig("branches_71_identity", "branch set", "7 + 1x1 + identity (RepVGG-style)",
                {"branches": [[7, 1], [1, 1]]}),
    StudyConfig("branches_7_identity", "branch set",
                "the deploy kernel alone + identity (BatchNorm-only over-parameterization)",
                {"branches": [[7, 1]]}),
    # Identity on / off (default branches).
    StudyConfig("identity_off", "identity", "temporal 7/5/3/1, no identity branch",
                {"identity": False}),
    # K parallel copies of every branch (MobileOne).
    StudyConfig("copies_k2", "copies K", "K=2 copies of every branch", {"num_copies": 2}),
    StudyConfig("copies_k4", "copies K", "K=4 copies of every branch", {"num_copies": 4}),
    # Linear expansion of every branch (ExpandNets).
    StudyConfig("expansion_2", "linear expansion", "1x1 expand x2 -> kx1 -> 1x1 project",
                {"expansion": 2}),
    StudyConfig("expansion_4", "linear expansion", "1x1 expand x4 -> kx1 -> 1x1 project",
                {"expansion": 4}),
    StudyConfig("copies_k2_expansion_2", "copies K + expansion", "K=2 and expansion x2",
                {"num_copies": 2, "expansion": 2}),
    # Regularization (both sides alike).
    StudyConfig("dropout_0", "regularization", "no dropout (default 0.1)", {"dropout": 0.0}),
    StudyConfig("dropout_0.3", "regularization", "dropout 0.3 (default 0.1)", {"dropout": 0.3}),
    StudyConfig("weight_decay_0", "regularization", "no weight decay (default 0.01)",
                train_flags={"weight_decay": 0.0}),
    StudyConfig("weight_decay_0.05", "regularization", "AdamW weight decay 0.05 (default 0.01)",
                train_flags={"weight_decay": 0.05}),
    StudyConfig("specaugment_off", "regularization", "no SpecAugment masks (default 2 x 5 "
                "frames, 2 x 4 channels)",
                train_flags={"data_params": {"time_masks": 0, "freq_masks": 0}}),
    StudyConfig("specaugment_strong", "regularization",
                "SpecAugment 2 x 10 frames, 2 x 8 channels",
                train_flags={"data_params": {"time_mask_max_frames": 10,
                                             "freq_mask_max_channels": 8}}),
    StudyConfig("mixup", "regularization", "mixup, alpha 0.2", train_flags={"mixup_alpha": 0.2}),
    # Epochs.
    StudyConfig("epochs_x2", "epochs", "twice the epochs", epochs_factor=2.0),
    StudyConfig("copies_k2_epochs_x2", "epochs", "K=2 copies, twice the epochs",
                {"num_copies": 2}, epochs_factor=2.0),
    # Synthetic speech (espeak-ng) mixed into the real training clips.
    StudyConfig("synthetic_mix", "synthetic speech",
                "as many synthetic clips as real ones mixed into training",
                train_flags={"data_params": {"synthetic_fraction": 1.0}}),
]

FLAGS = flags.FLAGS


def define_flags():
    """Registers the command-line flags (__main__ calls it: importing defines none, so this
    module can be imported beside other entry points)."""
    flags.DEFINE_list("configs", None, "Configurations to run (names from CONFIGS); default: all "
                      f"(with --quick: {', '.join(QUICK_CONFIGS)}).")
    flags.DEFINE_integer("seeds", 3, "Seeds (0..N-1) per configuration and twin.", lower_bound=1)
    flags.DEFINE_integer("epochs", 40, "Training epochs of the recipe (times epochs_factor), "
                         "over tflm_kws.recipes.BASE_RECIPE (the benchmark's recipe when the "
                         "study was first run).", lower_bound=1)
    experiment.define_run_flags("overparam_study.md and overparam_study.json")
    flags.DEFINE_bool("quick", False, "Smoke run: 1 epoch, 1 seed, a few clips per word; writes to "
                      "--output_dir/--work_dir when given, else to a new temp directory (never "
                      "bench/).")


def twin_hparams(hparams):
    return {k: v for k, v in hparams.items() if k not in TRAINING_FORM_HPARAMS}


def missing_knobs(config):
    """What `config` needs that the models or training lack, as readable strings."""
    from tflm_kws import data, models
    missing = []
    for model, hparams in ((REP_MODEL, config.hparams), (TWIN_MODEL, twin_hparams(config.hparams))):
        parameters = inspect.signature(models.MODELS[model]).parameters
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            missing += [f"model '{model}' has no hyper-parameter '{name}'"
                        for name in sorted(set(hparams) - set(parameters))]
    from tflm_kws import training
    for name, value in sorted(config.train_flags.items()):
        if name not in training.OPTION_NAMES:
            missing.append(f"training.train has no --{name} flag")
        elif name == "data_params":
            fields = {f.name for f in dataclasses.fields(data.DataSpec)}
            missing += [f"tflm_kws.data.DataSpec has no field '{key}' (--data_params)"
                        for key in sorted(set(value) - fields)]
    return missing


def deploy_graph_signature(model_name, hparams):
    """[(layer class, weight shapes)] of the model's deploy graph, for an identity check.

    Built for micro_speech's feature shape and the 12-class task: the check is about the conv
    stack, which the input and class count shape alike on both sides.
    """
    from tflm_kws import frontend, models, reparameterize
    model = models.build(model_name, (*frontend.FrontendConfig().feature_shape, 1), 12, **hparams)
    deploy = reparameterize(model)
    return [(type(layer).__name__, [list(w.shape) for w in layer.get_weights()])
            for layer in deploy.layers if layer.get_weights()]


def run_config(config, seeds, epochs, data_dir, base_train_flags, work_dir, cache_dir):
    """Trains a configuration and its twin on every seed; returns its report entry."""
    train_flags = experiment.merge_train_flags(base_train_flags, config.train_flags)
    config_epochs = max(1, int(round(epochs * config.epochs_factor)))
    rep_hparams = dict(BASE_HPARAMS, **config.hparams)
    entry = {"name": config.name, "axis": config.axis, "description": config.description,
             "hparams": config.hparams, "twin_hparams": twin_hparams(rep_hparams),
             "train_flags": train_flags, "epochs": config_epochs, "seeds": list(seeds)}
    missing = missing_knobs(config)
    if missing:
        entry.update(status="missing knob", missing=missing)
        return entry
    try:
        rep_graph = deploy_graph_signature(REP_MODEL, rep_hparams)
        twin_graph = deploy_graph_signature(TWIN_MODEL, entry["twin_hparams"])
    except ValueError as e:  # a hyper-parameter value the model refuses
        entry.update(status="invalid configuration", missing=[str(e)])
        return entry
    if rep_graph != twin_graph:
        entry.update(status="deploy graph differs",
                     missing=[f"repcnn deploys {rep_graph}, cnn deploys {twin_graph}"])
        return entry
    sides = {}
    for side, model, hparams in (("rep", REP_MODEL, rep_hparams),
                                 ("twin", TWIN_MODEL, entry["twin_hparams"])):
        sides[side] = []
        for seed in seeds:
            exp = experiment.Experiment(model=model, hparams=hparams, seed=seed,
                                        epochs=config_epochs, data_dir=data_dir,
                                        train_flags=train_flags, qat_epochs=None)
            print(f"[study] {config.name}: {model} seed {seed}", flush=True)
            try:
                sides[side].append(experiment.run(exp, work_dir, cache_dir))
            except RuntimeError as e:
                entry.update(status="failed", error=str(e))
                return entry
    rep, twin = sides["rep"], sides["twin"]
    entry.update(
        status="done",
        params=rep[0]["params"], macs=rep[0]["macs"], train_params=rep[0]["train_params"],
        twin_params=twin[0]["params"], twin_macs=twin[0]["macs"],
        validation=experiment.paired_comparison(rep, twin, "float_val"),
        test=experiment.paired_comparison(rep, twin, "float_test"),
        train_seconds={"rep": experiment.summarize([r["train_seconds"] for r in rep]),
                       "twin": experiment.summarize([r["train_seconds"] for r in twin])},
        runs={"rep": [r["run_dir"] for r in rep], "twin": [r["run_dir"] for r in twin]},
        # Distinct test sets (the data's _unknown_/_silence_ picks follow the seed).
        test_sets=len({r["test_features_sha1"] for r in rep + twin}))
    return entry


def conclusion(entries):
    """Selection on validation, verdict on test: a data-derived summary (dict with "text")."""
    done = [e for e in entries if e["status"] == "done"]
    if not done:
        return {"best_by_validation": None, "target_met": False,
                "text": "No configuration finished; nothing to conclude."}
    best = max(done, key=lambda e: e["validation"]["relative_error_reduction"])
    test = best["test"]
    met = (test["relative_error_reduction"] >= TARGET_ERROR_REDUCTION
           and test["beyond_seed_spread"] and test["mcnemar"]["p_value"] < SIGNIFICANCE)
    helped = [e["name"] for e in done if e["test"]["relative_error_reduction"] > 0
              and e["test"]["mcnemar"]["p_value"] < SIGNIFICANCE]
    hurt = [e["name"] for e in done if e["test"]["relative_error_reduction"] < 0
            and e["test"]["mcnemar"]["p_value"] < SIGNIFICANCE]
    lines = [
        f"Best configuration on validation: `{best['name']}` ({best['description']}): validation "
        f"relative error reduction {100 * best['validation']['relative_error_reduction']:+.1f}% "
        f"vs its twin.",
        f"On the testing split it gives {100 * test['relative_error_reduction']:+.1f}% "
        f"(accuracy {100 * test['accuracy']['mean']:.2f}% vs "
        f"{100 * test['baseline_accuracy']['mean']:.2f}%), "
        f"McNemar p = {test['mcnemar']['p_value']:.3g}, seed ranges "
        f"{'do not overlap' if test['beyond_seed_spread'] else 'overlap'}.",
        f"Target (>= {100 * TARGET_ERROR_REDUCTION:.0f}% relative test-error reduction, "
        f"significant, beyond seed spread): {'**met**' if met else '**not met**'}.",
        "Significant on test (McNemar p < 0.05; not a selection, many configurations were tried): "
        f"better: {', '.join(helped) or 'none'}; worse: {', '.join(hurt) or 'none'}.",
    ]
    skipped = [e for e in entries if e["status"] != "done"]
    if skipped:
        reasons = [f"`{e['name']}` ({e['status']}: "
                   f"{'; '.join(e.get('missing') or [e.get('error', '')])})" for e in skipped]
        lines.append("Not run: " + "; ".join(reasons) + ".")
    return {"best_by_validation": best["name"], "target_met": bool(met), "text": "\n".join(lines)}


def _pct(summary):
    if summary["n"] == 1:
        return f"{100 * summary['mean']:.2f}"
    return f"{100 * summary['mean']:.2f} ± {100 * summary['std']:.2f}"


def study_markdown(report):
    lines = markdown.header(
        "Over-parameterization study", report["command"], report["machine"],
        f"`{report['data_dir']}`; seeds {report['seeds']}; base epochs {report['epochs']}; "
        f"base training flags `{json.dumps(report['train_flags'], sort_keys=True)}`",
        report["wall_seconds"])
    lines += [
        "Each configuration trains `repcnn` in an over-parameterized form and its uni-branch twin "
        "`cnn` (identical deploy graph, checked) with the same recipe and seeds. Accuracy of the "
        "fused deploy graph in float (exact fusion; no conversion), % mean ± sample std over "
        "seeds. RER = relative error reduction vs the twin (positive = fewer errors). McNemar: "
        "exact test on per-clip outcomes pooled over seed pairs (rep-only / twin-only correct "
        "clips). Sign test over seeds (3 seeds: p >= 0.25 always). Selection on validation only.",
        "",
        f"Every configuration's repcnn hparams are given over the study's base design "
        f"`{json.dumps(BASE_HPARAMS, sort_keys=True)}` (repcnn as first written).",
        "",
        "| config | axis | val rep % | val twin % | val RER | test rep % | test twin % | test RER "
        "| beyond spread | McNemar p (rep/twin) | sign (w-l) | training params | rep train s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for e in report["configs"]:
        if e["status"] != "done":
            continue
        v, t = e["validation"], e["test"]
        lines.append(
            f"| {e['name']} | {e['axis']} | {_pct(v['accuracy'])} | {_pct(v['baseline_accuracy'])} "
            f"| {100 * v['relative_error_reduction']:+.1f}% | {_pct(t['accuracy'])} | "
            f"{_pct(t['baseline_accuracy'])} | {100 * t['relative_error_reduction']:+.1f}% | "
            f"{'yes' if t['beyond_seed_spread'] else 'no'} | {t['mcnemar']['p_value']:.3g} "
            f"({t['mcnemar']['a_only']}/{t['mcnemar']['b_only']}) | "
            f"{t['sign_test']['wins']}-{t['sign_test']['losses']} | {e['train_params']:,} | "
            f"{e['train_seconds']['rep']['mean']:.0f} |")
    lines += ["", "## Configurations", ""]
    for e in report["configs"]:
        if e["status"] == "done":
            extra = (f" — deploy graph {e['params']:,} params, {e['macs']:,} MACs on both sides; "
                     f"training form {e['train_params']:,} params")
        else:
            extra = " — " + "; ".join(e.get("missing") or [e.get("error", "").splitlines()[0]])
        lines.append(f"- `{e['name']}` ({e['axis']}): {e['description']}; repcnn hparams "
                     f"`{json.dumps(e['hparams'], sort_keys=True)}`, flags "
                     f"`{json.dumps(e['train_flags'], sort_keys=True)}`, {e['epochs']} epochs: "
                     f"**{e['status']}**{extra}")
    if any(e.get("test_sets", 1) > 1 for e in report["configs"]):
        lines += ["", "Note: the data's `_unknown_` and `_silence_` validation/test clips are "
                  "drawn with the training seed (`DataSpec.seed` = `--seed`): seeds are evaluated "
                  "on slightly different sets, so the spread over seeds includes that sampling. "
                  "Each paired test pairs runs of the same seed, which share their clips."]
    lines += ["", "## Conclusion", "", report["conclusion"]["text"]]
    if report.get("quick"):
        lines += ["", "**--quick smoke run: the numbers above measure nothing.**"]
    return "\n".join(lines) + "\n"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.quiet_unless_verbose(FLAGS)
    by_name = {c.name: c for c in CONFIGS}
    names = experiment.selected_names("configs", FLAGS.configs, list(by_name), QUICK_CONFIGS,
                                      FLAGS.quick)
    # The recipe spelled out (the one every configuration was first run with), so that the
    # models' searched default recipes never change what a configuration means.
    base_train_flags = experiment.merge_train_flags(
        {k: v for k, v in recipes.BASE_RECIPE.items() if k != "epochs"},
        cli.json_object(FLAGS.train_flags, "train_flags"))
    data_dir = experiment.checked_data_dir(FLAGS)
    epochs, seeds = FLAGS.epochs, FLAGS.seeds
    output_dir, work_dir = FLAGS.output_dir, FLAGS.work_dir
    if FLAGS.quick:
        output_dir, work_dir = experiment.quick_dirs(FLAGS, "tflm_kws_study_quick_")
        epochs = epochs if FLAGS["epochs"].present else QUICK_EPOCHS
        seeds = seeds if FLAGS["seeds"].present else 1
        base_train_flags = experiment.merge_train_flags({"data_params": {"augment_variants": 1}},
                                             base_train_flags)
        data_dir = experiment.make_data_subset(data_dir, os.path.join(work_dir, "data_subset"),
                                               QUICK_CLIPS_PER_SPLIT)
    cache_dir = FLAGS.cache_dir or os.path.join(work_dir, "cache")
    start = time.time()
    report = {"command": experiment.entry_point_command("tflm_kws.study"),
              "machine": experiment.machine_description(), "data_dir": data_dir,
              "work_dir": os.path.abspath(work_dir), "epochs": epochs, "seeds": list(range(seeds)),
              "train_flags": base_train_flags, "selection": "validation split",
              "evaluation": "testing split, float fused deploy graph", "quick": bool(FLAGS.quick),
              "configs": []}
    for name in names:
        report["configs"].append(run_config(by_name[name], list(range(seeds)), epochs, data_dir,
                                            base_train_flags, work_dir, cache_dir))
        # Written after every configuration, so an interrupted study still reports what it has.
        report["wall_seconds"] = time.time() - start
        report["conclusion"] = conclusion(report["configs"])
        experiment.write_report(output_dir, "overparam_study", report, study_markdown(report))
    print(study_markdown(report))
    print(f"[study] wrote {output_dir}/overparam_study.md and overparam_study.json")
    return 1 if any(e["status"] == "failed" for e in report["configs"]) else 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
