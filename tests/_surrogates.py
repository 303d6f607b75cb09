"""Small surrogates for tests that exercise decisions and storage rather than curve fitting."""

import numpy as np


class LogLinear:
    """A straight line in log-log space: the smallest surrogate that extrapolates, with a constant std."""

    def __init__(self, std: float = 0.05) -> None:
        self.std = std

    def fit(self, compute, loss):
        self.coef_ = np.polyfit(np.log(compute), np.log(loss), 1)
        return self

    def predict(self, compute, return_std=False):
        mean = np.exp(np.polyval(self.coef_, np.log(compute)))
        return (mean, np.full_like(mean, self.std)) if return_std else mean
