"""Knop, Spurek, Tabor, Podolak, Mazur, Jastrzebski, "Cramer-Wold Auto-Encoder", JMLR 21,
2020: `experiment=cwae_paper/*`, `sweep=cwae_paper_table`.

The protocol is the official PyTorch code's (gmum/cwae-pytorch at commit 7fb31a5; the files
below are under its src/): where the paper and the code differ, the code wins. The code
scores FID every 25 epochs (every 5 on CelebA) and its README does not say which epoch its
table reports: ours is the last epoch's.

Published: the table of the official code's README (README.md:43-48), FID of 10,000 samples
of N(0, I) in pytorch-fid's Inception features (the FID network's 2048-d pool features; the
TensorFlow FID weights, which torch-fidelity's `inception-v3-compat` reproduces) against the
statistics of train + test (MNIST, Fashion-MNIST: all 70,000 images) or train + valid
(CelebA: 182,600 of its 182,637 images, whole batches of 100), precalc_fid.py:59-66. Its
CIFAR-10 row is left out (waebench has no CIFAR-10), and so is the paper's own CWAE row
(MNIST 23.6, Fashion-MNIST 57.1, CelebA 49.7), which only a secondary source gave here.
"""

from __future__ import annotations

from waebench.papers.base import Paper, PublishedValue, Setting

SOURCE = "gmum/cwae-pytorch README (Knop et al. 2020)"
FID = (("extractor", "pytorch-fid inception"), ("num_fake", 10_000))  # the TF FID weights
REAL = {
    "mnist": (("num_real", 70_000), ("real", "mnist:train+test")),
    "fashion_mnist": (("num_real", 70_000), ("real", "fashion_mnist:train+test")),
    "celeba": (("num_real", 182_600), ("real", "celeba:train+val")),
}
# README.md:43-48: SWAE, WAE-MMD, CWAE per dataset.
TABLE = {
    "mnist": (30.94, 28.71, 24.22),
    "fashion_mnist": (55.99, 51.74, 50.35),
    "celeba": (62.42, 51.29, 48.02),
}
MODELS = (("WAE-SW", "SWAE"), ("WAE-MMD", ""), ("CWAE", ""))  # ours, the README's name

MNIST_FAMILY = "*mnist_*"  # mnist_* and fashion_mnist_*

