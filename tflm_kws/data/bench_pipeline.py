"""Input-pipeline throughput alone (no model): samples/s of KwsData.dataset('training', ...).

  python -m tflm_kws.data.bench_pipeline --data_dir=../shared/data/speech_commands_v2_dev

The first epoch builds (or reads) the feature cache; the reported rate is over the later epochs.
"""
import time

from absl import app, flags

import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from tflm_kws import data, frontend

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Data directory; unset = the synthetic wake-word set.")
flags.DEFINE_string("cache_dir", "cache", "Feature cache directory.")
flags.DEFINE_integer("batch_size", 100, "Batch size.")
flags.DEFINE_integer("epochs", 4, "Epochs to time (after one warm-up epoch).")


def measure(kws_data, batch_size, epochs, seed=0):
    """samples/s over `epochs` passes of the training pipeline, after one warm-up pass."""
    ds = kws_data.dataset("training", batch_size, training=True, seed=seed)
    for _ in ds:  # warm-up: traces the map function, fills the shuffle buffer once
        pass
    samples = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for x, _ in ds:
            samples += int(x.shape[0])
    return samples / (time.perf_counter() - start)


def main(argv):
    del argv
    start = time.perf_counter()
    kws_data = data.load(data.DataSpec(data_dir=FLAGS.data_dir), frontend.FrontendConfig(),
                         FLAGS.cache_dir)
    print(f"load (cache {kws_data.cache_path}): {time.perf_counter() - start:.1f} s, "
          f"{kws_data.num_examples('training')} training clips")
    rate = measure(kws_data, FLAGS.batch_size, FLAGS.epochs)
    print(f"input pipeline: {rate:.0f} samples/s (training split, batch {FLAGS.batch_size}, "
          f"augmentation + SpecAugment on)")


if __name__ == "__main__":
    app.run(main)
