"""Ghosh, Sajjadi, Vergari, Black, Schoelkopf, "From Variational to Deterministic
Autoencoders", ICLR 2020: `experiment=rae_paper/*`.

Published: Table 1, MNIST (padded to 32x32) and CelebA 64x64, FID of 10^4 images with the
TensorFlow Inception network against the statistics of 10^4 test images (their code,
my_utility/fid_from_dir_computer.py: MNIST's 10,000 test images, CelebA's first 10,000).
Columns and the keys they stand beside (docs/evaluation.md has the code references):

- REC, reconstructions of held-out images -> `fid/reconstructions`;
- N, samples of "the prior" -> `fid/samples/prior` for VAE, CV-VAE and WAE (N(0, I));
  for the RAEs and the AE, which have no prior, a Gaussian fitted to the codes ->
  `fid/samples/gaussian`; for 2sVAE, the second VAE's samples -> `fid/samples/two_stage`;
- GMM, a 10-component GMM fitted to the training codes -> `fid/samples/gmm`;
- Interp, decoded midpoints of random pairs of held-out codes -> `fid/interpolations`.

Their WAE is WAE-MMD (models/wae_mmd: IMQ kernel, N(0, I) prior); their 2sVAE is a VAE with
the two-stage sampler, whose REC and Interp also pass through the second stage (encode,
decode) while ours are the VAE's own: its row stands beside our VAE's.
"""

from __future__ import annotations

from waebench.papers.base import Paper, PublishedValue

SOURCE = "Ghosh et al. 2020, Table 1"
FID = (
    ("extractor", "tf-inception (paper)"),
    ("num_fake", 10_000),
    ("num_real", 10_000),
)

# (their model, our model, N's key, the paper's name shown) and per dataset REC / N / GMM /
# Interp (None: not reported).
MODELS = (
    ("VAE", "VAE", "fid/samples/prior", ""),
    ("CV-VAE", "CV-VAE", "fid/samples/prior", ""),
    ("WAE", "WAE-MMD", "fid/samples/prior", "WAE (WAE-MMD)"),
    ("2sVAE", "VAE", "fid/samples/two_stage", "2sVAE (VAE, two-stage sampler)"),
    ("RAE-GP", "RAE-GP", "fid/samples/gaussian", ""),
    ("RAE-L2", "RAE-L2", "fid/samples/gaussian", ""),
    ("RAE-SN", "RAE-SN", "fid/samples/gaussian", ""),
    ("RAE", "RAE", "fid/samples/gaussian", ""),
    ("AE", "AE", "fid/samples/gaussian", ""),
)
TABLE: dict[str, dict[str, tuple[float | None, ...]]] = {
    "mnist": {
        "VAE": (18.26, 19.21, 17.66, 18.21),
        "CV-VAE": (15.15, 33.79, 17.87, 25.12),
        "WAE": (10.03, 20.42, 9.39, 14.34),
        "2sVAE": (20.31, 18.81, None, 18.35),
        "RAE-GP": (14.04, 22.21, 11.54, 15.32),
        "RAE-L2": (10.53, 22.22, 8.69, 14.54),
        "RAE-SN": (15.65, 19.67, 11.74, 15.15),
        "RAE": (11.67, 23.92, 9.81, 14.67),
        "AE": (12.95, 58.73, 10.66, 17.12),
    },
    "celeba": {
        "VAE": (39.12, 48.12, 45.52, 44.49),
        "CV-VAE": (40.41, 48.87, 49.30, 44.96),
        "WAE": (34.81, 53.67, 42.73, 40.93),
        "2sVAE": (42.04, 49.70, None, 47.54),
        "RAE-GP": (39.71, 116.30, 45.63, 47.00),
        "RAE-L2": (43.52, 51.13, 47.97, 45.98),
        "RAE-SN": (36.01, 44.74, 40.95, 39.53),
        "RAE": (40.18, 48.20, 44.68, 43.67),
        "AE": (40.79, 127.85, 45.10, 50.94),
    },
}


def published() -> tuple[PublishedValue, ...]:
    values = []
    for dataset, rows in TABLE.items():
        for paper, ours, n_key, name in MODELS:
            keys = ("fid/reconstructions", n_key, "fid/samples/gmm", "fid/interpolations")
            for key, value in zip(keys, rows[paper], strict=True):
                if value is not None:
                    values.append(PublishedValue(dataset, ours, key, value, FID, SOURCE, name))
    return tuple(values)


PAPER = Paper(
    name="RAE",
    citation=(
        "Ghosh, Sajjadi, Vergari, Black, Schoelkopf, From Variational to Deterministic "
        "Autoencoders, ICLR 2020"
    ),
    code="ParthaEth/Regularized_autoencoders-RAE-",
    commit="9478b8f",
    experiments="rae_paper",
    published=published(),
)
