"""RateControl on 429s: a blip costs its wait only; a spent quota (or an unknown one) cuts."""

from __future__ import annotations

import pytest

from importer.send.rate_control import Budget, RateControl

RATE = 50_000
CEILING = RATE / 60 / 1.001  # requests/s


def _fresh(limit: int = 50_000, remaining: float = 49_000, seconds_left: float = 50) -> RateControl:
    """A control that has sent 100 requests and just heard ``remaining`` of ``limit`` left."""
    control = RateControl(RATE, now=0.0)
    control.observe(Budget(limit, remaining, seconds_left), now=1.0, grants=100, in_flight=10)
    return control


def _limited(
    control: RateControl, now: float = 1.01, *, grants: int = 101, budget: Budget | None = None
) -> None:
    control.rate_limited(now, now + 1.0, budget, grants, in_flight=10)


def test_a_429_while_the_budget_is_far_from_spent_keeps_the_pace() -> None:
    control = _fresh()
    _limited(control)
    assert (control.blips, control.cuts) == (1, 0)
    assert control.rate_per_s(3.0) == pytest.approx(CEILING)


def test_a_429_when_the_quota_is_nearly_spent_halves_the_pace() -> None:
    # 1,040 left of 50,000 for the last second, less 250 reserve and 10 in flight: 780/s, and
    # under 2% of the limit.
    control = _fresh(remaining=1_040, seconds_left=1)
    assert control.rate_per_s(1.01) == pytest.approx(780)
    _limited(control)
    assert (control.blips, control.cuts) == (0, 1)
    assert control.rate_per_s(1.01) == pytest.approx(780 / 2)


def test_without_any_budget_a_429_is_taken_as_spent() -> None:
    control = RateControl(RATE, now=0.0)
    control.observe(None, now=1.0, grants=100, in_flight=0)
    _limited(control)
    assert control.cuts == 1
    assert control.rate_per_s(1.01) == pytest.approx(CEILING / 2)


def test_a_window_that_has_reset_is_no_evidence() -> None:
    control = _fresh(remaining=2_900, limit=3_000, seconds_left=2)
    _limited(control, now=3.5)  # the 3-second window ended at 3.0
    assert control.cuts == 1


def test_our_requests_since_the_last_report_are_counted_against_it() -> None:
    control = _fresh(limit=6_000, remaining=1_000)  # 960 left after the reserve: far enough...
    _limited(control, grants=101)
    assert control.blips == 1
    _limited(control, now=5.0, grants=101 + 900)  # ...until 900 more have been sent since
    assert control.cuts == 1


def test_other_clients_spending_since_the_last_report_is_counted_too() -> None:
    control = _fresh(limit=6_000, remaining=1_000)
    control.others_per_s = 250.0  # measured elsewhere: another client on the same quota
    _limited(control, now=5.0)  # 4 s after the report: the 960 left are gone
    assert control.cuts == 1


def test_a_budget_the_429_itself_carries_decides() -> None:
    far, spent = Budget(50_000, 30_000, 20), Budget(50_000, 100, 20)
    control = RateControl(RATE, now=0.0)  # no earlier answer: the 429's word is all there is
    _limited(control, budget=far)
    assert (control.blips, control.cuts) == (1, 0)
    _limited(control, now=3.0, budget=spent)
    assert (control.blips, control.cuts) == (1, 1)


def test_429s_that_stop_being_rare_are_no_blips_whatever_the_budget_says() -> None:
    control = _fresh()
    now, grants = 1.0, 100
    for n in range(1, 1001):  # 2 in 100 answers: blips, every one
        now, grants = now + 0.001, grants + 1
        if n % 50 in (0, 1):
            _limited(control, now=now, grants=grants)
        else:
            control.observe(Budget(50_000, 49_000 - n, 50), now, grants, in_flight=10)
    assert (control.blips, control.cuts) == (40, 0)
    # Then most answers are 429s: a limit the headers do not report.
    before = control.rate_per_s(now)
    while not control.cuts:
        now, grants = now + 0.001, grants + 1
        _limited(control, now=now, grants=grants)
    assert control.blips < 60
    assert control.rate_per_s(now) == pytest.approx(before / 2)
