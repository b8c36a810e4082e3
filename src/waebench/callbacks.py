"""Lightning callbacks of waebench."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torchvision.utils import make_grid, save_image


class ImageGrids(L.Callback):
    """Writes `samples.png` (decoded prior samples) and `reconstructions.png`
    (validation images, each row of originals above its reconstructions) into the
    run directory every `every_n_epochs` epochs and at the end of training;
    logs them to wandb when that logger is on."""

    def __init__(self, n_images: int = 64, every_n_epochs: int = 10, seed: int = 0) -> None:
        self.n_images, self.every_n_epochs, self.seed = n_images, every_n_epochs, seed

    def on_train_epoch_end(self, trainer: L.Trainer, module) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.write(trainer, module)

    def on_train_end(self, trainer: L.Trainer, module) -> None:
        self.write(trainer, module)

    @torch.no_grad()
    def write(self, trainer: L.Trainer, module) -> None:
        if not trainer.is_global_zero:
            return
        was_training = module.training
        module.eval()
        datamodule = trainer.datamodule
        low, high = datamodule.value_range
        images = datamodule.splits["val"][0][: self.n_images]
        x = datamodule.to_float(images).to(module.device)
        samples = module.sample(self.n_images, torch.Generator().manual_seed(self.seed))
        reconstructions = module.reconstruct(x)
        module.train(was_training)
        nrow = 8
        rows = range(0, len(x) - nrow + 1, nrow)
        pairs = torch.cat(
            [torch.cat([x[i : i + nrow], reconstructions[i : i + nrow]]) for i in rows]
        )
        grids = {
            "samples": make_grid(samples.cpu(), nrow=nrow, value_range=(low, high), normalize=True),
            "reconstructions": make_grid(
                pairs.cpu(), nrow=nrow, value_range=(low, high), normalize=True
            ),
        }
        out_dir = Path(trainer.default_root_dir)
        for name, grid in grids.items():
            save_image(grid, out_dir / f"{name}.png")
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key="images", images=list(grids.values()), caption=list(grids))
