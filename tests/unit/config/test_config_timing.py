"""The lease arithmetic and Patroni's adjustment of ttl / loop_wait / retry_timeout."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from haagent.config import parse_dynamic_config
from haagent.config.timing import MIN_TTL, Timings, adjust_timings


def test_patroni_defaults_and_fast_timings_have_the_documented_margins() -> None:
    assert Timings(30, 10, 10).fence_margin == 5.0
    assert Timings(10, 2, 3).fence_margin == 2.5
    assert Timings(30, 10, 10).demote_within == 20.0


def test_a_valid_combination_is_kept() -> None:
    assert adjust_timings(30, 10, 10) == (Timings(30, 10, 10), None)


def test_loop_wait_is_lowered_first_as_patroni_does() -> None:
    # PATCH /config {"ttl": 20} with loop_wait 2 and retry_timeout 10: Patroni runs with
    # loop_wait 0?  No: 20 - 2*10 = 0 is below the minimum, so retry_timeout goes down.
    timings, why = adjust_timings(20, 2, 10)
    assert timings == Timings(20, 1, 9)
    assert why is not None and "retry_timeout 9 (not 10)" in why
    timings, why = adjust_timings(21, 10, 10)
    assert timings == Timings(21, 1, 10)
    assert why is not None and "loop_wait 1 (not 10)" in why
    timings, why = adjust_timings(25, 10, 10)
    assert timings == Timings(25, 5, 10)
    assert why is not None and "loop_wait 5" in why


@given(
    ttl=st.integers(MIN_TTL, 600),
    loop_wait=st.integers(1, 600),
    retry_timeout=st.integers(1, 600),
)
def test_every_accepted_combination_keeps_the_fence_arithmetic(
    ttl: int, loop_wait: int, retry_timeout: int
) -> None:
    t, _ = adjust_timings(ttl, loop_wait, retry_timeout)
    assert t.ttl == ttl
    assert t.loop_wait >= 1 and t.retry_timeout >= 1
    assert t.loop_wait + 2 * t.retry_timeout <= t.ttl
    # A failed renewal fences before the key can expire, and the lease fence fires after
    # the latest healthy renewal and before the expiry.
    assert t.demote_within < t.ttl
    assert 0 < t.fence_margin <= t.ttl - t.demote_within


def test_dynamic_config_accepts_and_adjusts_with_a_warning() -> None:
    warnings: list[str] = []
    config = parse_dynamic_config(
        {"ttl": 20, "loop_wait": 2, "retry_timeout": 10}, warnings=warnings
    )
    assert (config.ttl, config.loop_wait, config.retry_timeout) == (20, 1, 9)
    assert any("config.ttl" in w and "as Patroni does" in w for w in warnings)
    # The stored values are kept as written: an edit does not rewrite them.
    assert config.raw["loop_wait"] == 2
