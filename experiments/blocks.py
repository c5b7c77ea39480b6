"""The config blocks of the multi-stage pipelines: every field, its default and its check (`deepvision.schema`).

The config files start these blocks from `schema.defaults(Block)`; each pipeline reads its blocks back
once with `schema.load`, which names the field, the value and what is accepted before any compute. The
checks that need the model or the data (tile geometry, image sizes) stay with the pipeline.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from deepvision.config_blocks import ContrastiveSettings, GatedMRF, LogLikelihood, Optimizer, SupervisedOptimizer
from deepvision.estimators.occlusion import BASELINE_FILLS, MASKS, SAMPLERS
from deepvision.schema import at_least, boolean, distinct, integers, numbers, one_of, real, spec, text

HMC_STEP_SIZE = real(0.001, 0.25)  # the range HMC's step-size adaptation keeps to


# ----------------------------------------------------------------------------- dbn


@dataclasses.dataclass(frozen=True)
class Dbn:
  """`dbn`: the RBMs stacked greedily (experiments/dbn.py)."""

  hidden: tuple = spec((256, 256), integers(1, allow_empty=False, each="one per layer"), "n_hidden, bottom first")
  num_epochs: tuple = spec((), integers(1, each="one per layer"), "() = config.num_epochs for every layer")
  num_samples: int = spec(100, at_least(1), "samples.png")
  sample_gibbs_steps: int = spec(1000, at_least(0), "Gibbs transitions in the top RBM per sample")

  def __post_init__(self):
    if self.num_epochs and len(self.num_epochs) != len(self.hidden):
      raise ValueError(f"num_epochs must be empty (config.num_epochs for every layer) or give one value per "
                       f"layer ({len(self.hidden)} for hidden={self.hidden}), got {self.num_epochs!r}")


@dataclasses.dataclass(frozen=True)
class Finetune:
  """`finetune`: the stack fine-tuned as a classifier, beside the same classifier from random weights."""

  num_epochs: int = spec(50, at_least(1))
  batch_size: int = spec(32, at_least(1))
  compare_scratch: bool = spec(True, boolean, "also train the same classifier from random weights")
  checkpoint_every_steps: int = spec(0, at_least(0), "0 = only at the end")
  optimizer: SupervisedOptimizer = spec(SupervisedOptimizer(learning_rate=0.1, schedule="cosine", nesterov=True,
                                                            weight_decay=1e-4))


# ----------------------------------------------------------------------------- deep_gmrf


@dataclasses.dataclass(frozen=True)
class DeepRbm:
  """`deep.rbm`: how the binary RBMs above the gated MRF train."""

  batch_size: int = spec(100, at_least(1))
  num_epochs: Any = spec(10, integers(1, allow_empty=False, each="one for every RBM or one per RBM"))
  contrastive: ContrastiveSettings = spec(ContrastiveSettings())
  optimizer: Optimizer = spec(Optimizer(learning_rate=0.01))
  log_likelihood: LogLikelihood = spec(LogLikelihood(method="ais", ais_temperatures=1000))

  def epochs(self, layers: int) -> tuple[int, ...]:
    """The epochs of each of `layers` RBMs."""
    epochs = self.num_epochs if isinstance(self.num_epochs, tuple) else (self.num_epochs,)
    return epochs * layers if len(epochs) == 1 else epochs


@dataclasses.dataclass(frozen=True)
class Deep:
  """`deep`: the RBMs stacked on the gated MRF's codes, and how the deep model is sampled."""

  hidden: tuple = spec((128, 64), integers(1, allow_empty=False, each="one per RBM layer"))
  rbm: DeepRbm = spec(DeepRbm())
  num_samples: int = spec(64, at_least(1))
  top_gibbs_steps: int = spec(1000, at_least(0), "Gibbs steps in the top RBM")
  mean_field: bool = spec(False, boolean, "the top-down pass with probabilities, not samples")
  layer_one_figures: bool = spec(True, boolean, "layer 1 draws its own figures (filters, pooling, samples)")
  gmrf_trajectories: int = spec(200, at_least(1), "HMC trajectories of the gated MRF alone")
  hmc_steps: int = spec(100, at_least(1), "HMC trajectories on p(x | h)")
  hmc_burn_in: int = spec(50, at_least(0), "of them adapting the step size")
  hmc_leapfrog: int = spec(20, at_least(1))
  hmc_step_size: float = spec(0.05, HMC_STEP_SIZE)

  def __post_init__(self):
    if self.hmc_burn_in >= self.hmc_steps:
      raise ValueError(f"hmc_burn_in must be < hmc_steps={self.hmc_steps}, got {self.hmc_burn_in}")
    epochs = self.rbm.num_epochs
    if isinstance(epochs, tuple) and len(epochs) not in (1, len(self.hidden)):
      raise ValueError(f"rbm.num_epochs must be one int or one per RBM ({len(self.hidden)} for "
                       f"hidden={self.hidden}), got {epochs!r}")


