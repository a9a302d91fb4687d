r"""Wake words from text, measured on real voices: which levers of the synthetic data transfer.

  python -m tflm_kws.wake_word_study --wake_word=happy --split=validation     # choose levers
  python -m tflm_kws.wake_word_study --wake_word=happy --split=testing --final  # read test once

Every run is trained from the wake word's text (synthetic positives) plus, per lever, real
*other* speech; none ever hears a real recording of the wake word, except the few-shot runs, which
draw theirs from the training speakers. Each run is converted (QAT, int8) and judged as the board
runs it (`evaluate_wake_word`: int8 in TFLM over continuous audio, the sketch's recognizer) on real
recordings of the chosen split:

- a Speech Commands word as wake word (`happy`, `bed`, `cat`: hundreds of speakers): positives
  are that word's clips of the split, negatives the split's clips of the other words;
- a `wake_words_pd` phrase (`computer`, `athena`, ...): positives are its recordings; negatives
  the Speech Commands test split;
- and in both, the other `wake_words_pd` folders as more negatives (validation: `athena`; testing:
  the rest) -- speakers no run trains on.

Levers are tried greedily in LEVERS order on the validation split: each is added to the best
configuration so far and kept when it raises recall at the operating point (the lowest threshold
with at most --target_fa_per_hour; ties: recall at the sketch's threshold 200). With `--seeds=N`
every configuration is trained with N seeds and judged by the means: one seed's recall on ~50
real positives moves by several clips from seed to seed. `--final` trains the kept configuration
(the <word>_validation[_seeds..].json of the validation pass with the same seeds) and reports the
testing split once. Results: <output_dir>/<wake word>_<split>[_seed<N> | _seeds<N>-<M>].md/.json.
Runs resume (experiment.run_dir).
"""
import dataclasses
import json
import os
import sys

from tflm_kws import experiment, io_utils

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared", "data")
SPEECH_COMMANDS = os.path.join(SHARED, "speech_commands_v2_dev")
WAKE_WORDS_PD = os.path.join(SHARED, "wake_words_pd")
# Speech Commands words kept for testing wake words: the pretrained feature extractor never sees them.
HELD_OUT_WORDS = ("happy", "bed", "cat")
# Of the wake_words_pd folders, the one whose speakers serve as validation negatives.
PD_VALIDATION_NEGATIVES = ("athena",)
EPOCHS = 40
QAT_EPOCHS = 1


@dataclasses.dataclass
class Lever:
    name: str
    what: str
    train_flags: dict


def levers(data_dir, pretrained_dir):
    return [
        Lever("real_negatives", "real other speech (the Speech Commands training split, words "
              "spoken like the wake word left out) as `_unknown_`, and its real background noise "
              "for mixing and `_silence_`", {"data_params": {"negatives_dir": data_dir}}),
        Lever("piper", "Piper neural voice (joe, 9 vocal-tract warps) beside espeak-ng's, for "
              "positives and synthetic negatives", {"data_params": {"tts": "espeak+piper"}}),
        Lever("channel", "a random microphone channel (band limits 50-400 Hz / 3-7.5 kHz, "
              "+-3 dB/octave tilt) on half of the synthetic clips",
              {"data_params": {"channel_probability": 0.5}}),
        Lever("transfer", "start from repcnn trained on real Speech Commands words (12 classes, "
              f"{', '.join(HELD_OUT_WORDS)} left out)", {"init_from": pretrained_dir}),
        # Each alone can lose (more recall with false accepts; no false accepts, less recall):
        # together, as openWakeWord pairs neural voices with real negative audio.
        Lever("piper+real_negatives", "the Piper voice and the real other speech together",
              {"data_params": {"tts": "espeak+piper", "negatives_dir": data_dir}}),
        # openWakeWord's recipe: a fixed real-speech feature extractor, so that the synthetic
        # clips can train only what reads its features, not features of synthetic voices.
        Lever("frozen_extractor", "the transferred conv1-conv3 frozen (BatchNorm statistics "
              "too): only conv4 and the classifier learn from the synthetic clips",
              {"init_from": pretrained_dir, "freeze": ["conv1", "conv2", "conv3"]}),
        # Near misses one sound away from a short word ("bed": fed, bad, be) may be how real
        # people say the word itself; without them, `_unknown_` is other words and phrases.
        Lever("no_near_misses", "no synthetic near misses: the synthetic negatives are all "
              "other words and phrases", {"data_params": {"near_miss_fraction": 0.0}}),
        # Real negatives outnumber the positives (4,000 against ~700): was their loss in recall
        # the imbalance? The synthetic set alone is balanced, so weights alone change little.
        Lever("real_negatives+class_weights", "the real other speech with class-balanced loss "
              "weights (N / (classes x class examples) per example)",
              {"data_params": {"negatives_dir": data_dir}, "class_weights": "balanced"}),
        # espeak-ng's variants move pitch more than formants; real speakers' vocal tracts
        # (and speaking rates) spread wider than its voices do.
        Lever("warp", "a random vocal-tract warp (playback x0.85-1.15: formants, pitch and tempo "
              "together) on half of the synthetic clips", {"data_params": {"warp_probability": 0.5}}),
        # ~3.7 clips a voice at the default 1,200: each voice's rates, pitches and rooms are
        # sampled thinly (openWakeWord trains on 100,000s of synthetic clips).
        Lever("more_clips", "three times the synthetic clips (3,600 positives and 3,600 "
              "negatives)", {"data_params": {"synthetic_positives": 3600,
                                             "synthetic_negatives": 3600}}),
    ]


