"""Every number of a config is bounded by the strict builder: floats finite, ints within 64 bits,
tensor sizes within what a machine could hold, in any field and in each item of a tuple."""

from __future__ import annotations

import pytest

from ablate.config.dynamics import MAX_ROWS, load_dynamics_config
from ablate.config.trial import MAX_BATCH, MAX_CHANNELS
from ablate.errors import UserError
from ablate.kinds.ssl import load_trial_config


def error_of(build, tree: dict) -> str:
    with pytest.raises(UserError) as e:
        build(tree)
    return str(e.value)


@pytest.mark.parametrize(
    "tree,message",
    [
        ({"optim": {"lr": float("nan")}}, "optim.lr: must be a finite number (not .nan or .inf), got nan"),
        (
            {"optim": {"weight_decay": float("inf")}},
            "optim.weight_decay: must be a finite number (not .nan or .inf), got inf",
        ),
        ({"ema": {"tau": float("nan")}}, "ema.tau: must be a finite number (not .nan or .inf), got nan"),
        (
            {"optim": {"lr": 10**400}},
            "optim.lr: must be a finite number (not .nan or .inf), got an integer of 1329 bits",
        ),
        (
            {"train": {"epochs": 10**20}},
            "train.epochs: must be an integer from -2**63 to 2**63 - 1, got 100000000000000000000",
        ),
        ({"seed": 2**64}, "seed: must be an integer from -2**63 to 2**63 - 1, got 18446744073709551616"),
        (
            {"train": {"batch_size": 2**63}},
            "train.batch_size: must be an integer from -2**63 to 2**63 - 1, got 9223372036854775808",
        ),
        # sizes whose tensors no machine holds (the memory estimate's arithmetic would overflow)
        ({"train": {"batch_size": 2**62}}, f"train.batch_size: must be <= {MAX_BATCH}, got {2**62}"),
        ({"model": {"width": 2**30}}, f"model.width: must be <= {MAX_CHANNELS}, got {2**30}"),
    ],
)
def test_trial_config_numbers_are_finite_and_fit_64_bits(tree, message):
    assert error_of(load_trial_config, tree) == f"<config>: {message}"


def test_bounds_hold_for_tuple_items_and_leave_valid_numbers_valid():
    assert error_of(load_dynamics_config, {"x_eigs": [1.0, float("nan")], "n1": 2}) == (
        "<config>: x_eigs[1]: must be a finite number (not .nan or .inf), got nan"
    )
    assert error_of(load_dynamics_config, {"steps": 10**12, "report_every": 1}).startswith(
        f"<config>: report_every: 1000000000000 steps / 1 make 1,000,000,000,001 rows, more than {MAX_ROWS:,} "
    )
    cfg = load_trial_config(
        {"optim": {"lr": 1}, "train": {"epochs": 2**40, "batch_size": MAX_BATCH}, "seed": 2**63 - 1}
    )
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float) and cfg.seed == 2**63 - 1
    # a float is never taken for an int
    assert error_of(load_trial_config, {"train": {"epochs": 1e20}}) == "<config>: train.epochs: expected int, got 1e+20"
