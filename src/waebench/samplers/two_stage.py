"""Codes drawn from a second VAE trained on the training codes: the two-stage VAE of Dai &
Wipf (ICLR 2019). Sampling: v ~ N(0, I) -> the second decoder D -> u = D(v), plus with
`decoder_noise` N(0, gamma I) noise (the second decoder's own Gaussian) -> the codes (u
de-standardized where the codes were standardized), which the model's decoder turns into
images. The second VAE has as many latent dimensions as the codes.

Its loss, per batch of codes u (d entries each; KL = KL(Q(v|u) || N(0, I)) summed over the
entries; means over the batch), by `gamma`, the decoder variance:

- `batch_optimum`: d/2 log(mean (u - D(v))^2) + KL: Dai & Wipf's negative ELBO with gamma at
  its optimum for the batch (the mean squared error per entry);
- `learned`: sum_j (u_j - D(v)_j)^2 / (2 gamma) + d/2 log gamma + KL, with the standard
  deviation sqrt(gamma) a learned scalar, 1 at the start (Dai & Wipf's code);
- `fixed`: mean_j (u_j - D(v)_j)^2 + beta KL (the RAE code's second stage; its decoder
  variance is gamma = d beta / 2),

the KL weight rising linearly from 0 over the first `kl_warmup` of the training (KL annealing,
Bowman et al. 2016; 0: none).

`preset` names a complete set of the options below; any option given overrides its value:

- `study` (the default): sized for seconds on a CPU. Standardized codes, 2 x 128 ReLU layers
  with a skip path, gamma at its batch optimum, a KL warm-up over a quarter of 1,500 Adam steps
  (lr 3e-3, random batches of 256), decoder noise. Without the warm-up a short fit on codes
  close to a Gaussian (a VAE's, a WAE's) stays at the collapsed optimum Q(v|u) = N(0, I),
  gamma = 1, which samples no better than a diagonal Gaussian; after a short fit gamma is
  still large and the decoder's means alone are too concentrated (docs/evaluation.md);
- `rae`: the second stage of the RAE code's 2sVAE (Ghosh et al. 2020; ParthaEth/
  Regularized_autoencoders-RAE- at 9478b8f, my_utility/estimate_density_and_sample.py
  VaeModelWrapper l. 119-201, models/std_vae/get_vae_given_enc_dec.py l. 15-29): codes
  standardized (l. 171-176), 2 x 1024 ReLU layers without skip (l. 125-139), log sigma =
  5 tanh(.), gamma `fixed` with the config's `beta` (configurations/config.py l. 676: 1.5e-3
  MNIST, l. 632: 2e-3 CelebA), Adam at lr 1e-4, 100 epochs of batch 64, the lr halved after 3
  epochs without a better loss on the last 10 % of the codes, held out (l. 180-185), and
  samples that decode the mean (l. 193-201). docs/protocols.md says what differs;
- `dai_wipf`: Dai & Wipf's second stage (daib13/TwoStageVAE at 8718623,
  network/two_stage_vae_model.py and demo.py): raw codes, 3 x 1024 ReLU layers whose output
  layers also see the input (model l. 76-97; demo l. 152-153), gamma `learned` (l. 44-46,
  96-97), trained on a fresh draw of the first stage's posterior z = mean + std eps each
  epoch (demo l. 63-76), 800 epochs of batch 64 at lr 1e-4 halved every 300 (demo l. 148,
  167-170, 69), and samples z = D(v) + sqrt(gamma) eps (model l. 135-151). Kept apart: its
  log sigma is a linear output, ours a linear log-variance (the same function class, the
  initial scale halved); a constant of its loss (log 2 pi) is left out.

`rae` and `dai_wipf` fit on the evaluation's device (a GPU where there is one), `study` on
one CPU thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from waebench.config_check import Choice, Range, at_least, positive
from waebench.samplers.fitting import Standardized, adam_on_epochs, adam_on_minibatches

GAMMAS = ("batch_optimum", "learned", "fixed")
TRAIN_CODES = ("mean", "sample")
DEVICES = ("cpu", "auto")
PRESETS: dict[str, dict[str, Any]] = {
    "study": {
        "standardize": True,
        "hidden": 128,
        "layers": 2,
        "skip": True,
        "log_std_bound": None,
        "glorot_init": False,
        "gamma": "batch_optimum",
        "beta": None,
        "kl_warmup": 0.25,
        "train_codes": "mean",
        "steps": 1500,
        "epochs": None,
        "batch_size": 256,
        "lr": 3e-3,
        "lr_halving_epochs": None,
        "plateau_patience": None,
        "validation_fraction": 0.0,
        "decoder_noise": True,
        "device": "cpu",
    },
    "rae": {
        "standardize": True,
        "hidden": 1024,
        "layers": 2,
        "skip": False,
        "log_std_bound": 5.0,
        "glorot_init": True,
        "gamma": "fixed",
        "beta": None,  # the config's: second_stage_beta, per dataset
        "kl_warmup": 0.0,
        "train_codes": "mean",
        "steps": None,
        "epochs": 100,
        "batch_size": 64,
        "lr": 1e-4,
        "lr_halving_epochs": None,
        "plateau_patience": 3,
        "validation_fraction": 0.1,
        "decoder_noise": False,
        "device": "auto",
    },
    "dai_wipf": {
        "standardize": False,
        "hidden": 1024,
        "layers": 3,
        "skip": True,
        "log_std_bound": None,
        "glorot_init": True,
        "gamma": "learned",
        "beta": None,
        "kl_warmup": 0.0,
        "train_codes": "sample",
        "steps": None,
        "epochs": 800,
        "batch_size": 64,
        "lr": 1e-4,
        "lr_halving_epochs": 300,
        "plateau_patience": None,
        "validation_fraction": 0.0,
        "decoder_noise": True,
        "device": "auto",
    },
}
NULLABLE_BOOLEAN = Choice((True, False, None))
OPTIONS = {  # the ranges of eval.sampler.two_stage; null: the preset's value
    "preset": Choice(tuple(PRESETS)),
    "standardize": NULLABLE_BOOLEAN,
    "hidden": at_least(1, nullable=True),
    "layers": at_least(1, nullable=True),
    "skip": NULLABLE_BOOLEAN,
    "log_std_bound": positive(nullable=True),
    "glorot_init": NULLABLE_BOOLEAN,
    "gamma": Choice((*GAMMAS, None)),
    "beta": positive(nullable=True),
    "kl_warmup": Range(False, 0.0, 1.0, nullable=True),
    "train_codes": Choice((*TRAIN_CODES, None)),
    "steps": at_least(1, nullable=True),
    "epochs": at_least(1, nullable=True),
    "batch_size": at_least(2, nullable=True),
    "lr": positive(nullable=True),
    "lr_halving_epochs": at_least(1, nullable=True),
    "plateau_patience": at_least(1, nullable=True),
    "validation_fraction": Range(False, 0.0, 1.0, high_open=True, nullable=True),
    "decoder_noise": NULLABLE_BOOLEAN,
    "device": Choice((*DEVICES, None)),
}


def resolve_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` (`eval.sampler.two_stage`) as the full set of options: its preset's values
    with every non-null option of `settings` in place. ValueError names what is wrong."""
    preset = settings.get("preset") or "study"
    if preset not in PRESETS:
        raise ValueError(
            f"eval.sampler.two_stage.preset={preset!r}; valid values: {', '.join(PRESETS)}"
        )
    unknown = [key for key in settings if key not in OPTIONS]
    if unknown:
        raise ValueError(
            f"eval.sampler.two_stage: unknown option{'s' * (len(unknown) > 1)} "
            f"{', '.join(unknown)}; valid: {', '.join(OPTIONS)}"
        )
    out = dict(PRESETS[preset])
    out.update({k: v for k, v in settings.items() if v is not None and k != "preset"})
    for key, valid in (("gamma", GAMMAS), ("train_codes", TRAIN_CODES), ("device", DEVICES)):
        if out[key] not in valid:
            raise ValueError(
                f"eval.sampler.two_stage.{key}={out[key]!r}; valid values: {', '.join(valid)}"
            )
    if out["gamma"] == "fixed" and out["beta"] is None:
        raise ValueError(
            "eval.sampler.two_stage: gamma=fixed needs beta, the KL weight next to the mean "
            "squared error (the RAE code: 1.5e-3 for MNIST, 2e-3 for CelebA); set "
            "eval.sampler.two_stage.beta"
        )
    if (out["steps"] is None) == (out["epochs"] is None):
        raise ValueError(
            f"eval.sampler.two_stage: give steps (random batches) or epochs (passes over "
            f"the codes), not both and not neither (steps={out['steps']}, "
            f"epochs={out['epochs']})"
        )
    if out["plateau_patience"] is not None and not out["validation_fraction"]:
        raise ValueError(
            "eval.sampler.two_stage: plateau_patience needs validation_fraction > 0 (the "
            "held-out codes whose loss it watches)"
        )
    return out