def pretrain_experiment(data_dir):
    """repcnn on the real 12-class task, the held-out words excluded (its default recipe)."""
    return experiment.Experiment(
        model="repcnn", hparams={}, seed=0, epochs=160, data_dir=data_dir,
        train_flags={"data_params": {"exclude_words": list(HELD_OUT_WORDS)}})


def wake_experiment(wake_word, train_flags, seed=0, epochs=EPOCHS):
    flags = experiment.merge_train_flags({"wake_word": wake_word}, train_flags)
    return experiment.Experiment(model="repcnn", hparams={}, seed=seed, epochs=epochs,
                                 train_flags=flags, qat_epochs=QAT_EPOCHS)


def evaluation_files(wake_word, split, data_dir=SPEECH_COMMANDS, pd_dir=WAKE_WORDS_PD):
    """(positives, negatives): lists of real audio files of `split` (module docstring)."""
    from tflm_kws.data import DataSpec, espeak, sources
    label = "_".join(wake_word.split())
    engine = espeak.Espeak()
    wake = engine.phonemes(wake_word)
    split_of = sources.split_rule(data_dir, DataSpec())
    words = sources.word_dirs(data_dir)
    positives, negatives = [], []
    for word in words:
        files = [p for p in sources.audio_files(os.path.join(data_dir, word))
                 if split_of(word, p) == split]
        if word == label:
            positives += files
        elif engine.phonemes(word.replace("_", " ")) != wake:
            negatives += files
    for folder in sorted(os.listdir(pd_dir)) if os.path.isdir(pd_dir) else []:
        path = os.path.join(pd_dir, folder)
        if not os.path.isdir(path) or folder == "LICENSES":
            continue
        files = sources.audio_files(path)
        if folder == label:
            positives += files
        elif (folder in PD_VALIDATION_NEGATIVES) == (split == "validation"):
            negatives += files
    if not positives:
        raise ValueError(f"no real recordings of {wake_word!r}: neither {data_dir}/{label} nor "
                         f"{pd_dir}/{label}")
    return positives, negatives


def measure(exp, work_dir, cache_dir, positives, negatives, target_fa_per_hour, log=print,
            threshold_negatives=None):
    """Trains and converts `exp` (resuming), then its wake-word report on the files.

    threshold_negatives: other (validation) negative files: the threshold is then set on them
    alone (the lowest within the target rate) and the report's "at_chosen_threshold" is the
    point of `positives` / `negatives` at it: no threshold is tuned on the reported files."""
    from tflm_kws import evaluate_wake_word, frontend
    run = exp.run_dir(work_dir)
    train_dir, convert_dir = os.path.join(run, "train"), os.path.join(run, f"convert_{exp.stage()}")
    report_path = os.path.join(run, f"wake_word_{len(positives)}_{len(negatives)}.json")
    label = "_".join(exp.train_flags["wake_word"].split())
    trained = []  # (config, labels, int8 bytes), once the run is trained and converted

    def model():
        if not trained:
            os.makedirs(run, exist_ok=True)
            experiment.train(exp, train_dir, cache_dir)
            if not os.path.exists(os.path.join(convert_dir, "model_int8.tflite")):
                experiment.convert(exp, train_dir, convert_dir, cache_dir)
            config, labels, _ = frontend.load_features_json(os.path.join(train_dir,
                                                                         "features.json"))
            with open(os.path.join(convert_dir, "model_int8.tflite"), "rb") as f:
                trained.append((config, labels, f.read()))
        return trained[0]

    def evaluated(path, pos, neg):
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        config, labels, tflite_bytes = model()
        report = evaluate_wake_word.evaluate(tflite_bytes, config, labels, label, pos, neg,
                                             target_fa_per_hour=target_fa_per_hour, log=log)
        report["run"] = run
        io_utils.atomic_write_json(path, report)
        return report

    report = evaluated(report_path, positives, negatives)
    if threshold_negatives:
        on_negatives = evaluated(os.path.join(run, f"threshold_{len(threshold_negatives)}.json"),
                                 [], threshold_negatives)
        chosen = on_negatives["threshold_for_target"]
        report = dict(report, chosen_on_hours=on_negatives["negative_hours"],
                      at_chosen_threshold=None if chosen is None else next(
                          p for p in report["curve"] if p["threshold"] == chosen["threshold"]))
    return report, run


