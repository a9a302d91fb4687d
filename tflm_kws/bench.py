r"""The benchmark: RepCNN against its uni-branch twin and the anchors, side by side in one run.

  python -m tflm_kws.bench       # full run: bench/results.{md,json}, bench/accuracy_vs_macs.png
  python -m tflm_kws.bench --quick --output_dir=/tmp/bench_quick   # smoke run (minutes)

Trains every entry of --models (a zoo model and its hyper-parameters, ENTRIES) on the same data,
each with its own validated default recipe (`tflm_kws.recipes`, chosen by
`tflm_kws.recipe_search` on the validation split; any --train_flags / --epochs override it for
every model), converts each with quantization-aware training, and measures each int8 model in
TFLM. The entries of SEEDED_MODELS run --seeds seeds, the others --other_seeds.
Runs live in --work_dir and are reused when re-run, so a killed benchmark continues. See
docs/benchmark.md for the columns and how latency is measured.
"""
import json
import os
import sys
import time

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from absl import app, flags

from tflm_kws import cli, experiment, io_utils, markdown, recipes

# rep_inceptionnext's earlier 2-D layout (its defaults before the freq_channels block).
TIME_FREQ = {"layout": "time_freq", "channels": 16, "hidden": 32, "num_blocks": 2,
             "stem_strides": [2, 4], "time_kernels": [7, 5, 3]}
# Benchmark entries: row name -> (zoo model, hyper-parameters over its defaults).
ENTRIES = {
    "repcnn": ("repcnn", {}),
    "cnn": ("cnn", {}),
    "bc_resnet-1": ("bc_resnet", {"width": 1}),
    "bc_resnet-3": ("bc_resnet", {"width": 3}),
    "rep_inceptionnext": ("rep_inceptionnext", {}),
    # AudioRepInceptionNeXt (issue 12): another shape in the same M4 budget, the default's
    # deploy graph trained directly (the ablation), and the earlier 2-D layout.
    "rep_inceptionnext-c32x4": ("rep_inceptionnext", {"channels": 32, "num_blocks": 4}),
    "rep_inceptionnext-single": ("rep_inceptionnext", {"multi_branch": False}),
    "rep_inceptionnext-2d": ("rep_inceptionnext", dict(TIME_FREQ)),
    "ds_cnn": ("ds_cnn", {}),
    "tiny_conv": ("tiny_conv", {}),
    # Streaming forms (no padding in time; the sketch runs them per stride, tflm_kws.streaming):
    # their M4 columns are the streaming flatbuffer's, per call and per 20 ms step.
    # Stride placement chosen on validation (docs/models.md): (1, 1, 1, 2).
    "repcnn-stream": ("repcnn", {"padding": "valid", "strides": [1, 1, 1, 2]}),
    "cnn-stream": ("cnn", {"padding": "valid", "strides": [1, 1, 1, 2]}),
    "rep_inceptionnext-stream": ("rep_inceptionnext", dict(TIME_FREQ, time_padding="valid")),
}
ALL_MODELS = tuple(ENTRIES)
# The entries the project's claims compare: they run with --seeds seeds.
SEEDED_MODELS = ("repcnn", "cnn", "bc_resnet-1", "bc_resnet-3", "rep_inceptionnext",
                 "rep_inceptionnext-single")
# Targets of the benchmark; see `evaluate_targets`.
TARGET_ERROR_REDUCTION = 0.30  # the first benchmark's target; the paper reports 43 %
PAPER_ERROR_REDUCTION = 0.43
TARGET_TWIN_P = 0.01
TARGET_REPCNN_ACCURACY = 0.87
TARGET_ARENA_RATIO = 2.0  # RepCNN's claim against BC-ResNet: 2x lower peak memory ...
TARGET_COST_RATIO = 10.0  # ... and 10x faster
TARGET_MAC_RATIO = 1.0 / 3.0
TARGET_MAX_INT8_DROP = 0.005  # 0.5 accuracy points
TARGET_STREAM_MODEL_STEP = 100_000  # M4 instructions per 20 ms step, streaming repcnn's model
TARGET_STREAM_STEP = 200_000  # ... and its whole step (features + model + recognizer)
# AudioRepInceptionNeXt against repcnn: at repcnn's M4 budget (+-10 %), within 1 point of its
# int8 accuracy or better, arena <= 16 KB.
TARGET_RIN_BUDGET = 0.10
TARGET_RIN_POINTS = 0.01
TARGET_RIN_ARENA = 16 * 1024
SIGNIFICANCE = 0.05
# --quick: one epoch on a few clips per word, one seed; proves the pipeline end to end, measures
# nothing worth reading.
QUICK_EPOCHS = 1
QUICK_QAT_EPOCHS = 1
QUICK_CLIPS_PER_SPLIT = (6, 2, 2)
QUICK_LATENCY_INVOKES = 20

