"""Codes drawn from a Gaussian mixture fitted to the training codes: "ex-post density
estimation" (Ghosh et al. 2020: 10 full-covariance components, scikit-learn's EM)."""

from __future__ import annotations

import torch
from sklearn.mixture import GaussianMixture

from waebench.config_check import at_least


class GMMSampler:
    """z ~ an `n_components` full-covariance Gaussian mixture fitted (scikit-learn, EM) to
    the codes of the training set."""

    name = "gmm"
    label = "GMM"
    title = "a Gaussian mixture fitted to the training codes"
    options = {"n_components": at_least(1)}  # the ranges of eval.sampler.gmm
    needs_prior = False

    def __init__(self, codes: torch.Tensor, seed: int = 0, n_components: int = 10) -> None:
        if len(codes) < n_components:
            raise ValueError(
                f"a {n_components}-component GMM needs at least {n_components} codes, "
                f"got {len(codes)} (lower eval.sampler.gmm.n_components)"
            )
        self.mixture = GaussianMixture(n_components, covariance_type="full", random_state=seed)
        self.mixture.fit(codes.double().cpu().numpy())

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        self.mixture.random_state = seed
        z, _ = self.mixture.sample(n)  # grouped by component: shuffle
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return torch.from_numpy(z).float()[order]
