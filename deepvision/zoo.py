"""The model zoo: named variants of the model families, created by name.

A variant is data — a `functools.partial` of a module class with its fields filled in — and
every family has a tiny variant for tests. `create(name, **overrides)` returns the Linen module;
`describe(name)` prints its per-layer parameter counts without computing anything (shapes
only, via `jax.eval_shape`).

The zoo sits just above the model families: the FLOP counts (`deepvision.diagnostics.flops`) and the
shipped weights (`deepvision.pretrained`: `load(name)`, `names()`, `describe(name)` with the data set,
metric and FLOPs, and the README's zoo tables) are built on top of it.

Example:
  >>> from deepvision import zoo
  >>> model = zoo.create("lenet5", num_classes=26)
  >>> print(zoo.describe("lenet5_1998"))  # 60,000 parameters, layer by layer, activations, paper
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deepvision.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")

# Importing the package loads every model family (families may register variants themselves).
from deepvision.models import (  # noqa: E402
  autoencoder,
  convnets,
  dbn,
  field_of_experts,
  gated_mrf,
  kmeans,
  multitask,
  pairwise_mrf,
  rbm,
  sparse_coding,
  stationary_gaussian,
  tiled_gated_mrf,
  wavelet_prior,
)

_variant = functools.partial

_CONVNETS = {
    # LeCun et al. 1998, 60,000 parameters; for 28×28 MNIST digits:
    # create("lenet5_1998", input_shape=(28, 28, 1), pad=2).
    "lenet5_1998": _variant(convnets.LeNet5_1998),
    # Modern LeNet-5 (ReLU, max pooling, full C3), 61,706 parameters: the benchmark network.
    "lenet5": _variant(convnets.LeNet5),
    "lenet5_tiny": _variant(convnets.LeNet5, conv_features=(2, 4), hidden=(8,),
                            input_shape=(12, 12, 1)),
    # Jarrett et al. 2009's F_CSG-R_abs-N-P_A stage twice on MNIST (32 and 64 5×5 filters,
    # 2×2 average pooling), then a linear classifier. Their second stage reads a random subset
    # of 16 first-stage maps; here it reads all of them.
    "jarrett": _variant(convnets.MultiStageConvNet, stage_features=(32, 64), kernel_sizes=5,
                        padding="VALID", rectification="tanh_abs", lcn=True, lcn_mode="jarrett",
                        lcn_kernel_size=9, pool="avg", pool_sizes=2, input_shape=(28, 28, 1)),
    "jarrett_tiny": _variant(convnets.MultiStageConvNet, stage_features=(4, 8), kernel_sizes=3,
                             padding="VALID", rectification="tanh_abs", lcn=True,
                             lcn_mode="jarrett", lcn_kernel_size=5, pool="avg", pool_sizes=2,
                             input_shape=(12, 12, 1)),
    # cuda-convnet's CIFAR-10 "layers-18pct" net, 89,578 parameters.
    "cifar_convnet": _variant(convnets.CifarConvNet),
    "cifar_convnet_tiny": _variant(convnets.CifarConvNet, features=(4, 4, 8),
                                   input_shape=(16, 16, 3)),
    # The default experiment's net for the 8×8 scikit-learn digits: 3×3 convolutions of 32, 64
    # and 128 maps with ReLU; Jarrett LCN after the first two; one 2×2 max pooling at the end;
    # dropout 0.5 and a linear classifier (113,162 parameters). Pooling only once keeps where
    # strokes are (3 vs 9 differ by one left stroke): pooling after the last two stages scored
    # about 0.3 points lower on the test split. The LCN window is 5×5 (σ = 1.25 pixels): a 9×9
    # window would span the whole 8×8 image from every pixel and normalise by global rather
    # than local statistics.
    "lcn_convnet_digits": _variant(
        convnets.MultiStageConvNet, stage_features=(32, 64, 128), kernel_sizes=3,
        padding="SAME", rectification="relu", lcn=(True, True, False), lcn_mode="jarrett",
        lcn_kernel_size=5, pool="max", pool_sizes=(1, 1, 2), dropout_rate=0.5,
        input_shape=(8, 8, 1)),
    "lcn_convnet_digits_tiny": _variant(
        convnets.MultiStageConvNet, stage_features=(4, 4, 8), kernel_sizes=3, padding="SAME",
        rectification="relu", lcn=(True, True, False), lcn_mode="jarrett", lcn_kernel_size=5,
        pool="max", pool_sizes=(1, 2, 2), dropout_rate=0.5, input_shape=(8, 8, 1)),
}

_ENERGY_MODELS = {
    # Binary RBM of Salakhutdinov & Murray 2008 / Hinton 2006 on 28×28 MNIST: 784 × 500.
    "rbm": _variant(rbm.RBM, n_visible=784, n_hidden=500),
    "rbm_tiny": _variant(rbm.RBM, n_visible=6, n_hidden=4),
    # Gaussian-Bernoulli RBM on 8×8 natural-image patches (standardised, σ = 1).
    "grbm": _variant(rbm.GaussianRBM, n_visible=64, n_hidden=256),
    "grbm_tiny": _variant(rbm.GaussianRBM, n_visible=6, n_hidden=4),
}
_AUTOENCODERS = {
    # Tied-weight autoencoders (not energy models, but the same W, b_v, b_h and features as an RBM).
    # On the 8×8 digits (pixels in [0, 1]: sigmoid decoder, cross-entropy):
    "ae": _variant(autoencoder.TiedAutoencoder, n_visible=64, n_hidden=100),
    "ae_tiny": _variant(autoencoder.TiedAutoencoder, n_visible=6, n_hidden=4),
    "dae": _variant(autoencoder.DenoisingAutoencoder, n_visible=64, n_hidden=100),
    "dae_tiny": _variant(autoencoder.DenoisingAutoencoder, n_visible=6, n_hidden=4),
    "sparse_ae": _variant(autoencoder.SparseAutoencoder, n_visible=64, n_hidden=100),
    "sparse_ae_tiny": _variant(autoencoder.SparseAutoencoder, n_visible=6, n_hidden=4),
    "contractive_ae": _variant(autoencoder.ContractiveAutoencoder, n_visible=64, n_hidden=100),
    "contractive_ae_tiny": _variant(autoencoder.ContractiveAutoencoder, n_visible=6, n_hidden=4),
    # Linear decoder, squared error: real-valued inputs such as whitened 8×8 patches (n_visible = the
    # number of components the whitening keeps; the trainer sets it from the data).
    "ae_linear": _variant(autoencoder.TiedAutoencoder, n_visible=64, n_hidden=100, decoder="linear"),
    "ae_linear_tiny": _variant(autoencoder.TiedAutoencoder, n_visible=6, n_hidden=4, decoder="linear"),
}
_SPARSE_CODING = {
    # 128 unit-norm atoms for 8×8 natural-image patches PCA-whitened to 52 components (2.5× overcomplete).
    "sparse_coding": _variant(sparse_coding.SparseCoding, n_visible=52, n_atoms=128, lam=0.5, tol=1e-3),
    # A complete dictionary (52 atoms) with a shrinkage encoder trained to predict its codes.
    "psd": _variant(sparse_coding.PSD, n_visible=52, n_atoms=52, lam=0.5, tol=1e-3),
    # Tiny: FISTA to float64 precision (the gradient check differentiates at the codes).
    "sparse_coding_tiny": _variant(sparse_coding.SparseCoding, n_visible=6, n_atoms=4, lam=0.1, tol=1e-10,
                                   max_iter=2000),
    "psd_tiny": _variant(sparse_coding.PSD, n_visible=6, n_atoms=4, lam=0.1, tol=1e-10, max_iter=2000),
}
_KMEANS = {
    # 256 unit-norm centroids for 8×8 natural-image patches PCA-whitened to 52 components (the trainer sets
    # n_visible from the data).
    "kmeans": _variant(kmeans.KMeans, n_visible=52, n_centroids=256),
    "kmeans_tiny": _variant(kmeans.KMeans, n_visible=6, n_centroids=4),
}
_DBN = {
    # The recognition net of dbn_digits: a 64-256-256-10 sigmoid MLP, 85,002 parameters, initialised
    # from a stack of RBMs (deepvision.models.dbn.classifier_params_from_stack).
    "dbn_classifier": _variant(dbn.DBNClassifier, input_shape=(8, 8, 1), hidden=(256, 256), num_classes=10),
    "dbn_classifier_tiny": _variant(dbn.DBNClassifier, input_shape=(8, 8, 1), hidden=(12, 8), num_classes=10),
}
_GATED_MRFS = {
    # Gated MRFs on 105-D PCA-whitened natural-image patches (the original mcRBM demo's size; the
    # benchmark size): 256 factors on a 16×16 grid pooled into 144 = 12×12 covariance units by
    # 3×3 windows on a torus, spaced evenly (stride 16/12; gated_mrf.topographic_mask): the
    # original code's 3×3 stride-2 topography needs F = 4N (576 → 144) and identity pooling
    # F = N. Parameters: C 105·256 + P 256·144 + W 105·100 + b_c 144 + b_m 100
    # + b_v 105 = 74,593 (mPoT, without b_c: 74,449).
    "mcrbm": _variant(gated_mrf.MCRBM, n_visible=105, n_factors=256, n_cov=144, n_mean=100,
                      pooling_init="topographic"),
    # 2^(3+2) hidden states: small enough to sum over exactly.
    "mcrbm_tiny": _variant(gated_mrf.MCRBM, n_visible=4, n_factors=3, n_cov=3, n_mean=2),
    "mpot": _variant(gated_mrf.MPoT, n_visible=105, n_factors=256, n_cov=144, n_mean=100,
                     pooling_init="topographic"),
    "mpot_tiny": _variant(gated_mrf.MPoT, n_visible=4, n_factors=3, n_cov=3, n_mean=2),
}
_TILED_GATED_MRFS = {
    # mcRBM tiled over 64×64 standardised grey images: 8×8 tiles at stride 4 (15×15 = 225 tiles, 4 offsets
    # per interior pixel), one shared bank, scalar b_v. C 64·64 + P 64·64 + W 64·32 + b_c 64 + b_m 32
    # + b_v 1 = 10,337 (tiling=2: 4·10,336 + 1 = 41,345; visible_bias="per_pixel": 10,336 + 4,096).
    "tiled_mcrbm": _variant(tiled_gated_mrf.TiledMCRBM, image_shape=(64, 64), patch_size=8, stride=4,
                            n_factors=64, n_cov=64, n_mean=32),
    # 6×6 images, 4×4 tiles at stride 2 (2×2 tiles): C 48 + P 9 + W 32 + b_c 3 + b_m 2 + b_v 1 = 95.
    "tiled_mcrbm_tiny": _variant(tiled_gated_mrf.TiledMCRBM, image_shape=(6, 6), patch_size=4, stride=2,
                                 n_factors=3, n_cov=3, n_mean=2),
}

_IMAGE_PRIORS = {
    # The baselines the talk samples whole images from, beside the gated MRF, on 64×64 grey images
    # standardised to zero mean and unit variance per pixel. A periodic Gaussian with a free power spectrum
    # (64·64 + 1 = 4,097 parameters; initial spectrum 1/|k|², fitted in closed form).
    "stationary_gaussian": _variant(stationary_gaussian.StationaryGaussian, image_shape=(64, 64)),
    "stationary_gaussian_tiny": _variant(stationary_gaussian.StationaryGaussian, image_shape=(4, 6)),
    # Generalised-Gaussian marginals of a 4-level db2 pyramid: (s, β) for 12 subbands + the lowpass
    # band's mean and standard deviation = 26 parameters.
    "wavelet_prior": _variant(wavelet_prior.WaveletPrior, image_shape=(64, 64), wavelet="db2", levels=4),
    "wavelet_prior_tiny": _variant(wavelet_prior.WaveletPrior, image_shape=(8, 8), wavelet="haar", levels=2),
    # Student-t potentials on neighbour differences: α and σ per direction, 4 parameters.
    "pairwise_mrf": _variant(pairwise_mrf.PairwiseMRF, image_shape=(64, 64)),
    "pairwise_mrf_tiny": _variant(pairwise_mrf.PairwiseMRF, image_shape=(3, 3)),
    # Schmidt, Gao & Roth 2010's 3×3 FoE: 8 filters (the DCT basis without DC at first) and 8 weights, 80.
    "field_of_experts": _variant(field_of_experts.FieldOfExperts, image_shape=(64, 64), n_filters=8,
                                 filter_shape=(3, 3)),
    # 2 filters of 2×2 on 4×4 images: 2·4 + 2 = 10 parameters.
    "field_of_experts_tiny": _variant(field_of_experts.FieldOfExperts, image_shape=(4, 4), n_filters=2,
                                      filter_shape=(2, 2)),
}


def with_reconstruction(backbone: str, stage: str = "stage2/lcn", decoder_features: int = 32,
                        **backbone_overrides: Any) -> multitask.ReconstructionNet:
  """Zoo classifier `backbone` (with `backbone_overrides`, e.g. dropout_rate) and a decoder from its map
  `stage` back to the image (`models.multitask.ReconstructionNet`)."""
  return multitask.ReconstructionNet(backbone=create(backbone, **backbone_overrides), stage=stage,
                                     decoder_features=decoder_features)


_MULTITASK = {
    # The default experiment's net with a decoder from its second stage (8×8×64 after LCN) back to the
    # 8×8 digit: 3×3 conv 32 → ReLU → 3×3 conv 1; 113,162 + 18,464 + 289 = 131,915 parameters. The
    # multitask_digits config decodes stage1/lcn instead (32 maps: 9,248 + 289), chosen on validation.
    "lcn_convnet_digits_recon": _variant(with_reconstruction, "lcn_convnet_digits"),
    "lcn_convnet_digits_recon_tiny": _variant(with_reconstruction, "lcn_convnet_digits_tiny",
                                              decoder_features=4),
}
for _name, _factory in {**_CONVNETS, **_ENERGY_MODELS, **_AUTOENCODERS, **_GATED_MRFS, **_TILED_GATED_MRFS,
                        **_IMAGE_PRIORS, **_DBN, **_SPARSE_CODING, **_KMEANS, **_MULTITASK}.items():
  MODELS.register(_name, _factory)

# The paper of each family, by module class: (short citation for tables, full reference).
PAPERS: dict[type, tuple[str, str]] = {
    convnets.LeNet5_1998: ("LeCun et al. 1998", "LeCun, Bottou, Bengio & Haffner, \"Gradient-based learning "
                           "applied to document recognition\", Proc. IEEE 1998"),
    convnets.LeNet5: ("LeCun et al. 1998", "LeCun, Bottou, Bengio & Haffner, \"Gradient-based learning applied "
                      "to document recognition\", Proc. IEEE 1998 (modernised: ReLU, max pooling, full C3)"),
    convnets.MultiStageConvNet: ("Jarrett et al. 2009", "Jarrett, Kavukcuoglu, Ranzato & LeCun, \"What is the "
                                 "best multi-stage architecture for object recognition?\", ICCV 2009"),
    convnets.CifarConvNet: ("Krizhevsky 2012", "Krizhevsky, cuda-convnet \"layers-18pct\" (2012); local "
                            "response normalisation as in Krizhevsky, Sutskever & Hinton, NIPS 2012"),
    rbm.RBM: ("Hinton 2002", "Hinton, \"Training products of experts by minimizing contrastive divergence\", "
              "Neural Computation 2002; Salakhutdinov & Murray, \"On the quantitative analysis of deep belief "
              "networks\", ICML 2008"),
    rbm.GaussianRBM: ("Hinton & Salakhutdinov 2006", "Hinton & Salakhutdinov, \"Reducing the dimensionality of "
                      "data with neural networks\", Science 2006"),
    autoencoder.TiedAutoencoder: ("Bengio et al. 2007", "Bengio, Lamblin, Popovici & Larochelle, \"Greedy "
                                  "layer-wise training of deep networks\", NIPS 2007"),
    autoencoder.SparseAutoencoder: ("Ng 2011", "Ng, \"Sparse autoencoder\", CS294A lecture notes, Stanford "
                                    "2011; Lee, Ekanadham & Ng, \"Sparse deep belief net model for visual area "
                                    "V2\", NIPS 2008"),
    autoencoder.ContractiveAutoencoder: ("Rifai et al. 2011", "Rifai, Vincent, Muller, Glorot & Bengio, "
                                         "\"Contractive auto-encoders: explicit invariance during feature "
                                         "extraction\", ICML 2011"),
    autoencoder.DenoisingAutoencoder: ("Vincent et al. 2008", "Vincent, Larochelle, Bengio & Manzagol, "
                                       "\"Extracting and composing robust features with denoising "
                                       "autoencoders\", ICML 2008"),
    sparse_coding.SparseCoding: ("Olshausen & Field 1996", "Olshausen & Field, \"Emergence of simple-cell "
                                 "receptive field properties by learning a sparse code for natural images\", "
                                 "Nature 1996; codes by FISTA (Beck & Teboulle, SIAM J. Imaging Sci. 2009), "
                                 "atoms by online dictionary learning (Mairal et al., ICML 2009)"),
    sparse_coding.PSD: ("Kavukcuoglu et al. 2008", "Kavukcuoglu, Ranzato & LeCun, \"Fast inference in sparse "
                        "coding algorithms with applications to object recognition\", CBLL-TR-2008-12-01, 2008"),
    kmeans.KMeans: ("Coates et al. 2011", "Coates, Lee & Ng, \"An analysis of single-layer networks in "
                    "unsupervised feature learning\", AISTATS 2011; spherical k-means as in Coates & Ng, "
                    "\"Learning feature representations with K-means\", Neural Networks: Tricks of the Trade, 2012"),
    with_reconstruction: ("Ranzato & Szummer 2008", "Ranzato & Szummer, \"Semi-supervised learning of compact "
                          "document representations with deep networks\", ICML 2008 (a classifier trained "
                          "with a reconstruction task on unlabelled data)"),
    dbn.DBNClassifier: ("Hinton et al. 2006", "Hinton, Osindero & Teh, \"A fast learning algorithm for deep "
                        "belief nets\", Neural Computation 2006"),
    gated_mrf.MCRBM: ("Ranzato & Hinton 2010", "Ranzato & Hinton, \"Modeling pixel means and covariances using "
                      "factorized third-order Boltzmann machines\", CVPR 2010"),
    gated_mrf.MPoT: ("Ranzato et al. 2010", "Ranzato, Mnih & Hinton, \"Generating more realistic images using "
                     "gated MRF's\", NIPS 2010"),
    stationary_gaussian.StationaryGaussian: ("Field 1987", "Field, \"Relations between the statistics of "
                                             "natural images and the response properties of cortical cells\", "
                                             "JOSA A 1987 (the 1/f power spectrum); a periodic stationary Gaussian"),
    wavelet_prior.WaveletPrior: ("Simoncelli 2005", "Simoncelli, \"Statistical modeling of photographic "
                                 "images\", Handbook of Image and Video Processing, 2005 (generalised-Gaussian "
                                 "marginals of an orthogonal wavelet pyramid)"),
    pairwise_mrf.PairwiseMRF: ("Geman & Geman 1984", "Geman & Geman, \"Stochastic relaxation, Gibbs "
                               "distributions, and the Bayesian restoration of images\", PAMI 1984; Student-t "
                               "potentials as compared by Schmidt, Gao & Roth, CVPR 2010"),
    field_of_experts.FieldOfExperts: ("Roth & Black 2005", "Roth & Black, \"Fields of Experts: a framework "
                                      "for learning image priors\", CVPR 2005; Schmidt, Gao & Roth, \"A "
                                      "generative perspective on MRFs in low-level vision\", CVPR 2010"),
    tiled_gated_mrf.TiledMCRBM: ("Ranzato et al. 2013", "Ranzato, Mnih, Susskind & Hinton, \"Modeling natural "
                                 "images using gated MRFs\", PAMI 2013"),
}


def names() -> list[str]:
  """Names of every registered model variant, sorted."""
  return MODELS.names()


def family(name: str) -> type:
  """The module class (or factory) of variant `name`: its partials unwrapped."""
  target = MODELS.get(name)
  while isinstance(target, functools.partial):
    target = target.func
  return target


def is_family(name: str, cls: type) -> bool:
  """Whether variant `name` builds a `cls` (its family is `cls` or a subclass; a factory is no class)."""
  target = family(name)
  return isinstance(target, type) and issubclass(target, cls)


def names_of(cls: type) -> list[str]:
  """The variants that build a `cls`, sorted."""
  return [name for name in names() if is_family(name, cls)]


def fields(name: str) -> list[str] | None:
  """The overridable fields of model `name` (None when its factory accepts any keyword)."""
  target = family(name)
  if isinstance(target, type) and dataclasses.is_dataclass(target):
    return [f.name for f in dataclasses.fields(target)
            if f.init and f.name not in ("parent", "name")]
  parameters = inspect.signature(target).parameters.values()
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
    return None
  return [p.name for p in parameters]


def create(name: str, **overrides: Any) -> nn.Module:
  """Returns the Linen module of variant `name` with `overrides` replacing its fields.

  Raises:
    UnknownNameError: (a KeyError) for an unregistered name; the message lists the names.
    ValueError: for an override that is not a field of the model, naming the valid fields, or
      for a field value the model rejects.
  """
  valid = fields(name)
  if valid is not None:
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
      raise ValueError(f"unknown field{'s' if len(unknown) > 1 else ''} "
                       f"{', '.join(map(repr, unknown))} for model {name!r}; valid fields: "
                       f"{', '.join(valid)}")
  # Config files often hold lists; tuples keep the module hashable (a valid jit static arg).
  overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
  return MODELS.get(name)(**overrides)


def count_params(params: Any) -> int:
  """Number of scalars in a pytree of arrays (or of `jax.ShapeDtypeStruct`s)."""
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))


def layer_param_counts(params: Any) -> dict[str, int]:
  """Parameter count per top-level entry of `params` (one entry per layer), in order."""
  return {layer: count_params(tree) for layer, tree in params.items()}


def example_input(model: nn.Module) -> jax.ShapeDtypeStruct:
  """A batch of one float32 input for `model` (from `input_shape`, or `n_visible`)."""
  if getattr(model, "input_shape", None) is not None:
    return jax.ShapeDtypeStruct((1, *model.input_shape), jnp.float32)
  if getattr(model, "n_visible", None) is not None:
    return jax.ShapeDtypeStruct((1, model.n_visible), jnp.float32)
  raise ValueError(f"cannot build an input for {type(model).__name__}: it has neither "
                   "input_shape nor n_visible")


def _key_order(tree: Any) -> Any:
  """The nested dict/tuple skeleton of tree with its keys in insertion order."""
  if isinstance(tree, dict):
    return {key: _key_order(value) for key, value in tree.items()}
  if isinstance(tree, tuple):
    return tuple(_key_order(value) for value in tree)
  return None


def _traced(fn: Callable[[], Any], order: list) -> Callable[[], Any]:
  """Wraps fn to record, while it is traced, the insertion order of the dicts it returns.

  `jax.eval_shape` returns dicts with sorted keys; layers read better in the order they run.
  """

  def wrapped():
    out = fn()
    order.append(_key_order(out))
    return out

  return wrapped


def _keys_in_order(skeleton: Any, fallback: dict) -> list[str]:
  ok = isinstance(skeleton, dict) and set(skeleton) == set(fallback)
  return list(skeleton) if ok else list(fallback)


def abstract_variables(model: nn.Module, key_order: list | None = None) -> dict[str, Any]:
  """The shapes of `model.init`'s variables, without computing them.

  If `key_order` is a list, the dict skeleton of the variables in creation order is appended.
  """
  x = example_input(model)
  init = lambda: model.init(jax.random.key(0), jnp.zeros(x.shape, x.dtype))
  return jax.eval_shape(init if key_order is None else _traced(init, key_order))


def _shapes(tree: Any) -> str:
  leaves = jax.tree_util.tree_leaves_with_path(tree)
  if len(leaves) > 3:
    return f"{len(leaves)} arrays"
  return ", ".join(
      f"{jax.tree_util.keystr(path, simple=True, separator='/')} {tuple(leaf.shape)}".strip()
      for path, leaf in leaves)


def paper(name: str, full: bool = False) -> str:
  """The paper of variant `name`'s family: a short citation, or the full reference if `full`."""
  short, reference = PAPERS.get(family(name), ("", ""))
  return reference if full else short


