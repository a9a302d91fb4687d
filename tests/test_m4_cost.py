"""The emulated Cortex-M4 cost tool (tflm_kws.m4_cost, arduino/m4_cost): the instruction counter is
exact on a loop of known length, and on the committed sketch model the runner's int8 output equals
the host TFLM's on the same input, the per-op counts add up to the inference, and the 20 ms step is
the inference plus the feature slice and the recognizer.

Needs gcc-arm-none-eabi (+ newlib, libstdc++), qemu-system-arm and gcc (skipped, with the missing
tool named, otherwise); the model tests also need $TFLM_ARDUINO_SRC, the Arduino_TensorFlowLite
library's src/ folder (docs/arduino.md)."""
import os

import numpy as np
import pytest

from test_arduino_sketch import model_bytes
from tflm_kws import export, m4_cost


def _state_inputs(tflite):
    from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=import-outside-toplevel
    return len(flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite)).subgraphs[0]
               .inputs) - 1


def _require_tools():
    missing = m4_cost.missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(f'{tool} (Debian: {pkgs})' for tool, pkgs in missing)}")


def _require_src():
    _require_tools()
    src = os.environ.get(m4_cost.TFLM_ARDUINO_SRC_ENV)
    if not src:
        pytest.skip(f"${m4_cost.TFLM_ARDUINO_SRC_ENV} (the Arduino_TensorFlowLite src/ folder) "
                    f"is not set")
    return m4_cost.check_arduino_src(src)


def test_counter_is_exact_on_a_loop_of_known_length(tmp_path):
    _require_tools()
    result = m4_cost.loop_check(str(tmp_path / "build"))
    # 3,000 - 1,000 more iterations of a 2-instruction loop: exactly 4,000 more instructions.
    assert result["long"] - result["short"] == 4000
    assert 2000 < result["short"] < 2100  # the loop plus a few call/return instructions


@pytest.fixture(scope="module")
def committed_cost(tmp_path_factory):
    src = _require_src()
    tflite = model_bytes()  # the committed sketch's model
    return tflite, m4_cost.measure(tflite, src, build_dir=os.environ.get("M4_COST_BUILD_DIR"))


def test_m4_output_equals_host_tflm(committed_cost):
    tflite, result = committed_cost
    interpreter = export.tflm_interpreter(tflite, arena_size=1 << 20)
    # Every input in order (a streaming model's states too) from one pseudo-random sequence.
    details = [interpreter.get_input_details(i) for i in range(1 + _state_inputs(tflite))]
    sizes = [int(np.prod(d["shape"])) for d in details]
    values = m4_cost.reference_input(sum(sizes))
    for i, (detail, start) in enumerate(zip(details, np.cumsum([0] + sizes[:-1]))):
        interpreter.set_input(values[start:start + sizes[i]].reshape(detail["shape"]), i)
    interpreter.invoke()
    assert result["output"] == np.asarray(interpreter.get_output(0)).reshape(-1).tolist()


def test_counts_add_up(committed_cost):
    tflite, result = committed_cost
    assert len(set(result["invoke_instructions_all"])) == 1  # same input size, same code path
    per_op = sum(op["instructions"] for op in result["ops"])
    # The profiler's marks sit inside Invoke(): the ops are all of it but the loop around them.
    assert 0.99 * result["invoke_instructions"] < per_op < result["invoke_instructions"]
    ops, _ = export.ops_details(tflite)
    assert [op["op"] for op in result["ops"]] == [op["op_name"] for op in ops]
    # One slice of features + the recognizer: tens of thousands of instructions, not millions.
    assert 20_000 < result["features_and_recognizer_instructions"] < 400_000
    assert result["arena_used_bytes_m4"] <= result["tensor_arena_size"]
    assert result["smlad_bound_cycles"] == result["macs"] // 2
    # The sketch's footprint (arm-none-eabi-size of sketch_size.elf): the model array and the
    # code in flash; the arena and the 16384-sample audio ring buffer in static RAM.
    assert len(tflite) + 50_000 < result["sketch_flash_bytes"] < 400_000
    assert (result["tensor_arena_size"] + 2 * 16384 < result["sketch_static_ram_bytes"]
            < 256 * 1024)


def test_bad_source_folder_is_named(tmp_path):
    with pytest.raises(m4_cost.M4CostError, match="is not the Arduino_TensorFlowLite"):
        m4_cost.check_arduino_src(str(tmp_path))
    with pytest.raises(m4_cost.M4CostError, match="no TFLM source"):
        m4_cost.check_arduino_src("")
