r"""Sparse coding of 8×8 natural-image patches: FISTA codes, online dictionary learning, unit-norm atoms.

  python -m experiments.main --config=experiments/configs/sparse_coding_patches.py --workdir=runs/sparse_coding

40,000 random 8×8 patches of 14 embedded photographs (`dv_natural_images`), each patch's mean removed,
PCA-whitened keeping 99% of the variance (K = 52 components, ε = 0.01 added to the eigenvalues); validation
and test patches come from two held-out photographs. 128 atoms, λ = 0.5, training codes by FISTA to a
relative change of 1e-3 (at most 500 steps), mini-batches of 256 through Mairal et al.'s online update,
5 epochs. The final record holds the held-out
lasso objective and the localisation and orientation selectivity of the atoms and of the PCA components;
`filters.png` shows the atoms in pixel space. Cost on a 2-core CPU: about a minute; `:smoke` runs in seconds.
"""

from deepvision import schema
from deepvision.train import sparse_coding
from experiments.configs import common


def get_config(arg: str | None = None):
  smoke = common.check_arg(arg, "sparse_coding_patches")
  config = sparse_coding_config("sparse_coding", smoke)
  return common.locked(config)


def sparse_coding_config(model: str, smoke: bool):
  """The config shared by sparse coding and PSD on whitened natural-image patches."""
  config = schema.defaults(sparse_coding.SparseCodingConfig)
  config.model = model
  common.natural_image_patches(config)
  config.preprocess = "whiten"
  # ε = 0.01 on the eigenvalues (0.10 … 0.0005) damps the directions of least variance, which whitening would
  # otherwise blow up into pixel noise and quantisation artefacts (the low-pass of Olshausen & Field's filter).
  config.whiten.epsilon = 0.01
  config.batch_size = 256
  config.num_epochs = 5
  config.steps_per_dispatch = 8
  if smoke:
    config.model = f"{model}_tiny"
    config.patches.size = 4
    config.patches.num_train = 1024
    config.patches.num_eval = 256
    config.whiten.variance = 0.9
    config.model_kwargs.n_visible = 8  # K of 4×4 patches whitened to 90% of the variance
    config.model_kwargs.n_atoms = 12
    config.model_kwargs.tol = 1e-5
    config.model_kwargs.max_iter = 300
    config.num_epochs = 2
    config.steps_per_dispatch = 4
  return config
