"""Atomic artifact writing: a half-written file never carries its final name."""
import contextlib
import json
import os
import tempfile


def _default_mode():
    # mkstemp creates 0600 files; artifacts get the usual umask-derived permissions instead.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temp path beside `path` to write; it is renamed onto `path` when the block succeeds
    and removed when it fails. `suffix` keeps writers that infer the format from the name happy."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Yields a file object writing to a temp file beside `path`; renamed onto `path` on success."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


def atomic_write_json(path, obj):
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def atomic_save_keras(model, path):
    """Saves a Keras model to `path` (.keras) through a temp file in the same directory."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def atomic_savefig(figure, path, **kwargs):
    """Saves a matplotlib figure atomically (format taken from the final name's suffix)."""
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".") or "png"
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format=fmt, **kwargs)
