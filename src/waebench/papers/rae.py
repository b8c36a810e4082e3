"""Ghosh, Sajjadi, Vergari, Black, Schoelkopf, "From Variational to Deterministic
Autoencoders", ICLR 2020: `experiment=rae_paper/*`, `sweep=rae_paper_table`.

Published: Table 1, MNIST (padded to 32x32) and CelebA 64x64, FID of 10^4 images with the
TensorFlow Inception network against the statistics of 10^4 test images. Its columns, the
keys of ours they stand beside, and the estimator behind each (`columns` below; the
protocol table has the code references):

- REC, reconstructions of 10^4 images through the sampling layer -> `fid/reconstructions`;
- N, samples of the prior N(0, I) for VAE and WAE -> `fid/samples/prior`; for CV-VAE, the
  RAEs and the AE "a Gaussian fitted to" the codes (Table 1's caption) ->
  `fid/samples/gaussian`; for 2sVAE, the RAE code's second VAE -> `fid/samples/two_stage`
  (beside our VAE, preset `rae`);
- GMM, a 10-component Dirichlet-process mixture fitted to the training codes
  (`GMM_Dirichlet`, whose FIDs config.py's comments record) -> `fid/samples/dpgmm`;
- Interp, decoded midpoints of pairs of validation codes -> `fid/interpolations`.

All of them score the best validation-loss weights. Their 2sVAE's REC and Interp pass
through the second stage (encode, decode) while ours are the VAE's own: the note beside
those numbers says so.
"""

from __future__ import annotations

from waebench.papers.base import Paper, PublishedValue, Setting
from waebench.samplers import recorded_options

SOURCE = "Ghosh et al. 2020, Table 1"
KL = "waebench.regularizers.KLDivergence"
CV_KL = "waebench.regularizers.ConstantVarianceKL"
MMD = "waebench.regularizers.MMDPenalty"
RAE = "waebench.regularizers.RAEPenalty"
NONE = "waebench.regularizers.NoRegularizer"
SECOND_STAGE_BETA = {"mnist": 1.5e-3, "celeba": 2e-3}  # config.py:676, 632
SAMPLERS = ["auto", "gaussian", "gmm", "dpgmm"]
KERAS = "Keras 2.3.1 (requirements.txt:8)"