def score(reports):
    """(recall at the operating point, recall at the sketch's threshold), means over the reports
    (one per training seed)."""
    points = []
    for report in reports:
        chosen = report["threshold_for_target"]
        at_device = report["at_device_threshold"]
        points.append((1.0 - chosen["frr"] if chosen else 0.0,
                       1.0 - at_device["frr"] if at_device else 0.0))
    return tuple(float(sum(p[i] for p in points) / len(points)) for i in range(2))


def _seed_row(report):
    at_device = report["at_device_threshold"]
    # A final row's threshold is set on the validation negatives; a validation row's is the
    # best on its own (validation) files.
    chosen = report.get("at_chosen_threshold", report["threshold_for_target"])
    return {"recall_at_200": 1.0 - at_device["frr"], "fa_per_hour_at_200": at_device["fa_per_hour"],
            "threshold": chosen["threshold"] if chosen else None,
            "recall_at_target": 1.0 - chosen["frr"] if chosen else 0.0,
            "fa_per_hour_at_target": chosen["fa_per_hour"] if chosen else None,
            "run": report["run"]}


def row(name, what, reports):
    """One configuration's row: its figures per training seed (`seeds`) and their means (recall
    and FA/h at 200, recall at the operating point; FA/h there when every seed has one)."""
    per_seed = [_seed_row(report) for report in reports]

    def mean(key):
        values = [r[key] for r in per_seed]
        return None if None in values else float(sum(values) / len(values))
    result = {"name": name, "what": what, "positives": reports[0]["positives"],
              "negative_hours": reports[0]["negative_hours"], "seeds": per_seed}
    result.update({key: mean(key) for key in ("recall_at_200", "fa_per_hour_at_200",
                                               "recall_at_target", "fa_per_hour_at_target")})
    result.update(threshold=per_seed[0]["threshold"], run=per_seed[0]["run"])
    return result


def _per_seed(r, key, form):
    values = [s[key] for s in r["seeds"]]
    return " / ".join("none" if v is None else form.format(v) for v in values)


