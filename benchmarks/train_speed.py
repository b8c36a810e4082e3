"""Training throughput of waebench (Lightning) against a plain PyTorch loop.

Both use the same networks, loss (reconstruction + weight * penalty), optimizer
and in-memory batches, in the same process; the framework runs with its
default CSV logging and loss checks, without the progress bar. Prints
images/second of each and their ratio (target: framework >= 0.9 x plain).

    python benchmarks/train_speed.py [--dataset fashion_mnist] [--width 32] [--steps 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir

from waebench.data import ImageDataModule
from waebench.train import build_model

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"


class StepTimer(L.Callback):
    """Wall time from the start of batch `warmup` to the end of the last batch."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.end = time.perf_counter()


def make_model(args):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"dataset={args.dataset}",
                f"regularizer={args.regularizer}",
                f"model.width={args.width}",
                "paths.data_dir=data",
                "paths.output_dir=.",
                "paths.log_dir=.",
            ],
        )
    torch.manual_seed(0)
    return build_model(cfg)


def framework_images_per_second(args, datamodule) -> float:
    model = make_model(args)
    timer = StepTimer(args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(
            accelerator=args.accelerator,
            devices=1,
            max_steps=args.warmup + args.steps,
            logger=L.pytorch.loggers.CSVLogger(tmp),
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            log_every_n_steps=10,
            callbacks=[timer],
        )
        trainer.fit(model, datamodule=datamodule)
    return args.steps * datamodule.batch_size / (timer.end - timer.start)


def plain_images_per_second(args, datamodule) -> float:
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    model = make_model(args).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    loader = datamodule.train_dataloader()
    step, start = 0, None
    while step < args.warmup + args.steps:
        for images, _ in loader:
            if step == args.warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            x = datamodule.to_float(images.to(device, non_blocking=True))
            terms, _ = model.loss_terms(x)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            optimizer.step()
            step += 1
            if step == args.warmup + args.steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * datamodule.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset",
        default="fashion_mnist" if Path("/usr/share/datasets/fashion-mnist").is_dir() else "digits",
    )
    parser.add_argument("--regularizer", default="mmd")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--accelerator", default="gpu" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    datamodule = ImageDataModule(
        args.dataset,
        image_size=28,
        channels=1,
        batch_size=args.batch_size,
        val_size=1000 if args.dataset != "digits" else 180,
    )
    datamodule.setup()
    plain, framework = [], []
    for _ in range(args.repeats):  # interleaved, best of each, to damp machine noise
        plain.append(plain_images_per_second(args, datamodule))
        framework.append(framework_images_per_second(args, datamodule))
    p, f = max(plain), max(framework)
    print(
        f"dataset={args.dataset} regularizer={args.regularizer} width={args.width} "
        f"batch={args.batch_size} steps={args.steps} device={args.accelerator} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"plain PyTorch loop : {p:9.1f} images/s  (runs: {', '.join(f'{v:.1f}' for v in plain)})")
    print(
        f"waebench (Lightning): {f:9.1f} images/s  (runs: {', '.join(f'{v:.1f}' for v in framework)})"
    )
    print(f"ratio framework/plain: {f / p:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
