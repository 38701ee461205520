"""edgeport.files: atomic writes keep ordinary permissions; scratch folders go on every exit path."""

from __future__ import annotations

import os
import stat

import pytest

from edgeport.errors import ConfigError
from edgeport.files import atomic_path, atomic_write_text, scratch_dir, write_json


def test_atomic_write_gives_the_permissions_of_a_plain_write(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "manifest.json", {"a": float("nan")})
        assert stat.S_IMODE((tmp_path / "manifest.json").stat().st_mode) == 0o644  # was mkstemp's 0o600
        assert (tmp_path / "manifest.json").read_text() == '{\n  "a": null\n}\n'
        (tmp_path / "x.txt").write_text("old")
        os.chmod(tmp_path / "x.txt", 0o640)
        atomic_write_text(tmp_path / "x.txt", "new")
        assert stat.S_IMODE((tmp_path / "x.txt").stat().st_mode) == 0o640 and (tmp_path / "x.txt").read_text() == "new"
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "x.txt"]  # no temporary left


def test_atomic_write_into_a_missing_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="expected an existing folder to write x.json into"):
        write_json(tmp_path / "nope" / "x.json", {})


def test_scratch_dir_is_removed_on_error_and_interrupt(tmp_path):
    for exc in (ValueError, KeyboardInterrupt):
        with pytest.raises(exc):
            with scratch_dir("edgeport-test-") as d:
                (d / "f").write_text("x")
                raise exc
        assert not d.exists()


def test_replace_dir_swaps_in_a_complete_folder_with_ordinary_permissions(tmp_path):
    import os
    import stat

    from edgeport.files import replace_dir

    target = tmp_path / "export"
    with replace_dir(target) as new:
        (new / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    with pytest.raises(RuntimeError):
        with replace_dir(target) as new:
            (new / "a.txt").write_text("half")
            raise RuntimeError("killed mid-way")
    assert (target / "a.txt").read_text() == "first"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # nothing half-built left beside it
    with replace_dir(target, keep=("notes.md",)) as new:
        (new / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]


def test_atomic_path_renames_on_success_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "m.weights.h5"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.name.endswith(".weights.h5") and tmp.parent == tmp_path
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["m.weights.h5"]
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["m.weights.h5"]
