"""AIS: against exact log Z of a trained 64×12 RBM and of small random models; the core on Gaussians."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from deepvision.data import datasets
from deepvision.estimators import ais, energy_metrics, partition
from deepvision.models.rbm import RBM, GaussianRBM
from deepvision.samplers.gibbs import block_gibbs
from rbm_testing import random_variables


def train_pcd(model, data, key, steps=1000, batch=100, learning_rate=0.1):
  """PCD-1 (Tieleman 2008): minimise mean F(data) − mean F(negatives) with persistent Gibbs chains."""
  variables = model.init(jax.random.fold_in(key, 0), data[:1], method="free_energy")
  optimizer = optax.sgd(learning_rate, momentum=0.5)

  def surrogate(variables, positives, negatives):
    free_energy = lambda v: model.apply(variables, v, method="free_energy")  # noqa: E731
    return jnp.mean(free_energy(positives)) - jnp.mean(free_energy(jax.lax.stop_gradient(negatives)))

  def update(carry, t):
    variables, opt_state, chains = carry
    step_key = jax.random.fold_in(key, t + 1)
    rows = jax.random.choice(jax.random.fold_in(step_key, 0), data.shape[0], (batch,), replace=False)
    sampler = block_gibbs(model, variables)
    negatives, _ = sampler.step(jax.random.fold_in(step_key, 1), sampler.init(chains))
    grads = jax.grad(surrogate)(variables, data[rows], negatives.position)
    updates, opt_state = optimizer.update(grads, opt_state, variables)
    return (optax.apply_updates(variables, updates), opt_state, negatives.position), None

  @jax.jit
  def run(variables):
    chains = jax.random.bernoulli(jax.random.fold_in(key, -1 % 2 ** 32), 0.5,
                                  (batch, model.n_visible)).astype(data.dtype)
    (variables, _, _), _ = jax.lax.scan(update, (variables, optimizer.init(variables), chains),
                                        jnp.arange(steps))
    return variables

  return run(variables)


@pytest.fixture(scope="module")
def digits_rbm():
  images, _ = datasets.load_arrays("dv_digits", "train")
  data = jnp.asarray(images.reshape(len(images), 64))
  model = RBM(n_visible=64, n_hidden=12)
  return model, train_pcd(model, data, jax.random.key(0)), data


def test_ais_matches_exact_log_z_of_a_trained_digits_rbm(digits_rbm):
  model, variables, data = digits_rbm
  exact = float(partition.log_partition(model, variables))  # enumerates the 12 hidden units
  result = ais.ais_log_partition(model, variables, jax.random.key(1), data=data)
  # The trained model is far from the base-rate model AIS starts from (8.4 nats when written;
  # the exact log-likelihood beats the base rate's by 2.1 nats per image).
  assert exact - result.log_z_base > 5.0
  assert float(jnp.abs(variables["params"]["W"]).max()) > 1.0
  base_rate_ll = float(jnp.mean(data @ ais.base_rate_biases(data)) - jnp.sum(
      jax.nn.softplus(ais.base_rate_biases(data))))
  assert float(partition.exact_log_likelihood(model, variables, data)) > base_rate_ll + 1.5
  # Default settings: Salakhutdinov's 14,501 temperatures and 100 runs.
  assert result.num_temperatures == 14501 and result.log_weights.shape == (100,)
  # Measured: 0.001 nats from the exact log Z, standard error 0.005, ±3σ interval 0.028 wide. The bounds
  # leave four standard errors: another floating-point path draws other chains, not a better estimator.
  assert abs(result.log_z - exact) <= 0.02, (result.log_z, exact)
  assert abs(result.log_z - exact) <= 4 * result.log_z_std + 0.01
  assert result.log_z_lower < result.log_z < result.log_z_upper
  assert result.log_z_upper - result.log_z_lower < 0.05, (result.log_z_lower, result.log_z_upper)


def test_ais_without_data_starts_from_the_uniform_model():
  model = RBM(n_visible=10, n_hidden=8)
  variables = random_variables(model, seed=2)
  exact = float(partition.log_partition(model, variables))
  result = ais.ais_log_partition(model, variables, jax.random.key(3), betas=ais.linear_betas(1000))
  assert result.log_z_base == pytest.approx(18 * math.log(2), rel=1e-6)  # b_A = 0
  assert abs(result.log_z - exact) <= 0.05, (result.log_z, exact)


def test_ais_matches_exact_log_z_of_a_gaussian_rbm():
  model = GaussianRBM(n_visible=6, n_hidden=4, learn_sigma=True)
  variables = random_variables(model, seed=4, scale=0.7)
  exact = float(partition.log_partition(model, variables))
  result = ais.ais_log_partition(model, variables, jax.random.key(5), betas=ais.linear_betas(1000))
  sigma = jnp.exp(variables["params"]["log_sigma"])
  assert result.log_z_base == pytest.approx(
      float(jnp.sum(jnp.log(jnp.sqrt(2 * jnp.pi) * sigma)) + 4 * math.log(2)), rel=1e-6)
  assert exact - result.log_z_base > 3.0
  assert abs(result.log_z - exact) <= 0.05, (result.log_z, exact)


def test_core_with_exact_transitions_on_gaussians():
  # f_β(x) = exp(−λ_β x²/2), λ_β = (1 − β)·1 + β·4: from N(0, 1) to N(0, 1/4); transitions draw
  # exactly from p_β, so the estimate is unbiased and log Z_1 = log √(2π/4).
  def log_f(beta, x):
    return -0.5 * ((1 - beta) + 4 * beta) * x ** 2

  def transition(key, beta, x):
    return jax.random.normal(key, x.shape) / jnp.sqrt((1 - beta) + 4 * beta)

  x0 = jax.random.normal(jax.random.key(6), (4000,))
  log_z_base = 0.5 * math.log(2 * math.pi)
  run = jax.jit(ais.annealed_importance_sampling, static_argnums=(2, 3))  # betas traced
  log_w = run(jax.random.key(7), x0, log_f, transition, ais.linear_betas(50), log_z_base)
  result = ais.summarize_log_weights(log_w)
  assert result.log_z == pytest.approx(0.5 * math.log(2 * math.pi / 4), abs=4 * result.log_z_std)
  assert result.log_z_std < 0.005
  # Two temperatures: plain importance sampling with weights f_1(x)/p_0(x), x ~ N(0, 1).
  log_w = ais.annealed_importance_sampling(jax.random.key(8), x0, log_f, transition, [0.0, 1.0],
                                           log_z_base)
  np.testing.assert_allclose(log_w, log_z_base - 1.5 * x0 ** 2, rtol=1e-6)


def test_core_sums_many_small_increments_without_rounding_drift():
  # 10⁵ float32 increments (β_k − β_{k−1})·c telescope to exactly c; plain float32 summation
  # drifts by ~2e-4 here, the compensated sum must not.
  c = 1.2345678
  increment = lambda beta_prev, beta, x: (beta - beta_prev) * jnp.full(x.shape, c)  # noqa: E731
  log_w = jax.jit(lambda: ais.annealed_importance_sampling(
      jax.random.key(0), jnp.zeros(3), None, lambda key, beta, x: x, ais.linear_betas(100_001), 0.0,
      log_weight_increment=increment))()
  assert log_w.dtype == jnp.float32
  np.testing.assert_allclose(log_w, c, rtol=1e-6)


@pytest.mark.parametrize("beta_prev, beta, logit_scale", [(0.9, 0.9 + 1e-5, 20.0), (0.0, 1.0, 200.0),
                                                            (0.5, 0.49, 5.0)])
def test_softplus_increments_match_float64(beta_prev, beta, logit_scale):
  logits = (logit_scale * np.random.default_rng(0).normal(size=(4, 300))).astype(np.float32)
  b_prev, b = np.float32(beta_prev), np.float32(beta)
  x = logits.astype(np.float64)
  exact = (np.logaddexp(0, float(b) * x) - np.logaddexp(0, float(b_prev) * x)).sum(1)
  got = np.asarray(jax.jit(ais.softplus_increments)(b_prev, b, logits), np.float64)
  assert np.all(np.isfinite(got))
  # The increment keeps its own relative precision: a plain float32 difference of the two sums of
  # 300 softplus values errs by 7e-3 (relative) in the first case and 2e-5 in the third.
  np.testing.assert_allclose(got, exact, rtol=1e-6)


def test_summary_closed_forms():
  result = ais.summarize_log_weights(np.log([1.0, 2.0, 3.0]) + 1000.0, log_z_base=1.5,
                                     num_temperatures=7)
  assert result.log_z == pytest.approx(1000.0 + math.log(2.0), abs=1e-12)  # stable at e^1000
  assert result.log_z_std == pytest.approx(1.0 / (2.0 * math.sqrt(3)), rel=1e-12)
  assert result.log_z_upper == pytest.approx(1000.0 + math.log(2.0 + math.sqrt(3)), abs=1e-12)
  assert result.log_z_lower == pytest.approx(1000.0 + math.log(2.0 - math.sqrt(3)), abs=1e-12)
  assert (result.log_z_base, result.num_temperatures) == (1.5, 7)
  spread = ais.summarize_log_weights(np.log([1.0, 1.0, 100.0]))
  assert spread.log_z_lower == -np.inf and np.isfinite(spread.log_z_upper)  # mean − 3 se < 0
  single = ais.summarize_log_weights(np.array([0.3]))
  assert (single.log_z, single.log_z_std, single.log_z_lower) == (pytest.approx(0.3), 0.0,
                                                                  pytest.approx(0.3))


def test_schedules():
  betas = ais.default_betas()
  assert betas.shape == (14501,) and betas[0] == 0.0 and betas[-1] == 1.0
  steps = np.diff(betas)
  assert np.all(steps > 0)
  np.testing.assert_allclose(steps[:500], 1e-3, rtol=1e-9)
  np.testing.assert_allclose(steps[500:4500], 1e-4, rtol=1e-7)
  np.testing.assert_allclose(steps[4500:], 1e-5, rtol=1e-6)
  assert betas[500] == 0.5 and betas[4500] == 0.9
  np.testing.assert_array_equal(ais.linear_betas(3), [0.0, 0.5, 1.0])
  with pytest.raises(ValueError, match="n >= 2"):
    ais.linear_betas(1)


@pytest.mark.parametrize("betas, message", [
    ([0.0, 0.5, 0.5, 1.0], r"strictly increasing; betas\[2\] = 0.5"),
    ([0.0, 0.6, 0.4, 1.0], r"strictly increasing; betas\[2\] = 0.4"),
    ([0.1, 0.5, 1.0], r"start at exactly 0, got betas\[0\] = 0.1"),
    ([0.0, 0.5, 0.999], r"end at exactly 1, got betas\[2\] = 0.999"),
    ([[0.0, 1.0]], r"1-D sequence"),
    ([0.0], r"1-D sequence"),
    ([0.0, np.nan, 1.0], r"finite; betas\[1\] = nan"),
])
def test_bad_schedules_are_errors(betas, message):
  model = RBM(n_visible=4, n_hidden=2)
  with pytest.raises(ValueError, match=message):
    ais.ais_log_partition(model, random_variables(model, 0), jax.random.key(0), betas=betas)
  with pytest.raises(ValueError, match=message):
    ais.annealed_importance_sampling(jax.random.key(0), jnp.zeros(3), None, None, betas, 0.0)


def test_bad_inputs_are_errors():
  model = RBM(n_visible=4, n_hidden=2)
  variables = random_variables(model, 0)
  key = jax.random.key(0)
  with pytest.raises(ValueError, match="num_runs must be an int >= 1, got 0"):
    ais.ais_log_partition(model, variables, key, num_runs=0)
  with pytest.raises(ValueError, match=r"\[0.0, 1.0\], found values in \[0.0, 2.0\]"):
    ais.ais_log_partition(model, variables, key, data=np.array([[0.0, 1.0, 2.0, 1.0]]))
  with pytest.raises(ValueError, match=r"\(B, 4\).*\(3, 5\)"):
    ais.ais_log_partition(model, variables, key, data=np.zeros((3, 5)))
  gaussian = GaussianRBM(n_visible=4, n_hidden=2)
  with pytest.raises(ValueError, match=r"\(B, 4\).*\(3, 6\)"):
    ais.ais_log_partition(gaussian, random_variables(gaussian, 0), key, data=np.zeros((3, 6)))


def test_the_3_sigma_interval_holds_the_exact_log_z_and_narrows_with_more_runs():
  # Salakhutdinov & Murray's bounds: log(Ẑ ± 3σ̂), σ̂ the standard error of the mean weight over the runs.
  # A short schedule leaves the weights spread out, so the interval is wide enough to be tested.
  model = RBM(n_visible=10, n_hidden=8)
  variables = random_variables(model, seed=6)
  exact = float(partition.log_partition(model, variables))
  betas = ais.linear_betas(50)
  few = ais.ais_log_partition(model, variables, jax.random.key(7), betas=betas, num_runs=25)
  many = ais.ais_log_partition(model, variables, jax.random.key(8), betas=betas, num_runs=400)
  for result in (few, many):
    assert result.log_z_lower < exact < result.log_z_upper, (result.log_z_lower, exact, result.log_z_upper)
    assert result.log_z_std > 0.005  # not trivially exact at this schedule
  # 16× the runs: σ̂ falls about 4×; the interval narrows accordingly.
  def width(result):
    return result.log_z_upper - result.log_z_lower
  assert width(many) < 0.5 * width(few), (width(many), width(few))
  assert many.log_z_std < 0.5 * few.log_z_std


def test_the_trainer_record_carries_the_interval_and_the_settings():
  model = RBM(n_visible=10, n_hidden=8)
  params = random_variables(model, seed=6)["params"]
  data = np.random.default_rng(0).integers(0, 2, (40, 10)).astype(np.float32)
  settings = ml_collections.ConfigDict({"exact_max_units": 20, "ais_runs": 30, "ais_temperatures": 50,
                                        "ais_betas": ()})
  record = energy_metrics.evaluate(model, params, {"train": data[:20], "test": data[20:]}, "ais", settings,
                                   jax.random.key(9))
  direct = ais.ais_log_partition(model, {"params": params}, jax.random.key(9), data=data[:20],
                                 betas=ais.linear_betas(50), num_runs=30)
  assert record["log_z"] == pytest.approx(direct.log_z, abs=1e-6)
  assert record["log_z_std"] == pytest.approx(direct.log_z_std, rel=1e-5)
  assert (record["log_z_lower"], record["log_z_upper"]) == (pytest.approx(direct.log_z_lower, abs=1e-6),
                                                            pytest.approx(direct.log_z_upper, abs=1e-6))
  assert (record["ais_runs"], record["ais_temperatures"]) == (30, 50)
  # log p = −F − log Z: the upper bound of log Z gives the lower bound of the log-likelihood.
  for role in ("train", "test"):
    free_energy = record[f"{role}/free_energy"]
    assert record[f"{role}/log_likelihood_lower"] == pytest.approx(-free_energy - record["log_z_upper"])
    assert record[f"{role}/log_likelihood_upper"] == pytest.approx(-free_energy - record["log_z_lower"])
    assert (record[f"{role}/log_likelihood_lower"] < record[f"{role}/log_likelihood"]
            < record[f"{role}/log_likelihood_upper"])
