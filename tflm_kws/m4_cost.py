r"""On-device cost of an int8 model, measured on an emulated Cortex-M4F (arduino/m4_cost/).

  python -m tflm_kws.m4_cost --tflite=runs/x/model_int8.tflite --tflm_arduino_src=/path/to/src
  python -m tflm_kws.m4_cost --model_dir=runs/x/convert  (takes model_int8.tflite and the
                                                         frontend/labels from there)

Builds the sketch's own code (ModelRunner, FeatureProvider, RecognizeCommands via KeywordSpotter)
with the Arduino_TensorFlowLite library's TFLM and CMSIS-NN kernels for the Cortex-M4F at -Os, as
the board build does, runs it bare-metal in `qemu-system-arm -M mps2-an386`, and counts the
executed instructions with a QEMU plugin (arduino/m4_cost/insn_count_plugin.c) between marker
calls. Reports instructions per inference (and per op), per whole 20 ms step (frontend slice +
model + recognizer, as the sketch runs it), the arena TFLM uses with CMSIS-NN on the M4, and the
int8 output, which a caller can compare with the host TFLM's on the same input (`reference_input`).

Instructions are not cycles: loads, multiplies and branches take more than one cycle on the M4
(../shared/notes/device.md: real cycles ~5-75 % above the count). The SMLAD bound (2 int8 MACs per
cycle) is given beside the count for scale.

Needs: gcc-arm-none-eabi + libnewlib-arm-none-eabi + libstdc++-arm-none-eabi-newlib,
qemu-system-arm (>= 7.2), a host gcc, and the Arduino library's src/ folder (docs/arduino.md).
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER_DIR = os.path.join(REPO, "arduino", "m4_cost")
SKETCH_DIR = os.path.join(REPO, "arduino", "tflm_kws")
DEFAULT_BUILD_DIR = os.path.join(RUNNER_DIR, "build")
TFLM_ARDUINO_SRC_ENV = "TFLM_ARDUINO_SRC"
TOOLS = (("arm-none-eabi-g++", "gcc-arm-none-eabi, libnewlib-arm-none-eabi and "
          "libstdc++-arm-none-eabi-newlib"), ("qemu-system-arm", "qemu-system-arm"),
         ("gcc", "gcc"), ("make", "make"))
# Marker tags of m4_cost_main.cpp.
TAG_INVOKE, TAG_OP, TAG_STEP = 1, 3, 5
STEP_MS = 20
QEMU_TIMEOUT_S = 600


class M4CostError(RuntimeError):
    """The runner could not be built or run; the message says what is missing or what failed."""


def missing_tools():
    """[(tool, Debian packages)] of what is not on PATH."""
    return [(tool, packages) for tool, packages in TOOLS if shutil.which(tool) is None]


def check_arduino_src(path):
    """The Arduino_TensorFlowLite src/ folder `path`, checked; M4CostError names what is wrong."""
    if not path:
        raise M4CostError(f"no TFLM source: pass --tflm_arduino_src or set ${TFLM_ARDUINO_SRC_ENV} "
                          f"to the Arduino_TensorFlowLite library's src/ folder (docs/arduino.md)")
    path = os.path.abspath(os.path.expanduser(path))
    for need in ("tensorflow/lite/micro/micro_interpreter.h", "third_party/cmsis_nn/Include",
                 "tensorflow/lite/micro/kernels/cmsis_nn/conv.cpp"):
        if not os.path.exists(os.path.join(path, need)):
            raise M4CostError(f"--tflm_arduino_src={path} is not the Arduino_TensorFlowLite "
                              f"library's src/ folder: it has no {need}")
    return path


def _run(command, what, cwd=None, timeout=None):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise M4CostError(f"{what} failed (exit {result.returncode}): "
                          f"{(result.stderr or result.stdout)[-3000:]}")
    return result.stdout


def _build_dir(build_dir, arduino_src):
    # The compiled library depends on the source tree it came from: one build per tree.
    key = hashlib.sha1(arduino_src.encode()).hexdigest()[:10]
    return os.path.join(os.path.abspath(build_dir or DEFAULT_BUILD_DIR), key)


def build_plugin(build_dir):
    _run(["make", "-s", "-C", RUNNER_DIR, f"BUILD={build_dir}", "plugin"],
         "building the QEMU plugin")
    return os.path.join(build_dir, "insn_count_plugin.so")


def _marker_address(elf):
    out = _run(["arm-none-eabi-nm", elf], f"arm-none-eabi-nm {elf}")
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2] == "m4cost_mark":
            return int(fields[0], 16)
    raise M4CostError(f"{elf} has no m4cost_mark symbol")


def run_firmware(elf, plugin):
    """Runs `elf` in QEMU with the counting plugin: (stdout lines, [count at each mark], total)."""
    marks_path = elf + ".marks"
    if os.path.exists(marks_path):
        os.remove(marks_path)
    command = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
               "-serial", "none", "-semihosting-config", "enable=on,target=native",
               "-kernel", elf, "-plugin",
               f"{plugin},mark={hex(_marker_address(elf))},out={marks_path}"]
    try:
        stdout = _run(command, f"running {os.path.basename(elf)} in qemu-system-arm",
                      timeout=QEMU_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise M4CostError(f"{elf} did not finish within {QEMU_TIMEOUT_S} s in QEMU") from None
    with open(marks_path) as f:
        lines = f.read().split()
    if "total" not in lines:
        raise M4CostError(f"the plugin wrote no total to {marks_path}")
    total = int(lines[lines.index("total") + 1])
    counts = [int(v) for v in lines[:lines.index("total")]]
    return stdout.splitlines(), counts, total


def _tagged_spans(stdout_lines, counts):
    """{begin tag: [instructions between each begin mark and the end mark after it]}."""
    tags = [int(line.split()[2]) for line in stdout_lines if line.startswith("mark ")]
    if len(tags) != len(counts):
        raise M4CostError(f"the firmware printed {len(tags)} marks, the plugin saw {len(counts)}")
    spans = {}
    for i in range(0, len(tags) - 1, 2):
        begin, end = tags[i], tags[i + 1]
        if end != begin + 1:
            raise M4CostError(f"mark {i}: tag {begin} is followed by {end}, not {begin + 1}")
        spans.setdefault(begin, []).append(counts[i + 1] - counts[i])
    return spans


def loop_check(build_dir=None):
    """The counter's check: instructions between marks around a 1,000- and a 3,000-iteration loop
    of 2 instructions each. Returns {"short", "long", "slope"}: exact counting gives slope 2.0
    (the difference of the two spans is exactly 4,000)."""
    missing = missing_tools()
    if missing:
        raise M4CostError(f"missing tools: {missing}")
    build_dir = os.path.abspath(build_dir or DEFAULT_BUILD_DIR)
    plugin = build_plugin(build_dir)
    _run(["make", "-s", "-C", RUNNER_DIR, f"BUILD={build_dir}", "loop_check"],
         "building loop_check.elf")
    lines, counts, _ = run_firmware(os.path.join(build_dir, "loop_check.elf"), plugin)
    if len(counts) != 3:
        raise M4CostError(f"loop_check: want 3 marks, got {len(counts)}")
    short, long = counts[1] - counts[0], counts[2] - counts[1]
    return {"short": short, "long": long, "slope": (long - short) / 2000.0}


def elf_size(elf):
    """{"text", "data", "bss"} bytes of an ELF (arm-none-eabi-size, Berkeley format). On the board
    flash holds text + data, static RAM is data + bss."""
    out = _run(["arm-none-eabi-size", elf], f"arm-none-eabi-size {elf}")
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def tflite_macs_per_op(tflite_bytes):
    """[MACs] of every op of an int8 flatbuffer, from its tensor shapes (0 for ops without)."""
    from tflm_kws import export  # pylint: disable=import-outside-toplevel
    ops, tensors = export.ops_details(tflite_bytes)
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in tensors}
    result = []
    for op in ops:
        name, ins, outs = op["op_name"], list(op["inputs"]), list(op["outputs"])
        out = int(np.prod(shapes[outs[0]])) if outs else 0
        if name == "CONV_2D":
            _, kh, kw, cin = shapes[ins[1]]
            result.append(out * kh * kw * cin)
        elif name == "DEPTHWISE_CONV_2D":
            _, kh, kw, _ = shapes[ins[1]]
            result.append(out * kh * kw)
        elif name == "FULLY_CONNECTED":
            result.append(out * shapes[ins[1]][-1])
        else:
            result.append(0)
    return result


def reference_input(num_bytes):
    """The pseudo-random int8 input m4_cost_main.cpp gives its first invoke (xorshift32, seed
    12345), so that a caller can run the same input on the host."""
    state, values = 12345, []
    for _ in range(num_bytes):
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        values.append(state & 0xFF)
    return np.array(values, dtype=np.uint8).view(np.int8)


def _model_data(directory, tflite_bytes, frontend_config, labels):
    from tflm_kws import carray, export, frontend  # pylint: disable=import-outside-toplevel
    frontend_config = frontend_config or frontend.FrontendConfig()
    used = export.tflm_arena_used_bytes(tflite_bytes)
    arena = export.recommended_arena_bytes(used, export.cmsis_nn_scratch_bytes(tflite_bytes))
    if labels is None:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        out = tf.lite.Interpreter(model_content=tflite_bytes).get_output_details()[0]
        labels = [f"class_{i}" for i in range(int(np.prod(out["shape"])))]
    carray.write_model_data(directory, tflite_bytes, frontend_config, labels, arena,
                            export.op_names(tflite_bytes), used)
    return arena


def measure(tflite_bytes, arduino_src=None, frontend_config=None, labels=None, build_dir=None,
            opt="-Os"):
    """Builds and runs the cost runner for one int8 flatbuffer; returns the measurement dict.

    frontend_config / labels: what the model was trained with (default: micro_speech's frontend,
    labels class_0...); they only shape the 20 ms step (feature window size, category count).
    """
    missing = missing_tools()
    if missing:
        raise M4CostError("missing tools: " + "; ".join(f"{tool} (Debian: {packages})"
                                                         for tool, packages in missing))
    arduino_src = check_arduino_src(arduino_src or os.environ.get(TFLM_ARDUINO_SRC_ENV))
    build_dir = _build_dir(build_dir, arduino_src)
    plugin = build_plugin(build_dir)
    with tempfile.TemporaryDirectory(prefix="m4_cost_") as work:
        # The sketch's files include "model_data.h" from their own folder: a copy per model.
        sketch = os.path.join(work, "sketch")
        shutil.copytree(SKETCH_DIR, sketch, ignore=shutil.ignore_patterns("model_data.*"))
        arena_size = _model_data(sketch, tflite_bytes, frontend_config, labels)
        obj = os.path.join(work, "obj")
        _run(["make", "-s", "-C", RUNNER_DIR, f"-j{os.cpu_count() or 1}", f"BUILD={build_dir}",
              f"TFLM_ARDUINO_SRC={arduino_src}", f"SKETCH_DIR={sketch}", f"OBJ_DIR={obj}",
              f"OPT={opt}"], "building the M4 cost runner")
        lines, counts, total = run_firmware(os.path.join(obj, "m4_cost.elf"), plugin)
        sketch_size = elf_size(os.path.join(obj, "sketch_size.elf"))
    failure = [line for line in lines if line.startswith("m4_cost:")]
    if failure:
        raise M4CostError(failure[0])
    spans = _tagged_spans(lines, counts)
    op_names = [line.split(maxsplit=2)[2] for line in lines if re.match(r"op \d+ ", line)]
    output = [int(v) for line in lines if line.startswith("output ") for v in line.split()[1:]]
    arena_used = [int(line.split()[1]) for line in lines if line.startswith("arena_used ")]
    invokes = spans.get(TAG_INVOKE, [])
    per_op = spans.get(TAG_OP, [])
    steps = spans.get(TAG_STEP, [])
    if not invokes or len(per_op) != len(op_names) or not steps:
        raise M4CostError(f"incomplete measurement: {len(invokes)} invokes, {len(per_op)} op spans "
                          f"for {len(op_names)} ops, {len(steps)} steps")
    macs = tflite_macs_per_op(tflite_bytes)
    from tflm_kws import streaming  # pylint: disable=import-outside-toplevel
    frames_per_call = max(1, streaming.layout(tflite_bytes)[0])
    # Steady state: the last half of the steps (the feature window is full; one slice each), cut
    # to whole model calls (a streaming model runs every frames_per_call-th step): their mean.
    steady = steps[len(steps) // 2:]
    steady = steady[len(steady) % frames_per_call:]
    step = int(round(np.mean(steady)))
    invoke = int(np.median(invokes))
    return {
        "opt": opt,
        "invoke_instructions": invoke,
        "invoke_instructions_all": invokes,
        "ops": [{"index": i, "op": name, "instructions": n, "macs": m}
                for i, (name, n, m) in enumerate(zip(op_names, per_op, macs))],
        "frames_per_call": frames_per_call,
        "model_instructions_per_step": invoke // frames_per_call,
        "step_instructions": step,
        "step_instructions_max": int(max(steady)),
        "step_ms": STEP_MS,
        "features_and_recognizer_instructions": step - invoke // frames_per_call,
        "macs": int(sum(macs)),
        "smlad_bound_cycles": int(sum(macs)) // 2,
        "arena_used_bytes_m4": arena_used[0] if arena_used else None,
        "tensor_arena_size": arena_size,
        "output": output,
        "total_instructions": total,
        "sketch_flash_bytes": sketch_size["text"] + sketch_size["data"],
        "sketch_static_ram_bytes": sketch_size["data"] + sketch_size["bss"],
    }


def markdown_table(result):
    lines = ["| op | MACs | instructions | MACs / instruction |", "|---|---:|---:|---:|"]
    for op in result["ops"]:
        ratio = f"{op['macs'] / op['instructions']:.3f}" if op["macs"] else ""
        lines.append(f"| {op['index']} {op['op']} | {op['macs']:,} | {op['instructions']:,} | "
                     f"{ratio} |")
    lines.append(f"| **Invoke()** | {result['macs']:,} | {result['invoke_instructions']:,} | "
                 f"{result['macs'] / result['invoke_instructions']:.3f} |")
    return "\n".join(lines)


def summary_text(result):
    calls = ("" if result["frames_per_call"] == 1 else
             f" (a streaming model, one call every {result['frames_per_call']} steps: "
             f"{result['model_instructions_per_step']:,} a step)")
    return (f"M4 ({result['opt']}, CMSIS-NN): {result['invoke_instructions']:,} instructions per "
            f"inference{calls} (SMLAD bound {result['smlad_bound_cycles']:,} cycles); whole "
            f"{result['step_ms']} ms step (one feature slice + model + recognizer, mean) "
            f"{result['step_instructions']:,} instructions (features + recognizer "
            f"{result['features_and_recognizer_instructions']:,}); TFLM arena on the M4 "
            f"{result['arena_used_bytes_m4']:,} B (kTensorArenaSize "
            f"{result['tensor_arena_size']:,}); the sketch's code, model and libraries "
            f"(sketch_size.elf, arm-none-eabi-size) {result['sketch_flash_bytes']:,} B of flash, "
            f"{result['sketch_static_ram_bytes']:,} B of static RAM before the Arduino core")


def main(argv=None):
    import argparse  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(prog="python -m tflm_kws.m4_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tflite", help="int8 flatbuffer (default: MODEL_DIR/model_int8.tflite)")
    parser.add_argument("--model_dir", help="conversion output directory: model_int8.tflite and "
                        "its features.json (frontend, labels)")
    parser.add_argument("--tflm_arduino_src", default=os.environ.get(TFLM_ARDUINO_SRC_ENV),
                        help="Arduino_TensorFlowLite's src/ folder (default "
                        f"${TFLM_ARDUINO_SRC_ENV})")
    parser.add_argument("--opt", default="-Os", choices=["-Os", "-O2"],
                        help="optimization of the whole build (the board build uses -Os)")
    parser.add_argument("--build_dir", default=None, help=f"default {DEFAULT_BUILD_DIR}")
    parser.add_argument("--json", help="also write the measurement here")
    args = parser.parse_args(argv)
    config = labels = None
    tflite = args.tflite
    if args.model_dir:
        from tflm_kws import frontend  # pylint: disable=import-outside-toplevel
        features = os.path.join(args.model_dir, "features.json")
        if os.path.exists(features):
            config, labels, _ = frontend.load_features_json(features)
        tflite = tflite or os.path.join(args.model_dir, "model_int8.tflite")
    if not tflite:
        parser.error("give --tflite or --model_dir")
    if not os.path.isfile(tflite):
        parser.error(f"--tflite={tflite}: no such file")
    with open(tflite, "rb") as f:
        tflite_bytes = f.read()
    try:
        result = measure(tflite_bytes, args.tflm_arduino_src, config, labels, args.build_dir,
                         args.opt)
    except M4CostError as e:
        print(f"m4_cost: error: {e}", file=sys.stderr)
        return 2
    print(markdown_table(result))
    print(summary_text(result))
    if args.json:
        from tflm_kws import io_utils  # pylint: disable=import-outside-toplevel
        io_utils.atomic_write_json(args.json, dict(result, tflite=os.path.abspath(tflite)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