SETTINGS = (
    # ----- data -----
    Setting("dataset.name", {"mnist_*": "mnist", "celeba_*": "celeba"},
            "MNIST; CelebA (the official partition's train / val / test folders)",
            "dataloader.py:109-140; README.md:29-58"),
    Setting("dataset.image_size", {"mnist_*": 32, "celeba_*": 64},
            "32 x 32 (MNIST zero-padded); 64 x 64", "dataloader.py:110-111, 127-128"),
    Setting("dataset.pad", 2, "2 rows and columns of zeros on each side",
            "README.md:67-73", experiments="mnist_*"),
    Setting("dataset.value_range", [0.0, 1.0], "pixels / 255, a sigmoid output",
            "dataloader.py:73; rae_mnist.py:96, rae_celeba.py:144"),
    Setting("(CelebA images)", "centre crop 140 x 140, Lanczos resize to 64 x 64 "
            "(waebench/data/celeba.py)",
            "centre crop 140 x 140 and resize to 64 x 64, done by the user",
            "README.md:31", experiments="celeba_*", in_config=False),
    Setting("dataset.val_size", 10_000,
            "trains on x_train[:-10000] and validates on x_train[10000:] (50,000 images, "
            "40,000 of them training images)",
            "dataloader.py:131-139",
            "10,000 training images held out at random: a validation set apart from the "
            "training set, of the size the code meant", experiments="mnist_*"),
    Setting("dataset.batch_size", {"celeba_vae": 1000, "*": 100}, "batch_size 100; the "
            "CelebA VAE 1000", "config.py:5, 339, 360"),
    Setting("(batches)", "each epoch shuffled",
            "MNIST: the array read in order, the same every epoch; CelebA: shuffled by "
            "flow_from_directory",
            "dataloader.py:87-106; train_raes_vaes.py:51-53",
            "MNIST: Keras fit_generator does not shuffle a generator; we do", in_config=False),
    # ----- networks -----
    Setting("model.latent_dim", {"mnist_*": 16, "celeba_*": 64}, "bottleneck_factor 16; 64",
            "config.py:15, 463"),
    Setting("model.width", {"celeba_cv_vae": 64, "*": 128},
            "num_filters 128 (CelebA CV-VAE 64): 128, 256, 512, 1024 filters",
            "config.py:11, 392; rae_mnist.py:57-72"),
    Setting("model.encoder.kernel_size", None,
            "4 x 4 (MNIST); 5 x 5 (CelebA), the kernel that null picks for 32 x 32 and 64 x 64 "
            "images", "rae_mnist.py:57; rae_celeba.py:80"),
    Setting("model.encoder.padding", "same", "SAME", "rae_mnist.py:57; rae_celeba.py:80"),
    Setting("(encoder)", "4 x [conv stride 2, batch norm, ReLU], a linear code; no conv "
            "bias; the input in [0, 1]",
            "the same with conv biases; the MNIST encoder maps its input to [-1, 1] first",
            "rae_mnist.py:55-75; rae_celeba.py:76-105",
            "a bias before batch norm is cancelled by it; the affine input map is absorbed "
            "by the first conv and batch norm but at the zero-padded border", in_config=False),
    Setting("model.decoder.head_relu", False, "Dense to 8 x 8 x 1024, no activation",
            "rae_mnist.py:81-82; rae_celeba.py:123-124"),
    Setting("(decoder)", "stride-2 transposed convs halving the filters with batch norm and "
            "ReLU (2 MNIST, 3 CelebA), a stride-1 conv to the image",
            "the same, the last a stride-1 transposed conv with a sigmoid",
            "rae_mnist.py:84-97; rae_celeba.py:126-145",
            "a stride-1 conv is a stride-1 transposed conv with the kernel flipped; with "
            "MNIST's even kernel SAME padding then puts the extra pixel on the other side",
            in_config=False),
    Setting("model.init", "keras", "Keras' defaults: Glorot-uniform kernels, zero biases",
            KERAS),
    Setting("model.batch_norm.momentum", 0.01, "BatchNormalization momentum 0.99 (torch's "
            "0.01)", f"{KERAS}; rae_mnist.py:59"),
    Setting("model.batch_norm.eps", 1e-3, "epsilon 1e-3", f"{KERAS}; rae_mnist.py:59"),
    Setting("(VAE variance head)", "a linear head outputs the mean and the log-variance",
            "log sigma = 5 tanh(Dense(d)) of the encoder's last features",
            "get_vae_given_enc_dec.py:15-18; standard_vae_mnist.py:21",
            "the same function class but for the bound |log sigma| <= 5, which a trained "
            "VAE's codes stay within; not replicated", experiments="*_vae",
            in_config=False),
    Setting("regularizer.spectral_norm", ["encoder", "decoder"],
            "spec_norm_on_dec_only False: every Dense and conv layer of both networks",
            "config.py:115, 460; rae_mnist.py:41-45", experiments="*_rae_sn"),
    Setting("regularizer.power_iterations", 1, "one power iteration per call",
            "spectral_normalized_dense_conv.py:49-58", experiments="*_rae*"),
    # ----- objective -----
    Setting("model.prior_var", 1.0, "N(0, I): the KL's, and the WAE's pz_scale 1",
            "std_vae/loss_functions.py:16; get_wae_given_enc_dec.py:13"),
    Setting("regularizer._target_",
            {"*_cv_vae": CV_KL, "*_vae": KL, "*_wae": MMD, "*_rae*": RAE, "*_ae": NONE},
            "std_vae (constant_sigma for CV-VAE), WAE (MMD), RAE (beta 0 for AE)",
            "config.py:3, 23, 44, 65-163; train_raes_vaes.py:55-66"),
    Setting("model.reconstruction.name", "l2sq", "squared error (Keras mse)",
            "function_from_name.py:23-24"),
    Setting("model.reconstruction.scale",
            {"mnist_*vae": 1.0, "celeba_*vae": 0.33333333, "celeba_wae": 0.05,
             "mnist_*": 1 / 1024, "celeba_*": 1 / 12288},
            "RAEs, AE, MNIST WAE: Keras mse averaged over the pixels; VAE, CV-VAE: the "
            "channel-mean squared error summed over the pixels; CelebA WAE: 0.05 x the sum "
            "of squares",
            "rae/loss_functions.py:32; std_vae/loss_functions.py:34; "
            "wae_mmd/loss_functions.py:17-23; config.py:344"),
    Setting("regularizer.weight",
            {"mnist_vae": 0.312, "mnist_cv_vae": 0.039, "mnist_wae": 0.03,
             "mnist_rae_gp": 1.25e-5, "mnist_rae_l2": 1.25e-5, "mnist_rae_sn": 1.125e-3,
             "mnist_rae": 6.25e-5, "celeba_vae": 0.09024, "celeba_cv_vae": 0.01,
             "celeba_wae": 100.0, "celeba_rae_gp": 3.125e-6, "celeba_rae_l2": 3.125e-6,
             "celeba_rae_sn": 7.5e-5, "celeba_rae": 3.125e-6, "*_ae": 0.0},
            "embedding_weight: MNIST VAE 0.312, CV-VAE 0.039, WAE 0.03, RAE-GP 1e-4, RAE-L2 "
            "1e-4, RAE-SN 0.009, RAE 5e-4, AE 0; CelebA 0.09024, 0.01, 100, 1e-4, 1e-4, "
            "2.4e-3, 1e-4, 0; the RAEs' on mean_j z_j^2 (ours on 1/2 ||z||^2: x 2 / d_z, the "
            "same objective)",
            "config.py:18-160, 352-512; rae/loss_functions.py:9-12"),
    Setting("regularizer.decoder_regularizer",
            {"*_rae_gp": "gp", "*_rae_l2": "l2", "*": "none"},
            "gen_reg_type grad_pen | l2; l2 with weight 0 for RAE and RAE-SN",
            "config.py:78, 98, 418, 441", experiments="*_rae*"),
    Setting("regularizer.decoder_weight",
            {"mnist_rae_gp": 3.125e-9, "celeba_rae_gp": 1.5625e-9, "*_rae_l2": 1e-7},
            "gen_reg_weight: GP 5e-8 (MNIST), 1e-7 (CelebA) on the mean over the d_z "
            "gradient entries (ours on their sum: / d_z, the same objective); L2 1e-7",
            "config.py:79, 419, 99, 442; rae/loss_functions.py:15-23",
            experiments="*_rae_gp,*_rae_l2"),
    Setting("regularizer.l2_layers", {"mnist_*": "convolutions", "celeba_*": "all"},
            "MNIST: the three transposed convs, not the first Dense; CelebA: the Dense "
            "and the four transposed convs",
            "rae_mnist.py:81-97; rae_celeba.py:123-145", experiments="*_rae_l2"),
    Setting("regularizer.encoder_std", 0.7, "constant_sigma 0.7",
            "config.py:62, 401; get_vae_given_enc_dec.py:19-21", experiments="*_cv_vae"),
    Setting("regularizer.kernel", "imq", "IMQ", "get_wae_given_enc_dec.py:13",
            experiments="*_wae"),
    Setting("regularizer.scales", [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0],
            "C s, C = 2 d_z, s in 0.1 .. 10", "wae_mmd/loss_functions.py:82-104",
            experiments="*_wae"),
    Setting("regularizer.unbiased", True, "the diagonal left out of the within-sample sums",
            "wae_mmd/loss_functions.py:98-103", experiments="*_wae"),
    Setting("model.input_noise", {"celeba_wae": 0.01, "*": 0.0},
            "the CelebA WAE adds clip(N(0, 0.01^2), -0.01, 0.01) to the encoder's input, in "
            "training and prediction",
            "get_wae_given_enc_dec.py:15-18",
            "ours N(0, 0.01^2) redrawn beyond +-0.02 (the WAE code's), in training only"),
    # ----- optimisation -----
    Setting("model.optimizer.betas", [0.9, 0.999], "Keras' Adam defaults",
            f"{KERAS}; rae_mnist.py:111"),
    Setting("model.optimizer.eps", 1e-7, "Keras' Adam epsilon 1e-7", KERAS),
    Setting("model.optimizer.lr",
            {"*vae": 1e-4, "mnist_wae": 1e-3, "mnist_*": 5e-4, "celeba_*": 1e-3},
            "5e-4 (MNIST RAEs, AE), 1e-3 (CelebA RAEs, AE; the WAEs), 1e-4 (the VAEs)",
            "rae_mnist.py:111; rae_celeba.py:169; get_wae_given_enc_dec.py:23; "
            "get_vae_given_enc_dec.py:29"),
    Setting("model.lr_schedule.milestones", [], "none", "train_raes_vaes.py:72-102"),
    Setting("model.lr_schedule.factors", [], "none", "train_raes_vaes.py:72-102"),
    Setting("model.lr_schedule.plateau.factor", 0.5, "ReduceLROnPlateau factor 0.5",
            "train_raes_vaes.py:96"),
    Setting("model.lr_schedule.plateau.patience", 4,
            "patience 5: Keras cuts the lr at the 5th epoch in a row without improvement, "
            "where torch's patience 4 cuts it (tests/test_rae.py)",
            f"train_raes_vaes.py:96; {KERAS}"),
    Setting("model.lr_schedule.plateau.threshold", 1e-4, "min_delta 1e-4 (Keras' default)",
            KERAS),
    Setting("model.lr_schedule.plateau.threshold_mode", "abs",
            "an improvement is a drop of more than min_delta", KERAS),
    Setting("model.lr_schedule.plateau.monitor", "val/objective",
            "val_loss: the training loss on the validation images, with the L2 terms "
            "(model.losses) and the gradient penalty, codes sampled by the VAEs' sampling "
            "layer, batch norm in inference mode",
            f"train_raes_vaes.py:96; rae/loss_functions.py:26-40; {KERAS}"),
    Setting("trainer.max_epochs", {"mnist_*": 100, "celeba_*": 70}, "epochs 100; 70",
            "config.py:6, 339"),
    Setting("callbacks.best_checkpoint.monitor", "val/objective",
            "ModelCheckpoint(model_path + '_best', monitor='val_loss', save_best_only)",
            "train_raes_vaes.py:99-101"),
    Setting("model.e_pretrain.enabled", False, "no encoder pre-training",
            "train_raes_vaes.py:55-118"),
    # ----- evaluation -----
    Setting("eval.checkpoint", "best", "the best validation-loss weights, model_path + "
            "'_best'", "interpolation_fid_and_viz.py:141"),
    Setting("eval.inception.enabled", True,
            "FID in the TF Inception graph (TTUR's fid.py)",
            "fid_from_dir_computer.py:30-37, 248-266",
            "torch-fidelity's inception-v3-compat, the same network"),
    Setting("eval.inception.num_samples", 10_000, "the first 10,000 generated images",
            "fid_from_dir_computer.py:224; interpolation_fid_and_viz.py:208, 256"),
    Setting("eval.split", "test", "statistics of the test set",
            "fid_from_dir_computer.py:248-266"),
    Setting("eval.inception.num_real", {"celeba_*": 10_000, "mnist_*": None},
            "MNIST: x_test, 10,000 images; CelebA: the first 10,000 files of test/test in "
            "os.listdir order",
            "fid_from_dir_computer.py:224, 254-263",
            "CelebA: the first 10,000 test images in file-name order (os.listdir's is the "
            "file system's)"),
    Setting("(image quantisation)", "round(255 x)", "floor(255 x): astype('uint8') of the "
            "saved PNGs", "save_batches_of_images.py:10",
            "rounding is unbiased; the floor darkens every pixel by 0.5 / 255 on average",
            in_config=False),
    Setting("eval.fid.reconstructions", True, "REC", "interpolation_fid_and_viz.py:274-304"),
    Setting("eval.reconstruction", "sample",
            "auto_encoder.predict: the VAEs' codes pass through the sampling layer",
            "interpolation_fid_and_viz.py:294; get_vae_given_enc_dec.py:26"),
    Setting("(REC images)", "the first 10,000 test images",
            "10,000 validation images: MNIST x_train[10000:20000], inside its training set",
            "interpolation_fid_and_viz.py:279-282",
            "test images, as Table 1's caption says (\"test sample reconstruction\")",
            in_config=False),
    Setting("eval.samplers",
            {"mnist_vae": [*SAMPLERS, "two_stage"], "celeba_vae": [*SAMPLERS, "two_stage"],
             "*": SAMPLERS},
            "N (N(0, I) decoded for every model), GMM_10 and aux_vae (the 2sVAE) in the "
            "script; the table's GMM column is GMM_Dirichlet's and its N a fitted Gaussian "
            "for all but VAE and WAE",
            "interpolation_fid_and_viz.py:208, 223; config.py:20-162; paper: Table 1 caption",
            "`auto` is the prior for VAE and WAE and a Gaussian fitted to the training codes "
            "(mean and full covariance, as the code's GMM_1 and the paper's words) for the "
            "others, `gaussian` the CV-VAE's N; the code's other fitted Gaussian, zero-mean on "
            "10,000 validation codes (my_callbacks.py:59-104), is not offered"),
    Setting("eval.sampler.gmm.n_components", 10, "GMM_10: 10 components",
            "estimate_density_and_sample.py:31-33"),
    Setting("eval.sampler.gmm.max_iter", 2000, "max_iter 2000 (tol 1e-3)",
            "estimate_density_and_sample.py:31-33"),
    Setting("eval.sampler.dpgmm.n_components", {"celeba_cv_vae": 1, "*": 10},
            "GMM_Dirichlet with the config's n_components: 10, the CelebA CV-VAE's 1",
            "estimate_density_and_sample.py:22-24; config.py:21, 400"),
    Setting("eval.sampler.dpgmm.weight_concentration_prior", None,
            "1 / n_components, which null means", "estimate_density_and_sample.py:23-24"),
    Setting("eval.sampler.dpgmm.max_iter", 100, "scikit-learn's default (100)",
            "estimate_density_and_sample.py:23-24"),
    Setting("eval.sampler.two_stage.preset", "rae",
            "aux_vae: 2 x 1024 ReLU, log sigma 5 tanh, mean squared error + beta KL, Adam 1e-4, "
            "100 epochs of 64, the lr halved after 3 epochs without a better loss on the "
            "last 10 % of the codes, the decoder's mean",
            "estimate_density_and_sample.py:119-201; get_vae_given_enc_dec.py:15-29",
            "Adam's epsilon 1e-8 (Keras': 1e-7); the codes standardized with the n - 1 "
            "standard deviation (numpy's: n)"),
    Setting("eval.sampler.two_stage.beta", {"mnist_*": 1.5e-3, "celeba_*": 2e-3},
            "second_stage_beta 1.5e-3; 2e-3", "config.py:676, 632"),
    Setting("eval.fid.interpolations", True, "Interp", "interpolation_fid_and_viz.py:319-335"),
    Setting("eval.interpolation", "rae",
            "midpoints of 10,000 pairs of validation codes, drawn without replacement from "
            "three copies of their indices",
            "interpolation_fid_and_viz.py:200-203, 319-335",
            "the code's last row is the zero code (its loop stops at 9,999); MNIST: its "
            "validation codes are those of x_train[10000:], ours of the 10,000 held-out "
            "images"),
)  # fmt: skip


