"""`make soak`'s verdict: flat after the state settles is ok; growth or a rising lag fails."""

from __future__ import annotations

from streams.tools.soak import verdict


def rows(rss_per_minute: float, final_lag: float) -> list[dict[str, float]]:
    out = []
    for minute in range(0, 61):
        settled = min(minute, 20)  # grows until the windows start expiring
        out.append(
            {
                "minute": float(minute),
                "rss_mib": 200 + 5 * settled + rss_per_minute * max(0, minute - 20),
                "tickets": 1000.0 + 50 * settled,
                "buckets": 300.0 + 10 * settled,
                "customers": 900.0 + 40 * settled,
                "open_tickets": 400.0 + 20 * settled,
                "lag": final_lag if minute == 60 else 40.0,
                "accepted": 500.0 * 60 * minute,  # 500 records/s
            }
        )
    return out


def test_a_plateau_passes() -> None:
    lines = verdict(rows(0.0, 40), settle_minutes=20)
    assert all(line.startswith(("ok", "info")) for line in lines), lines


def test_memory_that_keeps_growing_fails() -> None:
    lines = verdict(rows(1.0, 40), settle_minutes=20)  # 60 MiB/h on ~320 MiB
    assert [line.split(":")[0] for line in lines] == ["FAIL", "ok", "ok", "ok", "info", "ok"]


def test_a_worker_falling_behind_fails() -> None:
    assert verdict(rows(0.0, 20_000), settle_minutes=20)[-1].startswith("FAIL")


def test_closed_tickets_that_are_never_dropped_fail_but_a_growing_backlog_is_shown() -> None:
    leaking = rows(0.0, 40)
    for r in leaking[21:]:
        r["tickets"] += 30 * (r["minute"] - 20)  # closed ones kept: 1,800/h on ~2,000
    backlog = rows(0.0, 40)
    for r in backlog[21:]:
        r["open_tickets"] += 30 * (r["minute"] - 20)
        r["tickets"] += 30 * (r["minute"] - 20)  # only open ones grow
    assert verdict(leaking, settle_minutes=20)[1].startswith("FAIL: closed_tickets")
    lines = verdict(backlog, settle_minutes=20)
    assert lines[1].startswith("ok: closed_tickets") and lines[4].startswith("info: open_tickets")


def test_the_lag_limit_is_30_s_of_the_measured_traffic() -> None:
    assert verdict(rows(0.0, 14_000), settle_minutes=20)[-1].startswith("ok")  # < 15,000
    assert verdict(rows(0.0, 16_000), settle_minutes=20)[-1].startswith("FAIL")


def test_too_short_a_run_cannot_pass() -> None:
    assert verdict(rows(0.0, 0)[:21], settle_minutes=20)[0].startswith("FAIL")


def test_the_soak_settings_let_every_table_settle_in_the_first_half_hour(tmp_path) -> None:
    from streams.config import load_settings
    from streams.tools.soak import SETTINGS, settled_minute

    (tmp_path / "soak.toml").write_text(SETTINGS)
    kpi = load_settings(tmp_path / "soak.toml").kpi_settings()
    customers_kept = (kpi.recontact_s + kpi.bucket_retention_s) / 60
    assert customers_kept < settled_minute(kpi) < 30
    assert kpi.pack_closed_s < kpi.ticket_retention_s  # the hour shelves closed tickets