FLAGS = flags.FLAGS


def define_flags():
    """Registers the command-line flags (__main__ calls it: importing defines none, so this
    module can be imported beside other entry points)."""
    flags.DEFINE_list("models", list(ALL_MODELS),
                      f"Models to benchmark, from {', '.join(ALL_MODELS)}.")
    flags.DEFINE_integer("seeds", 3, f"Seeds (0..N-1) for {', '.join(SEEDED_MODELS)}.",
                         lower_bound=1)
    flags.DEFINE_integer("other_seeds", 1, "Seeds (0..N-1) for the other models.", lower_bound=1)
    flags.DEFINE_list("fewer_seeds", [], "Entries of the seeded ones to run with --other_seeds "
                      "seeds only, to save time (each row says how many seeds it has).")
    flags.DEFINE_integer("epochs", None, "Training epochs of every model; default: each model's "
                         "own recipe (tflm_kws.recipes), as all its other training options.",
                         lower_bound=1)
    flags.DEFINE_integer("qat_epochs", 3, "Quantization-aware training epochs in conversion.",
                         lower_bound=0)
    experiment.define_run_flags("results.md, results.json and accuracy_vs_macs.png")
    flags.DEFINE_integer("latency_invokes", experiment.DEFAULT_LATENCY_INVOKES,
                         "Minimum number of timed TFLM invokes per model (the median is reported).",
                         lower_bound=1)
    flags.DEFINE_string("tflm_arduino_src", os.environ.get("TFLM_ARDUINO_SRC"),
                        "Arduino_TensorFlowLite's src/ folder: adds each model's emulated "
                        "Cortex-M4 cost (tflm_kws.m4_cost; needs gcc-arm-none-eabi and "
                        "qemu-system-arm). Default $TFLM_ARDUINO_SRC; absent: no M4 columns.")
    flags.DEFINE_bool("quick", False, "Smoke run: 1 epoch, 1 seed, a few clips per word; writes to "
                      "--output_dir/--work_dir when given, else to a new temp directory (never "
                      "bench/).")


# Per-seed fields averaged into a model's row (mean, then *_std, *_min, *_max).
_SEED_STAT_FIELDS = ("float_accuracy", "int8_accuracy", "tflm_accuracy", "int8_drop",
                     "fused_val_accuracy", "tflm_latency_ms", "train_seconds")
# Fields of the deploy graph: equal for every seed of a model.
_GRAPH_FIELDS = ("params", "macs")
# Sizes of the shipped flatbuffer, which may be the QAT or the post-training one per seed (chosen
# on validation) and so differ by a few hundred bytes of metadata: the row shows the largest.
_SIZE_FIELDS = ("flatbuffer_bytes", "arena_bytes")


def aggregate(model, results):
    """One table row from a model's per-seed results (accuracies are means over seeds)."""
    results = sorted(results, key=lambda r: r["seed"])
    row = {"model": model, "seeds": [r["seed"] for r in results]}
    for field in _GRAPH_FIELDS:
        values = {r[field] for r in results}
        if len(values) != 1:
            raise ValueError(f"{model}: {field} differs between seeds ({sorted(values)}): the "
                             f"seeds did not build the same deploy graph")
        row[field] = values.pop()
    for field in _SIZE_FIELDS:
        row[field] = max(r[field] for r in results)
    row["quantization"] = [r.get("quantization") for r in results]
    for field in _SEED_STAT_FIELDS:
        summary = experiment.summarize([r[field] for r in results])
        row[field] = summary["mean"]
        row[field + "_std"] = summary["std"]
        row[field + "_min"] = summary["min"]
        row[field + "_max"] = summary["max"]
    row["tflm_identical"] = sum(r["tflm_identical"] for r in results)
    streamed = [r.get("stream_identical") for r in results]
    row["stream_identical"] = None if None in streamed else sum(streamed)
    row["test_clips"] = sum(r["test_clips"] for r in results)
    row["ops"] = results[0]["ops"]
    return row