def settings(dataset: str, **estimator: object) -> tuple[tuple[str, object], ...]:
    """How Table 1 computed a number: the common FID settings and the column's estimator."""
    common = {
        "extractor": "tf-inception (paper)",
        "num_fake": 10_000,
        "num_real": 10_000,
        "real": f"{dataset}:test",
        "checkpoint": "best",
    }
    return tuple({**common, **estimator}.items())


# (their model, our model, the paper's name shown) and per dataset REC / N / GMM / Interp
# (None: not reported).
MODELS = (
    ("VAE", "VAE", ""),
    ("CV-VAE", "CV-VAE", ""),
    ("WAE", "WAE-MMD", "WAE (WAE-MMD)"),
    ("2sVAE", "VAE", "2sVAE (VAE, two-stage sampler)"),
    ("RAE-GP", "RAE-GP", ""),
    ("RAE-L2", "RAE-L2", ""),
    ("RAE-SN", "RAE-SN", ""),
    ("RAE", "RAE", ""),
    ("AE", "AE", ""),
)
TABLE: dict[str, dict[str, tuple[float | None, ...]]] = {
    "mnist": {
        "VAE": (18.26, 19.21, 17.66, 18.21),
        "CV-VAE": (15.15, 33.79, 17.87, 25.12),
        "WAE": (10.03, 20.42, 9.39, 14.34),
        "2sVAE": (20.31, 18.81, None, 18.35),
        "RAE-GP": (14.04, 22.21, 11.54, 15.32),
        "RAE-L2": (10.53, 22.22, 8.69, 14.54),
        "RAE-SN": (15.65, 19.67, 11.74, 15.15),
        "RAE": (11.67, 23.92, 9.81, 14.67),
        "AE": (12.95, 58.73, 10.66, 17.12),
    },
    "celeba": {
        "VAE": (39.12, 48.12, 45.52, 44.49),
        "CV-VAE": (40.41, 48.87, 49.30, 44.96),
        "WAE": (34.81, 53.67, 42.73, 40.93),
        "2sVAE": (42.04, 49.70, None, 47.54),
        "RAE-GP": (39.71, 116.30, 45.63, 47.00),
        "RAE-L2": (43.52, 51.13, 47.97, 45.98),
        "RAE-SN": (36.01, 44.74, 40.95, 39.53),
        "RAE": (40.18, 48.20, 44.68, 43.67),
        "AE": (40.79, 127.85, 45.10, 50.94),
    },
}
REC_NOTE = (
    "reconstructs 10,000 validation images (MNIST: x_train[10000:20000], inside its training "
    "set); ours the test images"
)
GAUSSIAN_NOTE = (
    "the code's own fitted Gaussian is zero-mean on 10,000 validation codes and its "
    "evaluation script decodes N(0, I): which one gave this number is not certain"
)
SECOND_STAGE_NOTE = "through the second stage (encode, decode); ours the VAE's own"
MNIST_INTERP_NOTE = "pairs of x_train[10000:] codes (mostly training images); ours held out"


