"""Learning-rate schedules: values, validation, serialisation, wrapping a user's function, discretisation."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sh_scaling.schedules import (
    WSD,
    Constant,
    Cosine,
    Linear,
    Schedule,
    Table,
    TwoStage,
    as_schedule,
    from_callable,
    schedule_from_dict,
)

EXAMPLES = [
    Constant(),
    Constant(peak_lr=3e-4, warmup=0.09),
    Cosine(peak_lr=3e-4, warmup=2160 / 24000, final_ratio=0.1),
    Cosine(final_ratio=0.0),
    Linear(peak_lr=2.0, warmup=0.05, final_ratio=0.2),
    WSD(peak_lr=3e-4, warmup=0.09, decay_start=20000 / 24000, decay="exponential", final_ratio=0.1),
    WSD(decay_start=0.9, decay="linear", final_ratio=0.0),
    WSD(decay_start=0.7, decay="cosine", final_ratio=0.05, warmup=0.01),
    TwoStage(peak_lr=3e-4, warmup=2160 / 16000, switch=0.5, ratio=0.3),
    Table(fractions=[0, 0.1, 0.5, 0.5, 1], lrs=[0, 1e-3, 1e-3, 1e-4, 1e-5]),
]


# --- values ---------------------------------------------------------------------------------------------


def test_warmup_is_a_linear_ramp_from_zero_to_the_peak():
    s = Cosine(peak_lr=3e-4, warmup=0.1, final_ratio=0.1)
    np.testing.assert_allclose(s([0.0, 0.025, 0.05, 0.1]), [0.0, 0.75e-4, 1.5e-4, 3e-4])


def test_cosine_follows_the_half_cosine_after_warmup():
    s = Cosine(peak_lr=1.0, warmup=0.2, final_ratio=0.1)
    p = np.linspace(0, 1, 11)
    f = 0.2 + 0.8 * p
    np.testing.assert_allclose(s(f), 0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * p)), atol=1e-15)
    assert s(1.0) == pytest.approx(0.1)


def test_linear_decays_to_the_final_ratio():
    s = Linear(peak_lr=2.0, final_ratio=0.25)
    np.testing.assert_allclose(s([0, 0.5, 1.0]), [2.0, 1.25, 0.5])


@pytest.mark.parametrize(
    ("decay", "mid"),
    [("exponential", 0.1**0.5), ("linear", 1 - 0.9 * 0.5), ("cosine", 0.1 + 0.9 * 0.5)],
)
def test_wsd_is_stable_then_decays(decay, mid):
    s = WSD(decay_start=0.8, decay=decay, final_ratio=0.1)
    np.testing.assert_allclose(s([0.0, 0.5, 0.8, 0.9, 1.0]), [1.0, 1.0, 1.0, mid, 0.1], rtol=1e-12)


def test_wsd_matches_the_exponential_decay_of_luo_et_al():
    # SUMMARY.md: 3e-4 to step 20,000, then exponential to about 3e-5 at 24,000; the file records 1.7052e-4 at
    # step 20,960 (csv_100/wsd_20000_24000.csv, read here from its formula: 3e-4 * 0.1**(960/4000)).
    s = WSD(peak_lr=3e-4, warmup=0.09, decay_start=20000 / 24000, final_ratio=0.1)
    assert float(s(20960 / 24000)) == pytest.approx(3e-4 * 0.1 ** (960 / 4000), rel=1e-12)


def test_two_stage_jumps_and_is_right_continuous():
    s = TwoStage(peak_lr=3e-4, switch=0.5, ratio=0.3)
    assert float(s(np.nextafter(0.5, 0))) == 3e-4
    assert float(s(0.5)) == pytest.approx(9e-5)
    assert s.jumps == (0.5,)


def test_table_interpolates_and_jumps():
    s = Table(fractions=[0, 0.5, 0.5, 1], lrs=[1.0, 1.0, 0.1, 0.0])
    np.testing.assert_allclose(s([0.25, 0.5, 0.75, 1.0]), [1.0, 0.1, 0.05, 0.0])
    assert s.peak_lr == 1.0 and s.jumps == (0.5,) and s.breakpoints == (0.5,)


@pytest.mark.parametrize("schedule", EXAMPLES, ids=lambda s: type(s).__name__)
def test_vectorised_shape_and_range(schedule):
    f = np.linspace(0, 1, 24).reshape(2, 3, 4)
    lr = schedule(f)
    assert lr.shape == (2, 3, 4)
    assert np.all(lr >= 0) and np.all(lr <= schedule.peak_lr * (1 + 1e-12))
    assert np.ndim(schedule(0.3)) == 0
    np.testing.assert_allclose(schedule.relative(f), lr / schedule.peak_lr)


@pytest.mark.parametrize("bad", [-0.1, 1.5, np.nan, np.inf, "half"])
def test_fractions_outside_the_run_are_rejected(bad):
    with pytest.raises(ValueError, match="fraction"):
        Cosine()(bad)


def test_rounding_of_the_fraction_is_tolerated():
    s = Cosine(final_ratio=0.1)
    assert float(s(1 + 1e-12)) == pytest.approx(0.1)
    assert float(s(-1e-12)) == pytest.approx(1.0)


# --- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: Constant(peak_lr=0), "peak_lr"),
        (lambda: Constant(peak_lr=-1), "peak_lr"),
        (lambda: Constant(peak_lr=math.inf), "peak_lr"),
        (lambda: Constant(warmup=1.0), "warmup"),
        (lambda: Cosine(final_ratio=1.5), "final_ratio"),
        (lambda: Cosine(final_ratio="a"), "final_ratio"),
        (lambda: Linear(final_ratio=-0.1), "final_ratio"),
        (lambda: WSD(decay="sqrt"), "decay"),
        (lambda: WSD(decay_start=1.2), "decay_start"),
        (lambda: WSD(decay_start=0.05, warmup=0.1), "decay_start"),
        (lambda: WSD(decay="exponential", final_ratio=0.0), "final_ratio"),
        (lambda: TwoStage(switch=-0.1), "switch"),
        (lambda: TwoStage(switch=0.05, warmup=0.1), "switch"),
        (lambda: TwoStage(ratio=2.0), "ratio"),
        (lambda: Table(fractions=[0, 1], lrs=[1.0]), "lrs"),
        (lambda: Table(fractions=[0.1, 1], lrs=[1, 1]), "start at 0"),
        (lambda: Table(fractions=[0, 0.6, 0.5, 1], lrs=[1, 1, 1, 1]), "non-decreasing"),
        (lambda: Table(fractions=[0, 0.5, 0.5, 0.5, 1], lrs=[1, 1, 1, 1, 1]), "at most twice"),
        (lambda: Table(fractions=[0, 1], lrs=[1, -1]), "lrs must be >= 0"),
        (lambda: Table(fractions=[0, 1], lrs=[0, 0]), "all 0"),
        (lambda: Table(fractions=[0, 1], lrs=[1, np.nan]), "finite"),
    ],
)
def test_invalid_arguments_raise_a_value_error_naming_them(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


def test_schedules_are_frozen():
    s = Cosine()
    with pytest.raises(AttributeError):
        s.final_ratio = 0.5  # type: ignore[misc]


# --- serialisation --------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", EXAMPLES, ids=lambda s: type(s).__name__)
def test_json_and_pickle_round_trips(schedule):
    text = json.dumps(schedule.to_dict())
    back = schedule_from_dict(json.loads(text))
    assert back == schedule and type(back) is type(schedule)
    assert pickle.loads(pickle.dumps(schedule)) == schedule
    f = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(back(f), schedule(f))
    # Compact enough to store once per trial in an Optuna storage.
    assert len(text) < 200


def test_from_dict_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown schedule kind 'cos'"):
        schedule_from_dict({"kind": "cos"})
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['final'\]"):
        schedule_from_dict({"kind": "cosine", "final": 0.1})
    with pytest.raises(ValueError, match="mapping"):
        schedule_from_dict([("kind", "cosine")])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="final_ratio"):
        schedule_from_dict({"kind": "cosine", "final_ratio": 3})


# --- a user's function ----------------------------------------------------------------------------------


def test_from_callable_wraps_vectorised_and_scalar_functions():
    vec = from_callable(lambda f: 1e-3 * (1 - 0.9 * f))
    np.testing.assert_allclose(vec([0, 0.5, 1]), [1e-3, 5.5e-4, 1e-4])

    def step(f: float) -> float:  # scalar only: fails on arrays (the truth value of an array is ambiguous)
        return 1e-3 if f < 0.5 else 1e-4

    s = from_callable(step)
    assert float(s(0.25)) == 1e-3 and float(s(0.75)) == 1e-4
    assert isinstance(s, Table) and len(json.dumps(s.to_dict())) < 3000
    assert schedule_from_dict(json.loads(json.dumps(s.to_dict()))) == s


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda f: -1e-3, "negative learning rate"),
        (lambda f: math.nan, "must be finite"),
        (lambda f: math.inf, "must be finite"),
        (lambda f: 0.0, "0 everywhere"),
        (lambda f: 1.0 / (f - 0.5) if f != 0.5 else 1 / 0, "failed at fraction 0.5"),
        (lambda f: [1.0, 2.0], "failed at fraction 0"),
        (lambda f: "high", "failed at fraction 0"),
        ("not a function", "expected a function"),
    ],
)
def test_from_callable_rejects_what_is_not_a_schedule(fn, message):
    with pytest.raises(ValueError, match=message):
        from_callable(fn)


def test_from_callable_checks_its_sample_count():
    with pytest.raises(ValueError, match="n_points"):
        from_callable(lambda f: 1.0, n_points=1)


def test_as_schedule_accepts_the_ways_a_schedule_is_given():
    c = Cosine()
    assert as_schedule(c) is c
    assert as_schedule(None) == Constant()
    assert as_schedule(c.to_dict()) == c
    assert isinstance(as_schedule(lambda f: 1.0 - f / 2), Table)
    with pytest.raises(ValueError, match="expected a Schedule"):
        as_schedule(3.0)


# --- discretisation and area ----------------------------------------------------------------------------


def test_nodes_hold_breakpoints_and_both_sides_of_a_jump():
    s = TwoStage(warmup=0.1, switch=0.5, ratio=0.25)
    f, lr = s.nodes(8)
    assert np.all(np.diff(f) >= 0) and f[0] == 0 and f[-1] == 1
    assert 0.1 in f
    at = np.flatnonzero(f == 0.5)
    assert at.size == 2 and lr[at[0]] == 1.0 and lr[at[1]] == 0.25
    # The warm-up (a tenth of the run, but all of the rise) gets as many nodes as its change asks for.
    assert np.sum(f < 0.1) >= 4


@pytest.mark.parametrize(
    ("schedule", "area"),
    [
        (Constant(peak_lr=2.0, warmup=0.2), 2.0 * (1 - 0.1)),
        (Cosine(final_ratio=0.1), (1 + 0.1) / 2),
        (Linear(final_ratio=0.0, warmup=0.5), 0.25 + 0.25),
        (TwoStage(switch=0.5, ratio=0.2), 0.5 + 0.1),
        (WSD(decay_start=0.5, decay="exponential", final_ratio=0.1), 0.5 + 0.5 * 0.9 / math.log(10)),
    ],
)
def test_area_is_the_integral_of_the_learning_rate(schedule, area):
    assert float(schedule.area(1.0)) == pytest.approx(area, rel=1e-6)
    assert float(schedule.area(0.0)) == 0.0


@settings(max_examples=40, deadline=None)
@given(
    warmup=st.floats(0.0, 0.3),
    start=st.floats(0.3, 1.0),
    ratio=st.floats(0.01, 1.0),
    decay=st.sampled_from(["exponential", "linear", "cosine"]),
)
def test_wsd_properties(warmup, start, ratio, decay):
    s = WSD(peak_lr=1e-3, warmup=warmup, decay_start=start, decay=decay, final_ratio=ratio)
    f = np.linspace(0, 1, 257)
    lr = s(f)
    assert np.all(lr >= 0) and np.all(lr <= 1e-3 * (1 + 1e-12))
    after = f >= warmup
    assert np.all(np.diff(lr[after]) <= 1e-15)  # never rises after warm-up
    area = s.area(f)
    assert np.all(np.diff(area) >= -1e-15) and float(area[-1]) <= 1e-3


def test_base_class_is_abstract():
    with pytest.raises(NotImplementedError):
        Schedule()(0.5)