def _paired(results_by_model, a, b, key):
    """paired_comparison of entries a and b over the seeds both have (None if one is missing)."""
    if a not in results_by_model or b not in results_by_model:
        return None
    common = sorted({r["seed"] for r in results_by_model[a]}
                    & {r["seed"] for r in results_by_model[b]})
    side_a, side_b = ([r for r in sorted(results_by_model[m], key=lambda r: r["seed"])
                       if r["seed"] in common] for m in (a, b))
    return dict(experiment.paired_comparison(side_a, side_b, key), seeds=common)


def evaluate_targets(rows, results_by_model):
    """The benchmark's targets: each {"name", "met": bool|None, "detail": str, ...}."""
    by_model = {row["model"]: row for row in rows}
    targets = []

    # 1. repcnn vs its twin cnn (same deploy graph), each at its own recipe, int8 in TFLM: a
    #    significant difference in the paired per-clip test; the relative error reduction is
    #    reported against the paper's 43 % and the first benchmark's 30 %.
    name = (f"repcnn vs cnn, each at its own recipe, int8 in TFLM: McNemar p < {TARGET_TWIN_P}; "
            f"relative error reduction reported (paper {PAPER_ERROR_REDUCTION:.0%})")
    tflm_cmp = _paired(results_by_model, "repcnn", "cnn", "tflm_test")
    if tflm_cmp is not None:
        float_cmp = _paired(results_by_model, "repcnn", "cnn", "float_test")
        same_graph = (by_model["repcnn"]["params"] == by_model["cnn"]["params"]
                      and by_model["repcnn"]["macs"] == by_model["cnn"]["macs"])
        met = same_graph and tflm_cmp["mcnemar"]["p_value"] < TARGET_TWIN_P
        rer = tflm_cmp["relative_error_reduction"]
        detail = (f"int8 in TFLM: {_comparison_text(tflm_cmp)} (>= {TARGET_ERROR_REDUCTION:.0%}: "
                  f"{rer >= TARGET_ERROR_REDUCTION}; paper {PAPER_ERROR_REDUCTION:.0%}); float "
                  f"deploy graph: {_comparison_text(float_cmp)}; same deploy graph (params, "
                  f"MACs): {same_graph}")
        targets.append({"name": name, "met": bool(met), "detail": detail,
                        "seeds": tflm_cmp["seeds"], "float": float_cmp, "tflm": tflm_cmp})
    else:
        targets.append({"name": name, "met": None,
                        "detail": "not evaluated: needs both repcnn and cnn in --models"})

    # 2. repcnn's accuracy with its default recipe.
    name = f"repcnn int8 accuracy in TFLM >= {TARGET_REPCNN_ACCURACY} (mean over seeds)"
    if "repcnn" in by_model:
        rep = by_model["repcnn"]
        targets.append({"name": name, "met": bool(rep["tflm_accuracy"] >= TARGET_REPCNN_ACCURACY),
                        "detail": f"{rep['tflm_accuracy']:.4f} over seeds {rep['seeds']} "
                                  f"(range {rep['tflm_accuracy_min']:.4f}-"
                                  f"{rep['tflm_accuracy_max']:.4f})"})
    else:
        targets.append({"name": name, "met": None, "detail": "not evaluated: needs repcnn"})

    # 3. The seed's second claim: RepCNN matches BC-ResNet's accuracy with 2x lower peak memory
    #    (arena) and 10x faster runtime (emulated M4 instructions when both rows have them, else
    #    host TFLM latency). "Matches": not significantly less accurate (paired test), or more.
    for bc in ("bc_resnet-1", "bc_resnet-3"):
        name = (f"repcnn vs {bc}: accuracy matched (not significantly lower), arena >= "
                f"{TARGET_ARENA_RATIO:g}x smaller, runtime >= {TARGET_COST_RATIO:g}x lower")
        cmp = _paired(results_by_model, "repcnn", bc, "tflm_test")
        if cmp is None:
            targets.append({"name": name, "met": None,
                            "detail": f"not evaluated: needs both repcnn and {bc} in --models"})
            continue
        rep, other = by_model["repcnn"], by_model[bc]
        arena_ratio = other["arena_bytes"] / rep["arena_bytes"]
        on_m4 = bool(rep.get("m4_invoke_instructions") and other.get("m4_invoke_instructions"))
        if on_m4:  # the emulated Cortex-M4's instructions; else the host TFLM latency
            cost_ratio = other["m4_invoke_instructions"] / rep["m4_invoke_instructions"]
            cost_text = (f"M4 instructions per inference {rep['m4_invoke_instructions']:,} vs "
                         f"{other['m4_invoke_instructions']:,}")
        else:
            cost_ratio = other["tflm_latency_ms"] / rep["tflm_latency_ms"]
            cost_text = (f"host TFLM latency {rep['tflm_latency_ms']:.3f} vs "
                         f"{other['tflm_latency_ms']:.3f} ms")
        difference = cmp["accuracy"]["mean"] - cmp["baseline_accuracy"]["mean"]
        matched = difference >= 0 or cmp["mcnemar"]["p_value"] >= SIGNIFICANCE
        met = matched and arena_ratio >= TARGET_ARENA_RATIO and cost_ratio >= TARGET_COST_RATIO
        detail = (f"accuracy difference {_points(difference)} points ({_comparison_text(cmp)}); "
                  f"arena {rep['arena_bytes']:,} vs {other['arena_bytes']:,} B (ratio "
                  f"{arena_ratio:.2f}); {cost_text} (ratio {cost_ratio:.2f}); MACs ratio "
                  f"{other['macs'] / rep['macs']:.2f}")
        targets.append({"name": name, "met": bool(met), "detail": detail, "tflm": cmp,
                        "arena_ratio": arena_ratio, "cost_ratio": cost_ratio,
                        "cost_measure": "m4_instructions" if on_m4 else "host_latency",
                        "accuracy_difference": difference})

    # 4. repcnn int8 accuracy >= ds_cnn int8 accuracy at <= 1/3 of its MACs.
    name = "repcnn int8 accuracy >= ds_cnn int8 accuracy at <= 1/3 of its MACs"
    if "repcnn" in by_model and "ds_cnn" in by_model:
        rep, ds = by_model["repcnn"], by_model["ds_cnn"]
        ratio = rep["macs"] / ds["macs"]
        met = rep["int8_accuracy"] >= ds["int8_accuracy"] and ratio <= TARGET_MAC_RATIO
        detail = (f"repcnn int8 {rep['int8_accuracy']:.4f} ({rep['macs']:,} MACs) vs ds_cnn int8 "
                  f"{ds['int8_accuracy']:.4f} ({ds['macs']:,} MACs): MAC ratio {ratio:.3f}")
        targets.append({"name": name, "met": bool(met), "detail": detail, "mac_ratio": ratio})
    else:
        targets.append({"name": name, "met": None,
                        "detail": "not evaluated: needs both repcnn and ds_cnn in --models"})

    # 5. int8 - float drop <= 0.5 points for every model and seed; TFLM identical to TFLite.
    name = ("int8 - float accuracy drop <= 0.5 points for every model; TFLM outputs identical to "
            "TFLite")
    failures = []
    for row in rows:
        if row["int8_drop_max"] > TARGET_MAX_INT8_DROP:
            failures.append(f"{row['model']} drop up to {100 * row['int8_drop_max']:.2f} points")
        if row["tflm_identical"] != row["test_clips"]:
            failures.append(f"{row['model']} TFLM identical on {row['tflm_identical']} of "
                            f"{row['test_clips']} clips")
    detail = "; ".join(failures) if failures else (
        "largest drop " + ", ".join(f"{r['model']} {_points(r['int8_drop_max'])}" for r in rows)
        + " points; TFLM identical on every clip of every model")
    targets.append({"name": name, "met": bool(rows) and not failures, "detail": detail})

    # 6. repcnn streaming: identical to its whole-window form on every test clip, and cheap enough
    #    to run always-on: <= 100 k M4 instructions per 20 ms step for the model, <= 200 k for the
    #    whole step (features + model + recognizer).
    name = (f"repcnn-stream: outputs identical to the whole-window model on every test clip; M4 "
            f"model <= {TARGET_STREAM_MODEL_STEP:,} and whole step <= {TARGET_STREAM_STEP:,} "
            f"instructions per 20 ms")
    row = by_model.get("repcnn-stream")
    if row is None or not row.get("m4_step_instructions"):
        targets.append({"name": name, "met": None, "detail": "not evaluated: needs repcnn-stream "
                        "in --models and --tflm_arduino_src"})
    else:
        met = (row["stream_identical"] == row["test_clips"]
               and row["m4_model_step_instructions"] <= TARGET_STREAM_MODEL_STEP
               and row["m4_step_instructions"] <= TARGET_STREAM_STEP)
        detail = (f"identical on {row['stream_identical']} of {row['test_clips']} clips; model "
                  f"{row['m4_model_step_instructions']:,} and whole step "
                  f"{row['m4_step_instructions']:,} instructions per 20 ms")
        targets.append({"name": name, "met": bool(met), "detail": detail})

    # 7. AudioRepInceptionNeXt: at repcnn's M4 budget, as accurate (within 1 point), a small
    #    arena; and the ablation: multi-branch training against the same graph trained directly.
    name = (f"rep_inceptionnext: M4 instructions within {TARGET_RIN_BUDGET:.0%} of repcnn's, int8 "
            f"accuracy in TFLM >= repcnn's - {100 * TARGET_RIN_POINTS:g} point, M4 arena <= "
            f"{TARGET_RIN_ARENA // 1024} KB; ablation vs rep_inceptionnext-single reported")
    rin, rep = by_model.get("rep_inceptionnext"), by_model.get("repcnn")
    ablation = _paired(results_by_model, "rep_inceptionnext", "rep_inceptionnext-single",
                       "tflm_test")
    ablation_text = ("" if ablation is None else
                     f"; multi-branch vs single-branch training: {_comparison_text(ablation)}")
    if rin is None or rep is None or not (rin.get("m4_invoke_instructions")
                                          and rep.get("m4_invoke_instructions")):
        targets.append({"name": name, "met": None, "ablation": ablation,
                        "detail": "not evaluated: needs rep_inceptionnext and repcnn in --models "
                                  "and --tflm_arduino_src" + ablation_text})
    else:
        budget = rin["m4_invoke_instructions"] / rep["m4_invoke_instructions"] - 1.0
        difference = rin["tflm_accuracy"] - rep["tflm_accuracy"]
        met = (abs(budget) <= TARGET_RIN_BUDGET and difference >= -TARGET_RIN_POINTS
               and rin["m4_arena_bytes"] <= TARGET_RIN_ARENA)
        detail = (f"M4 {rin['m4_invoke_instructions']:,} vs {rep['m4_invoke_instructions']:,} "
                  f"instructions ({100 * budget:+.1f} %); int8 {rin['tflm_accuracy']:.4f} vs "
                  f"{rep['tflm_accuracy']:.4f} ({_points(difference)} points, seeds "
                  f"{rin['seeds']} vs {rep['seeds']}); M4 arena {rin['m4_arena_bytes']:,} B"
                  + ablation_text)
        targets.append({"name": name, "met": bool(met), "detail": detail,
                        "ablation": ablation})
    return targets


