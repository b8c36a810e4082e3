"""The auto-encoder LightningModule: one encoder/decoder family, a prior, a
reconstruction cost and a pluggable latent regularizer.

    loss = reconstruction(x, G(z)) + weight * regularizer.penalty(codes, prior)
           [+ decoder_weight * regularizer.decoder_penalty]   (training; RAE-L2, RAE-GP)

AE, VAE, WAE-MMD, WAE-GAN and the RAEs differ only in the regularizer, which may also
change the networks once when they are built (spectral normalisation, RAE-SN) and fix
the encoder's variance (CV-VAE). Adversarial regularizers train with Lightning's manual
optimization (two optimizers); the others use automatic optimization, unless
`batches_per_step` > 1: then each training step gets that many batches and the model takes
an optimizer step on each, in order (the same steps as one batch a training step, with
Lightning's per-step cost paid once for all of them: small networks train faster).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau

from waebench.callbacks import logs_this_step
from waebench.errors import UserError
from waebench.fast import compile_with_fallback
from waebench.prior import GaussianPrior
from waebench.reconstruction import ReconstructionCost
from waebench.regularizers import Codes, LatentRegularizer
from waebench.run import record
from waebench.schedule import MilestoneDecay

log = logging.getLogger(__name__)

OUTPUT_ACTIVATIONS = {(0.0, 1.0): torch.sigmoid, (-1.0, 1.0): torch.tanh}


class DivergenceError(UserError, RuntimeError):
    """A training loss became NaN or infinite."""


class CheckpointMismatchError(UserError, ValueError):
    """A checkpoint to resume from holds a model whose weights do not fit this one."""


class AutoEncoder(L.LightningModule):
    _divergence: dict[str, Any] | None = None  # on-device record of _check_finite
    _train_sums: torch.Tensor | None = None  # on-device epoch sums of _log_terms

    def __init__(
        self,
        image_size: int,
        channels: int,
        value_range: tuple[float, float] | list[float],
        latent_dim: int,
        prior_var: float,
        width: int,
        encoder: dict[str, Any],
        decoder: dict[str, Any],
        regularizer: dict[str, Any],
        reconstruction: dict[str, Any],
        optimizer: dict[str, Any],
        lr_schedule: dict[str, Any] | None = None,
        channels_last: bool = False,
        compile: bool = False,
        e_pretrain: dict[str, Any] | None = None,
        init: str = "torch",
        batch_norm: dict[str, float] | None = None,
        input_noise: float = 0.0,
        batches_per_step: int = 1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        value_range = (float(value_range[0]), float(value_range[1]))
        if value_range not in OUTPUT_ACTIVATIONS:
            raise ValueError(
                f"value_range {value_range} unsupported; use one of {list(OUTPUT_ACTIVATIONS)}"
            )
        if reconstruction.get("name") == "bernoulli" and value_range != (0.0, 1.0):
            raise ValueError(
                "the bernoulli reconstruction cost needs data in [0, 1] (dataset.value_range)"
            )
        self.value_range = value_range
        self.output_activation = OUTPUT_ACTIVATIONS[value_range]
        self.prior = GaussianPrior(latent_dim, prior_var)
        self.regularizer: LatentRegularizer = instantiate(regularizer)
        if compile and self.regularizer.differentiates_decoder_twice:
            raise ValueError(
                f"model.compile=true cannot train {type(self.regularizer).__name__}: its "
                f"decoder penalty differentiates through the decoder twice, which "
                f"torch.compile does not support; set model.compile=false"
            )
        learned_variance = (
            self.regularizer.gaussian_encoder and self.regularizer.encoder_std is None
        )
        code_size = latent_dim * (2 if learned_variance else 1)
        shape = {"image_size": image_size, "channels": channels, "width": width}
        self.encoder = instantiate(encoder, **shape, out_features=code_size)
        self.decoder = instantiate(decoder, **shape, latent_dim=latent_dim)
        for network in (self.encoder, self.decoder, self.regularizer.adversary):
            if network is not None:
                initialise(network, init, network is self.encoder, **(batch_norm or {}))
        self.regularizer.prepare_networks(self.encoder, self.decoder)
        self.input_noise = float(input_noise)
        self.reconstruction = ReconstructionCost(**reconstruction)
        if not isinstance(batches_per_step, int) or batches_per_step < 1:
            raise ValueError(f"model.batches_per_step={batches_per_step}: must be an integer >= 1")
        self.batches_per_step = batches_per_step
        self.automatic_optimization = self.regularizer.adversary is None and batches_per_step == 1
        check_lr_schedule(lr_schedule or {}, self.automatic_optimization)
        if channels_last:
            self.encoder.to(memory_format=torch.channels_last)
            self.decoder.to(memory_format=torch.channels_last)

    def configure_model(self) -> None:
        """`model.compile`: compile the encoder and decoder once (waebench.fast)."""
        if self.hparams.get("compile") and not getattr(self, "_compiled", False):
            compile_with_fallback(self.encoder, "encoder")
            compile_with_fallback(self.decoder, "decoder")
            self._compiled = True

    # ----- the Python API (images in the dataset's value range) -----

    def codes(self, x: torch.Tensor) -> Codes:
        """Encode; Gaussian encoders sample z = mean + exp(log_var / 2) * eps (log_var is
        2 log `encoder_std` where the regularizer fixes it). In training the encoder sees x plus
        `input_noise`-std noise, truncated at 2 std (the WAE code's `e_noise: add_noise`)."""
        if self.training and self.input_noise:
            x = x + nn.init.trunc_normal_(
                torch.empty_like(x), std=self.input_noise, a=-2 * self.input_noise,
                b=2 * self.input_noise,
            )  # fmt: skip
        out = self.encoder(x)
        if not self.regularizer.gaussian_encoder:
            return Codes(z=out, mean=out)
        std = self.regularizer.encoder_std
        if std is None:
            mean, log_var = out.chunk(2, dim=1)
        else:
            mean, log_var = out, torch.full_like(out, 2 * math.log(std))
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp() if self.training else mean
        return Codes(z=z, mean=mean, log_var=log_var)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic codes (the mean for Gaussian encoders)."""
        return self.codes(x).mean

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.output_activation(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = self.prior.sample(n, device="cpu", generator=generator).to(self.device)
        return self.decode(z)

    # ----- training -----

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        """G(z) in the data's range, differentiable (the decoder penalty's `generate`)."""
        return self.output_activation(self.decoder(z))

    def loss_terms(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], Codes]:
        """`loss`, `rec`, `penalty`; in training, with a decoder penalty, `decoder_penalty`
        too (in the loss). Validation and test losses are rec + weight * penalty."""
        codes = self.codes(x)
        logits = self.decoder(codes.z)
        x_hat = self.output_activation(logits)
        rec = self.reconstruction(x, logits, x_hat)
        penalty = self.regularizer(codes, self.prior)
        terms = {"loss": rec + self.regularizer.weight * penalty, "rec": rec, "penalty": penalty}
        if self.training and self.regularizer.has_decoder_penalty:
            decoder_penalty = self.regularizer.decoder_term(
                self.decoder, self._generate, codes.z, x_hat
            )
            terms["loss"] = terms["loss"] + self.regularizer.decoder_weight * decoder_penalty
            terms["decoder_penalty"] = decoder_penalty
        return terms, codes

    def _check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        """Record on the device whether `terms["loss"]` is finite, keeping the terms of the
        first non-finite step; read the record (a host-device sync) only on the steps where
        Lightning logs (`trainer.log_every_n_steps`), before every checkpoint and at the end
        of training, so a diverging run stops within `log_every_n_steps` steps."""
        values = torch.stack([v.detach().float() for v in terms.values()])
        if self._divergence is None:
            step = torch.full((), -1, dtype=torch.long, device=values.device)
            self._divergence = {"step": step, "epoch": step.clone(), "values": values * 0}
        record = self._divergence
        first = ~torch.isfinite(values[0]) & (record["step"] < 0)
        record["step"] = torch.where(first, self.global_step, record["step"])
        record["epoch"] = torch.where(first, self.current_epoch, record["epoch"])
        record["values"] = torch.where(first, values, record["values"])
        record["names"] = list(terms)
        if logs_this_step(self.trainer):
            self._raise_if_diverged()

    def _raise_if_diverged(self) -> None:
        record = self._divergence
        if record is None or record["step"].item() < 0:
            return
        values = ", ".join(
            f"{name}={value:.6g}"
            for name, value in zip(record["names"], record["values"].tolist(), strict=True)
        )
        step = record["step"].item()
        kept = (
            "No step was finite, so there is no good checkpoint"
            if step == 0
            else "Checkpoints written before that step are kept"
        )
        raise DivergenceError(
            f"training diverged at step {step} (epoch {record['epoch'].item()}): non-finite "
            f"loss ({values}). {kept}; try a lower learning rate (model.optimizer.lr) or "
            f"regularizer weight (regularizer.weight)."
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._raise_if_diverged()  # never checkpoint weights trained on a non-finite loss

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Before the weights are loaded: refuse a checkpoint whose weights do not fit this
        model, naming the settings that differ; warn of differing settings otherwise."""
        path = getattr(self._trainer, "ckpt_path", None) or "the checkpoint"
        differ = setting_differences(checkpoint.get("hyper_parameters") or {}, self.hparams)
        settings = "; ".join(
            f"{key}: {theirs!r} in the checkpoint, {mine!r} here" for key, theirs, mine in differ
        )
        misfits = shape_misfits(checkpoint.get("state_dict") or {}, self.state_dict())
        if misfits:
            raise CheckpointMismatchError(
                f"{path} holds a model of another configuration: {len(misfits)} of its weight "
                f"tensors do not fit this model (e.g. {misfits[0]}). Settings that differ: "
                f"{settings or 'none recorded'}. Resume with the checkpoint's settings, or "
                "start from scratch (ckpt_path=null)."
            )
        if differ:
            log.warning("Resuming from %s, whose settings differ: %s", path, settings)

    def on_train_start(self) -> None:
        self._divergence = None
        self._train_sums = None
        self._e_pretrain()

    def on_train_end(self) -> None:
        self._raise_if_diverged()

    def _log_terms(self, stage: str, terms: dict[str, torch.Tensor], batch_size: int) -> None:
        """`<stage>/<term>` epoch means. Training logs `train/<term>_step` on Lightning's
        logging steps and `train/<term>_epoch`, the batch-size weighted mean summed on the
        device, at the epoch's end: the steps between read nothing from the device."""
        if stage != "train":
            for name, value in terms.items():
                self.log(
                    f"{stage}/{name}",
                    value,
                    on_epoch=True,
                    batch_size=batch_size,
                    prog_bar=name == "loss",
                    sync_dist=True,
                )
            return
        values = torch.stack([v.detach().float() for v in terms.values()])
        if self._train_sums is None:
            self._train_sums, self._train_count = values * 0, 0
        self._train_sums += values * batch_size
        self._train_count += batch_size
        self._train_names = list(terms)
        if logs_this_step(self.trainer):
            for name, value in zip(self._train_names, values, strict=True):
                self.log(f"train/{name}_step", value, on_step=True, prog_bar=name == "loss")

    def _log_train_epoch_means(self) -> None:
        if self._train_sums is None:
            return
        means = self._train_sums / self._train_count
        for name, value in zip(self._train_names, means, strict=True):
            self.log(
                f"train/{name}_epoch", value, on_epoch=True, prog_bar=name == "loss", sync_dist=True
            )
        self._train_sums = None

    def training_step(self, batch, batch_idx: int):
        """One batch x [B, C, H, W], or `batches_per_step` of them stacked, x [K, B, C, H, W]
        (the train loader's items for such a model): an optimizer step on each, in order,
        none past `trainer.max_steps`."""
        x, _ = batch
        if self.automatic_optimization:
            terms, _ = self.loss_terms(x)
            self._check_finite(terms)
            self._log_terms("train", terms, len(x))
            return terms["loss"]
        max_steps = self.trainer.max_steps
        for images in x if x.dim() == 5 else [x]:
            if 0 <= max_steps <= self.global_step:
                break
            if self.regularizer.adversary is None:
                self._manual_step(images)
            else:
                self._adversarial_step(images)

    def _manual_step(self, x: torch.Tensor) -> None:
        """The step of automatic optimization, taken by the model (`batches_per_step` > 1)."""
        optimizer = self.optimizers()
        terms, _ = self.loss_terms(x)
        self._check_finite(terms)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(terms["loss"])
        optimizer.step()
        self._log_terms("train", terms, len(x))

    def _adversarial_step(self, x: torch.Tensor) -> None:
        """One encoder/decoder step on rec + weight * penalty, then one adversary step on
        the codes of the same batch: re-encoded by the updated encoder
        (`adversary_codes: reencoded`, the official code's order) or the codes the
        auto-encoder step used (`adversary_codes: step`, one encoder pass fewer).

        The adversary's step goes through the strategy (mixed precision included) but not
        through Lightning's step counter, so `trainer.max_steps` and `global_step` count
        iterations, as for every other regularizer."""
        opt_ae, opt_adversary = self.optimizers()
        terms, codes = self.loss_terms(x)
        self._check_finite(terms)
        self.toggle_optimizer(opt_ae)
        opt_ae.zero_grad(set_to_none=True)
        self.manual_backward(terms["loss"])
        opt_ae.step()
        self.untoggle_optimizer(opt_ae)

        if self.regularizer.adversary_codes == "reencoded":
            with torch.no_grad():
                codes = self.codes(x)
        self.toggle_optimizer(opt_adversary)
        adversary_loss = self.regularizer.adversary_loss(codes.z, self.prior)
        opt_adversary.zero_grad(set_to_none=True)
        self.manual_backward(adversary_loss)
        self.trainer.strategy.optimizer_step(opt_adversary.optimizer, closure=lambda: None)
        self.untoggle_optimizer(opt_adversary)
        terms["adversary"] = adversary_loss.detach()
        self._log_terms("train", terms, len(x))

    def _e_pretrain(self) -> None:
        """`model.e_pretrain`: pre-train the encoder once, before the first step of a fresh run."""
        settings = self.hparams.get("e_pretrain")
        if settings and settings.get("enabled") and self.global_step == 0:
            self.pretrain_encoder(
                settings["sample_size"], settings["max_steps"], settings["tolerance"]
            )

    def pretrain_encoder(self, sample_size: int, max_steps: int, tolerance: float) -> int:
        """The official code's `e_pretrain`, before the first training step: the encoder
        alone takes up to `max_steps` steps of the model's optimizer (a fresh one), each on
        `sample_size` training images, on the distance of its codes' first two moments to
        the prior's,

            mean_j m_j^2 + mean_jk (S_jk - sigma_z^2 I_jk)^2   (m, S: mean, covariance),

        and stops once it is below `tolerance`. Returns the number of steps taken."""
        optimizer = instantiate(dict(self.hparams.optimizer), params=self.encoder.parameters())
        target = self.prior.variance * torch.eye(self.prior.latent_dim, device=self.device)
        images = self._training_images(sample_size)
        loss = torch.tensor(float("inf"))
        step = 0
        with torch.enable_grad():
            while step < max_steps:
                z = self.codes(next(images)).z
                centred = z - z.mean(0)
                covariance = centred.T @ centred / (len(z) - 1)
                loss = z.mean(0).pow(2).mean() + (covariance - target).pow(2).mean()
                if loss.item() < tolerance:
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for tensor in [*self.encoder.parameters(), *self.encoder.buffers()]:
                torch.distributed.broadcast(tensor.data, src=0)  # ranks saw different images
        log.info("e_pretrain: %d encoder steps, moment loss %.4g", step, loss.item())
        return step

    def _training_images(self, count: int):
        """Endless batches of `count` training images, in order through the train loader."""
        datamodule = self.trainer.datamodule or self
        chunks: list[torch.Tensor] = []
        while True:
            for batch in self.trainer.train_dataloader:
                images, labels = datamodule.on_after_batch_transfer(
                    (batch[0].to(self.device), batch[1]), 0
                )
                chunks.append(images.flatten(0, 1) if images.dim() == 5 else images)
                if sum(len(c) for c in chunks) >= count:
                    yield torch.cat(chunks)[:count]
                    chunks = []

    def on_train_epoch_end(self) -> None:
        self._log_train_epoch_means()
        if not self.automatic_optimization:
            for scheduler in self.lr_schedulers() or []:
                scheduler.step()

    def on_validation_epoch_start(self) -> None:
        self._validation_noise = None

    def validation_step(self, batch, batch_idx: int) -> None:
        x, _ = batch
        terms, codes = self.loss_terms(x)
        terms["objective"] = self.validation_objective(x, terms["loss"], codes)
        self._log_terms("val", terms, len(x))

    def _validation_eps(self, like: torch.Tensor) -> torch.Tensor:
        """N(0, 1) noise shaped as `like` from a generator of the validation epoch, seeded
        alike every epoch: the validation draws leave the training's random stream as it was,
        and every epoch scores the same draws."""
        if getattr(self, "_validation_noise", None) is None:
            self._validation_noise = torch.Generator(device=like.device).manual_seed(0)
        return torch.randn(
            like.shape, generator=self._validation_noise, device=like.device, dtype=like.dtype
        )

    def validation_objective(
        self, x: torch.Tensor, loss: torch.Tensor, codes: Codes
    ) -> torch.Tensor:
        """The training objective on validation images (`val/objective`), as Keras' val_loss
        computes it, which the RAE code's plateau schedule and best checkpoint monitor: codes
        sampled for a Gaussian encoder (`val/loss` decodes the means) and the decoder penalty
        included (`val/loss` leaves it out); batch norm in inference mode in both."""
        z = codes.z
        if codes.log_var is not None:
            z = codes.mean + self._validation_eps(codes.mean) * (0.5 * codes.log_var).exp()
            sampled = Codes(z=z, mean=codes.mean, log_var=codes.log_var)
            logits = self.decoder(z)
            rec = self.reconstruction(x, logits, self.output_activation(logits))
            loss = rec + self.regularizer.weight * self.regularizer(sampled, self.prior)
        if not self.regularizer.has_decoder_penalty:
            return loss
        with torch.inference_mode(False), torch.enable_grad():  # the gradient penalty's
            z = z.clone().requires_grad_(self.regularizer.differentiates_decoder_twice)
            penalty = self.regularizer.decoder_term(self.decoder, self._generate, z, None)
        return loss + self.regularizer.decoder_weight * penalty.detach()

    def test_step(self, batch, batch_idx: int) -> None:
        x, _ = batch
        terms, _ = self.loss_terms(x)
        self._log_terms("test", terms, len(x))

    def configure_optimizers(self):
        optimizer_cfg = dict(self.hparams.optimizer)
        adversary = self.regularizer.adversary
        main_params = [
            p for n, p in self.named_parameters() if not n.startswith("regularizer.adversary.")
        ]
        optimizers = [instantiate(optimizer_cfg, params=main_params)]
        if adversary is not None:
            optimizer_cfg["lr"] = self.regularizer.adversary_lr
            optimizers.append(instantiate(optimizer_cfg, params=adversary.parameters()))
        schedule = dict(self.hparams.lr_schedule or {})
        plateau = dict(schedule.pop("plateau", None) or {})
        if plateau:
            monitor = plateau.pop("monitor", "val/loss")
            scheduler = ReduceLROnPlateau(optimizers[0], mode="min", **plateau)
            return optimizers, [{"scheduler": scheduler, "monitor": monitor}]
        if not schedule.get("milestones"):
            return optimizers
        schedulers = [
            {"scheduler": LambdaLR(opt, MilestoneDecay(**schedule)), "interval": "epoch"}
            for opt in optimizers
        ]
        return optimizers, schedulers


