r"""A keyword model evaluated as a wake word, the way the board runs it: misses vs false accepts
per hour.

  python -m tflm_kws.evaluate_wake_word --model_dir=runs/x --wake_word=yes \
      --positives=DIR --negatives=DIR [--output_dir=DIR] [--target_fa_per_hour=1]

Every audio file is streamed through the device pipeline: the microfrontend running continuously
over the file (`frontend.compute_stream_features`), the int8 model in TFLM after every new slice
(a whole-window model) or every `frames_per_call` slices (a streaming model, `model_int8_stream
.tflite` when the directory has one), the sketch's score conversion (`evaluate.device_scores`) and
its recognizer rules (`tflm_kws.recognizer`, equal to recognize_commands.cpp). A positive file
(the phrase anywhere in audio of any length) is streamed with 1 s of silence before and after, as
the host binary does, and counts as detected when the wake word fires anywhere in it; negative
files (other speech, noise; any length) follow on in order as one recording (one frontend, model
and recognizer state), and every firing of the wake word is a false accept, per hour of negative
audio. Files are decoded and streamed a minute at a time (`audio.audio_blocks`,
`frontend.FeatureStream`): hours of audio, in one file or many, are never held at once. The
detection threshold is swept (the averaged score out of 255 that must be exceeded; the sketch
uses 200): the report gives the false-rejection rate (FRR) against false accepts per hour, a DET
plot, and the lowest-FRR threshold whose rate is within --target_fa_per_hour. An unreadable file is named and skipped.
"""
import dataclasses
import os
import sys

import numpy as np

from tflm_kws import recognizer as rules

LEAD_MS = 1000
THRESHOLDS = tuple(range(100, 255, 5)) + (rules.DETECTION_THRESHOLD,)


@dataclasses.dataclass
class ScoreStream:
    """The recognizer inputs of one file: scores uint8 [N, classes] at times_ms [N]."""
    path: str
    seconds: float
    scores: np.ndarray
    times_ms: np.ndarray


class DeviceModel:
    """The int8 model as the sketch runs it on continuous features that arrive in pieces: its
    state (the whole-window model's feature window, a streaming model's states) carries over
    from one `push` to the next until `reset`."""

    def __init__(self, tflite_bytes):
        from tflm_kws import evaluate, streaming  # pylint: disable=import-outside-toplevel
        self.frames_per_call, _ = streaming.layout(tflite_bytes)
        if self.frames_per_call:
            self.runner = streaming.StreamingRunner(tflite_bytes)
        else:
            self.runner = evaluate.TflmRunner(tflite_bytes)
        self.is_probability = evaluate.ends_in_softmax(tflite_bytes)
        self.reset()

    def reset(self):
        """A fresh start, as at power-up: the sketch's window starts as zeros."""
        if self.frames_per_call:
            self.runner.reset()
        self._history = None  # the last window_frames - 1 slices (whole-window model)
        self._pending = None  # slices not yet consumed by a streaming call
        self._slices = 0      # slices pushed since the reset

    def push(self, features):
        """(raw int8 outputs [N, classes], index since the reset of each output's newest slice
        [N]) for the next int8 feature slices [n, channels]."""
        from tflm_kws import evaluate  # pylint: disable=import-outside-toplevel
        features = np.asarray(features, np.int8)
        first = self._slices
        self._slices += len(features)
        if self.frames_per_call:
            if self._pending is not None:
                features = np.concatenate([self._pending, features])
            used = len(features) // self.frames_per_call * self.frames_per_call
            self._pending = features[used:]
            outputs = self.runner.run(features[:used])
            last = (self._slices - len(self._pending) - used + self.frames_per_call - 1
                    + np.arange(len(outputs)) * self.frames_per_call)
            return outputs, last
        shape = tuple(self.runner.input_detail["shape"])
        window = int(np.prod(shape)) // features.shape[1]  # the input's slices
        if self._history is None:
            self._history = np.zeros((window - 1, features.shape[1]), np.int8)
        padded = np.concatenate([self._history, features])
        self._history = padded[len(padded) - (window - 1):]
        outputs = [self.runner.run(evaluate.quantize_input(
                       padded[k:k + window][np.newaxis],
                       self.runner.input_detail).reshape(shape)).reshape(-1)
                   for k in range(len(features))]
        return (np.array(outputs, np.int8).reshape(len(features), -1),
                first + np.arange(len(features)))


