"""Codes drawn from a Gaussian mixture fitted to the training codes: "ex-post density
estimation" (Ghosh et al. 2020), by EM (`gmm`) or as a variational Dirichlet-process mixture
(`dpgmm`, the estimator behind their Table 1's GMM column: docs/protocols.md)."""

from __future__ import annotations

import torch
from sklearn.mixture import BayesianGaussianMixture, GaussianMixture

from waebench.config_check import at_least, positive


class MixtureSampler:
    """Samples of a fitted scikit-learn mixture, shuffled (sklearn groups them by component)."""

    name = ""
    needs_prior = False

    def __init__(self, mixture, codes: torch.Tensor, n_components: int) -> None:
        if len(codes) < n_components:
            raise ValueError(
                f"a {n_components}-component mixture needs at least {n_components} codes, "
                f"got {len(codes)} (lower eval.sampler.{self.name}.n_components)"
            )
        self.mixture = mixture
        self.mixture.fit(codes.double().cpu().numpy())

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        self.mixture.random_state = seed
        z, _ = self.mixture.sample(n)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return torch.from_numpy(z).float()[order]


class GMMSampler(MixtureSampler):
    """z ~ an `n_components` full-covariance Gaussian mixture fitted by EM (scikit-learn's
    GaussianMixture, at most `max_iter` iterations) to the codes of the training set."""

    name = "gmm"
    label = "GMM"
    title = "a Gaussian mixture fitted to the training codes by EM"
    options = {"n_components": at_least(1), "max_iter": at_least(1)}  # eval.sampler.gmm

    def __init__(
        self, codes: torch.Tensor, seed: int = 0, n_components: int = 10, max_iter: int = 100
    ) -> None:
        mixture = GaussianMixture(
            n_components, covariance_type="full", max_iter=max_iter, random_state=seed
        )
        super().__init__(mixture, codes, n_components)


class DPGMMSampler(MixtureSampler):
    """z ~ a full-covariance Gaussian mixture fitted by variational inference under a
    Dirichlet-process prior on its weights (scikit-learn's BayesianGaussianMixture, at most
    `max_iter` iterations): `n_components` bounds the number of components, and those the
    codes do not support end with weights near 0. `weight_concentration_prior` (the
    Dirichlet process's concentration; smaller favours fewer components) defaults, as in
    scikit-learn and the RAE code, to 1 / n_components."""

    name = "dpgmm"
    label = "DP-GMM"
    title = "a Dirichlet-process Gaussian mixture fitted to the training codes"
    options = {  # the ranges of eval.sampler.dpgmm
        "n_components": at_least(1),
        "weight_concentration_prior": positive(nullable=True),
        "max_iter": at_least(1),
    }

    def __init__(
        self,
        codes: torch.Tensor,
        seed: int = 0,
        n_components: int = 10,
        weight_concentration_prior: float | None = None,
        max_iter: int = 100,
    ) -> None:
        mixture = BayesianGaussianMixture(
            n_components=n_components,
            covariance_type="full",
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=weight_concentration_prior,
            max_iter=max_iter,
            random_state=seed,
        )
        super().__init__(mixture, codes, n_components)
