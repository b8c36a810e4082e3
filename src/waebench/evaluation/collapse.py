"""Whether a trained model collapsed, so that its numbers are not read as a model's. Checked on
the first `COUNT` images of the evaluation's split:

- the reconstructions of different test images, or (for a model with a prior) the decoded
  prior samples, are one image: their per-pixel standard deviation across the images,
  averaged over the pixels, is below `PIXEL_STD` grey levels (for the samples: the decoder
  ignores the code);
- the encoder ignores the image: every latent dimension's variance over the test codes is
  below `CODE_VARIANCE` times the prior's.

A training whose learning rate is far too large (`model.optimizer.lr=1e6`) can end like this
with finite losses, and its sample FID then equals its reconstruction FID; so does a model
trained for a few steps only. Each finding is one sentence of `metrics.json`'s `collapse` list
(empty: nothing looks collapsed).
"""

from __future__ import annotations

import torch

from waebench.evaluation.fid import to_uint8

COUNT = 1000
PIXEL_STD = 0.5  # grey levels of 255
CODE_VARIANCE = 1e-6  # of the prior's variance


def pixel_std(images: torch.Tensor) -> float:
    """Per-pixel standard deviation across uint8 `images`, averaged over the pixels."""
    return images.float().std(dim=0).mean().item()


@torch.no_grad()
def collapse_findings(model, datamodule, split: str, batch_size: int, seed: int) -> list[str]:
    """What looks collapsed in `model` (see the module's docstring); [] when nothing does."""
    images = datamodule.splits[split][0][:COUNT]
    if len(images) < 2:
        return []
    value_range = datamodule.value_range
    codes = torch.cat(
        [model.encode(datamodule.to_float(b).to(model.device)) for b in images.split(batch_size)]
    )
    decoded = {f"the reconstructions of {len(codes)} different test images": (codes, "")}
    if model.regularizer.uses_prior:
        generator = torch.Generator().manual_seed(seed)
        samples = model.prior.sample(len(images), generator=generator)
        decoded[f"the {len(samples)} decoded prior samples"] = (
            samples,
            ": the decoder ignores the code",
        )
    findings = []
    for what, (z, meaning) in decoded.items():
        pixels = torch.cat(
            [to_uint8(model.decode(b.to(model.device)), value_range) for b in z.split(batch_size)]
        )
        spread = pixel_std(pixels)
        if spread < PIXEL_STD:
            findings.append(
                f"{what} are one image (per-pixel std {spread:.3g} grey levels, below "
                f"{PIXEL_STD}){meaning}"
            )
    variance = codes.float().var(dim=0).max().item()
    if variance < CODE_VARIANCE * model.prior.variance:
        findings.append(
            f"the encoder ignores the image: the codes of {len(codes)} test images do not vary "
            f"(largest variance of a latent dimension {variance:.3g}; the prior's is "
            f"{model.prior.variance:g})"
        )
    return findings
