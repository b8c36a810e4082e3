"""Where generated images start: codes drawn from the prior, or from a Gaussian
mixture fitted to the training codes ("ex-post density estimation", Ghosh et
al. 2020, 10 components), decoded by the model."""

from __future__ import annotations

import torch
from sklearn.mixture import GaussianMixture

from waebench.prior import GaussianPrior


class PriorSampler:
    """z ~ P_Z = N(0, sigma_z^2 I)."""

    name = "prior"

    def __init__(self, prior: GaussianPrior) -> None:
        self.prior = prior

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        return self.prior.sample(n, generator=torch.Generator().manual_seed(seed))


class GMMSampler:
    """z ~ a `n_components` full-covariance Gaussian mixture fitted (scikit-learn, EM)
    to the codes of the training set."""

    name = "gmm"

    def __init__(self, codes: torch.Tensor, n_components: int = 10, seed: int = 0) -> None:
        if len(codes) < n_components:
            raise ValueError(
                f"a {n_components}-component GMM needs at least {n_components} codes, "
                f"got {len(codes)} (lower eval.gmm_components)"
            )
        self.mixture = GaussianMixture(n_components, covariance_type="full", random_state=seed)
        self.mixture.fit(codes.double().cpu().numpy())

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        self.mixture.random_state = seed
        z, _ = self.mixture.sample(n)  # grouped by component: shuffle
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return torch.from_numpy(z).float()[order]
