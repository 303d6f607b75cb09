import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sh_scaling.constants import EPOCH_2024
from sh_scaling.curves import CurveSet, generate_synthetic


def _residuals(curves: CurveSet) -> list[np.ndarray]:
    return [c.loss - c.meta["noiseless_loss"] for c in curves]


def _crossing_stats(curves: CurveSet) -> tuple[float, float, float]:
    """Over pairs whose compute ranges overlap: fraction whose loss difference changes sign inside the overlap,
    fraction of those where the smaller model leads first, and fraction of pairs where the smaller model
    leads at the start of the overlap while the larger one ends lower."""
    overlapping = crossing = small_first = reversal = 0
    items = sorted(curves, key=lambda c: c.meta["n_params"])
    for i, small in enumerate(items):
        for large in items[i + 1 :]:
            lo = max(small.compute[0], large.compute[0])
            hi = min(small.final_compute, large.final_compute)
            if hi <= lo:
                continue
            overlapping += 1
            grid = np.geomspace(lo, hi, 60)
            diff = small.loss_at(grid) - large.loss_at(grid)  # < 0: the small model leads
            if diff.min() < 0 < diff.max():
                crossing += 1
                small_first += diff[np.flatnonzero(diff != 0)[0]] < 0
            reversal += diff[0] < 0 and large.final_loss < small.final_loss
    return crossing / overlapping, small_first / max(crossing, 1), reversal / overlapping


def test_shape_ids_units_and_compute_convention():
    curves = generate_synthetic(7, seed=3, n_points=25)
    assert len(curves) == 7 and curves.ids == [f"syn-{i:03d}" for i in range(7)]
    for c in curves:
        assert len(c) == 25 and c.unit == "FLOPs"
        assert np.all(np.diff(c.compute) > 0) and np.all(c.loss > 0)
        np.testing.assert_allclose(c.compute, 6 * c.meta["n_params"] * c.meta["tokens_seen"])
        np.testing.assert_allclose(c.meta["tokens_seen"][-1], c.meta["tokens"])
        assert 1e7 <= c.meta["n_params"] <= 1e9
        assert 5 <= c.meta["tokens_per_param"] <= 100


def test_same_seed_same_curves_other_seed_other_curves():
    a = generate_synthetic(10, seed=42, noise="ou")
    b = generate_synthetic(10, seed=42, noise="ou")
    c = generate_synthetic(10, seed=43, noise="ou")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.compute, y.compute)
        np.testing.assert_array_equal(x.loss, y.loss)
        assert x.meta["n_params"] == y.meta["n_params"]
    assert not any(np.array_equal(x.loss, z.loss) for x, z in zip(a, c))
    # A Generator is accepted and advanced like a seed would be.
    g1 = generate_synthetic(3, seed=np.random.default_rng(5))
    g2 = generate_synthetic(3, seed=np.random.default_rng(5))
    np.testing.assert_array_equal(g1[2].loss, g2[2].loss)


def test_noise_model_does_not_change_the_law():
    plain = generate_synthetic(12, seed=8, noise="none")
    for model in ("white", "brownian", "ou"):
        noisy = generate_synthetic(12, seed=8, noise=model)
        for p, n in zip(plain, noisy):
            np.testing.assert_array_equal(p.compute, n.compute)
            np.testing.assert_allclose(p.meta["noiseless_loss"], n.meta["noiseless_loss"])
            np.testing.assert_array_equal(p.loss, p.meta["noiseless_loss"])


def test_white_noise_has_the_documented_scale():
    curves = generate_synthetic(150, seed=0, noise="white", noise_scale=0.02)
    res = np.concatenate(_residuals(curves))
    assert abs(res.std() - 0.02) < 0.002
    assert abs(res.mean()) < 0.002
    # Independent: lag-1 correlation near zero.
    lag = np.concatenate([r[1:] * r[:-1] for r in _residuals(curves)]).mean() / res.var()
    assert abs(lag) < 0.07


