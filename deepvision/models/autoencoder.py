r"""Tied-weight autoencoders: plain, denoising, sparse and contractive.

One hidden layer of sigmoid units whose decoder reuses the encoder's weights (W, b_v, b_h and the sizes
`n_visible`, `n_hidden`, as an RBM's). A corrupted input x̃ is encoded and the clean x decoded:

  h = σ(x̃ W + b_h),   x̂ = σ(h Wᵀ + b_v)  (decoder 'sigmoid'),   x̂ = h Wᵀ + b_v  (decoder 'linear'),

  L(x) = −Σ_i [x_i log x̂_i + (1 − x_i) log(1 − x̂_i)]   (sigmoid: inputs in [0, 1]),
  L(x) = ½ Σ_i (x_i − x̂_i)²                              (linear: real-valued inputs, e.g. whitened patches),

and the training objective is the batch mean of L plus the variant's penalty on the code (`objective`):

* `TiedAutoencoder`: none (Bengio, Lamblin, Popovici & Larochelle 2007).
* `DenoisingAutoencoder`: none; the corruption does the regularising (Vincent, Larochelle, Bengio & Manzagol
  2008): masking noise zeroes each input with probability p (`corrupt`), Gaussian noise adds N(0, σ²)
  (`gaussian_noise`; Vincent et al. 2010).
* `SparseAutoencoder`: β Σ_j KL(ρ ‖ ρ̂_j), ρ̂_j the batch mean of h_j, ρ the target activation
  (`kl_sparsity`; Ng's CS294A notes, after Lee, Ekanadham & Ng 2008).
* `ContractiveAutoencoder`: λ ‖J(x̃)‖²_F with J = ∂h/∂x̃, in closed form for sigmoid units (`contraction`;
  Rifai, Vincent, Muller, Glorot & Bengio 2011).

The features are h of the clean input (`hidden_probs`), so a trained autoencoder stacks like an RBM
(`deepvision.models.dbn.feature_data`, `classifier_params_from_stack`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

Array = jax.Array
DECODERS = ("sigmoid", "linear")
# ρ̂ is kept this far inside (0, 1) so that a saturated unit gives a large, finite KL penalty.
_KL_MARGIN = 1e-6


def corrupt(key: Array, x: Array, rate: float) -> Array:
  """x with each entry set to 0 with probability `rate` (masking noise)."""
  return jnp.where(jax.random.bernoulli(key, rate, x.shape), 0.0, x)


def gaussian_noise(key: Array, x: Array, std: float) -> Array:
  """x + ε with ε ~ N(0, std²) independently per entry (additive isotropic Gaussian noise)."""
  return x + std * jax.random.normal(key, x.shape, x.dtype)


def corrupt_input(key: Array, x: Array, rate: float, std: float) -> Array:
  """Masking noise at `rate`, then Gaussian noise of `std` (either may be 0: no such noise)."""
  mask_key, noise_key = jax.random.split(key)
  x = corrupt(mask_key, x, rate) if rate > 0 else x
  return gaussian_noise(noise_key, x, std) if std > 0 else x


def kl_sparsity(h: Array, target: float) -> Array:
  r"""Σ_j KL(ρ ‖ ρ̂_j) = Σ_j [ρ log(ρ / ρ̂_j) + (1 − ρ) log((1 − ρ) / (1 − ρ̂_j))], ρ̂_j = mean_n h_nj.

  The KL divergence between Bernoulli(ρ) and Bernoulli(ρ̂_j), summed over the hidden units; zero exactly
  when every unit's mean activation over the batch equals the target ρ ∈ (0, 1). ρ̂ is clipped to
  [1e-6, 1 − 1e-6].
  """
  rho_hat = jnp.clip(jnp.mean(h, axis=0), _KL_MARGIN, 1.0 - _KL_MARGIN)
  return jnp.sum(target * jnp.log(target / rho_hat) + (1 - target) * jnp.log((1 - target) / (1 - rho_hat)))


def contraction(h: Array, W: Array) -> Array:
  r"""‖J‖²_F per example, J_ji = ∂h_j/∂x_i = h_j(1 − h_j) W_ij for h = σ(x W + b_h):

    ‖J‖²_F = Σ_j (h_j (1 − h_j))² Σ_i W_ij²   (Rifai et al. 2011, eq. 5).

  Args:
    h: (B, n_hidden) sigmoid activations.
    W: (n_visible, n_hidden) encoder weights.
  """
  return jnp.square(h * (1 - h)) @ jnp.sum(jnp.square(W), axis=0)


class TiedAutoencoder(nn.Module):
  """One hidden layer of `n_hidden` sigmoid units, decoder weights tied to the encoder's.

  Attributes:
    n_visible: input size (inputs of any shape with that many elements are flattened).
    n_hidden: hidden units.
    decoder: 'sigmoid' (cross-entropy, inputs in [0, 1]) or 'linear' (squared error, real inputs).
    init_scale: standard deviation of the initial W.
  """

  n_visible: int
  n_hidden: int
  decoder: str = "sigmoid"
  init_scale: float = 0.01

  def setup(self):
    if self.decoder not in DECODERS:
      raise ValueError(f"decoder must be one of {', '.join(map(repr, DECODERS))}, got {self.decoder!r}")
    self.W = self.param("W", nn.initializers.normal(self.init_scale), (self.n_visible, self.n_hidden))
    self.b_v = self.param("b_v", nn.initializers.zeros, (self.n_visible,))
    self.b_h = self.param("b_h", nn.initializers.zeros, (self.n_hidden,))

  def _flat(self, x: Array) -> Array:
    x = jnp.reshape(x, (x.shape[0], self.n_visible))
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)

  def hidden_probs(self, x: Array) -> Array:
    """h = σ(x W + b_h): the features."""
    return jax.nn.sigmoid(self._flat(x) @ self.W + self.b_h)

  def reconstruction_logits(self, x: Array) -> Array:
    """h Wᵀ + b_v for h = `hidden_probs(x)`: x̂ itself for the linear decoder, σ of it for the sigmoid one."""
    return self._decode(self.hidden_probs(x))

  def _decode(self, h: Array) -> Array:
    return h @ self.W.T + self.b_v

  def _output(self, logits: Array) -> Array:
    return jax.nn.sigmoid(logits) if self.decoder == "sigmoid" else logits

  def reconstruct(self, x: Array) -> Array:
    """x̂ of `x`, flattened (B, n_visible)."""
    return self._output(self.reconstruction_logits(x))

  def reconstruction_loss(self, clean: Array, corrupted: Array) -> Array:
    """Per example, L(clean) for the reconstruction of `corrupted`: cross-entropy or ½ squared error."""
    logits, target = self.reconstruction_logits(corrupted), self._flat(clean)
    if self.decoder == "sigmoid":
      return optax.sigmoid_binary_cross_entropy(logits, target).sum(-1)
    return 0.5 * jnp.sum(jnp.square(target - logits), axis=-1)

  def penalty(self, corrupted: Array) -> Array:
    """The variant's penalty on the code of `corrupted` for the whole batch (a scalar; 0 here)."""
    return jnp.zeros((), self.W.dtype)

  def objective(self, clean: Array, corrupted: Array) -> tuple[Array, dict[str, Array]]:
    """The training objective, mean L + penalty, and its parts {'recon_loss', 'penalty'}."""
    recon = jnp.mean(self.reconstruction_loss(clean, corrupted))
    penalty = self.penalty(corrupted)
    return recon + penalty, {"recon_loss": recon, "penalty": penalty}

  def __call__(self, x: Array, train: bool = False) -> tuple[Array, dict[str, Array]]:
    """The reconstruction x̂ of `x` (uncorrupted), with the features as the intermediate 'hidden'."""
    del train
    h = self.hidden_probs(x)
    return self._output(self._decode(h)), {"hidden": h}


