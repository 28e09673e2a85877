"""Freed stream memory stays in the process for the next stream (glibc), once per process."""

from __future__ import annotations

import platform

import pytest

from chronoseal.channel import _memory


def test_the_policy_is_applied_once_and_reports_whether_glibc_took_it() -> None:
    first = _memory.retain_freed_memory()
    assert _memory.retain_freed_memory() is first  # idempotent: set once per process
    if platform.libc_ver()[0] == "glibc":
        assert first is True


def test_it_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "_applied", None)
    monkeypatch.setenv("CHRONOSEAL_MALLOC_TUNING", "0")
    assert _memory.retain_freed_memory() is False


def test_another_libc_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    class Musl:  # has mallopt (a stub there) but is not glibc
        def mallopt(self, param: int, value: int) -> int:
            raise AssertionError("must not be called")

    monkeypatch.setattr(_memory, "_applied", None)
    monkeypatch.delenv("CHRONOSEAL_MALLOC_TUNING", raising=False)
    monkeypatch.setattr(_memory.ctypes, "CDLL", lambda name: Musl())
    assert _memory.retain_freed_memory() is False