def test_brownian_noise_grows_by_sigma_per_sqrt_log_compute():
    sigma = 0.03
    curves = generate_synthetic(150, seed=1, noise="brownian", noise_scale=sigma, spacing="linear")
    steps = []
    for c, r in zip(curves, _residuals(curves)):
        assert r[0] == 0.0  # the walk starts at the first evaluation
        steps.append(np.diff(r) / np.sqrt(np.diff(np.log(c.compute))))
    steps = np.concatenate(steps)
    assert abs(steps.std() - sigma) < 0.1 * sigma
    # The walk's spread at the end matches sigma * sqrt(log-compute span).
    ends = np.array([r[-1] for r in _residuals(curves)])
    span = math.log(curves[0].compute[-1] / curves[0].compute[0])
    assert 0.8 < ends.std() / (sigma * math.sqrt(span)) < 1.2


def test_ou_noise_is_stationary_with_documented_correlation():
    sigma, theta = 0.02, 2.0
    curves = generate_synthetic(250, seed=2, noise="ou", noise_scale=sigma, ou_theta=theta)
    res = _residuals(curves)
    all_res = np.concatenate(res)
    assert abs(all_res.std() - sigma) < 0.1 * sigma
    # Same spread at the start and at the end: stationary, unlike the random walk.
    assert abs(np.std([r[0] for r in res]) - np.std([r[-1] for r in res])) < 0.25 * sigma
    # Log-spaced points: constant step in log-compute, so one expected lag-1 correlation.
    dt = np.diff(np.log(curves[0].compute))[0]
    lag1 = np.mean(np.concatenate([r[1:] * r[:-1] for r in res])) / sigma**2
    assert abs(lag1 - math.exp(-theta * dt)) < 0.06


def test_losses_stay_positive_under_huge_noise():
    for model in ("white", "brownian", "ou"):
        curves = generate_synthetic(20, seed=4, noise=model, noise_scale=5.0)
        assert all(np.all(c.loss > 0) for c in curves)


def test_warmup_starts_near_uniform_loss_and_falls_into_the_law():
    cap = math.log(50_257)
    with_warmup = generate_synthetic(30, seed=5, noise="none", warmup_fraction=0.01, schedule="constant")
    without = generate_synthetic(30, seed=5, noise="none", warmup_fraction=0.0, schedule="constant")
    firsts = np.array([c.loss[0] for c in with_warmup])
    assert np.all(firsts <= cap) and np.median(firsts) > 0.9 * cap
    assert all(c.loss[0] - c.loss[-1] > 3.0 for c in with_warmup)
    delays = []
    for w, n in zip(with_warmup, without):
        tokens = w.meta["tokens_seen"]
        during = tokens < w.meta["warmup_tokens"]
        assert during.sum() >= 3
        assert np.all(w.loss[during] >= n.loss[during])
        delays.append(np.max(w.loss[during] - n.loss[during]))
        late = tokens > 10 * w.meta["warmup_tokens"]
        np.testing.assert_allclose(w.loss[late], n.loss[late], rtol=0.02)
    # Warm-up visibly delays the fall (small models sit at the cap either way, hence not every curve).
    assert np.mean(np.array(delays) > 0.3) > 0.3


def test_noiseless_truth_matches_the_law():
    curves = generate_synthetic(10, seed=6, noise="none", schedule="constant", warmup_fraction=0.0,
                                constants=EPOCH_2024, jitter=0.0)
    for c in curves:
        m = c.meta
        assert (m["E"], m["A"], m["B"], m["alpha"], m["beta"]) == pytest.approx(
            (EPOCH_2024.E, EPOCH_2024.A, EPOCH_2024.B, EPOCH_2024.alpha, EPOCH_2024.beta)
        )
        law = m["E"] + m["A"] / m["n_params"] ** m["alpha"] + m["B"] / m["tokens_seen"] ** m["beta"]
        late = law < 0.5 * math.log(50_257)  # where the cap at ln(vocab) no longer bends the law
        np.testing.assert_allclose(c.loss[late], law[late], rtol=1e-3)
        assert m["final_law_loss"] == pytest.approx(law[-1])


