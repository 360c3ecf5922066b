"""The watchdog manager with an in-memory driver: each mode, the lifecycle, and the
rule "keepalive only after a successful leader-key renewal"."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haagent.config import ConfigError
from haagent.config.model import WatchdogMode, WatchdogSettings
from haagent.engine.ports import WatchdogControl
from haagent.watchdog import REQUIRED_UNAVAILABLE, Watchdog, make_driver
from haagent.watchdog.linux import LinuxWatchdogDriver
from haagent_lab.watchdog.fake_driver import FakeWatchdogDriver
from haagent_lab.watchdog.testing_driver import TestingWatchdogDriver


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    mode: WatchdogMode = "required",
    *,
    ttl: int = 30,
    loop_wait: int = 10,
    margin: int = 5,
    driver: FakeWatchdogDriver | None = None,
    clock: Clock | None = None,
) -> tuple[Watchdog, FakeWatchdogDriver]:
    fake = driver or FakeWatchdogDriver()
    settings = WatchdogSettings(mode=mode, safety_margin=margin)
    watchdog = Watchdog(settings, lambda _: fake, clock or Clock())
    watchdog.configure(ttl, loop_wait)
    return watchdog, fake


def test_the_manager_is_what_the_engine_expects() -> None:
    control: WatchdogControl = make()[0]
    assert control.describe() == "disarmed"


def test_reason_code_for_the_engine() -> None:
    assert REQUIRED_UNAVAILABLE == "watchdog_required_unavailable"


# --- mode off ---------------------------------------------------------------------


def test_off_never_touches_a_device() -> None:
    created: list[WatchdogSettings] = []

    def factory(settings: WatchdogSettings) -> FakeWatchdogDriver:
        created.append(settings)
        return FakeWatchdogDriver()

    watchdog = Watchdog(WatchdogSettings(mode="off"), factory)
    watchdog.configure(ttl=6, loop_wait=10)  # timing that would be wrong does not matter
    assert watchdog.can_be_leader() == (True, None)
    assert watchdog.arm() is True
    assert watchdog.keepalive() is False
    watchdog.disarm()
    watchdog.reconfigure(60, 10)
    assert watchdog.describe() == "off"
    assert not watchdog.usable and watchdog.reason == "watchdog.mode is off"
    assert created == []


# --- the happy path -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["automatic", "required"])
def test_arm_opens_sets_ttl_minus_margin_and_checks_it(mode: WatchdogMode) -> None:
    clock = Clock()
    watchdog, driver = make(mode, clock=clock)
    assert watchdog.can_be_leader() == (True, None)
    assert watchdog.arm() is True
    calls = [c for c in driver.calls if c != "probe"]
    assert calls == ["open", "get_support", "set_timeout 25", "get_timeout"]
    assert watchdog.armed and watchdog.timeout == 25
    assert watchdog.describe() == "armed 25s"
    assert watchdog.last_keepalive == clock.now
    assert watchdog.arm() is True  # idempotent: nothing more on the device
    assert driver.calls.count("open") == 1


def test_disarm_is_a_magic_close_and_idempotent() -> None:
    watchdog, driver = make()
    watchdog.arm()
    watchdog.disarm()
    watchdog.disarm()
    assert driver.calls.count("close magic=True") == 1
    assert not driver.running
    assert not watchdog.armed and watchdog.describe() == "disarmed"
    assert watchdog.arm() and driver.calls.count("open") == 2  # re-armed on a later promotion


def test_state_is_a_frozen_view() -> None:
    watchdog, _ = make()
    watchdog.arm()
    state = watchdog.state()
    assert (state.mode, state.armed, state.timeout, state.can_be_leader) == (
        "required",
        True,
        25,
        True,
    )
    assert state.description == "armed 25s" and state.reason is None


# --- failures, per mode -------------------------------------------------------------


def test_automatic_goes_on_without_a_watchdog_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    watchdog, driver = make("automatic", driver=FakeWatchdogDriver(open_error="no such device"))
    with caplog.at_level(logging.WARNING, "haagent.watchdog"):
        assert watchdog.arm() is True
    assert "going on without one (watchdog.mode: automatic)" in caplog.text
    assert "no such device" in caplog.text
    assert not watchdog.armed
    assert watchdog.can_be_leader() == (True, None)
    assert watchdog.describe().startswith("unavailable: ")
    assert watchdog.keepalive() is False
    assert "keepalive" not in driver.calls


def test_required_refuses_leadership_when_the_device_cannot_open() -> None:
    watchdog, _ = make(driver=FakeWatchdogDriver(open_error="no such device"))
    assert watchdog.arm() is False
    ok, reason = watchdog.can_be_leader()
    assert not ok
    assert reason is not None
    assert "watchdog.mode is required" in reason and "no such device" in reason
    assert "no such device" in watchdog.describe()


def test_required_refuses_before_arming_when_the_probe_fails() -> None:
    watchdog, driver = make(driver=FakeWatchdogDriver(probe_problem="does not exist: modprobe"))
    ok, reason = watchdog.can_be_leader()
    assert not ok and reason is not None and "modprobe" in reason
    assert "open" not in driver.calls  # probing never starts the timer


def test_required_refuses_when_the_timing_leaves_no_slack() -> None:
    watchdog, driver = make(ttl=14, loop_wait=10)
    ok, reason = watchdog.can_be_leader()
    assert not ok and reason is not None and "shorter than loop_wait 10s" in reason
    assert watchdog.arm() is False
    assert driver.calls == []


def test_automatic_with_bad_timing_does_not_open_the_device() -> None:
    watchdog, driver = make("automatic", ttl=14, loop_wait=10)
    assert watchdog.can_be_leader() == (True, None)
    assert watchdog.arm() is True
    assert driver.calls == []
    assert "shorter than loop_wait" in watchdog.describe()


def test_a_device_that_cannot_go_that_low_is_closed_with_magic() -> None:
    watchdog, driver = make(driver=FakeWatchdogDriver(can_set_timeout=False, timeout=60))
    assert watchdog.arm() is False
    assert "set_timeout 25" not in driver.calls
    assert driver.calls[-1] == "close magic=True" and not driver.running
    assert "cannot be set as low as 25s" in (watchdog.can_be_leader()[1] or "")


def test_a_device_that_refuses_the_timeout() -> None:
    watchdog, driver = make(driver=FakeWatchdogDriver(min_timeout=30))
    assert watchdog.arm() is False
    assert "refused a timeout of 25s" in (watchdog.reason or "")
    assert not driver.running


def test_a_device_without_watchdog_ioctls_is_closed_again() -> None:
    watchdog, driver = make(driver=FakeWatchdogDriver(support_error="not a watchdog device"))
    assert watchdog.arm() is False
    assert not driver.is_open and not driver.running


def test_a_failed_arm_is_remembered_for_one_ttl() -> None:
    clock = Clock()
    driver = FakeWatchdogDriver(open_error="busy")
    watchdog, _ = make(driver=driver, clock=clock)
    assert watchdog.arm() is False
    driver.open_error = None
    clock.now += 29
    assert watchdog.can_be_leader()[0] is False  # no take-and-release of the key every cycle
    clock.now += 2
    assert watchdog.can_be_leader() == (True, None)
    assert watchdog.arm() is True


def test_arm_before_configure_is_a_programming_error() -> None:
    watchdog = Watchdog(WatchdogSettings(mode="required"), lambda _: FakeWatchdogDriver())
    assert watchdog.can_be_leader()[0] is False
    with pytest.raises(RuntimeError, match="configure"):
        watchdog.arm()


# --- keepalive only after a successful renewal ---------------------------------------


def test_keepalive_never_touches_a_device_that_is_not_armed() -> None:
    watchdog, driver = make()
    assert watchdog.keepalive() is False
    assert watchdog.keepalive_after_renewal(True) is False
    assert "keepalive" not in driver.calls


def test_renew_then_keepalive_and_no_keepalive_after_a_failed_renewal() -> None:
    journal: list[str] = []
    clock = Clock()
    watchdog, _ = make(driver=FakeWatchdogDriver(journal=journal), clock=clock)
    watchdog.arm()
    journal.clear()
    for renewed in (True, True, False, False, True):
        clock.now += 10
        journal.append("renew ok" if renewed else "renew failed")
        watchdog.keepalive_after_renewal(renewed)
    assert journal == [
        "renew ok",
        "keepalive",
        "renew ok",
        "keepalive",
        "renew failed",
        "renew failed",
        "renew ok",
        "keepalive",
    ]
    assert watchdog.last_keepalive == clock.now


@given(st.lists(st.booleans(), max_size=30))
def test_keepalives_equal_successful_renewals(renewals: list[bool]) -> None:
    watchdog, driver = make()
    watchdog.arm()
    kept = [watchdog.keepalive_after_renewal(r) for r in renewals]
    assert kept == renewals
    assert driver.calls.count("keepalive") == sum(renewals)


def test_a_failed_keepalive_keeps_the_timer_armed() -> None:
    watchdog, driver = make(driver=FakeWatchdogDriver())
    watchdog.arm()
    driver.keepalive_error = "EIO"
    assert watchdog.keepalive() is False
    assert watchdog.armed  # the device still runs: it will reset us if this goes on


def test_a_keepalive_that_lost_the_device_makes_required_refuse_leadership() -> None:
    driver = FakeWatchdogDriver(keepalive_error="connection reset", keepalive_error_closes=True)
    watchdog, _ = make(driver=driver)
    watchdog.arm()
    assert watchdog.keepalive() is False
    assert not watchdog.armed
    assert watchdog.can_be_leader()[0] is False


# --- ttl changes ------------------------------------------------------------------------


def test_a_ttl_change_while_armed_resets_the_timeout() -> None:
    watchdog, driver = make()
    watchdog.arm()
    driver.calls.clear()
    watchdog.reconfigure(60, 10)
    assert driver.calls == ["set_timeout 55", "get_timeout"]
    assert watchdog.describe() == "armed 55s"
    watchdog.reconfigure(60, 10)  # unchanged: nothing
    assert len(driver.calls) == 2


def test_a_loop_wait_change_alone_does_not_ping_the_device() -> None:
    watchdog, driver = make()
    watchdog.arm()
    driver.calls.clear()
    watchdog.reconfigure(30, 5)
    assert driver.calls == []
    assert watchdog.armed


def test_a_ttl_change_while_disarmed_only_computes() -> None:
    watchdog, driver = make()
    watchdog.reconfigure(60, 10)
    assert watchdog.timeout == 55
    assert "set_timeout 55" not in driver.calls


def test_a_ttl_change_that_leaves_no_slack_disarms_and_refuses_leadership() -> None:
    watchdog, driver = make()
    watchdog.arm()
    watchdog.reconfigure(12, 10)
    assert not watchdog.armed and not driver.running
    assert watchdog.can_be_leader()[0] is False


def test_a_ttl_change_the_device_refuses_in_automatic_goes_on_unprotected() -> None:
    watchdog, driver = make("automatic", driver=FakeWatchdogDriver(min_timeout=20))
    watchdog.arm()
    watchdog.reconfigure(20, 10)
    assert not watchdog.armed and not driver.running
    assert watchdog.can_be_leader() == (True, None)
    assert "refused a timeout of 15s" in watchdog.describe()


# --- driver selection --------------------------------------------------------------------


def test_make_driver_picks_the_configured_driver(caplog: pytest.LogCaptureFixture) -> None:
    linux = make_driver(WatchdogSettings(device="/dev/watchdog0"))
    assert isinstance(linux, LinuxWatchdogDriver) and linux.device == "/dev/watchdog0"
    with caplog.at_level(logging.WARNING, "haagent.watchdog"):
        testing = make_driver(WatchdogSettings(device="/tmp/wd.sock", driver="testing"))
    assert isinstance(testing, TestingWatchdogDriver) and testing.device == "/tmp/wd.sock"
    assert "not for production" in caplog.text


def test_make_driver_refuses_a_driver_no_installed_package_adds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("haagent.watchdog.manager.watchdog_drivers", dict)
    with pytest.raises(ConfigError) as caught:
        make_driver(WatchdogSettings(device="/tmp/wd.sock", driver="testing"))
    assert caught.value.key == "watchdog.driver"
    assert "'testing' is not an installed driver; expected linux" in str(caught.value)
