"""Advisory locks between processes: a second taker waits (told who holds it) or goes on without; no locks, no stop."""

import errno
import os
import socket
import threading
from pathlib import Path

import pytest

from harness import locks
from harness.locks import held


def test_a_held_lock_makes_the_next_taker_wait_and_says_who_holds_it(tmp_path: Path) -> None:
    told: list[str] = []
    order: list[str] = []

    def second() -> None:
        with held(tmp_path / "locks" / "abc", told.append) as mine:
            order.append(f"second {mine}")

    with held(tmp_path / "locks" / "abc") as mine:
        assert mine
        waiter = threading.Thread(target=second)
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive() and not order  # blocked while the first holds it
        order.append("first")
    waiter.join(30)
    assert order == ["first", "second True"]
    assert told == [f"pid {os.getpid()} on {socket.gethostname()}"]


def test_without_blocking_a_held_lock_is_refused_at_once(tmp_path: Path) -> None:
    with held(tmp_path / "abc"), held(tmp_path / "abc", block=False) as mine:
        assert not mine
    with held(tmp_path / "abc", block=False) as mine:
        assert mine


def test_a_file_system_without_locks_runs_unlocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_locks(*args) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(locks.fcntl, "flock", no_locks)
    with held(tmp_path / "abc") as mine, held(tmp_path / "abc", block=False) as again:
        assert mine and again


class _FullDisk:
    """A lock file on a full disk: it locks, but writing who holds it fails."""

    def __init__(self, path, mode, encoding) -> None:
        self.real = open(path, mode, encoding=encoding)  # noqa: SIM115 (closed in __exit__)

    def __getattr__(self, name):
        return getattr(self.real, name)

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.real.close()


def test_a_full_disk_leaves_the_holder_unsaid_and_the_lock_held(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(locks, "open", _FullDisk, raising=False)
    with held(tmp_path / "abc") as mine:
        assert mine
        monkeypatch.undo()
        with held(tmp_path / "abc", block=False) as again:
            assert not again  # held all the same


def test_a_released_lock_names_no_holder(tmp_path: Path) -> None:
    with held(tmp_path / "abc"):
        assert (tmp_path / "abc").read_text() == f"pid {os.getpid()} on {socket.gethostname()}"
    assert (tmp_path / "abc").read_text() == ""
