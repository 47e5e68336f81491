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
