"""Latent regularizers: rec + weight * penalty(codes, prior). One file each."""

from waebench.regularizers.base import Codes, LatentRegularizer, NoRegularizer
from waebench.regularizers.cv_vae import ConstantVarianceKL
from waebench.regularizers.cwae import CramerWoldPenalty
from waebench.regularizers.gan import GANPenalty
from waebench.regularizers.kl import KLDivergence
from waebench.regularizers.mmd import MMDPenalty
from waebench.regularizers.rae import RAEPenalty
from waebench.regularizers.sinkhorn import SinkhornPenalty
from waebench.regularizers.sliced import SlicedWassersteinPenalty
from waebench.regularizers.w2_gaussian import W2GaussianPenalty

__all__ = [
    "Codes",
    "ConstantVarianceKL",
    "CramerWoldPenalty",
    "GANPenalty",
    "KLDivergence",
    "LatentRegularizer",
    "MMDPenalty",
    "NoRegularizer",
    "RAEPenalty",
    "SinkhornPenalty",
    "SlicedWassersteinPenalty",
    "W2GaussianPenalty",
]