def columns(dataset: str, paper: str) -> tuple[tuple[str, tuple, str], ...]:
    """(our key, settings, note) of the REC, N, GMM and Interp columns of `paper`'s row."""
    if paper == "2sVAE":
        two_stage = {"preset": "rae", "beta": SECOND_STAGE_BETA[dataset]}
        sampler = recorded_options("two_stage", {"two_stage": two_stage})
        n_column = ("fid/samples/two_stage", settings(dataset, sampler=sampler), "")
    elif paper in ("VAE", "WAE"):
        n_column = ("fid/samples/prior", settings(dataset), "")
    else:
        n_column = ("fid/samples/gaussian", settings(dataset), GAUSSIAN_NOTE)
    components = 1 if (dataset, paper) == ("celeba", "CV-VAE") else 10
    dpgmm = recorded_options("dpgmm", {"dpgmm": {"n_components": components, "max_iter": 100}})
    interp_note = MNIST_INTERP_NOTE if dataset == "mnist" else ""
    second_stage = paper == "2sVAE"
    return (
        ("fid/reconstructions", settings(dataset, reconstruction="sample"),
         SECOND_STAGE_NOTE if second_stage else REC_NOTE),
        n_column,
        ("fid/samples/dpgmm", settings(dataset, sampler=dpgmm), ""),
        ("fid/interpolations", settings(dataset, interpolation="rae"),
         SECOND_STAGE_NOTE if second_stage else interp_note),
    )  # fmt: skip