class DenoisingAutoencoder(TiedAutoencoder):
  """A `TiedAutoencoder` trained on corrupted inputs (the trainer's `corruption` and `noise_std`)."""


class SparseAutoencoder(TiedAutoencoder):
  """Penalty β Σ_j KL(ρ ‖ ρ̂_j) (`kl_sparsity`): each unit active on a fraction ρ of the batch.

  Attributes:
    sparsity_target: ρ ∈ (0, 1).
    sparsity_weight: β ≥ 0.
  """

  sparsity_target: float = 0.05
  sparsity_weight: float = 0.1

  def penalty(self, corrupted: Array) -> Array:
    if not 0.0 < self.sparsity_target < 1.0:
      raise ValueError(f"sparsity_target must lie in (0, 1), got {self.sparsity_target!r}")
    return self.sparsity_weight * kl_sparsity(self.hidden_probs(corrupted), self.sparsity_target)


class ContractiveAutoencoder(TiedAutoencoder):
  """Penalty λ mean_n ‖∂h/∂x (x̃_n)‖²_F (`contraction`): features insensitive to small input changes.

  Attributes:
    contraction_weight: λ ≥ 0.
  """

  contraction_weight: float = 0.1

  def penalty(self, corrupted: Array) -> Array:
    return self.contraction_weight * jnp.mean(contraction(self.hidden_probs(corrupted), self.W))