@dataclasses.dataclass(frozen=True)
class Tiled:
  """`tiled`: a tiled mcRBM trained on crops of the photographs, then sampled at a larger size."""

  enabled: bool = spec(True, boolean)
  model: str = spec("tiled_mcrbm", text)
  model_kwargs: dict = spec(dict(patch_size=8, stride=4, n_factors=64, n_cov=16, n_mean=32,
                                 pooling_init="topographic", input_norm="original"), None)
  crop_size: int = spec(32, at_least(1))
  remove_dc: bool = spec(True, boolean, "each crop's mean removed")
  pixel_std: float = spec(0.3, real(0.0, 100.0, low_open=True, high_open=True),
                          "pixels scaled to this standard deviation (the model's precision is >= I)")
  num_crops: int = spec(5000, at_least(1))
  num_eval_crops: int = spec(500, at_least(1))
  batch_size: int = spec(50, at_least(1))
  num_epochs: int = spec(10, at_least(1))
  contrastive: ContrastiveSettings = spec(ContrastiveSettings(sampler="hmc", sampler_options=dict(
      num_leapfrog=20, initial_step_size=0.01, target_rejection=0.1)))
  optimizer: Optimizer = spec(Optimizer(learning_rate=0.001, schedule="inverse_epoch", weight_decay=0.0, l1=0.001))
  gated_mrf: GatedMRF = spec(GatedMRF(pooling_frozen_epochs=3))
  sample_shape: tuple = spec((64, 64), integers(1), "(height, width) of the large samples")
  num_large: int = spec(4, at_least(1))
  sample_trajectories: int = spec(1000, at_least(0))
  sample_leapfrog: int = spec(20, at_least(1))


# ----------------------------------------------------------------------------- occlusion


@dataclasses.dataclass(frozen=True)
class Occlusion:
  """`occlusion`: how test images are occluded, filled and classified (`estimators.occlusion`)."""

  masks: tuple = spec(("none", "left_half", "random_square"), distinct(MASKS))
  square_size: float = spec(0.5, real(0.0, low_open=True), "random_square's side: int pixels or a fraction "
                                                           "of the shorter side")
  baseline_fill: str = spec("mean", one_of(BASELINE_FILLS))
  sampler: str = spec("hmc", one_of(SAMPLERS))
  num_steps: int = spec(300, at_least(1), "the sampler's transitions in all")
  burn_in: int = spec(100, at_least(0), "the first ones, discarded")
  num_leapfrog: int = spec(20, at_least(1), "HMC")
  step_size: float = spec(0.1, HMC_STEP_SIZE, "HMC, adapted during burn-in")
  gaussian_ridge: float = spec(1e-3, real(0.0))
  l2: tuple = spec((1e-2, 1e-3, 1e-4, 1e-5), numbers(0.0, allow_empty=False), "the classifiers' L2 grid")
  num_shown: int = spec(8, at_least(1), "images per row of occlusion.png")
  model_figures: bool = spec(True, boolean, "the gated MRF's own figures in workdir/model")

  def __post_init__(self):
    if self.burn_in >= self.num_steps:
      raise ValueError(f"burn_in={self.burn_in} must be smaller than num_steps={self.num_steps} (the "
                       "transitions in all, the first burn_in discarded)")


# ----------------------------------------------------------------------------- gmrf_images

#: The whole-image models of `gmrf_images`, in the order of the talk's comparison.
IMAGE_MODELS = ("stationary_gaussian", "wavelet_prior", "pairwise_mrf", "field_of_experts", "tiled_mcrbm")
#: Those fitted in closed form (maximum likelihood, `Model.fit`) and sampled exactly.
CLOSED_FORM_IMAGE_MODELS = ("stationary_gaussian", "wavelet_prior")


@dataclasses.dataclass(frozen=True)
class ImageModels:
  """`images`: the whole-image models fitted to the photographs, sampled and compared (experiments/gmrf_images.py)."""

  models: tuple = spec(IMAGE_MODELS, distinct(IMAGE_MODELS), "tiled_mcrbm is trained as config.tiled says")
  size: int = spec(64, at_least(8), "side of the samples, the fitting crops and the held-out crops")
  num_fit_crops: int = spec(1000, at_least(2), "size² training crops for the closed-form fits")
  crop_size: int = spec(32, at_least(4), "side of the training crops of the PCD-trained models")
  num_crops: int = spec(2000, at_least(1), "crop_size² training crops of the PCD-trained models")
  batch_size: int = spec(50, at_least(1))
  num_epochs: int = spec(10, at_least(1))
  learning_rate: float = spec(3e-5, real(0.0, low_open=True), "SGD, momentum 0.5: the energies sum over pixels")
  initial_step_size: float = spec(0.05, HMC_STEP_SIZE, "HMC of the persistent chains, adapted")
  num_reference: int = spec(64, at_least(2), "held-out size² crops the statistics compare with")
  num_samples: int = spec(8, at_least(2), "samples of each model")
  sample_trajectories: int = spec(1000, at_least(0), "HMC trajectories from white noise (learned models)")
  sample_leapfrog: int = spec(20, at_least(1))
  tiled_whitening: bool = spec(True, boolean, "the tiled mcRBM sees crops whitened by the stationary Gaussian "
                                             "(a convolution), scaled to tiled.pixel_std; its samples coloured back")
  denoise_sigma: float = spec(25 / 255, real(0.0, low_open=True), "noise std in pixel units ([0, 1])")
  num_denoise: int = spec(8, at_least(1), "held-out size² crops denoised")
  denoise_steps: int = spec(200, at_least(1), "L-BFGS iterations of MAP denoising")