def published() -> tuple[PublishedValue, ...]:
    values = []
    for dataset, rows in TABLE.items():
        for paper, ours, name in MODELS:
            for (metric, how, note), value in zip(
                columns(dataset, paper), rows[paper], strict=True
            ):
                if value is not None:
                    values.append(
                        PublishedValue(dataset, ours, metric, value, how, SOURCE, name, note)
                    )
    return tuple(values)


PAPER = Paper(
    name="RAE",
    citation=(
        "Ghosh, Sajjadi, Vergari, Black, Schoelkopf, From Variational to Deterministic "
        "Autoencoders, ICLR 2020"
    ),
    code="ParthaEth/Regularized_autoencoders-RAE-",
    commit="9478b8f",
    experiments="rae_paper",
    sweep="rae_paper_table",
    settings=SETTINGS,
    summary=(
        "The official code is Keras 2.3.1 with one numbered configuration per model "
        "(`configurations/config.py`: 0-7 MNIST, 16-23 CelebA, 28 and 30 the 2sVAE's second "
        "stage); `train_raes_vaes.py` trains, `interpolation_fid_and_viz.py` computes the "
        "table's FIDs. File names are given without their folders where unambiguous "
        "(`rae/` and `std_vae/` are under `models/`)."
    ),
    published=published(),
)
