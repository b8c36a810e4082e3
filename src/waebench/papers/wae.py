"""Tolstikhin, Bousquet, Gelly, Schoelkopf, "Wasserstein Auto-Encoders", ICLR 2018:
`experiment=wae_paper/*`.

Published: Table 1 (final version), CelebA 64x64, FID of 10^4 random samples from the prior,
computed with the TensorFlow Inception network of the TTUR code (torch-fidelity's
`inception-v3-compat` reproduces that network). The paper reports no MNIST FID, and does not
say how many real images its FID used.
"""

from __future__ import annotations

from waebench.papers.base import Paper, PublishedValue

SOURCE = "Tolstikhin et al. 2018, Table 1"
FID = (
    ("extractor", "tf-inception (paper)"),
    ("num_fake", 10_000),
    ("num_real", "not stated"),
)

PAPER = Paper(
    name="WAE",
    citation="Tolstikhin, Bousquet, Gelly, Schoelkopf, Wasserstein Auto-Encoders, ICLR 2018",
    code="tolstikhin/wae",
    commit="",
    experiments="wae_paper",
    published=(
        PublishedValue("celeba", "VAE", "fid/samples/prior", 63.0, FID, SOURCE),
        PublishedValue("celeba", "WAE-MMD", "fid/samples/prior", 55.0, FID, SOURCE),
        PublishedValue("celeba", "WAE-GAN", "fid/samples/prior", 42.0, FID, SOURCE),
    ),
)