def _comparison_text(cmp):
    return (f"accuracy {cmp['accuracy']['mean']:.4f} vs {cmp['baseline_accuracy']['mean']:.4f}, "
            f"relative error reduction {100 * cmp['relative_error_reduction']:+.1f}%, "
            f"beyond seed spread {cmp['beyond_seed_spread']}, McNemar p="
            f"{cmp['mcnemar']['p_value']:.3g} ({cmp['mcnemar']['a_only']} vs "
            f"{cmp['mcnemar']['b_only']} discordant clips), sign test over seeds "
            f"{cmp['sign_test']['wins']}-{cmp['sign_test']['losses']} (p="
            f"{cmp['sign_test']['p_value']:.3g})")


def _points(fraction):
    """Accuracy difference in points, signed, without a negative zero."""
    return f"{round(100 * fraction, 2) + 0.0:+.2f}"


def _count(row, field):
    return f"{row[field]:,}" if row.get(field) else "—"


def _mean_std(row, field, scale=1.0, digits=2):
    value, std = scale * row[field], scale * row[field + "_std"]
    if len(row["seeds"]) == 1:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {std:.{digits}f}"


def _overrides(summary):
    given = dict(summary["train_flags"])
    if summary.get("epochs"):
        given["epochs"] = summary["epochs"]
    return f", overridden for every model by `{json.dumps(given, sort_keys=True)}`" if given else ""


