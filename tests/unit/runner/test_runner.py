"""Driver-side details of ``ablate run`` that need no running Ray."""

from __future__ import annotations


def test_tune_callback_census_is_skipped_only_while_usage_stats_are_off(monkeypatch):
    """Tune imports mlflow & co. to count callbacks for telemetry (1.6 s a sweep); with usage
    stats off (ablate's default) the census must not run, with them on it must."""
    from ray.air._internal import usage

    from ablate.runner.session import skip_callback_telemetry

    monkeypatch.setattr(usage, "tag_callbacks", usage.tag_callbacks)  # restored after the test
    counted: list = []
    monkeypatch.setattr(usage, "_count_callbacks", lambda callbacks: counted.append(callbacks) or {})
    skip_callback_telemetry()
    skip_callback_telemetry()  # a second sweep in the same process
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    assert usage.tag_callbacks(["recorder"]) is False and counted == []
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")
    usage.tag_callbacks(["recorder"])
    assert counted == [["recorder"]]
