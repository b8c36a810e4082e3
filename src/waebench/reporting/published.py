"""Published numbers printed beside ours, never mixed into our columns.

Source: Tolstikhin, Bousquet, Gelly, Schoelkopf, "Wasserstein Auto-Encoders", ICLR 2018,
Table 1 (final version): CelebA 64x64, FID of 10^4 random samples from the prior, computed
with the TensorFlow Inception network of the TTUR code (torch-fidelity's
`inception-v3-compat` reproduces that network). The paper reports no MNIST FID, and does
not say how many real images its FID used; ours uses the whole CelebA test split (19,962
images) unless `eval.inception.num_real` is set (10000 gives 10^4 against 10^4), and
every column title carries its `num_real`.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "Tolstikhin et al. 2018, Table 1"


@dataclass(frozen=True)
class PublishedValue:
    dataset: str
    model: str
    metric: str
    value: float
    settings: tuple[tuple[str, object], ...]
    source: str = SOURCE


PAPER_FID = (
    ("extractor", "tf-inception (paper)"),
    ("num_fake", 10_000),
    ("num_real", "not stated"),
)

PUBLISHED = (
    PublishedValue("celeba", "VAE", "fid/samples/prior", 63.0, PAPER_FID),
    PublishedValue("celeba", "WAE-MMD", "fid/samples/prior", 55.0, PAPER_FID),
    PublishedValue("celeba", "WAE-GAN", "fid/samples/prior", 42.0, PAPER_FID),
)