SETTINGS = (
    # ---- data ----
    Setting(
        "dataset.name",
        {"fashion_mnist_*": "fashion_mnist", "mnist_*": "mnist", "celeba_*": "celeba"},
        "mnist | fmnist | celeba (torchvision's datasets)",
        "reproduce_table1.sh:3-21; factories/dataset_factory.py:15-56",
        "CelebA's 140x140 crops are resized to 64x64 with Lanczos (waebench.data.celeba), "
        "torchvision's Resize there interpolates bilinearly",
    ),
    Setting(
        "dataset.val_size",
        0,
        "no validation split: all 60,000 training images are trained on, the test split "
        "is the validation loader",
        "train_autoencoder.py:46, 54",
        experiments=MNIST_FAMILY,
    ),
    Setting(
        "dataset.batch_size",
        128,
        "128",
        "args_parser.py:14",
        "an epoch drops its last partial batch (MNIST: 96 of the 60,000 images, others each "
        "epoch); the official loader keeps it (train_autoencoder.py:48-51)",
    ),
    Setting(
        "dataset.eval_batch_size",
        128,
        "the validation loader's batch: 128, its last partial batch dropped",
        "train_autoencoder.py:61",
        "our last partial batch (MNIST: 16 of the 10,000 test images) is kept, weighted by "
        "its size in the validation and test losses",
    ),
    Setting(
        "dataset.value_range",
        [0.0, 1.0],
        "[0, 1] (ToTensor); the decoder's tanh mapped to [0, 1]",
        "factories/dataset_factory.py:47-50; architectures/celeba.py:50-51",
        experiments="celeba_*",
    ),
    # ---- networks ----
    Setting(
        "model.encoder._target_",
        {MNIST_FAMILY: "waebench.mlp.MLPEncoder", "celeba_*": "waebench.networks.ConvEncoder"},
        "MNIST, Fashion-MNIST: 784-200-200-200-d_z, ReLU; CelebA: 4 x [conv 4x4 stride 2 "
        "padding 1, no bias -> batch norm -> ReLU] with 128-1024 filters, linear to d_z",
        "architectures/mnist.py:10-17; architectures/celeba.py:11-24; "
        "factories/architecture_factory.py:7-14",
    ),
    Setting(
        "model.decoder._target_",
        {MNIST_FAMILY: "waebench.mlp.MLPDecoder", "celeba_*": "waebench.networks.ConvDecoder"},
        "MNIST, Fashion-MNIST: d_z-200-200-200-784, ReLU, sigmoid; CelebA: linear to 8x8x1024, "
        "3 x [transposed conv 4x4 stride 2 padding 1, no bias -> batch norm -> ReLU] "
        "(512-128 filters), transposed conv 3x3 stride 1 to 3 channels, tanh mapped to [0, 1]",
        "architectures/mnist.py:31-39; architectures/celeba.py:38-51",
        "CelebA: our linear layer is followed by a ReLU (none there) and our last layer is a "
        "4x4 convolution with SAME padding (there a 3x3 transposed one: the same function "
        "class with a smaller kernel); sigmoid(x) = (tanh(x / 2) + 1) / 2, the same output",
    ),
    Setting(
        "model.width",
        {MNIST_FAMILY: 200, "celeba_*": 128},
        "200 hidden units; CelebA: 128 filters in the first conv layer",
        "architectures/mnist.py:11-17; architectures/celeba.py:11",
    ),
    Setting(
        "model.encoder.kernel_size", 4, "4", "architectures/celeba.py:11", experiments="celeba_*"
    ),
    Setting(
        "model.encoder.padding",
        "torch",
        "1 on each side (64 -> 32 -> 16 -> 8 -> 4)",
        "architectures/celeba.py:11-20",
        experiments="celeba_*",
    ),
    Setting(
        "model.decoder.kernel_size", 4, "4", "architectures/celeba.py:40-46", experiments="celeba_*"
    ),
    Setting(
        "model.latent_dim",
        {MNIST_FAMILY: 8, "celeba_*": 64},
        "--z_dim 8; CelebA 64",
        "reproduce_table1.sh:3-11, 18-21",
    ),
    Setting("model.prior_var", 1.0, "N(0, I)", "noise_creator.py:9"),
    # ---- cost and optimisation ----
    Setting(
        "model.reconstruction.name",
        "l2sq",
        "per-image sum of squared errors, averaged over the batch",
        "metrics/rec_err.py:4-11; factories/cost_function_factory.py:20-27",
    ),
    Setting("model.reconstruction.scale", 1.0, "1 (unscaled)", "metrics/rec_err.py:9-11"),
    Setting(
        "model.optimizer.lr",
        {"mnist_wae_mmd": 5.0e-4, MNIST_FAMILY: 1.0e-3, "celeba_ae": 1.0e-3, "celeba_*": 5.0e-4},
        "1e-3; --lr 0.0005 for MNIST's WAE and CelebA's SWAE, WAE and CWAE",
        "args_parser.py:19; reproduce_table1.sh:5, 19-21",
    ),
    Setting(
        "model.optimizer.betas",
        [0.9, 0.999],
        "Adam(parameters, lr): torch's defaults (0.9, 0.999)",
        "factories/optimizer_factory.py:5",
    ),
    Setting(
        "model.lr_schedule.milestones",
        [],
        "no schedule (configure_optimizers returns the optimizer)",
        "train_autoencoder.py:42-43",
    ),
    Setting(
        "model.e_pretrain.enabled",
        False,
        "no encoder pre-training: fit() trains the auto-encoder from the start",
        "train_autoencoder.py:131-136",
    ),
    Setting(
        "model.batches_per_step",
        8,
        "one batch a training step (automatic optimization)",
        "train_autoencoder.py:71-79",
        "8 batches a Lightning training step, an optimizer step on each: the same steps in "
        "the same order, with Lightning's cost per step paid once for 8 (docs/speed.md)",
        experiments=MNIST_FAMILY,
    ),
    Setting(
        "trainer.max_epochs",
        {"celeba_*": 55, "*": 500},
        "500; CelebA 55",
        "args_parser.py:15; reproduce_table1.sh:18-21",
    ),
    Setting(
        "trainer.check_val_every_n_epoch",
        {"celeba_*": 5, "*": 25},
        "25; CelebA 5 (validation and FID)",
        "args_parser.py:16; train_autoencoder.py:134; reproduce_table1.sh:18-21",
    ),
    Setting(
        "seed",
        0,
        "none: a random seed per run",
        "args_parser.py:23; train_autoencoder.py:120",
        "a fixed seed, so that a run can be repeated",
    ),
    # ---- the models ----
    Setting(
        "regularizer._target_",
        {
            "*_ae": "waebench.regularizers.NoRegularizer",
            "*_wae_mmd": "waebench.regularizers.MMDPenalty",
            "*_swae": "waebench.regularizers.SlicedWassersteinPenalty",
            "*_cwae": "waebench.regularizers.CramerWoldPenalty",
        },
        "--model ae | wae | swae | cwae",
        "factories/cost_function_factory.py:26-33",
    ),
    Setting(
        "regularizer.weight",
        {
            "*_ae": 0.0,
            "mnist_*": 1.0,
            "fashion_mnist_cwae": 10.0,
            "fashion_mnist_*": 100.0,
            "celeba_cwae": 5.0,
            "celeba_*": 100.0,
        },
        "lambda 1 (default); Fashion-MNIST: SWAE, WAE 100, CWAE 10; CelebA: SWAE, WAE 100, CWAE 5",
        "args_parser.py:11; reproduce_table1.sh:3-21",
    ),
    Setting(
        "regularizer.form",
        "log",
        "rec + lambda * log(CW^2 + 1e-7) (`cwae`; `cwae_plus` is the plain form)",
        "factories/cost_function_factory.py:23-24, 28-29",
        experiments="*_cwae",
    ),
    Setting(
        "regularizer.bandwidth",
        None,
        "Silverman's rule gamma = (4 / (3N))^(2/5) on the batch",
        "metrics/cw.py:10-11, 113-114",
        experiments="*_cwae",
    ),
    Setting(
        "regularizer.n_projections",
        50,
        "the squared sliced W2 over 50 random unit directions, against as many prior samples",
        "factories/cost_function_factory.py:17-18; metrics/swd.py:19-32",
        experiments="*_swae",
    ),
    Setting(
        "regularizer.kernel",
        "imq",
        "inverse multiquadratics summed over scales, C = 2 d_z",
        "metrics/mmd.py:25-35",
        experiments="*_wae_mmd",
    ),
    Setting(
        "regularizer.scales",
        [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0],
        "[.1, .2, .5, 1., 2., 5., 10.]",
        "metrics/mmd.py:29",
        experiments="*_wae_mmd",
    ),
    Setting(
        "regularizer.unbiased",
        True,
        "within-sample sums without the diagonal, / (n^2 - n)",
        "metrics/mmd.py:28-33",
        experiments="*_wae_mmd",
    ),
    Setting(
        "regularizer.gaussian_encoder",
        False,
        "deterministic encoders",
        "architectures/mnist.py:21-24; train_autoencoder.py:63-66",
    ),
    # ---- evaluation ----
    Setting(
        "eval.inception.enabled",
        True,
        "pytorch-fid's InceptionV3, 2048-d pool features, the FID weights",
        "factories/fid_evaluator_factory.py:16-17; externals/inception.py:19, 37-42",
        "torch-fidelity's inception-v3-compat, the same network and weights; it resizes to "
        "299x299 as TensorFlow does (pytorch-fid: torch's bilinear), and our images are "
        "rounded to 8 bits first (theirs stay floats)",
    ),
    Setting(
        "eval.inception.num_samples",
        10_000,
        "10,000 prior samples in batches of 100",
        "factories/fid_evaluator_factory.py:15; evaluators/fid_evaluator.py:16-29",
    ),
    Setting(
        "eval.fid.real_splits",
        {"celeba_*": ["train", "val"], "*": ["train", "test"]},
        "train + test (MNIST, Fashion-MNIST: 70,000 images); CelebA train + valid",
        "precalc_fid.py:59-61",
    ),
    Setting(
        "eval.inception.num_real",
        {"celeba_*": 182_600, "*": None},
        "the real set's whole batches of 100: all 70,000 MNIST and Fashion-MNIST images, "
        "182,600 of CelebA's 182,637",
        "precalc_fid.py:62-66",
    ),
    Setting(
        "eval.fid.reconstructions",
        False,
        "FID of prior samples only",
        "train_autoencoder.py:105-107",
    ),
    Setting(
        "eval.samplers",
        ["auto"],
        "samples of N(0, I) for every model",
        "evaluators/fid_evaluator.py:22-24",
        "the AE has no prior here: `auto` scores samples of a Gaussian fitted to its codes "
        "(the README's table has no AE column)",
    ),
    Setting(
        "eval.split",
        {"celeba_*": "val", "*": "test"},
        "the validation loader's split (reconstruction error, normality): the test split; "
        "CelebA's valid split",
        "train_autoencoder.py:53-61; factories/dataset_factory.py:52",
    ),
)