PLATEAU_MONITORS = ("val/loss", "val/objective")
INITS = ("torch", "wae", "keras")


def check_lr_schedule(schedule: dict[str, Any], automatic_optimization: bool) -> None:
    """`plateau` (ReduceLROnPlateau, once per epoch, as the RAE code, on its `monitor`: one of
    PLATEAU_MONITORS) excludes milestones, and needs automatic optimization (Lightning steps
    it). Its `patience` is torch's, which cuts after patience + 1 epochs without improvement
    where Keras cuts after patience: torch's patience = Keras' patience - 1."""
    if not schedule.get("plateau"):
        return
    monitor = schedule["plateau"].get("monitor", "val/loss")
    if monitor not in PLATEAU_MONITORS:
        raise ValueError(
            f"model.lr_schedule.plateau.monitor={monitor!r}; valid values: "
            f"{', '.join(PLATEAU_MONITORS)}"
        )
    if schedule.get("milestones"):
        raise ValueError(
            "model.lr_schedule: set either milestones (fixed decay) or plateau (decay on "
            "val/loss), not both"
        )
    if not automatic_optimization:
        raise ValueError(
            "model.lr_schedule.plateau is not supported with an adversarial regularizer or "
            "model.batches_per_step > 1 (the model steps its optimizers itself); use "
            "model.lr_schedule.milestones"
        )


