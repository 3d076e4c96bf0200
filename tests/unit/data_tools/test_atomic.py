"""Atomic writes: whole files or none, readable as a new file would be."""

from pathlib import Path

import pytest

from data_tools.atomic import NEW_FILE_MODE, write_json_atomic, write_with_atomic


def test_new_file_gets_the_usual_mode_and_no_temporary_is_left(tmp_path: Path) -> None:
    target = tmp_path / "thresholds.json"

    write_json_atomic(target, {"a": 1})

    assert target.read_text(encoding="utf-8") == '{\n  "a": 1\n}\n'
    assert target.stat().st_mode & 0o777 == NEW_FILE_MODE
    assert [path.name for path in tmp_path.iterdir()] == ["thresholds.json"]


def test_replaced_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "notes.json"
    target.write_text("{}", encoding="utf-8")
    target.chmod(0o600)

    write_json_atomic(target, [1, 2])

    assert target.stat().st_mode & 0o777 == 0o600
    assert target.read_text(encoding="utf-8").split() == ["[", "1,", "2", "]"]


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")

    def fail_halfway(path: Path) -> None:
        path.write_bytes(b"ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_with_atomic(target, fail_halfway)

    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["data.bin"]
