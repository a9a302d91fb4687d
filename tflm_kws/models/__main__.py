r"""Prints the model zoo's deploy sizes, or rewrites the table in a markdown file.

  python -m tflm_kws.models                        # print the table
  python -m tflm_kws.models --docs=docs/models.md  # rewrite the table between its markers
"""
import tflm_kws  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from absl import app, flags

from tflm_kws import io_utils
from tflm_kws.models.summary import describe, docs_with_table, markdown_table

FLAGS = flags.FLAGS
flags.DEFINE_string("docs", None, "Markdown file whose models table is rewritten in place.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    table = markdown_table(describe())
    if FLAGS.docs is None:
        print(table, end="")
        return
    try:
        with open(FLAGS.docs) as f:
            text = f.read()
    except OSError as e:
        raise app.UsageError(f"--docs: cannot read {FLAGS.docs}: {e.strerror}") from None
    try:
        text = docs_with_table(text, table)
    except ValueError as e:
        raise app.UsageError(f"--docs: {FLAGS.docs}: {e}") from None
    with io_utils.atomic_write(FLAGS.docs, "w") as f:
        f.write(text)


if __name__ == "__main__":
    app.run(main)
