"""The restart decisions of `jobrelay dev up`'s supervisor (pure: time is passed in)."""

from __future__ import annotations

from jobrelay.dev.supervisor import RestartPolicy, Supervisor, run_supervised

POLICY = RestartPolicy(backoff_s=1, max_backoff_s=8, max_restarts=5, window_s=60, stable_s=30)


def test_restarts_back_off_doubling_up_to_the_cap() -> None:
    supervisor = Supervisor(POLICY)
    supervisor.started("projector", 0)
    delays = []
    now = 0.0
    for _ in range(5):
        now += 1
        verdict = supervisor.exited("projector", now)
        assert verdict.restart
        delays.append(verdict.delay_s)
        supervisor.started("projector", now + verdict.delay_s)
    assert delays == [1, 2, 4, 8, 8]


def test_a_service_that_keeps_crashing_is_left_down() -> None:
    supervisor = Supervisor(POLICY)
    supervisor.started("notifier", 0)
    verdicts = [supervisor.exited("notifier", float(t)) for t in range(1, 7)]
    assert [v.restart for v in verdicts] == [True] * 5 + [False], "the sixth exit within a minute: given up"
    assert verdicts[-1].restarts_in_window == 6


def test_a_service_that_stayed_up_long_enough_starts_again_from_the_first_delay() -> None:
    supervisor = Supervisor(POLICY)
    supervisor.started("intake", 0)
    assert supervisor.exited("intake", 1).delay_s == 1
    supervisor.started("intake", 2)
    assert supervisor.exited("intake", 3).delay_s == 2, "in a row: doubled"
    supervisor.started("intake", 5)
    assert supervisor.exited("intake", 100).delay_s == 1, "up for 95 s: a fresh failure"


def test_exits_older_than_the_window_are_forgotten() -> None:
    supervisor = Supervisor(RestartPolicy(max_restarts=1, window_s=10, stable_s=1000))
    supervisor.started("processor", 0)
    assert supervisor.exited("processor", 1).restart
    assert supervisor.exited("processor", 20).restart, "the first exit is out of the window"
    assert not supervisor.exited("processor", 21).restart


def test_the_loop_restarts_after_the_delay_and_reports_each_step() -> None:
    now = [0.0]
    codes: dict[str, int | None] = {"processor": None}
    restarted: list[tuple[str, float]] = []
    reports: list[str] = []

    def restart(name: str) -> None:
        restarted.append((name, now[0]))
        codes[name] = None

    def stopping() -> bool:
        now[0] += 0.5
        if now[0] == 1.0:
            codes["processor"] = -9  # killed
        return now[0] > 5

    run_supervised(lambda: dict(codes), restart, reports.append, stopping, Supervisor(POLICY),
                   clock=lambda: now[0], interval_s=0)  # fmt: skip
    assert len(restarted) == 1, "restarted once"
    assert 2.0 <= restarted[0][1] < 3.0, "not before the delay of 1 s after it was seen dead (at 1.0)"
    assert reports == ["the processor exited (killed by signal 9); restarting it in 1 s"]