def score_blocks(model, blocks, config, path=""):
    """ScoreStream of int16 audio blocks that follow on, through the device pipeline from a fresh
    start: the frontend (`frontend.FeatureStream`) and the model run continuously across blocks,
    and only the scores (a few bytes per 20 ms) are kept, so hours of audio can pass through."""
    from tflm_kws import evaluate, frontend  # pylint: disable=import-outside-toplevel
    features = frontend.FeatureStream(config)
    model.reset()
    raws, lasts, samples = [], [], 0
    for block in blocks:
        samples += len(block)
        raw, last = model.push(features.push(block))
        if len(raw):
            raws.append(raw)
            lasts.append(last)
    seconds = samples / config.sample_rate
    if not raws:
        return ScoreStream(path, seconds, np.zeros((0, 0), np.uint8), np.zeros(0, np.int64))
    last = np.concatenate(lasts)
    scores = evaluate.device_scores(np.concatenate(raws), model.runner.output_detail,
                                    model.is_probability)
    # A slice's time is the end of its audio, as keyword_spotter.cpp reports it.
    times = (last * config.stride_samples + config.window_samples) * 1000 // config.sample_rate
    return ScoreStream(path, seconds, scores, times.astype(np.int64))


def score_stream(model, audio_int16, config, path=""):
    """ScoreStream of one int16 signal through the device pipeline."""
    return score_blocks(model, [np.asarray(audio_int16)], config, path)


