"""Latent regularizers: rec + weight * penalty(codes, prior). One file each."""

from waebench.regularizers.base import Codes, LatentRegularizer, NoRegularizer
from waebench.regularizers.gan import GANPenalty
from waebench.regularizers.kl import KLDivergence
from waebench.regularizers.mmd import MMDPenalty
from waebench.regularizers.sinkhorn import SinkhornPenalty
from waebench.regularizers.sliced import SlicedWassersteinPenalty
from waebench.regularizers.w2_gaussian import W2GaussianPenalty

__all__ = [
    "Codes",
    "GANPenalty",
    "KLDivergence",
    "LatentRegularizer",
    "MMDPenalty",
    "NoRegularizer",
    "SinkhornPenalty",
    "SlicedWassersteinPenalty",
    "W2GaussianPenalty",
]