def test_jitter_varies_constants_per_curve():
    curves = generate_synthetic(20, seed=7, jitter=0.1)
    alphas = np.array([c.meta["alpha"] for c in curves])
    Es = np.array([c.meta["E"] for c in curves])
    assert alphas.std() > 0 and 0.05 < Es.std() / Es.mean() < 0.2
    assert np.all(np.abs(alphas / 0.34 - 1) < 0.06)


def test_cosine_schedule_drops_faster_near_the_end():
    cos = generate_synthetic(15, seed=9, noise="none", schedule="cosine", anneal_gain=0.1)
    const = generate_synthetic(15, seed=9, noise="none", schedule="constant")
    for a, b in zip(cos, const):
        assert a.final_loss < b.final_loss
        # Same loss early (the learning rate has barely decayed), growing gap late.
        early = a.meta["tokens_seen"] < 0.05 * a.meta["tokens"]
        np.testing.assert_allclose(a.loss[early], b.loss[early], rtol=2e-3)
        tail = slice(-6, None)  # the last 6 log-spaced points: the last ~70 % of the tokens
        assert (a.loss[tail][0] - a.loss[-1]) > (b.loss[tail][0] - b.loss[-1])


def test_linear_spacing():
    c = generate_synthetic(2, seed=0, spacing="linear", n_points=10)[0]
    np.testing.assert_allclose(np.diff(c.compute), c.compute[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_curves_cross_like_real_ones(seed):
    crossing, small_first, reversal = _crossing_stats(generate_synthetic(40, seed=seed, noise="none"))
    # Clark et al.'s routing curves (loss_validation): 11 % of the overlapping pairs cross inside the overlap.
    assert crossing >= 0.08
    # Small models lead early, large ones win late.
    assert reversal >= 0.75
    # Most crossings go that way; warm-up length and cosine annealing depend on each curve's own budget, so a
    # small model annealing at its end may also dip under a larger one mid-run, as in real sweeps.
    assert small_first >= 0.5
    plain = _crossing_stats(
        generate_synthetic(40, seed=seed, noise="none", schedule="constant", warmup_fraction=0.0)
    )
    assert plain[0] >= 0.15 and plain[1] >= 0.9


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_curves": 0}, "n_curves"),
        ({"noise": "pink"}, "noise='pink'"),
        ({"schedule": "linear"}, "schedule"),
        ({"spacing": "sqrt"}, "spacing"),
        ({"noise_scale": -0.1}, "noise_scale"),
        ({"n_params_range": (1e9, 1e7)}, "n_params_range"),
        ({"tokens_per_param_range": (0, 10)}, "tokens_per_param_range"),
        ({"start_fraction": 1.0}, "start_fraction"),
        ({"warmup_fraction": 1.0}, "warmup_fraction"),
        ({"n_points": 1}, "n_points"),
        ({"ou_theta": 0.0}, "ou_theta"),
        ({"vocab_size": 1}, "vocab_size"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_synthetic(**kwargs)


@settings(max_examples=40, deadline=None)
@given(
    n_curves=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    noise=st.sampled_from(["none", "white", "brownian", "ou"]),
    noise_scale=st.floats(0.0, 3.0),
    low=st.floats(1e5, 1e11),
    span=st.floats(1.0, 100.0),
    n_points=st.integers(2, 40),
    spacing=st.sampled_from(["log", "linear"]),
    start_fraction=st.floats(1e-5, 0.9),
    warmup_fraction=st.floats(0.0, 0.9),
    schedule=st.sampled_from(["constant", "cosine"]),
    anneal_gain=st.floats(0.0, 0.99),
    jitter=st.floats(0.0, 0.5),
)
def test_any_valid_arguments_give_valid_curves(
    n_curves, seed, noise, noise_scale, low, span, n_points, spacing, start_fraction, warmup_fraction, schedule,
    anneal_gain, jitter,
):
    curves = generate_synthetic(
        n_curves, seed=seed, noise=noise, noise_scale=noise_scale, n_params_range=(low, low * span),
        n_points=n_points, spacing=spacing, start_fraction=start_fraction, warmup_fraction=warmup_fraction,
        schedule=schedule, anneal_gain=anneal_gain, jitter=jitter,
    )
    assert len(curves) == n_curves
    for c in curves:
        assert len(c) == n_points
        assert np.all(np.isfinite(c.loss)) and np.all(c.loss > 0)
        clean = c.meta["noiseless_loss"]
        assert np.all(clean > 0) and np.all(clean <= math.log(50_257) + 1e-9)


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_meta_carries_the_schedule_the_anneal_assumes(schedule):
    from sh_scaling.schedules import Schedule

    warmup = 0.01
    curves = generate_synthetic(6, seed=3, noise="none", schedule=schedule, warmup_fraction=warmup,
                                anneal_gain=0.2, vocab_size=10**300)  # a cap far above the law
    for c in curves:
        s = c.meta["schedule"]
        assert isinstance(s, Schedule) and s.kind == schedule == c.meta["schedule_kind"]
        assert c.meta["max_compute"] == c.final_compute
        # The anneal of the law is (1 - anneal_gain * (1 - lr / lr_peak)) on the reducible loss after warm-up:
        # read the learning rate back from the noiseless loss and compare it with the stated schedule.
        tokens, budget = c.meta["tokens_seen"], c.meta["tokens"]
        warm = c.meta["warmup_tokens"]
        after = tokens >= warm
        d_eff = tokens[after] - warm / 2
        plain = c.meta["A"] / c.meta["n_params"] ** c.meta["alpha"] + c.meta["B"] / d_eff ** c.meta["beta"]
        factor = (c.meta["noiseless_loss"][after] - c.meta["E"]) / plain
        lr = 1 - (1 - factor) / c.meta["anneal_gain"]
        np.testing.assert_allclose(s.relative(tokens[after] / budget), lr, rtol=1e-6, atol=1e-9)
        # Warm-up: the rate rises linearly from 0 to the peak over the warm-up tokens.
        assert s.warmup == pytest.approx(warmup) and float(s.relative(warmup / 2)) == pytest.approx(0.5)


def test_schedule_aware_forecasts_read_the_synthetic_schedule():
    from sh_scaling.pruning import stage_forecast_errors
    from sh_scaling.simulation import allocate

    curves = generate_synthetic(8, seed=4)
    # The multi-power law under each curve's schedule: without a schedule object every curve would be left out.
    errors = stage_forecast_errors(list(curves), kind="multipower", stages=(0.2, 0.4))
    assert set(errors["name"]) == set(curves.ids) and not errors["fallback"].any()
    res = allocate(curves, 0.3 * curves.exhaustive_compute, "SH+MPL")
    decided = [r for r in res.rounds if r.score is not None]
    # Each decided round forecast its survivors under their schedules (a fallback is a survivor with too few
    # points, the observed loss standing in), not every one of them with the observed loss.
    assert decided and not any(r.fallback[~np.isnan(r.loss)].all() for r in decided)
    seen = sum(int((~np.isnan(r.loss)).sum()) for r in decided)
    assert res.n_fallbacks < seen / 2


def test_csv_round_trip_keeps_the_synthetic_schedule(tmp_path):
    from sh_scaling.curves import load_csv

    curves = generate_synthetic(3, seed=2, noise="none")
    curves.to_csv(tmp_path / "syn.csv")
    back = load_csv(tmp_path / "syn.csv")
    for a, b in zip(curves, back):
        assert b.meta["schedule"] == a.meta["schedule"] and b.meta["schedule_kind"] == "cosine"
        assert b.meta["max_compute"] == a.meta["max_compute"]