def _averaged(stream, num_labels, stride_ms):
    """Per result: (valid, top label, top integer-averaged score), as the recognizer computes
    them (they do not depend on the threshold)."""
    n = len(stream.times_ms)
    if n == 0:
        return np.zeros(0, bool), np.zeros(0, int), np.zeros(0, int)
    times = stream.times_ms
    sums = np.concatenate([np.zeros((1, num_labels), np.int64),
                           np.cumsum(stream.scores.astype(np.int64), axis=0)])
    start = np.searchsorted(times, times - rules.AVERAGE_WINDOW_MS, side="left")
    start = np.maximum(start, np.arange(n) - rules.max_results(stride_ms) + 1)
    count = np.arange(n) - start + 1
    averages = (sums[np.arange(n) + 1] - sums[start]) // count[:, None]
    valid = (count >= rules.MINIMUM_COUNT) & (times - times[start]
                                              >= rules.AVERAGE_WINDOW_MS // 4)
    return valid, np.argmax(averages, axis=1), averages.max(axis=1)


def firings(stream, labels, wake_index, thresholds, stride_ms=rules.STRIDE_MS):
    """{threshold: times (ms) the wake word fired} of one stream (the recognizer's suppression
    state follows every label's commands, as on the device)."""
    valid, top, top_score = _averaged(stream, len(labels), stride_ms)
    silence = labels.index(rules.SILENCE_LABEL) if rules.SILENCE_LABEL in labels else -1
    result = {}
    for threshold in thresholds:
        previous, previous_time, has_previous, fired = silence, 0, False, []
        for i in np.nonzero(valid & (top_score > threshold))[0]:
            label, time_ms = int(top[i]), int(stream.times_ms[i])
            if (has_previous and previous != silence and label == previous
                    and time_ms - previous_time <= rules.SUPPRESSION_MS):
                continue
            previous, previous_time, has_previous = label, time_ms, True
            if label == wake_index:
                fired.append(time_ms)
        result[threshold] = fired
    return result


def audio_files(directory, what):
    from tflm_kws import audio  # pylint: disable=import-outside-toplevel
    if not directory or not os.path.isdir(directory):
        raise FileNotFoundError(f"--{what}={directory!r} is not a directory")
    paths = audio.audio_files_under(directory)
    if not paths:
        raise FileNotFoundError(f"--{what}={directory}: no audio files "
                                f"({', '.join(audio.AUDIO_EXTENSIONS)})")
    return paths


def evaluate(tflite_bytes, config, labels, wake_word, positives, negatives,
             thresholds=THRESHOLDS, target_fa_per_hour=1.0, block_seconds=60, log=print):
    """The wake-word report dict (see the module docstring) for lists of audio file paths.

    positives=[]: negatives only (each curve point's "frr" is None; threshold_for_target is the
    lowest threshold within the target rate), to set a threshold on negative audio alone."""
    from tflm_kws import audio  # pylint: disable=import-outside-toplevel
    if wake_word not in labels:
        raise ValueError(f"--wake_word={wake_word!r} is not one of the model's labels {labels}")
    wake = labels.index(wake_word)
    model = DeviceModel(tflite_bytes)
    thresholds = sorted(set(int(t) for t in thresholds))
    skipped = []
    lead = np.zeros(LEAD_MS * config.sample_rate // 1000, np.int16)

    def blocks_of(paths, around=None):
        """The files' audio blocks in order (each file between `around`'s silences); a file that
        cannot be decoded is named and skipped (from the block that fails: one that fails
        mid-file has had its earlier blocks streamed)."""
        for path in paths:
            try:
                if around is not None:
                    yield around
                yield from audio.audio_blocks(path, config.sample_rate, block_seconds)
                if around is not None:
                    yield around
            except (audio.AudioDecodeError, OSError) as err:
                log(f"skipped {path}: {err}")
                skipped.append({"path": path, "reason": str(err)})

    hits = {t: 0 for t in thresholds}
    positive_count = 0
    for path in positives:
        before = len(skipped)
        stream = score_blocks(model, blocks_of([path], around=lead), config, path)
        if len(skipped) > before:
            continue
        positive_count += 1
        for t, fired in firings(stream, labels, wake, thresholds,
                                config.window_stride_ms).items():
            hits[t] += bool(fired)
    # The negatives follow on as one recording (one frontend, model and recognizer state), read
    # block_seconds at a time: only their scores are held.
    stream = score_blocks(model, blocks_of(negatives), config)
    negative_seconds = stream.seconds
    false_accepts = {t: len(fired) for t, fired in firings(
        stream, labels, wake, thresholds, config.window_stride_ms).items()}
    if (positives and positive_count == 0) or negative_seconds == 0:
        raise ValueError("no readable positive or negative audio (see the skipped files)")
    hours = negative_seconds / 3600.0
    curve = [{"threshold": t, "frr": 1.0 - hits[t] / positive_count if positive_count else None,
              "false_accepts": false_accepts[t], "fa_per_hour": false_accepts[t] / hours}
             for t in thresholds]
    within = [p for p in curve if p["fa_per_hour"] <= target_fa_per_hour]
    chosen = (min(within, key=lambda p: (p["frr"] or 0.0, p["threshold"])) if within
              else None)
    return {
        "wake_word": wake_word,
        "streaming_model": bool(model.frames_per_call),
        "positives": positive_count,
        "negative_hours": hours,
        "curve": curve,
        "device_threshold": rules.DETECTION_THRESHOLD,
        "at_device_threshold": next(p for p in curve if p["threshold"] == rules.DETECTION_THRESHOLD)
        if rules.DETECTION_THRESHOLD in thresholds else None,
        "target_fa_per_hour": target_fa_per_hour,
        "threshold_for_target": chosen,
        "skipped": skipped,
    }


def summary_line(report):
    """One line for a command's output: recall on the real recordings at the chosen threshold and
    at the sketch's default, and how far the negatives resolve the false-accept rate."""
    chosen, default = report["threshold_for_target"], report["at_device_threshold"]
    hours = report["negative_hours"]
    text = (f"wake word '{report['wake_word']}' on real recordings ({report['positives']} "
            f"positives, {hours:.2f} h of negatives): ")
    if chosen:
        text += (f"recall {1 - chosen['frr']:.3f} at threshold {chosen['threshold']} "
                 f"({chosen['fa_per_hour']:.2f} false accepts per hour)")
    else:
        text += f"no threshold reaches {report['target_fa_per_hour']:g} false accepts per hour"
    if default:
        text += (f"; at the default {default['threshold']}: recall {1 - default['frr']:.3f}, "
                 f"{default['fa_per_hour']:.2f} per hour")
    if hours * report["target_fa_per_hour"] < 1:
        text += (f" (under {1 / report['target_fa_per_hour']:g} h of negatives: 0 false accepts "
                 f"is all they can show)")
    return text


def report_markdown(report):
    lines = [f"# Wake word '{report['wake_word']}': misses vs false accepts per hour", "",
             f"{report['positives']} positive files, {report['negative_hours']:.3f} hours of "
             f"negative audio; {'streaming' if report['streaming_model'] else 'whole-window'} "
             f"int8 model in TFLM, the sketch's recognizer rules.", ""]
    chosen = report["threshold_for_target"]
    lines.append(f"Threshold for <= {report['target_fa_per_hour']:g} false accepts per hour: "
                 + (f"{chosen['threshold']} (FRR {100 * chosen['frr']:.1f} %, "
                    f"{chosen['fa_per_hour']:.2f} per hour)" if chosen else "none reaches it"))
    lines += ["", "| threshold | FRR % | false accepts | per hour |", "|---:|---:|---:|---:|"]
    for p in report["curve"]:
        lines.append(f"| {p['threshold']} | {100 * p['frr']:.1f} | {p['false_accepts']} | "
                     f"{p['fa_per_hour']:.2f} |")
    if report["skipped"]:
        lines += ["", "Skipped files:"] + [f"- {s['path']}: {s['reason']}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def det_plot(report, path):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    from tflm_kws import io_utils  # pylint: disable=import-outside-toplevel
    fig, ax = plt.subplots(figsize=(6, 4.5))
    curve = report["curve"]
    # No false accept plots at half of one per the audio's hours (the resolution of the set).
    floor = 0.5 / report["negative_hours"]
    ax.plot([max(p["fa_per_hour"], floor) for p in curve], [100 * p["frr"] for p in curve], "o-")
    ax.set_xscale("log")
    ax.set_xlabel(f"false accepts per hour (none: plotted at {floor:.2g}, half of one in the "
                  f"negatives' hours)")
    ax.set_ylabel("false rejection rate (%)")
    ax.set_title(f"'{report['wake_word']}' on {report['positives']} positives, "
                 f"{report['negative_hours']:.2f} h negatives")
    ax.axvline(report["target_fa_per_hour"], color="gray", linestyle=":")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    io_utils.atomic_savefig(fig, path, dpi=100)


def main(argv=None):
    import argparse  # pylint: disable=import-outside-toplevel
    from tflm_kws import experiment, frontend  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(prog="python -m tflm_kws.evaluate_wake_word",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="a conversion output directory "
                        "(model_int8[_stream].tflite, features.json)")
    parser.add_argument("--wake_word", required=True, help="the label that is the wake word")
    parser.add_argument("--positives", required=True, help="folder of recordings of the phrase")
    parser.add_argument("--negatives", required=True, help="folder of other audio")
    parser.add_argument("--target_fa_per_hour", type=float, default=1.0)
    parser.add_argument("--output_dir", help="default MODEL_DIR/wake_word_<wake word>")
    args = parser.parse_args(argv)
    try:
        config, labels, _ = frontend.load_features_json(
            os.path.join(args.model_dir, "features.json"))
        tflite_path = os.path.join(args.model_dir, "model_int8_stream.tflite")
        if not os.path.exists(tflite_path):
            tflite_path = os.path.join(args.model_dir, "model_int8.tflite")
        with open(tflite_path, "rb") as f:
            tflite_bytes = f.read()
        report = evaluate(tflite_bytes, config, labels, args.wake_word,
                          audio_files(args.positives, "positives"),
                          audio_files(args.negatives, "negatives"),
                          target_fa_per_hour=args.target_fa_per_hour,
                          log=lambda m: print(m, file=sys.stderr))
    except (FileNotFoundError, ValueError) as err:
        print(f"evaluate_wake_word: error: {err}", file=sys.stderr)
        return 2
    out = args.output_dir or os.path.join(args.model_dir, f"wake_word_{args.wake_word}")
    text = report_markdown(report)
    experiment.write_report(out, "wake_word", report, text)
    det_plot(report, os.path.join(out, "det.png"))
    print(text)
    print(os.path.join(out, "wake_word.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
