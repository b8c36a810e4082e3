"""What decides a FID's estimator besides its sampler, as a paper's protocol fixes it
(docs/protocols.md): the weights scored (`eval.checkpoint`), the codes that the
reconstructions decode (`eval.reconstruction`) and the pairs whose midpoints the
interpolations decode (`eval.interpolation`). Every `eval` entry records its `checkpoint`;
`fid/reconstructions` its `reconstruction`, `fid/interpolations` its `interpolation`.

- `eval.checkpoint`: `last`, the weights at the end of training, or `best`,
  checkpoints/best.ckpt (the lowest `callbacks.best_checkpoint.monitor`, as the RAE code
  scores `model_path + '_best'`);
- `eval.reconstruction`: `mean`, decode the encoder's mean, or `sample`, decode
  z ~ Q(z|x) (the RAE code reconstructs through the sampling layer); the same for a
  deterministic encoder;
- `eval.interpolation`: `test_pairs`, the midpoints (z_a + z_b) / 2 of random pairs a != b
  of the codes of `eval.split`, or `rae`, the RAE code's: midpoints of pairs of validation
  codes drawn without replacement from three copies of their indices, so each code is in
  at most three pairs (another three copies are drawn when the pairs need more).
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from waebench.evaluation.fid import to_uint8
from waebench.model import load_model
from waebench.run.record import CheckpointNotFoundError

CHECKPOINTS = ("last", "best")  # the choices of the typed settings (`EvalSettings`)
RECONSTRUCTIONS = ("mean", "sample")
INTERPOLATIONS = ("test_pairs", "rae")
BEST = "best.ckpt"


def problems(cfg) -> list[str]:
    """What is wrong with `eval.checkpoint=best` for the training of a composed config: it
    writes no best checkpoint (no `callbacks.best_checkpoint`, or no validation). One line
    each, with the fix. (A value outside its choices is refused by `EvalSettings`.)"""
    found: list[str] = []
    if OmegaConf.select(cfg, "eval.checkpoint", default=None) != "best" or "trainer" not in cfg:
        return found
    callback = OmegaConf.select(cfg, "callbacks.best_checkpoint", default=None)
    if callback is None:
        found.append(
            "eval.checkpoint=best: this training writes no best checkpoint "
            "(callbacks.best_checkpoint is off); valid values: last, best (best needs the "
            "callback, conf/callbacks/default.yaml)"
        )
    if OmegaConf.select(cfg, "trainer.limit_val_batches", default=None) == 0:
        found.append(
            "eval.checkpoint=best: trainer.limit_val_batches=0 runs no validation, so no best "
            "checkpoint is written; use eval.checkpoint=last or allow validation batches"
        )
    return found


def best_checkpoint(run_dir: str | Path) -> Path:
    """checkpoints/best.ckpt of a run; CheckpointNotFoundError (a FileNotFoundError) naming
    `eval.checkpoint` without it."""
    path = Path(run_dir) / "checkpoints" / BEST
    if not path.is_file():
        raise CheckpointNotFoundError(
            f"eval.checkpoint=best: {path} does not exist (the run wrote no best checkpoint: "
            f"no validation, or callbacks.best_checkpoint off); valid values: last, best; "
            f"score the final weights with eval.checkpoint=last"
        )
    return path


def weights_to_score(model, run_dir: str | Path, choice: str):
    """(model, label): the trained `model` itself for `last`, the weights of
    checkpoints/best.ckpt (on the model's device) for `best`."""
    if choice == "last":
        return model, "last"
    best = load_model(best_checkpoint(run_dir), map_location=model.device)
    return best, "best"


@torch.no_grad()
def posterior(model, datamodule, images: torch.Tensor, batch_size: int):
    """(means, standard deviations) of the codes of uint8 `images` on the CPU, made floats
    10,000 at a time; the deviations are None for a deterministic encoder."""
    means, stds = [], []
    for chunk in images.split(10_000):
        for batch in datamodule.to_float(chunk).split(batch_size):
            codes = model.codes(batch.to(model.device))
            means.append(codes.mean.cpu())
            if codes.log_var is not None:
                stds.append((0.5 * codes.log_var).exp().cpu())
    return torch.cat(means), torch.cat(stds) if stds else None


@torch.no_grad()
def reconstruct_images(
    model, datamodule, images: torch.Tensor, batch_size: int, codes: str = "mean", seed: int = 0
) -> torch.Tensor:
    """uint8 reconstructions of uint8 `images`, batch by batch on the model's device, from the
    encoder's means or (`codes="sample"`) from z = mean + std eps, eps seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for batch in images.split(batch_size):
        posterior_codes = model.codes(datamodule.to_float(batch.to(model.device)))
        z = posterior_codes.mean
        if codes == "sample" and posterior_codes.log_var is not None:
            eps = torch.randn(z.shape, generator=generator).to(z.device)
            z = z + eps * (0.5 * posterior_codes.log_var).exp()
        out.append(to_uint8(model.decode(z), datamodule.value_range))
    return torch.cat(out)


def pairs(n: int, count: int, protocol: str, seed: int) -> torch.Tensor:
    """[count, 2] indices into n codes: `test_pairs`, uniform pairs a != b; `rae`, drawn
    without replacement from three copies of the indices (each index at most three times
    per 3n / 2 pairs)."""
    generator = torch.Generator().manual_seed(seed)
    if protocol == "test_pairs":
        a = torch.randint(n, (count,), generator=generator)
        b = (a + torch.randint(1, n, (count,), generator=generator)) % n
        return torch.stack([a, b], dim=1)
    pool = torch.arange(n).repeat(3)
    draws = [
        pool[torch.randperm(len(pool), generator=generator)]
        for _ in range(-(-2 * count // len(pool)))
    ]
    return torch.cat(draws)[: 2 * count].view(count, 2)


def interpolation_codes(model, datamodule, settings, count: int) -> torch.Tensor:
    """`count` midpoints (z_a + z_b) / 2 of pairs of codes (means for a Gaussian encoder) by
    `eval.interpolation`: of `eval.split` (`test_pairs`) or of the validation split (`rae`)."""
    protocol = settings.interpolation
    split = settings.split if protocol == "test_pairs" else "val"
    codes, _ = posterior(model, datamodule, datamodule.splits[split][0], settings.batch_size)
    chosen = pairs(len(codes), count, protocol, settings.seed)
    return (codes[chosen[:, 0]] + codes[chosen[:, 1]]) / 2