def markdown(result):
    seeds = result.get("seeds", [result.get("seed", 0)])
    several = len(seeds) > 1
    lines = [f"# Wake word {result['wake_word']!r} from text, real recordings ({result['split']} "
             f"split)", "",
             f"{result['rows'][0]['positives']} real positives, "
             f"{result['rows'][0]['negative_hours']:.2f} h of real negatives; int8 in TFLM, "
             f"streamed as the sketch runs; operating point: the lowest threshold with <= "
             f"{result['target_fa_per_hour']} false accepts per hour (with under an hour of "
             f"negatives: none at all), "
             + ("set on the validation split's negatives alone; recall and false accepts are "
                "this split's at that threshold" if result.get("final") else
                "chosen on these (validation) files")
             + f". {result['epochs']} epochs a run, QAT {QAT_EPOCHS}, training seed"
             + (f"s {', '.join(map(str, seeds))}: each figure is the mean over the seeds, the "
                f"thresholds and recalls at the operating point are also given per seed, and a "
                f"lever is kept when it raises the mean." if several else f" {seeds[0]}."), ""]
    if several:
        lines += ["| configuration | what it adds | recall at 200 | FA/h at 200 | thresholds | "
                  "recall at the operating point, per seed | mean | kept |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
    else:
        lines += ["| configuration | what it adds | recall at 200 | FA/h at 200 | threshold | "
                  "recall at the operating point | FA/h there | kept |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        head = (f"| {r['name']} | {r['what']} | {r['recall_at_200']:.3f} | "
                f"{r['fa_per_hour_at_200']:.1f} | ")
        if several:
            lines.append(head + f"{_per_seed(r, 'threshold', '{}')} | "
                         f"{_per_seed(r, 'recall_at_target', '{:.3f}')} | "
                         f"{r['recall_at_target']:.3f} | {r.get('kept', '')} |")
            continue
        threshold = r["threshold"] if r["threshold"] is not None else "none"
        fa = (f"{r['fa_per_hour_at_target']:.1f}" if r["fa_per_hour_at_target"] is not None
              else "—")
        lines.append(head + f"{threshold} | {r['recall_at_target']:.3f} | {fa} | "
                     f"{r.get('kept', '')} |")
    lines += ["", f"Kept: {', '.join(result['kept']) or 'none'}.", "",
              f"Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"


def run_study(wake_word, split, work_dir, cache_dir, output_dir, data_dir=SPEECH_COMMANDS,
              final=False, few_shot=(), target_fa_per_hour=1.0, command="", levers_from=None,
              few_shot_levers=(), name=None, lever_names=None, seeds=(0,), log=print):
    """lever_names: the levers the greedy pass tries (default all, in LEVERS order); seeds: the
    training seeds every configuration is trained with (the data stays the same): its figures
    are their means, so that a lever is kept on more than one seed's luck."""
    seeds = list(seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: at least one seed, each once; got {seeds}")
    positives, negatives = evaluation_files(wake_word, split, data_dir)
    log(f"{wake_word}: {len(positives)} positives, {len(negatives)} negative files ({split})")
    # A final run's threshold is set on the validation negatives, never on the reported files.
    threshold_negatives = (evaluation_files(wake_word, "validation", data_dir)[1] if final
                           else None)
    pretrain = pretrain_experiment(data_dir)
    pretrained_dir = os.path.join(pretrain.run_dir(work_dir), "train")
    all_levers = levers(data_dir, pretrained_dir)
    by_name = {lever.name: lever for lever in all_levers}
    for option, names in (("--levers", lever_names or ()), ("--few_shot_levers", few_shot_levers)):
        unknown = sorted(set(names) - set(by_name))
        if unknown:
            raise ValueError(f"{option}: no lever(s) {unknown}; levers: {sorted(by_name)}")
    tried = [lever for lever in all_levers if lever_names is None or lever.name in lever_names]

    def ensure_pretrained():
        if not os.path.exists(os.path.join(pretrained_dir, "metrics.json")):
            log(f"pretraining {pretrained_dir}")
            experiment.train(pretrain, pretrained_dir, cache_dir)

    def reports(flags):
        """The configuration's report for every seed (trained and converted first, resuming)."""
        if flags.get("init_from") == pretrained_dir:
            ensure_pretrained()
        return [measure(wake_experiment(wake_word, flags, seed), work_dir, cache_dir, positives,
                        negatives, target_fa_per_hour, log, threshold_negatives)[0]
                for seed in seeds]

    rows, kept = [], []
    label = "_".join(wake_word.split())
    suffix = ("" if seeds == [0] else f"_seed{seeds[0]}" if len(seeds) == 1
              else f"_seeds{seeds[0]}-{seeds[-1]}")
    if final:
        chosen_on = "_".join((levers_from or wake_word).split())
        # The validation pass with the same seeds chose the levers.
        with open(os.path.join(output_dir, f"{chosen_on}_validation{suffix}.json")) as f:
            kept = json.load(f)["kept"]
    flags = {}
    for lever in all_levers:
        if lever.name in kept:
            flags = experiment.merge_train_flags(flags, lever.train_flags)
    if not final:
        measured = reports({})
        rows.append(dict(row("espeak (today's default)", "espeak-ng positives and near-miss / "
                             "other-word negatives, synthetic noise and rooms", measured),
                         kept="base"))
        best = score(measured)
        for lever in tried:
            trial = experiment.merge_train_flags(flags, lever.train_flags)
            measured = reports(trial)
            keep = score(measured) > best
            rows.append(dict(row("+" + lever.name, lever.what, measured),
                             kept="yes" if keep else "no"))
            if keep:
                best, flags = score(measured), trial
                kept.append(lever.name)
    else:
        rows.append(dict(row("kept on validation: " + (" + ".join(kept) or "base"),
                             f"text only; levers chosen on {chosen_on!r} (validation)",
                             reports(flags)), kept="final"))
    shot_flags = flags
    for lever_name in few_shot_levers:
        shot_flags = experiment.merge_train_flags(shot_flags, by_name[lever_name].train_flags)
    extra = "".join(f" + {lever_name}" for lever_name in few_shot_levers)
    for n in few_shot:
        if data_dir and label not in os.listdir(data_dir):
            raise ValueError(f"--few_shot needs {wake_word!r} recordings of training speakers "
                             f"(a Speech Commands word)")
        shots = _few_shot_pool(data_dir, label)
        trial = experiment.merge_train_flags(shot_flags, {"data_params": {
            "positives_dir": shots, "real_positives": n}})
        rows.append(dict(row(f"+{n} real recordings{extra}", f"{n} recordings of the phrase "
                             f"by training speakers (few-shot)", reports(trial)),
                         kept="few-shot"))
    result = {"wake_word": wake_word, "split": split, "target_fa_per_hour": target_fa_per_hour,
              "final": final, "epochs": EPOCHS, "seeds": seeds, "rows": rows, "kept": kept,
              "command": command}
    experiment.write_report(output_dir, name or f"{label}_{split}{suffix}", result,
                            markdown(result))
    return result


def _few_shot_pool(data_dir, label):
    """A folder of links to the word's training-split clips (the few-shot draws come from it)."""
    from tflm_kws.data import DataSpec, sources
    split_of = sources.split_rule(data_dir, DataSpec())
    pool = os.path.join(REPO, "runs", "few_shot", label)
    os.makedirs(pool, exist_ok=True)
    for path in sources.audio_files(os.path.join(data_dir, label)):
        link = os.path.join(pool, os.path.basename(path))
        if split_of(label, path) == "training" and not os.path.lexists(link):
            os.symlink(os.path.abspath(path), link)
    return pool


def _ints(option, text):
    try:
        return [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        raise ValueError(f"{option}: comma-separated integers, got {text!r}") from None


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(prog="python -m tflm_kws.wake_word_study",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wake_word", required=True)
    parser.add_argument("--split", choices=("validation", "testing"), default="validation")
    parser.add_argument("--final", action="store_true",
                        help="train the configuration kept on validation, report --split once")
    parser.add_argument("--levers_from", default=None, help="with --final: the wake word whose "
                        "validation run chose the levers (default: --wake_word)")
    parser.add_argument("--few_shot", default="", help="comma-separated N real recordings")
    parser.add_argument("--few_shot_levers", default="", help="comma-separated levers added to "
                        "the kept ones for the few-shot runs (e.g. real_negatives)")
    parser.add_argument("--data_dir", default=SPEECH_COMMANDS)
    parser.add_argument("--work_dir", default=os.path.join(REPO, "runs", "wake_word_study"))
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--output_dir", default=os.path.join(REPO, "bench", "wake_word"))
    parser.add_argument("--name", default=None, help="report stem (default <wake word>_<split>)")
    parser.add_argument("--target_fa_per_hour", type=float, default=1.0)
    parser.add_argument("--levers", default=None, help="comma-separated levers the greedy pass "
                        "tries (default: all, in their order)")
    parser.add_argument("--seed", type=int, default=0, help="the first training seed (report "
                        "stem gets _seed<N> unless 0)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds --seed .. --seed + N - 1 for "
                        "every configuration; figures are their means (report stem gets "
                        "_seeds<first>-<last>)")
    args = parser.parse_args(argv)
    try:
        few_shot = _ints("--few_shot", args.few_shot)
        result = run_study(args.wake_word, args.split, args.work_dir,
                           args.cache_dir or os.path.join(args.work_dir, "cache"),
                           args.output_dir, args.data_dir, args.final, few_shot,
                           args.target_fa_per_hour,
                           command=experiment.entry_point_command("tflm_kws.wake_word_study"),
                           levers_from=args.levers_from,
                           few_shot_levers=[n for n in args.few_shot_levers.split(",") if n],
                           name=args.name, seeds=range(args.seed, args.seed + args.seeds),
                           lever_names=None if args.levers is None else
                           [n for n in args.levers.split(",") if n])
    except (FileNotFoundError, ValueError) as err:
        print(f"wake_word_study: error: {err}", file=sys.stderr)
        return 2
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
