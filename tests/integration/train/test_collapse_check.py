"""``eval.collapse_every``: a collapse-only check (z_std of a fixed batch, no probe) between the full
evaluations, so a collapse shows every epoch without paying for a probe every epoch."""

import math

import ablate


def test_collapse_checks_fill_the_epochs_between_evaluations():
    df = ablate.run_trial(
        train__epochs=4,
        train__steps_per_epoch=2,
        train__device="cpu",
        eval__every=4,
        eval__collapse_every=1,
        eval__probe_epochs=1,
        predictor__name="none",
        ema__tau=0.0,
    )
    assert list(df.epoch) == [1, 2, 3, 4] and list(df.is_final) == [False, False, False, True]
    checks, full = df[df.epoch < 4], df[df.epoch == 4]
    assert checks.probe_top1_best.isna().all() and checks.knn_top1.isna().all()  # no probe, no kNN
    assert all(0 <= z < 2 and c == (z < 0.1) for z, c in zip(checks.z_std, checks.collapsed))
    assert not math.isnan(full.probe_top1_best.iloc[0])


def test_without_it_only_evaluated_epochs_have_rows():
    df = ablate.run_trial(
        train__epochs=3, train__steps_per_epoch=2, train__device="cpu", eval__every=3, eval__probe_epochs=1
    )
    assert list(df.epoch) == [3]