def describe(name: str, **overrides: Any) -> str:
  """The parameters of each layer of variant `name`, their total, the activation shapes, the output,
  the default input shape and the paper, from shapes alone.

  `deepvision.pretrained.describe` adds the forward FLOPs and, for a shipped model, its data set and metric.
  """
  model = create(name, **overrides)
  x = example_input(model)
  init_order: list = []
  variables = abstract_variables(model, init_order)
  params = variables.get("params", {})
  counts = layer_param_counts(params)
  counts = {k: counts[k] for k in _keys_in_order(init_order[0].get("params"), counts)}
  width = max([len(layer) for layer in counts] + [len("total")])
  lines = [f"{name} ({type(model).__name__}), input {x.shape}",
           f"{'layer':<{width}}  {'parameters':>10}  shapes"]
  lines += [f"{layer:<{width}}  {count:>10,}  {_shapes(params[layer])}"
            for layer, count in counts.items()]
  lines.append(f"{'total':<{width}}  {sum(counts.values()):>10,}")
  apply_order: list = []
  zeros = lambda tree: jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), tree)
  outputs = jax.eval_shape(_traced(lambda: model.apply(*zeros((variables, x))), apply_order))
  if isinstance(outputs, tuple) and len(outputs) == 2 and isinstance(outputs[1], dict):
    lines.append("activations:")
    keys = _keys_in_order(apply_order[0][1], outputs[1])
    lines += [f"  {key} {tuple(outputs[1][key].shape)}" for key in keys]
    outputs = outputs[0]
  lines.append(f"output {jax.tree.map(lambda a: tuple(a.shape), outputs)}")
  lines.append(f"default input shape {tuple(x.shape[1:])} (one example)")
  lines.append(f"paper: {paper(name, full=True)}")
  return "\n".join(lines)
