"""CV-VAE: a VAE whose encoder has a constant variance (Ghosh et al. 2020, the baseline that
shows noise injection alone regularizes the decoder).

The encoder outputs the mean mu only; codes are z = mu + s eps with a fixed standard
deviation s = `encoder_std` (the official code: s = 0.7, not learned), and the penalty is
the VAE's KL(N(mu, s^2 I) || N(0, sigma_z^2 I)), whose gradient is that of
||mu||^2 / (2 sigma_z^2): a code penalty like RAE's, plus the noise.
"""

from __future__ import annotations

from waebench.regularizers.kl import KLDivergence


class ConstantVarianceKL(KLDivergence):
    name = "cv_vae"

    def __init__(
        self, weight: float = 1.0, encoder_std: float = 0.7, gaussian_encoder: bool = True
    ) -> None:
        super().__init__(weight, gaussian_encoder)
        self.encoder_std = float(encoder_std)