def initialise(
    network: nn.Module, init: str, truncated: bool = False, momentum: float = 0.1, eps: float = 1e-5
) -> None:
    """`model.init` of a fresh network's Linear and convolution layers: `torch` keeps torch's
    defaults; `wae` draws the weights from N(0, 0.01^2), truncated at 2 std where
    `truncated` (the encoder's convolutions), biases 0 (the WAE code's init_std 0.0099999:
    ops.py l. 55-142); `keras` draws Glorot-uniform weights, biases 0 (Keras' defaults, the
    RAE code's). Every batch norm gets `momentum` (torch's: 1 - Keras' and TensorFlow's
    decay) and `eps` (`model.batch_norm`)."""
    if init not in INITS:
        raise ValueError(f"model.init={init!r}; valid values: {', '.join(INITS)}")
    for layer in network.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.momentum, layer.eps = momentum, eps
        if init == "torch" or not isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        if init == "keras":
            nn.init.xavier_uniform_(layer.weight)
        elif truncated and isinstance(layer, nn.Conv2d):
            nn.init.trunc_normal_(layer.weight, std=0.01, a=-0.02, b=0.02)
        else:
            nn.init.normal_(layer.weight, std=0.01)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def setting_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[tuple]:
    """(config key, saved value, current value) for each model setting (the model's
    hyper-parameters, named by their config keys: `model.width`, `regularizer.weight`) that
    differs between a checkpoint and this model."""
    a = record.flatten(json.loads(json.dumps(dict(saved), default=str)))
    b = record.flatten(json.loads(json.dumps(dict(current), default=str)))
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return [(k if k.startswith("regularizer.") else f"model.{k}", a.get(k), b.get(k)) for k in keys]