class SkipMLP(nn.Module):
    """`layers` ReLU layers of `hidden` units; with `skip` the output layer sees their
    output and the input (so the identity is one linear map), else their output alone."""

    def __init__(
        self, features: int, hidden: int, layers: int, out_features: int, skip: bool = True
    ) -> None:
        super().__init__()
        body: list[nn.Module] = []
        width = features
        for _ in range(layers):
            body += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*body)
        self.skip = skip
        self.out = nn.Linear(features * skip + hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.out(torch.cat([x, h], dim=1) if self.skip else h)


def glorot(network: nn.Module) -> None:
    """Keras' and TensorFlow's default initialisation: Glorot-uniform weights, zero biases."""
    for layer in network.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)


class TwoStageVAESampler:
    """A second VAE fitted to the codes with the options of `preset` (overridden by any
    option given); `stds`, the first stage's posterior standard deviations of the codes
    (None: a deterministic encoder), is used by `train_codes: sample`. The fit runs on the
    CPU (option `device: cpu`, the small `study` networks: one thread is fastest) or
    (`auto`, the papers' presets) on `evaluation_device`, the evaluation's."""

    name = "two_stage"
    label = "2-stage"
    title = "a second VAE trained on the training codes"
    options = OPTIONS
    needs_prior = False

    @staticmethod
    def option_problems(options: Mapping[str, Any]) -> list[str]:
        """What is wrong with the options together (e.g. `gamma: fixed` without `beta`),
        once each one is in its range."""
        try:
            resolve_settings(options)
        except ValueError as error:
            return [str(error)]
        return []

    @staticmethod
    def recorded_options(options: Mapping[str, Any]) -> dict[str, Any]:
        """The options as an entry records them: the preset and the options whose value
        differs from the preset's (a record from before the presets, whose options were
        the `study` values, reads as `{"preset": "study"}`)."""
        try:
            resolved = resolve_settings(options)
        except ValueError:
            return dict(options)
        preset = options.get("preset") or "study"
        changed = {k: v for k, v in resolved.items() if v != PRESETS[preset][k]}
        return {"preset": preset, **changed}

    def __init__(
        self,
        codes: torch.Tensor,
        seed: int = 0,
        stds: torch.Tensor | None = None,
        evaluation_device: str | torch.device = "cpu",
        **settings: Any,
    ) -> None:
        self.settings = s = resolve_settings(settings)
        self.device = torch.device(evaluation_device if s["device"] == "auto" else "cpu")
        codes = codes.float().cpu()
        self.codes = Standardized(codes) if s["standardize"] else None
        data = (self.codes.data if self.codes else codes).to(self.device)
        scale = (self.codes.std if self.codes else torch.ones(codes.shape[1])).to(self.device)
        self.d = d = codes.shape[1]
        held_out = int(len(data) * (1 - s["validation_fraction"]))  # Keras' validation_split
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            self.encoder = SkipMLP(d, s["hidden"], s["layers"], 2 * d, s["skip"])
            self.decoder = SkipMLP(d, s["hidden"], s["layers"], d, s["skip"])
            if s["glorot_init"]:
                glorot(self.encoder)
                glorot(self.decoder)
            self.encoder.to(self.device)
            self.decoder.to(self.device)
            self.log_std = nn.Parameter(torch.zeros((), device=self.device))  # `learned` gamma
            parameters = [*self.encoder.parameters(), *self.decoder.parameters()]
            if s["gamma"] == "learned":
                parameters.append(self.log_std)
            train, validation = data[:held_out], data[held_out:]
            if stds is not None and s["train_codes"] == "sample":
                train_stds = stds[:held_out].float().to(self.device) / scale
            else:
                train_stds = None
            if s["steps"] is not None:
                self.final_loss = adam_on_minibatches(
                    self.loss, parameters, train, s["steps"], s["batch_size"], s["lr"], seed
                )
            else:
                draws = torch.Generator(device=self.device).manual_seed(seed)

                def epoch_codes(epoch: int) -> torch.Tensor:
                    """The epoch's training codes: the means, or a draw of the posterior."""
                    if train_stds is None:
                        return train
                    eps = torch.randn(train.shape, generator=draws, device=self.device)
                    return train + train_stds * eps

                self.final_loss = adam_on_epochs(
                    self.loss, parameters, epoch_codes, s["epochs"], s["batch_size"], s["lr"],
                    seed, lambda: validation, s["plateau_patience"], s["lr_halving_epochs"],
                )  # fmt: skip
            with torch.no_grad():
                self.gamma = self.decoder_variance(train)

    def reconstruct(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """D(v) for v ~ Q(v|u) (reparameterised), and the posterior's mean and log-variance."""
        mean, raw = self.encoder(u).chunk(2, dim=1)
        bound = self.settings["log_std_bound"]
        log_var = 2 * bound * torch.tanh(raw) if bound else raw
        v = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        return self.decoder(v), mean, log_var

    def loss(self, u: torch.Tensor, progress: float = 1.0) -> torch.Tensor:
        s = self.settings
        recon, mean, log_var = self.reconstruct(u)
        kl = 0.5 * (log_var.exp() + mean.pow(2) - 1.0 - log_var).sum(1).mean()
        warmup = s["kl_warmup"]
        kl_weight = min(1.0, progress / warmup) if warmup > 0 else 1.0
        squared = (u - recon).pow(2)
        if s["gamma"] == "batch_optimum":
            return 0.5 * self.d * squared.mean().log() + kl_weight * kl
        if s["gamma"] == "learned":
            nll = squared.sum(1).mean() / (2 * (2 * self.log_std).exp()) + self.d * self.log_std
            return nll + kl_weight * kl
        return squared.mean() + s["beta"] * kl_weight * kl

    def decoder_variance(self, u: torch.Tensor, batch_size: int = 10_000) -> float:
        """gamma: the learned or fixed one, or (`batch_optimum`) the mean squared
        reconstruction error per entry over `u`."""
        s = self.settings
        if s["gamma"] == "learned":
            return (2 * self.log_std).exp().item()
        if s["gamma"] == "fixed":
            return self.d * s["beta"] / 2
        total = sum((b - self.reconstruct(b)[0]).pow(2).sum() for b in u.split(batch_size))
        return (total / u.numel()).item()

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        v = torch.randn(n, self.d, generator=generator)
        u = torch.cat([self.decoder(b.to(self.device)).cpu() for b in v.split(10_000)])
        if self.settings["decoder_noise"]:
            u = u + math.sqrt(self.gamma) * torch.randn(n, self.d, generator=generator)
        return self.codes.restore(u) if self.codes else u
