"""Mutation check of the verification paths: does the test suite notice when the product is wrong?

  python tools/mutants.py [--only NAME ...] [--list] [--jobs N]      (make mutants)

Each mutant below is one small, deliberate bug of the kind that reaches users (a check made a no-op,
a config field ignored, an index off by one). For each, a copy of the work tree gets the bug and
the tests that are meant to catch it run there; the mutant is *killed* when they fail, *survives*
when they pass. The tests first run on the unmutated copy and must pass there (else nothing is
learnt). It prints one line per mutant and a summary, and exits 1 when any mutant survives.

Not part of `make test`: a run rebuilds and retests once per mutant (minutes). Add a mutant here
with every verification path you add; keep its tests the smallest set that should catch it.
"""
import argparse
import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    path: str          # file in the repository
    old: str           # exact text, present exactly once
    new: str
    tests: tuple       # pytest arguments (files, node ids, -k expressions)
    harm: str          # what it would do to a user


A_SKETCH = "tests/test_arduino_sketch.py"
CONVERSION = "tests/test_conversion.py"

MUTANTS = (
    Mutant("tflm_runner_is_tflite", "tflm_kws/evaluate.py",
           '    if runtime == "tflm":\n        return TflmRunner(tflite_bytes)',
           '    if runtime == "tflm":\n        return TfliteRunner(tflite_bytes)',
           (CONVERSION, "tests/test_evaluate.py"),
           "'TFLM == TFLite' compares TFLite with itself"),
    Mutant("calibrate_on_zeros", "tflm_kws/export.py",
           "    chosen = features_int8[take].copy()",
           "    chosen = np.zeros_like(features_int8[take])",
           (CONVERSION,), "int8 activation ranges miss real speech"),
    Mutant("input_quantization_check_noop", "tflm_kws/export.py",
           '    """The int8 input must be the device\'s int8 feature unchanged: scale == feature_scale, zp 0."""\n',
           '    """The int8 input must be the device\'s int8 feature unchanged: scale == feature_scale, zp 0."""\n    return\n',
           (CONVERSION,), "a model with the wrong input scale ships"),
    Mutant("per_channel_fc_check_deleted", "tflm_kws/export.py",
           "            if len(scales) != 1:", "            if False:",
           (CONVERSION,), "per-channel dense weights reach the Feb-2023 kernel"),
    Mutant("float_op_check_deleted", "tflm_kws/export.py",
           "        if any(np.dtype(t) in [np.dtype(f) for f in _FLOAT_TYPES] for t in types):",
           "        if False:",
           (CONVERSION,), "a float op ships in an 'int8' model"),
    Mutant("cmsis_nn_scratch_zero", "tflm_kws/export.py",
           "    return max([size for _, _, size in cmsis_nn_scratch_per_op(tflite_bytes)], default=0)",
           "    return 0",
           (CONVERSION,), "kTensorArenaSize too small on the board"),
    Mutant("arena_ignores_scratch", "tflm_kws/export.py",
           "    total = arena_used_bytes + scratch_bytes + margin",
           "    total = arena_used_bytes + margin",
           (CONVERSION,), "kTensorArenaSize too small on the board"),
    Mutant("depthwise_scratch_ignored", "tflm_kws/export.py",
           "            size = c_in * kh * kw * 2 if c_in == int(out_shape[-1]) else 0",
           "            size = 0",
           (CONVERSION,), "kTensorArenaSize too small for depthwise models"),
    Mutant("python_frontend_ignores_fields", "tflm_kws/frontend.py",
           """            upper_band_limit=config.upper_band_limit,
            lower_band_limit=config.lower_band_limit,
            smoothing_bits=config.smoothing_bits,
            even_smoothing=config.even_smoothing,
            odd_smoothing=config.odd_smoothing,
            min_signal_remaining=config.min_signal_remaining,
            enable_pcan=config.enable_pcan,
            pcan_strength=config.pcan_strength,
            pcan_offset=config.pcan_offset,
            gain_bits=config.gain_bits,
            enable_log=config.enable_log,
            scale_shift=config.scale_shift,
""", "", ("tests/test_frontend.py", A_SKETCH),
           "--frontend_params trains on features the device does not compute"),
    Mutant("python_int8_mapping_no_rounding", "tflm_kws/frontend.py",
           "    v = (v * INT8_VALUE_SCALE + INT8_VALUE_DIV // 2) // INT8_VALUE_DIV - 128\n    return np.clip",
           "    v = (v * INT8_VALUE_SCALE) // INT8_VALUE_DIV - 128\n    return np.clip",
           ("tests/test_frontend.py",), "features one step off micro_speech's"),
    Mutant("device_ignores_band_limits_and_smoothing_bits", "arduino/tflm_kws/feature_provider.cpp",
           """  config.filterbank.lower_band_limit = kFeatureLowerBandLimit;
  config.filterbank.upper_band_limit = kFeatureUpperBandLimit;
  config.noise_reduction.smoothing_bits = kFeatureSmoothingBits;
""", "", (A_SKETCH,), "the board computes other features than training did"),
    Mutant("device_ignores_pcan", "arduino/tflm_kws/feature_provider.cpp",
           """  config.pcan_gain_control.enable_pcan = kFeatureEnablePcan ? 1 : 0;""",
           """  config.pcan_gain_control.enable_pcan = 1;""",
           (A_SKETCH,), "the board computes other features than training did"),
    Mutant("device_slides_window_by_one", "arduino/tflm_kws/feature_provider.cpp",
           """  memmove(feature_data_, feature_data_ + new_slices * kFeatureChannelCount,
          (kFeatureFrameCount - new_slices) * kFeatureChannelCount);""",
           """  memmove(feature_data_, feature_data_ + kFeatureChannelCount,
          (kFeatureFrameCount - 1) * kFeatureChannelCount);""",
           (A_SKETCH,), "wrong features whenever inference takes > 20 ms"),
    Mutant("device_never_restarts", "arduino/tflm_kws/feature_provider.cpp",
           "    Restart(slices_available - kFeatureFrameCount);\n",
           "    next_slice_ = slices_available - kFeatureFrameCount;\n"
           "    next_sample_ = next_slice_ * kFeatureStrideSamples;\n",
           (A_SKETCH,), "stale frontend state after the loop fell far behind"),
    Mutant("device_int8_mapping_no_rounding", "arduino/tflm_kws/feature_provider.cpp",
           "(static_cast<int32_t>(value) * kValueScale) + (kValueDiv / 2)",
           "(static_cast<int32_t>(value) * kValueScale)",
           (A_SKETCH,), "features one step off training's"),
    Mutant("ring_buffer_wraps_to_1", "arduino/tflm_kws/audio_ring_buffer.cpp",
           "    storage_[index] = samples[i];\n    if (++index == capacity_) index = 0;",
           "    storage_[index] = samples[i];\n    if (++index == capacity_) index = 1;",
           (A_SKETCH,), "corrupt audio after the first second"),
    Mutant("ring_buffer_reads_unwritten_audio", "arduino/tflm_kws/audio_ring_buffer.cpp",
           "  if (end > samples_written() || samples_written() - start > capacity_) return false;",
           "  if (samples_written() - start > capacity_) return false;",
           (A_SKETCH,), "audio a second old read as the newest"),
    Mutant("recognizer_ignores_threshold", "arduino/tflm_kws/recognize_commands.cpp",
           "if (current_top_score > kDetectionThreshold && !suppressed)",
           "if (current_top_score > 0 && !suppressed)", (A_SKETCH,), "every sound is a command"),
    Mutant("recognizer_never_suppresses", "arduino/tflm_kws/recognize_commands.cpp",
           "(current_time_ms - previous_top_time_ms_) <= kSuppressionMs",
           "(current_time_ms - previous_top_time_ms_) <= 0",
           (A_SKETCH,), "one word is reported many times"),
    Mutant("scores_truncate", "arduino/tflm_kws/model_scores.cpp",
           "static_cast<uint8_t>(std::lround(scaled))", "static_cast<uint8_t>(scaled)",
           (A_SKETCH,), "the recognizer sees other scores than evaluation"),
    Mutant("input_table_ignores_zero_point", "arduino/tflm_kws/model_scores.cpp",
           "    double q = std::round(static_cast<double>(v) * kFeatureInputScale / input_scale) +\n"
           "               input_zero_point;",
           "    double q = std::round(static_cast<double>(v) * kFeatureInputScale / input_scale);",
           (A_SKETCH,), "a model with a non-zero input zero point gets shifted inputs"),
    Mutant("spotter_time_one_slice_late", "arduino/tflm_kws/keyword_spotter.cpp",
           "(feature_provider_.slices_computed() - 1) * kFeatureStrideSamples",
           "feature_provider_.slices_computed() * kFeatureStrideSamples",
           (A_SKETCH,), "detections time-stamped 20 ms late"),
    Mutant("spotter_skips_recognizer_on_new_slices", "arduino/tflm_kws/keyword_spotter.cpp",
           "  if (new_slices == 0) return true;",
           "  if (new_slices < 2) return true;",
           (A_SKETCH,), "inference only when the loop fell behind"),
    Mutant("recognizer_accepts_negative_time", "arduino/tflm_kws/recognize_commands.cpp",
           "  if (current_time_ms < 0) {", "  if (false) {",
           (A_SKETCH,), "integer overflow (undefined behaviour) near INT32_MIN"),
    Mutant("deploy_conv_drops_dilation", "tflm_kws/layers.py",
           """                                   padding=self.padding, dilation_rate=self.dilation_rate,
                                   activation=self.activation, use_bias=True, name=self.name)""",
           """                                   padding=self.padding,
                                   activation=self.activation, use_bias=True, name=self.name)""",
           ("tests/test_layers.py",), "a dilated RepConv2D fuses wrongly"),
    Mutant("fuse_callback_ignores_n", "tflm_kws/reparameterize.py",
           "if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:",
           "if self.every_n_epochs:",
           ("tests/test_reparameterize.py",), "fuses (and evaluates) every epoch"),
    Mutant("quantize_input_half_to_even", "tflm_kws/evaluate.py",
           "    q = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5) + zero_point",
           "    q = np.round(scaled) + zero_point",
           ("tests/test_evaluate.py", CONVERSION), "evaluation feeds other inputs than the device"),
)


