r"""What a model shape costs on the Cortex-M4 before any training: M4 instructions per inference,
per op, and arena, for a grid of hyper-parameters.

  python -m tflm_kws.shape_cost --model=rep_inceptionnext \
      --grid='{"channels": [32, 40, 48], "mlp_ratio": [2, 3]}' --tflm_arduino_src=/path/to/src
      [--shapes='[{"layout": "time_freq"}]'] [--name=STEM]

Cost does not depend on the weights: each shape is built untrained, fused, converted to int8
(calibrated on random features) and measured with `tflm_kws.m4_cost` (QEMU, CMSIS-NN, -Os), so a
shape search can keep only shapes inside an instruction budget and train those. Writes
<output_dir>/<model>.md/.json: per shape params, MACs, instructions, MACs per instruction, arena,
and the per-op table of each.
"""
import itertools
import json
import os
import sys

import numpy as np

from tflm_kws import experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shapes(grid):
    """Every combination of the grid's values, as hyper-parameter dicts (sorted keys)."""
    keys = sorted(grid)
    for key in keys:
        if not isinstance(grid[key], list) or not grid[key]:
            raise ValueError(f"--grid: {key!r} must map to a non-empty list of values")
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def int8_flatbuffer(model_name, hparams, seed=0):
    """(int8 flatbuffer, deploy params and MACs) of an untrained `model_name` with `hparams`
    (12 labels), fused."""
    import tf_keras as keras
    from tflm_kws import complexity, export, models
    from tflm_kws.reparameterize import reparameterize
    keras.utils.set_random_seed(seed)
    fused = reparameterize(models.build(model_name, **hparams))
    features = np.random.default_rng(seed).integers(-128, 128, (32, 49, 40)).astype(np.int8)
    tflite = export.convert_int8(fused, features, 32)
    counts = complexity.count_params_and_macs(fused)
    keras.backend.clear_session()
    return tflite, counts


def measure_shapes(model_name, grid_shapes, arduino_src, log=print):
    from tflm_kws import m4_cost
    rows = []
    for hparams in grid_shapes:
        tflite, counts = int8_flatbuffer(model_name, hparams)
        result = m4_cost.measure(tflite, arduino_src)
        rows.append({"hparams": hparams, "params": counts["params"], "macs": result["macs"],
                     "instructions": result["invoke_instructions"],
                     "arena_bytes": result["arena_used_bytes_m4"], "ops": result["ops"]})
        log(f"{hparams}: {result['invoke_instructions']:,} instructions, {result['macs']:,} "
            f"MACs, arena {result['arena_used_bytes_m4']:,} B")
    return rows


def markdown(model_name, rows, command):
    lines = [f"# M4 cost of `{model_name}` shapes (untrained, int8, CMSIS-NN -Os, QEMU)", "",
             "| hyper-parameters | params | MACs | M4 instructions / inference | MACs / "
             "instruction | arena (M4) |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| `{json.dumps(r['hparams'], sort_keys=True)}` | {r['params']:,} | "
                     f"{r['macs']:,} | {r['instructions']:,} | "
                     f"{r['macs'] / r['instructions']:.3f} | {r['arena_bytes']:,} B |")
    for r in rows:
        lines += ["", f"## `{json.dumps(r['hparams'], sort_keys=True)}`", "",
                  "| op | MACs | instructions | MACs / instruction |", "|---|---:|---:|---:|"]
        for op in r["ops"]:
            ratio = f"{op['macs'] / op['instructions']:.3f}" if op["macs"] else ""
            lines.append(f"| {op['index']} {op['op']} | {op['macs']:,} | {op['instructions']:,} "
                         f"| {ratio} |")
    lines += ["", f"Command: `{command}`"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    import argparse
    from tflm_kws import m4_cost, models
    parser = argparse.ArgumentParser(prog="python -m tflm_kws.shape_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=sorted(models.MODELS))
    parser.add_argument("--grid", default="{}", help="JSON object: hyper-parameter -> list")
    parser.add_argument("--shapes", default="[]", help="JSON list of hyper-parameter objects, "
                        "measured after the grid's")
    parser.add_argument("--name", default=None, help="output file stem (default: --model)")
    parser.add_argument("--tflm_arduino_src", default=os.environ.get(m4_cost.TFLM_ARDUINO_SRC_ENV))
    parser.add_argument("--output_dir", default=os.path.join(REPO, "bench", "shape_cost"))
    args = parser.parse_args(argv)
    try:
        grid = json.loads(args.grid)
        if not isinstance(grid, dict):
            raise ValueError("--grid must be a JSON object")
        extra = json.loads(args.shapes)
        if not isinstance(extra, list) or not all(isinstance(h, dict) for h in extra):
            raise ValueError("--shapes must be a JSON list of objects")
        grid_shapes = shapes(grid) if grid else ([] if extra else [{}])
        rows = measure_shapes(args.model, grid_shapes + extra, args.tflm_arduino_src)
    except (ValueError, m4_cost.M4CostError) as err:
        print(f"shape_cost: error: {err}", file=sys.stderr)
        return 2
    text = markdown(args.model, rows, experiment.entry_point_command("tflm_kws.shape_cost"))
    experiment.write_report(args.output_dir, args.name or args.model,
                            {"model": args.model, "rows": rows}, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