def shape_misfits(saved: dict[str, torch.Tensor], current: dict[str, torch.Tensor]) -> list[str]:
    """The weights of a checkpoint's state dict that do not fit a model's: of another shape,
    missing, or unexpected."""
    misfits = []
    for name in sorted(saved.keys() | current.keys()):
        if name not in current:
            misfits.append(f"{name}: in the checkpoint, not in this model")
        elif name not in saved:
            misfits.append(f"{name}: in this model, not in the checkpoint")
        elif saved[name].shape != current[name].shape:
            misfits.append(
                f"{name}: {list(saved[name].shape)} in the checkpoint, "
                f"{list(current[name].shape)} here"
            )
    return misfits


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> AutoEncoder:
    """A trained model in eval mode, from a checkpoint file or a run directory (its newest
    readable checkpoint: `checkpoints/last.ckpt`, the final weights, else the newest other,
    e.g. `best.ckpt`; each one skipped as truncated or garbage is named in a warning). A
    checkpoint file that is missing or unreadable is refused, naming it."""
    path = Path(path)
    if path.is_dir():
        found = record.newest_readable_checkpoint(path)
        if found is None:
            raise record.CheckpointNotFoundError(
                f"no readable checkpoint in {path / record.CHECKPOINTS} (a run folder of "
                "waebench-train holds last.ckpt and best.ckpt there)"
            )
        if found.name != "last.ckpt":
            log.warning("Loading %s", found)
        path = found
    else:
        fix = "Give its run folder instead, to load the run's newest readable checkpoint."
        record.check_checkpoint(path, f"checkpoint {path}", fix)
    model = AutoEncoder.load_from_checkpoint(path, map_location=map_location)
    return model.eval()