def _count_line(output):
    """(passed, failed + errors) from pytest's summary line."""
    counts = {}
    for number, word in re.findall(r"(\d+) (passed|failed|error|errors|skipped)", output):
        counts[word] = counts.get(word, 0) + int(number)
    return counts.get("passed", 0), counts.get("failed", 0) + counts.get("error", 0) + \
        counts.get("errors", 0)


def _copy_tree(dest):
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPO / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # The sdist the C++ tests build against, so that the copy does not fetch it again.
    cached = REPO / "build" / "pymicro_features"
    if cached.is_dir():
        shutil.copytree(cached, dest / "build" / "pymicro_features")


def _pytest(tree, tests, timeout):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                               *tests], cwd=tree, capture_output=True, text=True, env=env,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    return proc.returncode, proc.stdout + proc.stderr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per pytest run")
    args = parser.parse_args(argv)
    names = {m.name for m in MUTANTS}
    unknown = sorted(set(args.only or ()) - names)
    if unknown:
        parser.error(f"--only: unknown mutant(s) {unknown}; valid: {', '.join(sorted(names))}")
    mutants = [m for m in MUTANTS if args.only is None or m.name in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.name:48s} {m.path}: {m.harm}")
        return 0
    for m in mutants:  # a stale mutant is a bug of this file, caught before any run
        count = (REPO / m.path).read_text().count(m.old)
        if count != 1:
            print(f"mutant {m.name}: its text occurs {count} times in {m.path} (want 1); update it")
            return 2
    with tempfile.TemporaryDirectory(prefix="tflm_kws_mutants_") as tmp:
        tree = pathlib.Path(tmp)
        _copy_tree(tree)
        probe = subprocess.run([sys.executable, "-c", "import tflm_kws; print(tflm_kws.__file__)"],
                               cwd=tree, capture_output=True, text=True)
        if not probe.stdout.strip().startswith(str(tree)):
            print(f"the copy's tflm_kws is not the one imported ({probe.stdout.strip()}"
                  f"{probe.stderr.strip()[-300:]})")
            return 2
        baseline = sorted({t for m in mutants for t in m.tests})
        print(f"baseline: {' '.join(baseline)}", flush=True)
        code, output = _pytest(tree, baseline, args.timeout)
        if code != 0:
            print(f"the tests fail without any mutation; fix them first:\n{output[-3000:]}")
            return 2
        survivors, results = [], []
        for m in mutants:
            target = tree / m.path
            original = target.read_text()
            target.write_text(original.replace(m.old, m.new))
            start = time.time()
            code, output = _pytest(tree, m.tests, args.timeout)
            target.write_text(original)
            passed, failed = _count_line(output)
            if code is None:
                verdict = "killed (timed out)"
            elif code != 0 and failed:
                verdict = "killed"
            elif code != 0:
                verdict = f"killed (pytest exit {code})"
            elif passed == 0:
                verdict, survivors = "SURVIVED (every test skipped)", survivors + [m]
            else:
                verdict, survivors = "SURVIVED", survivors + [m]
            results.append((m, verdict))
            print(f"{m.name:48s} {verdict:32s} {time.time() - start:6.1f} s   {m.harm}", flush=True)
    print(f"\n{len(mutants) - len(survivors)} of {len(mutants)} mutants killed"
          + (f"; survivors: {', '.join(m.name for m in survivors)}" if survivors else ""))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
