"""The watchdog arithmetic: timeout = ttl - safety_margin, and when it leaves no room."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haagent.watchdog.timing import check_device_timeout, check_timing, watchdog_timeout


@pytest.mark.parametrize(
    ("ttl", "margin", "expected"), [(30, 5, 25), (30, 0, 30), (10, 5, 5), (5, 5, 0), (4, 5, -1)]
)
def test_timeout_is_ttl_minus_safety_margin(ttl: int, margin: int, expected: int) -> None:
    assert watchdog_timeout(ttl, margin) == expected


def test_patroni_defaults_are_fine() -> None:
    assert check_timing(ttl=30, loop_wait=10, safety_margin=5) == []


def test_timeout_equal_to_loop_wait_is_fine() -> None:
    assert check_timing(ttl=15, loop_wait=10, safety_margin=5) == []


def test_timeout_shorter_than_loop_wait_is_a_problem_that_names_the_keys() -> None:
    [problem] = check_timing(ttl=14, loop_wait=10, safety_margin=5)
    assert "ttl 14 - watchdog.safety_margin 5 = 9s" in problem
    assert "shorter than loop_wait 10s" in problem
    assert "raise ttl" in problem


@pytest.mark.parametrize(("ttl", "margin"), [(5, 5), (5, 10), (1, 1)])
def test_timeout_below_one_second_is_a_problem(ttl: int, margin: int) -> None:
    [problem] = check_timing(ttl=ttl, loop_wait=1, safety_margin=margin)
    assert "is below 1s" in problem
    assert "safety_margin" in problem


@given(
    ttl=st.integers(1, 3600),
    loop_wait=st.integers(1, 600),
    margin=st.integers(0, 600),
)
def test_no_problem_exactly_when_the_reset_fits_between_loop_wait_and_ttl(
    ttl: int, loop_wait: int, margin: int
) -> None:
    timeout = watchdog_timeout(ttl, margin)
    problems = check_timing(ttl, loop_wait, margin)
    assert (problems == []) == (timeout >= 1 and timeout >= loop_wait)
    if not problems:
        # Never reset between two healthy cycles, always before the key expires.
        assert loop_wait <= timeout <= ttl


def test_device_that_runs_with_the_requested_timeout_is_fine() -> None:
    assert check_device_timeout(25, 25, 10, "/dev/watchdog") == []


def test_device_that_rounds_down_but_keeps_slack_is_fine() -> None:
    assert check_device_timeout(25, 20, 10, "/dev/watchdog") == []


def test_device_that_cannot_go_that_low_says_so() -> None:
    [problem] = check_device_timeout(25, 60, 10, "/dev/watchdog")
    assert "cannot be set as low as 25s" in problem
    assert "runs with 60s" in problem
    assert "/dev/watchdog" in problem


def test_device_timeout_shorter_than_loop_wait_is_a_problem() -> None:
    [problem] = check_device_timeout(25, 8, 10, "/dev/watchdog")
    assert "shorter than loop_wait 10s" in problem
