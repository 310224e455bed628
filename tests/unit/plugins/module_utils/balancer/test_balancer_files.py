"""files: the lock shared by every run that rewrites a load balancer's file, reading it, replacing it atomically."""
from __future__ import annotations

import fcntl
import os
import stat

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import files
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutFailed


def _locked_by_another(lock_path):
    """Whether another open file description holds an exclusive flock on ``lock_path``."""
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_the_lock_is_a_private_file_beside_the_target_held_only_inside_the_block(tmp_path):
    target = tmp_path / "servers.cfg"
    lock_path = str(tmp_path / ".servers.cfg.zerodown-lock")
    with files.file_lock(str(target)):
        assert stat.S_IMODE(os.stat(lock_path).st_mode) == 0o600
        assert _locked_by_another(lock_path)
    assert not _locked_by_another(lock_path)
    assert not target.exists()  # locking does not create the file it guards


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    target = str(tmp_path / "up.conf")
    with pytest.raises(RuntimeError):
        with files.file_lock(target):
            raise RuntimeError("rewrite failed")
    assert not _locked_by_another(str(tmp_path / ".up.conf.zerodown-lock"))


def test_a_lock_that_cannot_be_created_says_the_directory_must_be_writable(tmp_path):
    target = str(tmp_path / "missing-dir" / "servers.cfg")
    with pytest.raises(RolloutFailed, match=r"cannot create the lock file .*\.servers\.cfg\.zerodown-lock beside "
                                            r".*servers\.cfg .*must be writable"):
        with files.file_lock(target):
            pytest.fail("the block ran without the lock")


def test_read_text_is_none_for_a_missing_file_and_refuses_an_unreadable_one(tmp_path):
    path = tmp_path / "up.conf"
    assert files.read_text(str(path)) is None
    path.write_text("upstream shop {}\n")
    assert files.read_text(str(path)) == "upstream shop {}\n"
    path.write_text("")
    assert files.read_text(str(path)) == ""  # empty is not missing
    with pytest.raises(RolloutFailed, match=f"cannot read {tmp_path}"):
        files.read_text(str(tmp_path))  # a directory


def test_replace_text_keeps_the_mode_of_the_file_it_replaces_and_gives_a_new_one_0644(tmp_path):
    old = tmp_path / "servers.cfg"
    old.write_text("old\n")
    old.chmod(0o640)
    files.replace_text(str(old), "new\n")
    assert old.read_text() == "new\n" and stat.S_IMODE(old.stat().st_mode) == 0o640
    new = tmp_path / "up.conf"
    files.replace_text(str(new), "")
    assert new.read_text() == "" and stat.S_IMODE(new.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["servers.cfg", "up.conf"]  # no temporary file left


def test_replace_text_swaps_the_inode_so_a_reader_never_sees_half_a_file(tmp_path):
    path = tmp_path / "servers.cfg"
    path.write_text("first\n")
    with open(path) as reader:  # what a reload that opened the file before the rewrite reads
        files.replace_text(str(path), "second\n")
        assert reader.read() == "first\n"
    assert path.read_text() == "second\n"


def test_a_failed_replace_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    path = tmp_path / "servers.cfg"
    path.write_text("kept\n")

    def refuse(_src, _dst):
        raise OSError("disk full")
    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        files.replace_text(str(path), "lost\n")
    assert path.read_text() == "kept\n"
    assert [p.name for p in tmp_path.iterdir()] == ["servers.cfg"]
