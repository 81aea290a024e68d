"""Folders that appear whole: staged beside their place, renamed in, races settled."""

from __future__ import annotations

from pathlib import Path

import pytest

from thumbloop import staging
from thumbloop.staging import move_into_place, staging_beside


def _folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(text)
    return path


def test_a_staged_folder_lands_whole_and_leaves_nothing_behind(tmp_path: Path) -> None:
    dst = tmp_path / "cache" / "v1"
    _folder(dst, "old")
    with staging_beside(dst) as partial:
        assert partial.parent == dst.parent and partial.name.startswith(".v1.partial-")
        (partial / "config.json").write_text("new")
        move_into_place(partial, dst)
    assert (dst / "config.json").read_text() == "new"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["v1"]


def test_a_failed_fill_leaves_no_partial_folder(tmp_path: Path) -> None:
    dst = tmp_path / "v1"
    with pytest.raises(RuntimeError), staging_beside(dst) as partial:
        (partial / "half").write_text("x")
        raise RuntimeError("download broke")
    assert list(tmp_path.iterdir()) == []


def test_a_copy_another_process_put_there_first_is_kept_only_if_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dst = _folder(tmp_path / "v1", "theirs")
    ours = _folder(tmp_path / ".v1.partial-x", "ours")
    # the other process's copy appears between our removal and our rename
    monkeypatch.setattr(staging.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(OSError):
        move_into_place(ours, dst)
    move_into_place(ours, dst, already_there=lambda d: (d / "config.json").is_file())
    assert (dst / "config.json").read_text() == "theirs"
