"""The feature-store cache directory: list, bound or clear it.

  python -m tflm_kws.data.cache --cache_dir=~/.cache/tflm_kws    # list the stores
  python -m tflm_kws.data.cache --cache_dir=... --max_gb=5       # drop least recently used
  python -m tflm_kws.data.cache --cache_dir=... --clear          # drop every store

A store is rebuilt on its next use (`tflm_kws.data.load`); see tflm_kws/data/store.py.
"""
import os
import sys
import time

from absl import app
from absl import flags

from tflm_kws.data import store

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("cache_dir", os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "tflm_kws"), "Feature cache directory (training's --cache_dir).")
    flags.DEFINE_float("max_gb", None, "Remove the least recently used stores until the cache "
                       "holds at most this many GB.", lower_bound=0.0)
    flags.DEFINE_boolean("clear", False, "Remove every store.")


def _line(path, size, used, complete):
    state = "" if complete else "  (unfinished build: resumes on next use)"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(used))
    return f"{size / 1e6:10.1f} MB  last used {when}  {os.path.basename(path)}{state}"


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cache_dir = os.path.abspath(os.path.expanduser(FLAGS.cache_dir))
    if FLAGS.clear and FLAGS.max_gb is not None:
        raise app.UsageError("--clear and --max_gb: give one")
    if FLAGS.clear:
        removed = store.clear(cache_dir)
    elif FLAGS.max_gb is not None:
        removed = store.prune(cache_dir, int(FLAGS.max_gb * 1e9))
    else:
        removed = []
    for path in removed:
        print(f"removed {path}")
    found = store.entries(cache_dir)
    for entry in found:
        print(_line(*entry))
    print(f"{cache_dir}: {len(found)} store(s), {sum(e[1] for e in found) / 1e6:.1f} MB")
    sys.stdout.flush()


if __name__ == "__main__":
    define_flags()
    app.run(main)
