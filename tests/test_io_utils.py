import os

import pytest

from tflm_kws import io_utils


def test_atomic_write_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "a.json"
    io_utils.atomic_write_json(target, {"x": 1})
    assert target.read_text() == '{\n  "x": 1\n}\n'
    assert sorted(os.listdir(target.parent)) == ["a.json"]


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "b.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with io_utils.atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("killed half-way")
    assert target.read_bytes() == b"old"  # the previous artifact is untouched
    assert sorted(os.listdir(tmp_path)) == ["b.bin"]


def test_atomic_files_get_umask_permissions(tmp_path):
    target = tmp_path / "c.txt"
    with io_utils.atomic_write(target, "w") as f:
        f.write("x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