EPOCH_NOTE = (
    "the README does not say which epoch's FID it reports (the code scores every 25 epochs, "
    "every 5 on CelebA); ours is the last epoch's"
)


def published() -> tuple[PublishedValue, ...]:
    values = []
    for dataset, row in TABLE.items():
        settings = (*FID, *REAL[dataset], ("checkpoint", "last"))
        for (model, name), value in zip(MODELS, row, strict=True):
            values.append(
                PublishedValue(
                    dataset, model, "fid/samples/prior", value, settings, SOURCE, name,
                    note=EPOCH_NOTE,
                )
            )  # fmt: skip
    return tuple(values)


PAPER = Paper(
    name="CWAE",
    citation=(
        "Knop, Spurek, Tabor, Podolak, Mazur, Jastrzebski, Cramer-Wold Auto-Encoder, JMLR 21, 2020"
    ),
    code="gmum/cwae-pytorch",
    commit="7fb31a5",
    experiments="cwae_paper",
    sweep="cwae_paper_table",
    settings=SETTINGS,
    summary=(
        "The official code is PyTorch on Lightning: `src/reproduce_table1.sh` lists the "
        "command of each model and dataset, `src/args_parser.py` the defaults it leaves. "
        "File names are relative to `src/`. Its MNIST and Fashion-MNIST networks are MLPs, "
        "which a CPU trains at the full protocol (docs/speed.md)."
    ),
    published=published(),
)