def results_markdown(summary):
    """bench/results.md from the results.json object."""
    lines = markdown.header(
        "Benchmark results", summary["command"], summary["machine"],
        f"`{summary['data_dir']}` (test split: {summary['test_clips']} clips)",
        summary["wall_seconds"],
        details=[f"Recipes: each model's default (`tflm_kws/recipes.py`, chosen on validation: "
                 f"`bench/recipe_search.md`){_overrides(summary)}; QAT epochs: "
                 f"{summary['qat_epochs']}"],
        wall_note=" (runs reused from an earlier invocation are not counted)")
    lines += [
        "Accuracies in %, mean ± sample std over seeds; drop = float − int8 (points, mean; max "
        "over seeds in brackets). Latency: median over many invokes of the int8 model in the real "
        "TFLM C++ interpreter (tflite_micro Python runtime, reference kernels) on this host — a "
        "host figure for comparing models, not a microcontroller one.",
        "",
        "Shipped: per seed, the QAT or the post-training flatbuffer, whichever is better on "
        "validation (conversion's choice); sizes are the largest over seeds.",
        "",
        "M4 columns (`tflm_kws.m4_cost`, first seed's flatbuffer): instructions executed on an "
        "emulated Cortex-M4F (QEMU mps2-an386) by the Arduino library's TFLM with CMSIS-NN "
        "kernels at -Os, as the board build; per `Invoke()`, and per whole 20 ms step of the "
        "sketch (one feature slice + model + recognizer; a `-stream` entry's model runs every "
        "2nd step, so the step is the mean over whole calls). Instructions are not cycles (loads "
        "and multiplies take more); SMLAD bound: MACs / 2, the cycles of 2 int8 MACs per cycle. "
        + ("" if summary.get("m4") else "Not measured in this run (no --tflm_arduino_src)."),
        "",
        "| model | seeds | epochs | params | MACs | flatbuffer B | arena B | float % | int8 % | "
        "TFLM % | drop pt | TFLM = TFLite | shipped | latency ms | M4 instr / inference | "
        "M4 instr / 20 ms step | SMLAD bound | train s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in summary["rows"]:
        if "error" in row:
            lines.append(f"| {row['model']} | failed: {row['error'].splitlines()[0]} |"
                         + " |" * 16)
            continue
        lines.append(
            f"| {row['model']} | {len(row['seeds'])} | "
            f"{summary['recipes'][row['model']]['epochs']} | {row['params']:,} | {row['macs']:,} | "
            f"{row['flatbuffer_bytes']:,} | {row['arena_bytes']:,} | "
            f"{_mean_std(row, 'float_accuracy', 100)} | {_mean_std(row, 'int8_accuracy', 100)} | "
            f"{_mean_std(row, 'tflm_accuracy', 100)} | {_points(row['int8_drop'])} "
            f"[{_points(row['int8_drop_max'])}] | {row['tflm_identical']}/{row['test_clips']} | "
            f"{', '.join(str(q or '?').upper() for q in row['quantization'])} | "
            f"{_mean_std(row, 'tflm_latency_ms', 1, 3)} | "
            f"{_count(row, 'm4_invoke_instructions')} | "
            f"{_count(row, 'm4_step_instructions')} | {_count(row, 'smlad_bound_cycles')} | "
            f"{_mean_std(row, 'train_seconds', 1, 0)} |")
    lines += ["", "## Targets", ""]
    for target in summary["targets"]:
        verdict = {True: "**met**", False: "**not met**", None: "—"}[target["met"]]
        lines.append(f"- {target['name']}: {verdict} {target['detail']}")
    seeded = [row for row in summary["rows"] if "error" not in row and len(row["seeds"]) > 1]
    if seeded:
        lines += ["", "Seed ranges per model (min–max, %):", ""]
    for row in seeded:
        lines.append(
            f"- {row['model']} (seeds {row['seeds']}): float "
            f"{100 * row['float_accuracy_min']:.2f}–{100 * row['float_accuracy_max']:.2f}, "
            f"TFLM {100 * row['tflm_accuracy_min']:.2f}–{100 * row['tflm_accuracy_max']:.2f}")
    if summary["test_sets"] > 1:
        lines += ["", f"Note: the runs were evaluated on {summary['test_sets']} different test "
                  "sets: the data's `_unknown_` and `_silence_` test clips are drawn with the "
                  "training seed (`DataSpec.seed` = `--seed`), so the spread over seeds includes "
                  "test-set sampling. Paired tests pair runs of the same seed, which share their "
                  "test set."]
    if summary.get("quick"):
        lines += ["", "**--quick smoke run: the numbers above measure nothing.**"]
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_macs(rows, path):
    """TFLM int8 accuracy (± std over seeds) against deploy-graph MACs, one point per model."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for row in rows:
        if "error" in row:
            continue
        ax.errorbar(row["macs"], 100 * row["tflm_accuracy"], yerr=100 * row["tflm_accuracy_std"],
                    fmt="o", capsize=4)
        ax.scatter(row["macs"], 100 * row["float_accuracy"], marker="_", s=200, color="gray")
        seeds = len(row["seeds"])
        ax.annotate(f"{row['model']} ({seeds} seed{'s' if seeds > 1 else ''})",
                    (row["macs"], 100 * row["tflm_accuracy"]), textcoords="offset points",
                    xytext=(6, 6), fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("MACs per inference (deploy graph, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("int8 accuracy in TFLM (points, ± std over seeds) vs MACs; gray bar: float")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    io_utils.atomic_savefig(fig, path, dpi=100)


def _m4_fields(result, arduino_src):
    """A row's emulated Cortex-M4 cost: of its first seed's shipped flatbuffer (every seed has the
    same graph; only the weights, not the instructions, differ)."""
    from tflm_kws import m4_cost  # pylint: disable=import-outside-toplevel
    try:
        cost = experiment.m4_cost(result, arduino_src)
    except m4_cost.M4CostError as e:
        print(f"[bench] {result['model']}: no M4 cost: {e}", file=sys.stderr, flush=True)
        return {"m4_error": str(e)}
    return {"m4_invoke_instructions": cost["invoke_instructions"],
            "m4_frames_per_call": cost["frames_per_call"],
            "m4_model_step_instructions": cost["model_instructions_per_step"],
            "m4_step_instructions": cost["step_instructions"],
            "m4_arena_bytes": cost["arena_used_bytes_m4"],
            "smlad_bound_cycles": cost["smlad_bound_cycles"]}


def _recipe_of(entry, epochs, train_flags):
    """The training recipe an entry ran with: its model's default, then --epochs/--train_flags."""
    recipe = experiment.merge_train_flags(recipes.recipe(ENTRIES[entry][0]), train_flags)
    if epochs:
        recipe["epochs"] = epochs
    return recipe


def _parse_train_flags(text):
    value = cli.json_object(text, "train_flags")
    reserved = {"model", "model_params", "epochs", "seed", "output_dir", "data_dir", "cache_dir"}
    clash = sorted(reserved & set(value))
    if clash:
        raise app.UsageError(f"--train_flags may not set {clash}: the benchmark sets them itself")
    return value


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.quiet_unless_verbose(FLAGS)
    for flag in ("models", "fewer_seeds"):
        unknown = sorted(set(FLAGS[flag].value) - set(ALL_MODELS))
        if unknown:
            raise app.UsageError(f"--{flag}: unknown {unknown}; valid: {', '.join(ALL_MODELS)}")
    seeded = [m for m in SEEDED_MODELS if m not in FLAGS.fewer_seeds]
    train_flags = _parse_train_flags(FLAGS.train_flags)
    data_dir = experiment.checked_data_dir(FLAGS)
    epochs, qat_epochs, seeds, other_seeds = (FLAGS.epochs, FLAGS.qat_epochs, FLAGS.seeds,
                                              FLAGS.other_seeds)
    output_dir, work_dir, latency_invokes = FLAGS.output_dir, FLAGS.work_dir, FLAGS.latency_invokes
    if FLAGS.quick:
        output_dir, work_dir = experiment.quick_dirs(FLAGS, "tflm_kws_bench_quick_")
        epochs = epochs if FLAGS["epochs"].present else QUICK_EPOCHS
        qat_epochs = qat_epochs if FLAGS["qat_epochs"].present else QUICK_QAT_EPOCHS
        seeds = seeds if FLAGS["seeds"].present else 1
        other_seeds = other_seeds if FLAGS["other_seeds"].present else 1
        if not FLAGS["latency_invokes"].present:
            latency_invokes = QUICK_LATENCY_INVOKES
        # One audio-augmentation variant per clip: the feature cache is built in seconds.
        train_flags = experiment.merge_train_flags({"data_params": {"augment_variants": 1}},
                                                   train_flags)
        data_dir = experiment.make_data_subset(data_dir, os.path.join(work_dir, "data_subset"),
                                               QUICK_CLIPS_PER_SPLIT)
    cache_dir = FLAGS.cache_dir or os.path.join(work_dir, "cache")
    start = time.time()

    plan = []  # seed 0 of every model first, so an interrupted run already covers all models
    for seed in range(max(seeds, other_seeds)):
        for model in FLAGS.models:
            if seed < (seeds if model in seeded else other_seeds):
                zoo_model, hparams = ENTRIES[model]
                plan.append((model, experiment.Experiment(
                    model=zoo_model, hparams=hparams, seed=seed,
                    epochs=epochs or recipes.recipe(zoo_model)["epochs"], data_dir=data_dir,
                    train_flags=train_flags, qat_epochs=qat_epochs)))
    results_by_model, errors = {}, {}
    for index, (model, exp) in enumerate(plan):
        if model in errors:
            continue
        print(f"[bench] {index + 1}/{len(plan)}: {model} seed {exp.seed}", flush=True)
        try:
            result = experiment.run(exp, work_dir, cache_dir, latency_invokes)
        except RuntimeError as e:  # training or conversion failed: benchmark the other models
            print(f"[bench] {model} seed {exp.seed} failed: {e}", file=sys.stderr, flush=True)
            errors[model] = str(e)
            continue
        results_by_model.setdefault(model, []).append(result)

    rows = []
    for model in FLAGS.models:
        if model in errors:
            rows.append({"model": model, "error": errors[model]})
        else:
            rows.append(aggregate(model, results_by_model[model]))
            if FLAGS.tflm_arduino_src:
                rows[-1].update(_m4_fields(results_by_model[model][0], FLAGS.tflm_arduino_src))
    good_rows = [row for row in rows if "error" not in row]
    test_clips = sorted({r["test_clips"] for results in results_by_model.values() for r in results})
    summary = {
        "command": experiment.entry_point_command("tflm_kws.bench"),
        "machine": experiment.machine_description(),
        "epochs": epochs, "qat_epochs": qat_epochs, "train_flags": train_flags,
        "recipes": {model: _recipe_of(model, epochs, train_flags) for model in FLAGS.models},
        "m4": bool(FLAGS.tflm_arduino_src),
        "data_dir": data_dir, "work_dir": os.path.abspath(work_dir),
        "test_clips": test_clips[0] if len(test_clips) == 1 else test_clips,
        # Distinct test sets over all runs (the data's _unknown_/_silence_ picks follow the seed).
        "test_sets": len({r["test_features_sha1"] for results in results_by_model.values()
                          for r in results}),
        "quick": bool(FLAGS.quick),
        "wall_seconds": time.time() - start,
        "rows": rows,
        "targets": evaluate_targets(good_rows, {m: results_by_model[m] for m in results_by_model
                                                if m not in errors}),
    }
    os.makedirs(output_dir, exist_ok=True)
    io_utils.atomic_write_json(os.path.join(output_dir, "results.json"), summary)
    with io_utils.atomic_write(os.path.join(output_dir, "results.md"), "w") as f:
        f.write(results_markdown(summary))
    plot_accuracy_vs_macs(rows, os.path.join(output_dir, "accuracy_vs_macs.png"))
    print(results_markdown(summary))
    print(f"[bench] wrote {output_dir}/results.md, results.json, accuracy_vs_macs.png")
    if errors:
        print(f"[bench] failed models: {sorted(errors)} (logs in their run directories)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
