"""Where the time of one FID goes, with the real side's statistics cached: generating N
images, extracting their N feature vectors, and their statistics + the Fréchet distance.

    python benchmarks/fid_speed.py --num-images 1000                     # Inception, CPU
    python benchmarks/fid_speed.py --num-images 10000 --device cuda
    python benchmarks/fid_speed.py --extractor classifier --num-images 10000
    python benchmarks/fid_speed.py --ckpt outputs/train/runs/<time>      # a trained model

Without --ckpt the model is the WAE paper's MNIST network (model=dcgan, width 128,
untrained: generation costs the same). The Inception weights come from
--inception-weights or $WAEBENCH_INCEPTION_WEIGHTS. The real side (--num-real test
images) is computed and cached first, and timed separately (once per sweep).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch_fidelity.metric_fid import (
    KEY_METRIC_FID,
    fid_features_to_statistics,
    fid_statistics_to_metric,
)
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from waebench.evaluation import classifier
from waebench.evaluation.evaluate import decode_codes
from waebench.evaluation.fid import (
    INCEPTION,
    FeatureSpace,
    RealImages,
    UInt8Images,
    fidelity_metrics,
    require_inception_weights,
)
from waebench.model import load_model
from waebench.samplers import PriorSampler
from waebench.train import build_model

CONF = Path(__file__).resolve().parents[1] / "conf"


def paper_model(dataset: str, data_dir: str = "data"):
    cfg = OmegaConf.create(
        {
            "seed": 0,
            "paths": {"data_dir": data_dir},
            "dataset": OmegaConf.load(CONF / "dataset" / f"{dataset}.yaml"),
            "model": OmegaConf.load(CONF / "model" / "dcgan.yaml"),
            "regularizer": OmegaConf.load(CONF / "regularizer" / "mmd.yaml"),
        }
    )
    return build_model(cfg), cfg.dataset


def timed(label: str, fn, n: int, results: dict):
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    results[label] = seconds
    print(f"{label:<38} {seconds:9.2f} s  {1000 * seconds / n:8.2f} ms/image", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--num-real", type=int, default=None, help="default: --num-images")
    parser.add_argument("--extractor", choices=["inception", "classifier"], default="inception")
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--ckpt", default=None, help="a trained run directory or .ckpt")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--inception-weights", default=None)
    parser.add_argument("--cache-dir", default=None, help="default: a fresh temporary folder")
    parser.add_argument("--data-dir", default="data", help="paths.data_dir (dataset folders)")
    parser.add_argument("--json", type=Path, help="append the timings as one JSON line here")
    args = parser.parse_args()
    n, device = args.num_images, torch.device(args.device)
    cache_dir = Path(args.cache_dir or tempfile.mkdtemp(prefix="fid-cache-"))

    if args.ckpt:
        model = load_model(args.ckpt)
        dataset_cfg = OmegaConf.load(Path(args.ckpt) / "config.yaml").dataset
    else:
        model, dataset_cfg = paper_model(args.dataset, args.data_dir)
    datamodule = instantiate(dataset_cfg)
    datamodule.setup()
    model = model.to(device).eval()
    if args.extractor == "inception":
        space = FeatureSpace(INCEPTION, str(require_inception_weights(args.inception_weights)))
    else:
        weights, _ = classifier.classifier_weights(datamodule, cache_dir)
        space = FeatureSpace(classifier.extractor_name(datamodule.name), str(weights), weights.stem)
    real = RealImages(f"{datamodule.name}:test", datamodule.splits["test"][0][: args.num_real or n])
    torch.set_grad_enabled(False)
    print(
        f"FID of {n} generated images vs {len(real.images)} {real.name} images, "
        f"{space.extractor} features, device {device}, {torch.get_num_threads()} CPU threads"
    )
    results: dict[str, float] = {}
    cuda = device.type == "cuda"
    timed(
        "real statistics (once, then cached)",
        lambda: fidelity_metrics(real.images[:2], real, space, cache_dir, cuda=cuda),
        len(real.images),
        results,
    )

    def generate():
        codes = PriorSampler(model.prior).sample(n, seed=0)
        images = decode_codes(model, codes, args.batch_size, datamodule.value_range)
        if cuda:
            torch.cuda.synchronize()
        return images

    fake = timed("generation", generate, n, results)
    extractor = create_feature_extractor(
        space.extractor,
        [classifier.FEATURES if space.extractor != INCEPTION else "2048"],
        cuda=cuda,
        feature_extractor_weights_path=space.weights_path,
        verbose=False,
    )
    features = timed(
        "features",
        lambda: next(
            iter(
                get_featuresdict_from_dataset(
                    UInt8Images(fake), extractor, args.batch_size, cuda, True, False
                ).values()
            )
        ),
        n,
        results,
    )
    real_stats = torch.load(
        next(cache_dir.glob(f"{real.cache_name(space.cache_tag)}*stat-fid*")), weights_only=False
    )
    stats = timed(
        "statistics (mean, covariance)", lambda: fid_features_to_statistics(features), n, results
    )
    fid = timed(
        "Frechet distance", lambda: fid_statistics_to_metric(stats, real_stats, False), n, results
    )[KEY_METRIC_FID]
    total = sum(v for k, v in results.items() if not k.startswith("real"))
    print(f"{'sum of the parts above':<38} {total:9.2f} s  -> FID {fid:.4f}")
    whole = timed(
        "whole FID as evaluation runs it",
        lambda: fidelity_metrics(
            fake, real, space, cache_dir, batch_size=args.batch_size, cuda=cuda
        ),  # fmt: skip
        n,
        results,
    )["frechet_inception_distance"]
    end_to_end = results["generation"] + results["whole FID as evaluation runs it"]
    ratio = end_to_end / (results["generation"] + results["features"])
    print(f"generation + whole FID: {end_to_end:.2f} s = {ratio:.3f} x (generation + features); "
          f"target <= 1.1 (FID {whole:.4f})")  # fmt: skip
    if args.json:
        device_name = torch.cuda.get_device_name() if cuda else f"CPU, {os.cpu_count()} cores"
        row = {"benchmark": "fid_speed", "device": device_name, "num_images": n,
               "num_real": len(real.images), "extractor": space.extractor, "fid": whole,
               **{f"{k}_s": round(v, 3) for k, v in results.items()},
               "end_to_end_s": round(end_to_end, 3), "ratio_to_gen_plus_features": round(ratio, 3)}  # fmt: skip
        with open(args.json, "a") as out:
            out.write(json.dumps(row) + "\n")
    if n < 10_000:
        linear = total - results["Frechet distance"]
        print(
            f"EXTRAPOLATED to 10,000 images (linear parts x{10_000 / n:g}, Frechet distance "
            f"as measured): {linear * 10_000 / n + results['Frechet distance']:.0f} s"
        )


if __name__ == "__main__":
    main()
