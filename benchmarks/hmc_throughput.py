r"""HMC throughput for the mcRBM on CPU: deepvision (JAX) against NumPy, in the same run.

The workload is the negative phase of mcRBM training as the original code runs it (Ranzato & Hinton,
CVPR 2010): one Hybrid Monte Carlo trajectory per update for a batch of 128 particles, D = 105 visible
units (the demo's PCA dimensions), F = 256 factors, N = 144 covariance units, M = 100 mean units, 20
leapfrog steps, on the 'original' free energy

  F(x) = ½‖x‖² − b_vᵀx − Σ_k softplus(b_c_k − ½ Σ_f P_fk s_f²) − Σ_j softplus(W_jᵀx + b_m_j),
  s = Cᵀx/L,  L = sqrt(‖x‖²/D + ½).

Each trajectory (`deepvision.samplers.hmc`): p ~ N(0, I), a half step, 19 full steps and a half step
of leapfrog, a Metropolis test per particle (rejected particles return to the start), and the
running-rejection step-size adaptation. The chain carries the energy and the gradient of its position
from one trajectory to the next, so a trajectory evaluates ∂F/∂x L = 20 times (every contestant does
the same). Contestants (all float32 unless named):

* numpy: the same trajectory and the same closed-form gradient in NumPy (separate products with C, W,
  Cᵀ and Wᵀ as the library's, the energy only where the Metropolis test needs it), with numpy's BLAS
  on 1 (numpy_blas1) and on 2 threads (numpy_blas2). OpenBLAS's
  second thread spins when another process holds the other core (10-50× slower): numpy_blas2 is left
  out of the rounds when its warm-up took more than 3× numpy_blas1's (recorded under `skipped`).
* numpy_2proc: NumPy data-parallel, as deepvision_data_parallel is: the 128 particles split over two
  persistent worker processes (one BLAS thread each, threadpoolctl), which run their halves' leapfrog
  in parallel; the parent sends the step size, gathers the acceptances and adapts the step size from
  the whole batch's, once per trajectory. The parent times whole trajectories, hand-overs included.
  The fastest of numpy_blas1, numpy_blas2 and numpy_2proc (median over rounds) is NumPy's best, the
  peer of every ratio.
* jax_plain: the straightforward JAX version: the free energy written out, `jax.grad` for ∂F/∂x, the
  leapfrog under `lax.scan`, one jitted trajectory per call (the gradient carried, as by the others).
* deepvision: the library, `hmc(..., energy_and_grad_fn=mcrbm_free_energy_and_grad)` advanced by
  `run_chain` (all the trajectories of a round under one jit), parameters passed as arguments (as a
  trainer does, not baked in as constants).
* deepvision_data_parallel (a secondary line, not the headline): the same, data-parallel over one CPU device per core
  (2 here; `jax_num_cpu_devices`), timed in a child process started with `--devices 2` (under
  `data_parallel_process` in the JSON, with NumPy and the one-device line timed beside it there: two
  devices in one process slow one device's own matrix products, so the headline runs in a one-device
  process): `deepvision.parallel` shards the 128 chains over the devices and
  `hmc(axis_name=parallel.AXIS)` averages the acceptance rate over them, so the step size is the one
  of a single device holding the whole batch. XLA:CPU spreads one trajectory's small matrix products
  (about 10 MFLOP each) poorly over the cores; one device per core keeps both busy.
* deepvision_autodiff: the library sampler on `jax.vjp` of `MCRBM.free_energy` (what the closed form
  saves).
* deepvision_bf16, deepvision_data_parallel_bf16: the gradient's four matrix products in bfloat16 with
  float32 accumulation (`preferred_element_type`), the energies of the Metropolis test in float32.
  Leapfrog with any gradient that is a function of x alone stays volume-preserving and reversible, so
  with exact energies in the test the chain still leaves p(x) exactly invariant; bfloat16 only lowers
  the acceptance. It pays only where the CPU exposes bfloat16 matrix instructions (see the measured
  bfloat16 matrix-product rate in the JSON); its sampling quality is checked below.
* deepvision_batch256: the library with 256 particles per sampler (larger matrix products): what more
  particles per call buys.
* with --ablations, variants that were tried (not the library's): `ablation_concatenated`, the closed
  form with one product with [C | W] forward and one with [C | W]ᵀ back (the library's layout before;
  `ablation_numpy_concatenated` the same in NumPy), `ablation_no_carried_grad`, the library with a
  state that does not carry ∂F/∂x (L + 1 = 21 evaluations per trajectory), `ablation_transposed`
  computes in a (D, B) layout (x transposed in, ∂F/∂x transposed out), `ablation_split2` evaluates the
  two halves of the batch as independent products inside one device's program.

What the library's two changes were worth, in CPU time per trajectory of one thread (XLA:CPU with
`--xla_cpu_multi_thread_eigen=false`, NumPy's BLAS on 1 thread; interleaved, medians over 21 rounds,
on a 2-core machine that other processes kept about 70% busy): [C | W] products 8.88 ms, separate
products 8.06 ms, separate and the gradient carried 7.66 ms; NumPy 11.3 ms with [C | W], 10.9 ms with
separate products (both recomputing the start gradient). The K = F + M = 356 back product is the slow
shape: the gradient alone (20 evaluations) took 8.7 ms with it and 7.2 ms with the products by Cᵀ and
Wᵀ apart. Passing Cᵀ, Wᵀ, Pᵀ as contiguous copies and `jax.default_matmul_precision` ('bfloat16',
'highest') changed neither the time nor a bit of the result on XLA:CPU.

XLA:CPU flags measured on an idle 2-core slice (none kept, none is set by default):
`--xla_cpu_multi_thread_eigen=false` (no gain for one device or data-parallel),
`--xla_cpu_use_thunk_runtime=false` (no longer supported in newer jaxlib; within noise),
`--xla_cpu_enable_fast_math=true` and the oneDNN / XNNPACK / YNNPACK fusion flags (within noise or
slower). Measured again in one-thread CPU time with jaxlib 0.10.2 (within 2% of the default, i.e.
within noise): `--xla_cpu_experimental_ynn_fusion_type=-reduce` and `=individual_dot` (reductions, or
everything but the products, left to XLA's own loops), `--xla_cpu_prefer_vector_width=512`.
`--xla-flags` sets flags for this process only, to measure others.

Throughput is particles × leapfrog steps per second. FLOPs are counted analytically from the matrix
products of one evaluation of F and ∂F/∂x (elementwise work, about 1.5% more, is not counted):
x·C and x·W 2BD(F+M), (s⊙s)·P 2BFN, σ_c·Pᵀ 2BNF, (r/L)·Cᵀ and σ_m·Wᵀ 2B(F+M)D, i.e. 38.0 MFLOP at
B = 128; a trajectory evaluates the gradient L = 20 times (the energy and gradient at the start are
carried from the previous trajectory), 760 MFLOP. Achieved GFLOP/s is reported against the machine's
matrix-product rate measured in the same run (a 2048³ float32 product in jax.numpy and in NumPy, and
in bfloat16).

The contestants take turns inside every round (rotating order), so load from other processes hits all
of them; reported are medians over rounds, the ratio of medians against NumPy's best, the median,
quartiles and min–max of the per-round ratios, the achieved GFLOP/s as a share of the float32
matrix-product rate measured in the same run (the faster of jax.numpy's and NumPy's: the physical
ceiling for both), the ratio of CPU time against one-thread NumPy's (this process's, all threads, and
numpy_2proc's workers': for one-thread contestants the per-core speed, much less sensitive to other
processes than wall time), and the share of the CPU that other processes used while the timings ran.
One core's matrix-product rate at these sizes (about 110-145 GFLOP/s for either library) bounds a
one-thread trajectory, so on a machine where other processes hold a core the wall-time ratio stays near
the CPU-time ratio. In the record of 2026-11-28 (before numpy_2proc) one device ran 1.30× the faster
one-process NumPy and the data-parallel line 2.26×: one device's products form one chain that XLA:CPU
does not split usefully over two cores.

Sampling quality of the bfloat16 option: chains from the same start run 200 trajectories (adaptive step
size, starting at 0.1) in float32 with two keys and in bfloat16 with the first; compared are the mean
acceptance, the adapted step size and the distribution of the free energy (float32) and of ‖x‖² over
the last 100 trajectories: the bfloat16 chains should differ from the float32 ones no more than two
float32 chains with different keys differ from each other (or 3 standard errors).

Targets (in the JSON under `targets`, each with its measured figure and met true / false): deepvision
on one device in float32 ahead of NumPy's best, and at ≥ 80% of the measured float32 matrix-product
rate. The record names the CPU model and the BLAS library (`deepvision.machine.describe`).

Results go to benchmarks/results/hmc_throughput.json.

Usage (about 1.5 minutes on 2 cores; --quick: about 30 s, fewer rounds and shorter quality chains):
  python benchmarks/hmc_throughput.py [--quick] [--ablations] [--rounds 7] [--trajectories 10] [--out PATH]
  python benchmarks/hmc_throughput.py --xla-flags='--xla_cpu_...=...'   # try XLA:CPU flags
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import multiprocessing
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile
import time


def _set_xla_flags(argv: list[str]) -> str:
  """Applies --xla-flags to this process only (before jax is imported); returns them."""
  flags = ""
  for i, arg in enumerate(argv):
    if arg.startswith("--xla-flags="):
      flags = arg.split("=", 1)[1]
    elif arg == "--xla-flags" and i + 1 < len(argv):
      flags = argv[i + 1]
  if flags:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
  return flags


def _devices(argv: list[str]) -> int:
  """--devices N (read before jax is imported): CPU devices of this process, 1 unless given."""
  for i, arg in enumerate(argv):
    if arg.startswith("--devices="):
      return int(arg.split("=", 1)[1])
    if arg == "--devices" and i + 1 < len(argv):
      return int(argv[i + 1])
  return 1


if __name__ == "__main__":
  _set_xla_flags(sys.argv[1:])
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
# The headline runs in a one-device process (two CPU devices in one process slow one device's work: its
# matrix products ran at 125 GFLOP/s against 200 in a one-device process). The data-parallel contestants
# split the batch over 2 devices (one per core) in a child process started with --devices 2.
NUM_DEVICES = max(1, min(CORES, _devices(sys.argv[1:]) if __name__ == "__main__" else 1))
DATA_PARALLEL_DEVICES = min(CORES, 2)
DATA_PARALLEL_CONTESTANTS = ("numpy_blas1", "numpy_blas2", "numpy_2proc", "deepvision", "deepvision_data_parallel",
                             "deepvision_data_parallel_bf16")

import jax  # noqa: E402

from cpu_load import cpu_busy_seconds  # noqa: E402  (benchmarks/cpu_load.py, the script's own folder)

jax.config.update("jax_platforms", "cpu")  # The comparison is defined on CPU.
if NUM_DEVICES > 1:
  jax.config.update("jax_num_cpu_devices", NUM_DEVICES)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402  (a scikit-learn dependency)

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from deepvision import machine, parallel  # noqa: E402
from deepvision.models.gated_mrf import MCRBM, mcrbm_free_energy_and_grad, topographic_mask  # noqa: E402
from deepvision.samplers.base import run_chain  # noqa: E402
from deepvision.samplers.adaptation import adapt_step_size  # noqa: E402
from deepvision.samplers.hmc import hmc  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
D, F, N, M = 105, 256, 144, 100  # visible, factors, covariance units, mean units
BATCH = 128
NUM_LEAPFROG = 20
QUALITY_START_STEP = 0.1  # the quality chains reach the adapted step size sooner than from 0.01
TARGET_AHEAD = 1.0  # deepvision (one device, float32) ahead of NumPy's best: ratio > 1
TARGET_MATMUL_SHARE = 80.0  # ... and at ≥ 80% of the measured float32 matrix-product rate
WORKERS = 2  # numpy_2proc's processes


def flops_per_evaluation(batch: int = BATCH) -> int:
  """Matrix-product FLOPs of one evaluation of F and ∂F/∂x (see the module docstring)."""
  return 2 * batch * (2 * D * (F + M) + 2 * F * N)


def flops_per_trajectory(batch: int = BATCH, evaluations: int = NUM_LEAPFROG) -> int:
  """L gradient evaluations (the chain's gradient is carried, as its energy); L + 1 without."""
  return evaluations * flops_per_evaluation(batch)


def mcrbm_params(seed: int = 0) -> dict[str, np.ndarray]:
  """float32 parameters shaped like a trained mcRBM's (values matter for the quality check only).

  C: unit-norm factor columns (training keeps them at a common norm); P: the library's topographic
  pooling (3×3 windows of a 16×16 factor grid for a 12×12 grid of units), columns L1-normalised as
  the recipe's projection leaves them; W ~ 0.05·N(0, 1); b_c = 2, b_m = −2, b_v = 0 (the recipe's
  initial biases).
  """
  rng = np.random.default_rng(seed)
  C = rng.normal(size=(D, F))
  C /= np.linalg.norm(C, axis=0)
  P = topographic_mask(F, N).astype(np.float64)
  P /= P.sum(0)
  params = {"C": C, "P": P, "W": 0.05 * rng.normal(size=(D, M)), "b_c": np.full(N, 2.0),
            "b_m": np.full(M, -2.0), "b_v": np.zeros(D)}
  return {name: value.astype(np.float32) for name, value in params.items()}


def start_positions(seed: int = 1, batch: int = BATCH) -> np.ndarray:
  """Chains start at N(0, I) draws (whitened data has unit variance per dimension)."""
  return np.random.default_rng(seed).normal(size=(batch, D)).astype(np.float32)


# ----------------------------------------------------------------------------- NumPy


class NumpyHMC:
  """The same trajectory, closed form and adaptation in NumPy (float32), with a persistent chain.

  As the library: E(x) and ∂F/∂x of the chain's position are carried between trajectories (20
  gradient evaluations per trajectory), and the products with C and W are kept apart (`concatenated`:
  one product with [C | W] and one with [C | W]ᵀ instead, the layout the library used before; the
  separate products were about 4% faster in NumPy too).
  """

  def __init__(self, params: dict[str, np.ndarray], x0: np.ndarray, seed: int = 0,
               concatenated: bool = False):
    self.concatenated = concatenated
    self.C, self.W = params["C"], params["W"]
    self.C_t, self.W_t = np.ascontiguousarray(self.C.T), np.ascontiguousarray(self.W.T)
    self.filters = np.ascontiguousarray(np.concatenate([params["C"], params["W"]], axis=1))
    self.filters_t = np.ascontiguousarray(self.filters.T)
    self.P, self.P_t = params["P"], np.ascontiguousarray(params["P"].T)
    self.b_c, self.b_m, self.b_v = params["b_c"], params["b_m"], params["b_v"]
    self.rng = np.random.default_rng(seed)
    self.x = x0.copy()
    self.energy, self.gradient = self.energy_and_grad(self.x)
    self.step_size, self.rejection_avg = np.float32(0.01), 0.1

  def _forward(self, x):
    scale = np.sqrt(np.mean(x * x, axis=1, keepdims=True) + np.float32(0.5))
    if self.concatenated:
      responses = x @ self.filters
      s, mean_logits = responses[:, :F] / scale, responses[:, F:] + self.b_m
    else:
      s, mean_logits = (x @ self.C) / scale, x @ self.W + self.b_m
    cov_logits = self.b_c - np.float32(0.5) * ((s * s) @ self.P)
    return s, scale, cov_logits, mean_logits

  def _grad(self, x, s, scale, cov_logits, mean_logits):
    r = s * ((1 / (1 + np.exp(-cov_logits))) @ self.P_t)
    mean_probs = 1 / (1 + np.exp(-mean_logits))
    if self.concatenated:
      back = np.concatenate([r / scale, -mean_probs], axis=1) @ self.filters_t
    else:
      back = (r / scale) @ self.C_t - mean_probs @ self.W_t
    radial = np.sum(s * r, axis=1, keepdims=True) / (D * scale * scale)
    return back - radial * x + x - self.b_v

  def grad(self, x):
    return self._grad(x, *self._forward(x))

  def energy_and_grad(self, x):
    s, scale, cov_logits, mean_logits = self._forward(x)
    softplus = lambda a: np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a)))
    energy = (np.float32(0.5) * np.sum(x * x, axis=1) - x @ self.b_v
              - softplus(cov_logits).sum(1) - softplus(mean_logits).sum(1))
    return energy, self._grad(x, s, scale, cov_logits, mean_logits)

  def move(self, eps: np.float32) -> np.ndarray:
    """One trajectory at step size `eps` from the chain's state; returns which particles were accepted."""
    x0 = self.x
    p0 = self.rng.standard_normal(x0.shape, dtype=np.float32)
    p = p0 - (eps / 2) * self.gradient
    x = x0 + eps * p
    for _ in range(NUM_LEAPFROG - 1):
      p -= eps * self.grad(x)
      x += eps * p
    energy, grad = self.energy_and_grad(x)
    p -= (eps / 2) * grad
    change = (energy + 0.5 * np.sum(p * p, 1)) - (self.energy + 0.5 * np.sum(p0 * p0, 1))
    accepted = np.log(self.rng.random(len(x), dtype=np.float32)) < -change
    self.x = np.where(accepted[:, None], x, x0)
    self.energy = np.where(accepted, energy, self.energy)
    self.gradient = np.where(accepted[:, None], grad, self.gradient)
    return accepted

  def trajectory(self) -> float:
    accepted = self.move(self.step_size)
    self.step_size, self.rejection_avg = adapt(self.step_size, self.rejection_avg, accepted.mean())
    return float(accepted.mean())


def adapt(eps: np.float32, rejection_avg: float, acceptance: float) -> tuple[np.float32, float]:
  """The original code's running-rejection step-size adaptation (the library's `adapt_step_size`)."""
  rejection_avg = 0.9 * rejection_avg + 0.1 * (1 - acceptance)
  return np.float32(min(1.01 * eps, 0.25) if rejection_avg < 0.1 else max(0.99 * eps, 0.001)), rejection_avg


def _numpy_worker(conn, params: dict[str, np.ndarray], x0: np.ndarray, seed: int) -> None:
  """numpy_2proc's worker: its share of the particles, one BLAS thread; a trajectory per step size sent.

  Replies to each step size with (accepted particles, this process's CPU seconds so far); None stops it.
  """
  with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    chain = NumpyHMC(params, x0, seed=seed)
    conn.send("ready")
    while (eps := conn.recv()) is not None:
      conn.send((int(chain.move(eps).sum()), time.process_time()))
  conn.close()


class NumpyProcessesRunner:
  """numpy_2proc: the batch split over `workers` persistent processes (see the module docstring).

  The parent keeps the step size and its adaptation (from the whole batch's acceptance, as one process
  would) and hands each worker the step size of every trajectory; a call times `num_trajectories` whole
  trajectories, hand-overs included. `child_cpu_seconds` is the workers' CPU time so far.
  """

  def __init__(self, params, x0, num_trajectories: int, workers: int = WORKERS):
    context = multiprocessing.get_context("spawn")  # no fork of a process running JAX's threads
    self.n, self.particles = num_trajectories, len(x0)
    self.connections, self.processes = [], []
    for i, part in enumerate(np.array_split(x0, workers)):
      parent_end, child_end = context.Pipe()
      process = context.Process(target=_numpy_worker, args=(child_end, params, part, i), daemon=True)
      process.start()
      child_end.close()
      self.connections.append(parent_end)
      self.processes.append(process)
    for connection in self.connections:
      if connection.recv() != "ready":
        raise RuntimeError("a numpy_2proc worker failed to start")
    self.step_size, self.rejection_avg = np.float32(0.01), 0.1
    self.cpu_now = [0.0] * workers

  @property
  def child_cpu_seconds(self) -> float:
    return sum(self.cpu_now)

  def __call__(self) -> float:
    rates = []
    for _ in range(self.n):
      for connection in self.connections:
        connection.send(self.step_size)
      accepted = 0
      for i, connection in enumerate(self.connections):
        count, self.cpu_now[i] = connection.recv()
        accepted += count
      rates.append(accepted / self.particles)
      self.step_size, self.rejection_avg = adapt(self.step_size, self.rejection_avg, rates[-1])
    return statistics.mean(rates)

  def close(self) -> None:
    for connection in self.connections:
      connection.send(None)
    for process in self.processes:
      process.join(timeout=10)
      if process.is_alive():
        process.terminate()


# ----------------------------------------------------------------------------- JAX


def plain_free_energy(params, x):
  """F(x) written out as in the reference (for jax_plain)."""
  scale = jnp.sqrt(jnp.sum(x * x, axis=1, keepdims=True) / D + 0.5)
  s = (x / scale) @ params["C"]
  cov = jax.nn.softplus(params["b_c"] - 0.5 * (s * s) @ params["P"])
  mean = jax.nn.softplus(x @ params["W"] + params["b_m"])
  return 0.5 * jnp.sum(x * x, 1) - x @ params["b_v"] - cov.sum(1) - mean.sum(1)


def plain_grad(params, x):
  return jax.grad(lambda x: jnp.sum(plain_free_energy(params, x)))(x)


@jax.jit
def plain_trajectory(params, key, x0, energy0, grad0, eps):
  """The straightforward version: jax.grad, lax.scan over the leapfrog, fixed ε (no adaptation)."""
  momentum_key, accept_key = jax.random.split(key)
  grad_fn = functools.partial(plain_grad, params)
  p0 = jax.random.normal(momentum_key, x0.shape)
  p = p0 - eps / 2 * grad0
  x = x0 + eps * p

  def leapfrog(carry, _):
    x, p = carry
    p = p - eps * grad_fn(x)
    return (x + eps * p, p), None

  (x, p), _ = jax.lax.scan(leapfrog, (x, p), None, length=NUM_LEAPFROG - 1)
  energy, grad = plain_free_energy(params, x), grad_fn(x)
  p = p - eps / 2 * grad
  change = (energy + 0.5 * jnp.sum(p * p, 1)) - (energy0 + 0.5 * jnp.sum(p0 * p0, 1))
  accepted = jnp.log(jax.random.uniform(accept_key, energy.shape)) < -change
  return (jnp.where(accepted[:, None], x, x0), jnp.where(accepted, energy, energy0),
          jnp.where(accepted[:, None], grad, grad0), jnp.mean(accepted))


def bf16_free_energy_and_grad(params, x):
  """float32 F (the library's) and ∂F/∂x with its matrix products in bfloat16 (float32 accumulation)."""
  def dot(a, b):
    return jnp.matmul(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16), preferred_element_type=jnp.float32)

  energy = mcrbm_free_energy_and_grad(params, x)[0]  # dead code inside the leapfrog loop
  inv_scale = jax.lax.rsqrt(jnp.mean(x * x, axis=1, keepdims=True) + 0.5)
  s = dot(x, params["C"]) * inv_scale
  cov_probs = jax.nn.sigmoid(params["b_c"] - 0.5 * dot(s * s, params["P"]))
  mean_probs = jax.nn.sigmoid(dot(x, params["W"]) + params["b_m"])
  r = s * dot(cov_probs, params["P"].T)
  back = dot(r * inv_scale, params["C"].T) - dot(mean_probs, params["W"].T)
  radial = jnp.sum(s * r, axis=1, keepdims=True) * (inv_scale * inv_scale) / D
  return energy, back - radial * x + x - params["b_v"]


def concatenated_free_energy_and_grad(params, x):
  """Ablation: the closed form as the library computed it before, one product with [C | W] forward
  and one with [C | W]ᵀ back (sliced and concatenated batches)."""
  filters = jnp.concatenate([params["C"], params["W"]], axis=1)
  responses = x @ filters
  scale = jnp.sqrt(jnp.mean(x * x, axis=1, keepdims=True) + 0.5)
  s, mean_logits = responses[:, :F] / scale, responses[:, F:] + params["b_m"]
  cov_logits = params["b_c"] - 0.5 * (s * s) @ params["P"]
  energy = (0.5 * jnp.sum(x * x, axis=1) - x @ params["b_v"] - jnp.sum(jax.nn.softplus(cov_logits), axis=1)
            - jnp.sum(jax.nn.softplus(mean_logits), axis=1))
  r = s * (jax.nn.sigmoid(cov_logits) @ params["P"].T)
  back = jnp.concatenate([r / scale, -jax.nn.sigmoid(mean_logits)], axis=1) @ filters.T
  radial = jnp.sum(s * r, axis=1, keepdims=True) / (D * scale * scale)
  return energy, back - radial * x + x - params["b_v"]


def transposed_free_energy_and_grad(params, x):
  """Ablation: the library's closed form computed in a (D, B) layout (x and ∂F/∂x transposed)."""
  xt = x.T
  filters = jnp.concatenate([params["C"], params["W"]], axis=1)
  sq_norm = jnp.sum(xt * xt, axis=0, keepdims=True)
  inv_scale = jax.lax.rsqrt(sq_norm / D + 0.5)
  responses = filters.T @ xt
  s = responses[:F] * inv_scale
  cov_logits = params["b_c"][:, None] - 0.5 * params["P"].T @ (s * s)
  mean_logits = responses[F:] + params["b_m"][:, None]
  r = s * (params["P"] @ jax.nn.sigmoid(cov_logits))
  back = filters @ jnp.concatenate([r * inv_scale, -jax.nn.sigmoid(mean_logits)], axis=0)
  radial = jnp.sum(s * r, axis=0, keepdims=True) * (inv_scale * inv_scale) / D
  energy = (0.5 * sq_norm[0] - params["b_v"] @ xt - jnp.sum(jax.nn.softplus(cov_logits), axis=0)
            - jnp.sum(jax.nn.softplus(mean_logits), axis=0))
  return energy, (back - radial * xt + xt - params["b_v"][:, None]).T


def split_free_energy_and_grad(params, x, parts: int = 2):
  """Ablation: the library's closed form on `parts` slices of the batch, as independent products."""
  outs = [mcrbm_free_energy_and_grad(params, part) for part in jnp.split(x, parts)]
  return jnp.concatenate([e for e, _ in outs]), jnp.concatenate([g for _, g in outs])


def library_sampler(params, gradient: str = "closed_form", axis_name: str | None = None):
  """The library's HMC kernel in the original code's adaptation, on the mcRBM with `params`.

  gradient: 'closed_form' (`mcrbm_free_energy_and_grad`), 'autodiff' (`jax.vjp` of
  `MCRBM.free_energy`), 'bf16' (`bf16_free_energy_and_grad`), or the ablations 'concatenated',
  'transposed' and 'split2'.
  """
  if gradient == "autodiff":
    model = MCRBM(n_visible=D, n_factors=F, n_cov=N, n_mean=M, pooling_init="topographic")
    energy_fn = lambda x: model.apply({"params": params}, x, method="free_energy")
    return adapt_step_size(lambda eps: hmc(energy_fn, num_leapfrog=NUM_LEAPFROG, step_size=eps,
                                           axis_name=axis_name))
  energy_fn = lambda x: mcrbm_free_energy_and_grad(params, x)[0]
  energy_and_grad_fn = functools.partial({"closed_form": mcrbm_free_energy_and_grad,
                                          "bf16": bf16_free_energy_and_grad,
                                          "concatenated": concatenated_free_energy_and_grad,
                                          "transposed": transposed_free_energy_and_grad,
                                          "split2": split_free_energy_and_grad}[gradient], params)
  return adapt_step_size(lambda eps: hmc(energy_fn, num_leapfrog=NUM_LEAPFROG, step_size=eps,
                                         energy_and_grad_fn=energy_and_grad_fn, axis_name=axis_name))


class LibraryHMC:
  """deepvision's sampler, `num_trajectories` trajectories per compiled call (one `run_chain`)."""

  def __init__(self, params, x0, num_trajectories: int, gradient: str = "closed_form",
               carry_grad: bool = True):
    self.params = jax.tree.map(jnp.asarray, params)
    self.n = num_trajectories

    def advance(params, key, state, start_step):
      sampler = library_sampler(params, gradient)
      state, infos, _ = run_chain(key, sampler.step, state, self.n, start_step=start_step)
      return state, jnp.mean(infos.acceptance_rate)

    self.state = jax.jit(lambda params, x: library_sampler(params, gradient).init(x))(self.params, x0)
    if not carry_grad:  # a state without ∇E: recomputed at the start of every trajectory (L + 1 of them)
      self.state = self.state._replace(inner=self.state.inner._replace(grad=None))
    self.key, self.steps = jax.random.key(0), 0
    begin = time.perf_counter()
    self.advance = jax.jit(advance, donate_argnums=2).lower(self.params, self.key, self.state, 0).compile()
    self.compile_seconds = time.perf_counter() - begin

  def __call__(self) -> float:
    self.state, acceptance = self.advance(self.params, self.key, self.state, self.steps)
    self.steps += self.n
    return float(acceptance)  # blocks until done


class DataParallelHMC:
  """The library's sampler data-parallel over `num_devices` CPU devices (`deepvision.parallel`).

  Each device holds B / num_devices chains and runs their trajectories on its own thread; the
  acceptance rate is averaged over the devices (`hmc(axis_name=...)`), so the step size is the one of a
  single device holding the whole batch.
  """

  def __init__(self, params, x0, num_trajectories: int, num_devices: int, gradient: str = "closed_form"):
    self.n, self.num_devices = num_trajectories, num_devices
    self.params = parallel.replicate(jax.tree.map(jnp.asarray, params), num_devices)

    def init(params, x):
      return library_sampler(params, gradient, parallel.AXIS).init(x)

    def advance(state, params, key_data, start_step):
      sampler = library_sampler(params, gradient, parallel.AXIS)
      key = jax.random.wrap_key_data(key_data)
      state, infos, _ = run_chain(key, sampler.step, state, self.n, start_step=start_step)
      return state, jnp.mean(infos.acceptance_rate)

    self.state = parallel.pmap_train_step(init, num_devices, donate_state=False)(
        self.params, parallel.shard_batch(x0, num_devices))
    self.advance = parallel.pmap_train_step(advance, num_devices)
    self.key = parallel.replicate(jax.random.key_data(jax.random.key(0)), num_devices)
    self.steps = 0
    begin = time.perf_counter()
    self()
    self.first_call_seconds = time.perf_counter() - begin  # compilation and one round

  def __call__(self) -> float:
    steps = parallel.replicate(jnp.int32(self.steps), self.num_devices)
    self.state, acceptance = self.advance(self.state, self.params, self.key, steps)
    self.steps += self.n
    return float(acceptance[0])


class PlainJaxHMC:
  """jax_plain: one jitted trajectory per call, called `num_trajectories` times from Python."""

  def __init__(self, params, x0, num_trajectories: int):
    self.params = jax.tree.map(jnp.asarray, params)
    self.n, self.x = num_trajectories, jnp.asarray(x0)
    self.energy = plain_free_energy(self.params, self.x)
    self.grad = jax.jit(plain_grad)(self.params, self.x)
    self.key, self.steps, self.eps = jax.random.key(0), 0, jnp.float32(0.01)
    begin = time.perf_counter()
    plain_trajectory.lower(self.params, self.key, self.x, self.energy, self.grad, self.eps).compile()
    self.compile_seconds = time.perf_counter() - begin

  def __call__(self) -> float:
    for _ in range(self.n):
      key = jax.random.fold_in(self.key, self.steps)
      self.x, self.energy, self.grad, acceptance = plain_trajectory(self.params, key, self.x, self.energy,
                                                                    self.grad, self.eps)
      self.steps += 1
    return float(acceptance)


class NumpyRunner:
  """numpy: `num_trajectories` trajectories of `NumpyHMC` per call, numpy's BLAS on `threads` threads."""

  def __init__(self, params, x0, num_trajectories: int, threads: int, concatenated: bool = False):
    self.hmc = NumpyHMC(params, x0, concatenated=concatenated)
    self.n, self.threads = num_trajectories, threads

  def __call__(self) -> float:
    with threadpoolctl.threadpool_limits(limits=self.threads, user_api="blas"):
      return statistics.mean(self.hmc.trajectory() for _ in range(self.n))


# ----------------------------------------------------------------------------- measurements


def matmul_rates(size: int = 2048, repeats: int = 5) -> dict:
  """GFLOP/s of a size³ matrix product: jax.numpy float32 and bfloat16 (float32 out), NumPy float32."""
  rng = np.random.default_rng(0)
  a, b = (rng.normal(size=(size, size)).astype(np.float32) for _ in range(2))
  ja, jb = jnp.asarray(a), jnp.asarray(b)
  f32 = jax.jit(lambda a, b: a @ b)
  bf16 = jax.jit(lambda a, b: jnp.matmul(a, b, preferred_element_type=jnp.float32))
  jab, jbb = ja.astype(jnp.bfloat16), jb.astype(jnp.bfloat16)
  runs = {"jax_float32": lambda: f32(ja, jb).block_until_ready(),
          "jax_bfloat16": lambda: bf16(jab, jbb).block_until_ready(),
          "numpy_float32": lambda: a @ b}
  seconds = {name: [] for name in runs}
  for run in runs.values():
    run()
  for _ in range(repeats):
    for name, run in runs.items():
      begin = time.perf_counter()
      run()
      seconds[name].append(time.perf_counter() - begin)
  flops = 2 * size ** 3
  return {name: {"gflops_median": flops / statistics.median(s) / 1e9, "gflops_best": flops / min(s) / 1e9}
          for name, s in seconds.items()} | {"size": size}


def closed_forms_agree(params, x0) -> dict:
  """Every contestant's F and ∂F/∂x against autodiff of the plain F (float32): the same math.

  Raises:
    SystemExit: when one disagrees (float32: 1e-4 of max |∂F/∂x|; bfloat16 products: 3e-2).
  """
  jparams = jax.tree.map(jnp.asarray, params)
  reference = np.asarray(jax.grad(lambda x: jnp.sum(plain_free_energy(jparams, x)))(x0))
  energy = np.asarray(plain_free_energy(jparams, x0))
  forms = {"numpy": NumpyHMC(params, x0).energy_and_grad(x0)}
  forms["numpy_concatenated"] = NumpyHMC(params, x0, concatenated=True).energy_and_grad(x0)
  for name, fn in (("library", mcrbm_free_energy_and_grad), ("bf16", bf16_free_energy_and_grad),
                   ("concatenated", concatenated_free_energy_and_grad),
                   ("transposed", transposed_free_energy_and_grad), ("split2", split_free_energy_and_grad)):
    forms[name] = jax.jit(fn)(jparams, x0)
  scale = np.abs(reference).max()
  out = {"note": "gradient errors relative to max |∂F/∂x|, energy errors absolute (|F| ≈ 250); float32"}
  for name, (e, g) in forms.items():
    out[name] = {"grad_max_rel_err": float(np.abs(np.asarray(g) - reference).max() / scale),
                 "energy_max_abs_err": float(np.abs(np.asarray(e) - energy).max())}
    grad_tolerance = 3e-2 if name == "bf16" else 1e-4
    if out[name]["grad_max_rel_err"] > grad_tolerance or out[name]["energy_max_abs_err"] > 1e-2:
      raise SystemExit(f"{name}'s free energy or gradient disagrees with autodiff: {out[name]}")
  return out


def speed(params, x0, rounds: int, num_trajectories: int, contestants: list[str]) -> dict:
  """Interleaved timing of every contestant; throughput, GFLOP/s and ratios against NumPy."""
  makers = {
      "numpy_blas1": lambda: NumpyRunner(params, x0, num_trajectories, threads=1),
      "numpy_blas2": lambda: NumpyRunner(params, x0, num_trajectories, threads=2),
      "numpy_2proc": lambda: NumpyProcessesRunner(params, x0, num_trajectories),
      "jax_plain": lambda: PlainJaxHMC(params, x0, num_trajectories),
      "deepvision": lambda: LibraryHMC(params, x0, num_trajectories),
      "deepvision_autodiff": lambda: LibraryHMC(params, x0, num_trajectories, gradient="autodiff"),
      "deepvision_bf16": lambda: LibraryHMC(params, x0, num_trajectories, gradient="bf16"),
      "deepvision_data_parallel": lambda: DataParallelHMC(params, x0, num_trajectories, NUM_DEVICES),
      "deepvision_data_parallel_bf16": lambda: DataParallelHMC(params, x0, num_trajectories, NUM_DEVICES,
                                                               gradient="bf16"),
      "deepvision_batch256": lambda: LibraryHMC(params, np.concatenate([x0, start_positions(2)]),
                                                num_trajectories),
      "ablation_numpy_concatenated": lambda: NumpyRunner(params, x0, num_trajectories, threads=1,
                                                         concatenated=True),
      "ablation_concatenated": lambda: LibraryHMC(params, x0, num_trajectories, gradient="concatenated"),
      "ablation_no_carried_grad": lambda: LibraryHMC(params, x0, num_trajectories, carry_grad=False),
      "ablation_transposed": lambda: LibraryHMC(params, x0, num_trajectories, gradient="transposed"),
      "ablation_split2": lambda: LibraryHMC(params, x0, num_trajectories, gradient="split2"),
  }
  runners = {name: makers[name]() for name in contestants}
  warm_up = {}
  for name, run in runners.items():  # first-call costs outside compilation
    begin = time.perf_counter()
    run()
    warm_up[name] = time.perf_counter() - begin
  skipped = {}
  both_numpy = {"numpy_blas1", "numpy_blas2"} <= set(contestants)
  if both_numpy and warm_up["numpy_blas2"] > 3 * warm_up["numpy_blas1"]:
    # OpenBLAS's second thread spins while another process holds the other core: 10-50× slower.
    skipped["numpy_blas2"] = (f"warm-up {warm_up['numpy_blas2']:.2f} s > 3 × numpy_blas1's "
                              f"{warm_up['numpy_blas1']:.2f} s: a core was busy; not timed")
    contestants = [name for name in contestants if name != "numpy_blas2"]
  seconds = {name: [] for name in contestants}
  cpu_seconds = {name: [] for name in contestants}  # this process's CPU time, all its threads
  acceptance = {name: [] for name in contestants}
  child_cpu = lambda runner: getattr(runner, "child_cpu_seconds", 0.0)  # numpy_2proc's workers
  for r in range(rounds):
    for name in contestants[r % len(contestants):] + contestants[:r % len(contestants)]:
      runner = runners[name]
      begin, cpu_begin, child_begin = time.perf_counter(), time.process_time(), child_cpu(runner)
      acceptance[name].append(runner())
      seconds[name].append(time.perf_counter() - begin)
      cpu_seconds[name].append(time.process_time() - cpu_begin + child_cpu(runner) - child_begin)
  for runner in runners.values():
    if hasattr(runner, "close"):
      runner.close()
  results = {}
  for name in contestants:
    particles = 2 * BATCH if name == "deepvision_batch256" else BATCH
    per_trajectory = statistics.median(seconds[name]) / num_trajectories
    evaluations = NUM_LEAPFROG + 1 if name == "ablation_no_carried_grad" else NUM_LEAPFROG
    flops = flops_per_trajectory(particles, evaluations)
    results[name] = {
        "ms_per_trajectory": 1e3 * per_trajectory,
        "particle_leapfrog_steps_per_s": particles * NUM_LEAPFROG / per_trajectory,
        "gflops": flops / per_trajectory / 1e9,
        "gradient_evaluations_per_trajectory": evaluations,
        "particles": particles,
        "cpu_ms_per_trajectory": 1e3 * statistics.median(cpu_seconds[name]) / num_trajectories,
        "round_seconds": [round(s, 4) for s in seconds[name]],
        "mean_acceptance": statistics.mean(acceptance[name]),
        "compile_seconds": getattr(runners[name], "compile_seconds", None),
        "first_call_seconds_with_compile": getattr(runners[name], "first_call_seconds", None)}
  numpy_names = [n for n in contestants if n.startswith("numpy")]
  reference = min(numpy_names, key=lambda n: results[n]["ms_per_trajectory"])
  # CPU time is compared with one-thread NumPy's (OpenBLAS's second thread spins, doubling its CPU time).
  cpu_reference = "numpy_blas1" if "numpy_blas1" in contestants else reference
  ratios = {}
  for name in contestants:
    if name.startswith("numpy"):
      continue
    per_round = [(results[name]["particles"] / a) / (BATCH / b)
                 for a, b in zip(seconds[name], seconds[reference])]
    quartiles = statistics.quantiles(per_round, n=4) if len(per_round) > 1 else per_round * 3
    ratios[f"{name}/numpy"] = {
        "ratio_of_medians": results[name]["particle_leapfrog_steps_per_s"]
                            / results[reference]["particle_leapfrog_steps_per_s"],
        "median_of_round_ratios": statistics.median(per_round),
        "round_ratio_quartiles": [round(quartiles[0], 3), round(quartiles[2], 3)],
        "round_ratio_min_max": [round(min(per_round), 3), round(max(per_round), 3)],
        "round_ratios": [round(x, 3) for x in per_round],
        # particle-steps per CPU-second against one-thread NumPy's: the work each spends, less sensitive
        # to other processes' load than wall time (for one-thread contestants, the per-core speed ratio)
        "cpu_time_ratio": (results[cpu_reference]["cpu_ms_per_trajectory"] / BATCH)
                          / (results[name]["cpu_ms_per_trajectory"] / results[name]["particles"])}
  return {"results": results, "numpy_reference": reference, "cpu_time_reference": cpu_reference,
          "ratios": ratios, "rounds": rounds,
          "trajectories_per_round": num_trajectories, "skipped": skipped,
          "warm_up_seconds": {name: round(t, 4) for name, t in warm_up.items()}}


def sampling_quality(params, x0, num_trajectories: int) -> dict:
  """float32 chains (two keys) and bfloat16 chains (the first key) from the same start."""
  jparams = jax.tree.map(jnp.asarray, params)

  @functools.partial(jax.jit, static_argnames="gradient")
  def chains(params, key, x, gradient):
    sampler = library_sampler(params, gradient)
    state, infos, traces = run_chain(
        key, sampler.step, sampler.init(x, step_size=QUALITY_START_STEP), num_trajectories,
        trace=lambda s: (mcrbm_free_energy_and_grad(params, s.position)[0], jnp.sum(s.position ** 2, 1)))
    return infos.acceptance_rate, infos.step_size, traces

  out = {}
  for name, gradient, seed in (("float32", "closed_form", 0), ("float32_other_key", "closed_form", 1),
                               ("bfloat16", "bf16", 0)):
    acceptance, step_size, (energy, sq_norm) = chains(jparams, jax.random.key(seed), x0, gradient=gradient)
    half = num_trajectories // 2
    energy, sq_norm = np.asarray(energy[half:]), np.asarray(sq_norm[half:])
    out[name] = {"mean_acceptance": float(np.mean(acceptance[half:])),
                 "final_step_size": float(step_size[-1]),
                 "free_energy_mean": float(energy.mean()), "free_energy_std": float(energy.std()),
                 "free_energy_quartiles": [float(q) for q in np.percentile(energy, [25, 50, 75])],
                 "sq_norm_mean": float(sq_norm.mean()),
                 # the chains' time averages per particle, for a standard error across particles
                 "free_energy_se": float(energy.mean(0).std() / np.sqrt(energy.shape[1]))}
  ref, other, bf = out["float32"], out["float32_other_key"], out["bfloat16"]
  noise = abs(other["free_energy_mean"] - ref["free_energy_mean"])
  se = np.hypot(ref["free_energy_se"], bf["free_energy_se"])
  out["summary"] = {
      "free_energy_mean_diff_bf16_vs_f32": bf["free_energy_mean"] - ref["free_energy_mean"],
      "free_energy_mean_diff_f32_vs_f32_other_key": other["free_energy_mean"] - ref["free_energy_mean"],
      "standard_error_of_diff": float(se),
      "acceptance_bf16_minus_f32": bf["mean_acceptance"] - ref["mean_acceptance"],
      "holds": bool(abs(bf["free_energy_mean"] - ref["free_energy_mean"]) <= max(3 * se, 2 * noise)),
      "criterion": "|mean F(bf16) − mean F(f32)| ≤ max(3 standard errors, 2 × the f32 key-to-key difference)",
      "trajectories": num_trajectories, "kept": num_trajectories - num_trajectories // 2}
  return out


def targets(report: dict) -> list[dict]:
  """The record's targets: deepvision (one device, float32) ahead of NumPy's best, and at ≥ 80% of the
  float32 matrix-product rate (none when deepvision was not timed)."""
  speed_part = report["speed"]
  if "deepvision" not in speed_part["results"]:
    return []
  ratio = speed_part["ratios"]["deepvision/numpy"]["ratio_of_medians"]
  share = speed_part["results"]["deepvision"]["percent_of_float32_matmul_ceiling"]
  return [{"name": f"deepvision (one device, float32) ahead of NumPy's best ({speed_part['numpy_reference']})",
           "contestant": "deepvision", "measure": "ratio of medians, particle-steps/s", "comparison": ">",
           "target": TARGET_AHEAD, "measured": ratio, "met": ratio > TARGET_AHEAD},
          {"name": "deepvision (one device, float32) at ≥ 80% of the measured float32 matrix-product rate",
           "contestant": "deepvision", "measure": "percent of float32_ceiling_gflops", "comparison": ">=",
           "target": TARGET_MATMUL_SHARE, "measured": share, "met": share >= TARGET_MATMUL_SHARE}]


def versions() -> dict:
  import jaxlib  # pylint: disable=g-import-not-at-top
  return {"python": platform.python_version(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
          "numpy": np.__version__,
          "blas": [{k: info.get(k) for k in ("internal_api", "version", "architecture")}
                   for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]}


def data_parallel_child(rounds: int, trajectories: int, quick: bool) -> dict:
  """The data-parallel contestants, with NumPy's and the one-device line beside them, timed in a fresh
  process holding `DATA_PARALLEL_DEVICES` CPU devices; its speed and matmul parts, and its command."""
  with tempfile.TemporaryDirectory() as scratch:
    out = os.path.join(scratch, "child.json")
    options = ["--devices", str(DATA_PARALLEL_DEVICES), "--contestants", ",".join(DATA_PARALLEL_CONTESTANTS),
               "--skip-quality", "--rounds", str(rounds), "--trajectories", str(trajectories)]
    options += ["--quick"] if quick else []
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), *options, "--out", out]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
      raise RuntimeError(f"the data-parallel child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    child = json.loads(pathlib.Path(out).read_text())
  return {"devices": DATA_PARALLEL_DEVICES, "speed": child["speed"], "matmul": child["matmul"],
          "machine": child["machine"], "date": child["date"],
          "command": " ".join(["python benchmarks/hmc_throughput.py", *options])}


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
  parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 7; --quick 3)")
  parser.add_argument("--trajectories", type=int, default=10, help="trajectories per contestant per round")
  parser.add_argument("--contestants", default=None, help="comma-separated subset (default: all)")
  parser.add_argument("--xla-flags", default="", help="XLA flags for this process (set before jax starts)")
  parser.add_argument("--skip-quality", action="store_true", help="skip the bfloat16 sampling check")
  parser.add_argument("--ablations", action="store_true", help="add the closed-form variants that were tried")
  parser.add_argument("--out", type=pathlib.Path, default=None, help="JSON output path")
  parser.add_argument("--devices", type=int, default=1,
                      help="CPU devices of this process (read before jax starts; 1 for the headline)")
  parser.add_argument("--no-data-parallel", action="store_true",
                      help="skip the data-parallel child process (run with --devices 2)")
  args = parser.parse_args(argv)
  rounds = args.rounds if args.rounds is not None else (3 if args.quick else 7)
  if rounds < 1 or args.trajectories < 1:
    raise SystemExit(f"--rounds and --trajectories must be >= 1, got {rounds} and {args.trajectories}")
  all_contestants = ["numpy_blas1", "numpy_blas2", "numpy_2proc", "jax_plain", "deepvision", "deepvision_autodiff",
                     "deepvision_bf16", "deepvision_data_parallel", "deepvision_data_parallel_bf16",
                     "deepvision_batch256"]
  if NUM_DEVICES < 2:
    all_contestants = [n for n in all_contestants if "data_parallel" not in n]
  ablations = ["ablation_numpy_concatenated", "ablation_concatenated", "ablation_no_carried_grad",
               "ablation_transposed", "ablation_split2"]
  contestants = (args.contestants.split(",") if args.contestants
                 else all_contestants + (ablations if args.ablations else []))
  all_contestants += ablations
  unknown = sorted(set(contestants) - set(all_contestants))
  if unknown or not any(n.startswith("numpy") for n in contestants):
    raise SystemExit(f"--contestants must name at least one numpy_* among {all_contestants}; "
                     f"unknown: {unknown}")
  out = args.out or RESULTS / ("hmc_throughput_quick.json" if args.quick else "hmc_throughput.json")
  cores = CORES
  command = "python benchmarks/hmc_throughput.py" + (
      " " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")

  params, x0 = mcrbm_params(), start_positions()
  start = time.perf_counter()
  load_start = os.getloadavg()
  report = {"benchmark": "mcRBM HMC throughput (B=128, D=105, F=256, N=144, M=100, L=20): "
                         "deepvision vs NumPy, CPU",
            "flops": {"per_evaluation": flops_per_evaluation(), "per_trajectory": flops_per_trajectory(),
                      "counted": "matrix products only: x·C, x·W, (s⊙s)·P, σ_c·Pᵀ, (r/L)·Cᵀ, σ_m·Wᵀ; "
                                 "20 gradient evaluations per trajectory (the chain's gradient is "
                                 "carried; 21 for ablation_no_carried_grad)"}}
  print("0. closed forms agree ...", flush=True)
  report["closed_forms"] = closed_forms_agree(params, x0)
  print("1. matrix-product rate ...", flush=True)
  busy_start, own_start, timed_start = cpu_busy_seconds(), time.process_time(), time.perf_counter()
  report["matmul"] = matmul_rates(1024 if args.quick else 2048)
  print("2. HMC throughput ...", flush=True)
  report["speed"] = speed(params, x0, rounds, args.trajectories, contestants)
  busy_end, own_end, timed_end = cpu_busy_seconds(), time.process_time(), time.perf_counter()
  if NUM_DEVICES == 1 and DATA_PARALLEL_DEVICES > 1 and not args.contestants and not args.no_data_parallel:
    print(f"2b. data-parallel contestants in a process with {DATA_PARALLEL_DEVICES} CPU devices ...", flush=True)
    report["data_parallel_process"] = data_parallel_child(rounds, args.trajectories, args.quick)
  others = (None if busy_start is None else
            max(0.0, (busy_end - busy_start - (own_end - own_start)) / ((timed_end - timed_start) * cores)))
  matmul = report["matmul"]["jax_float32"]["gflops_median"]
  ceiling = max(matmul, report["matmul"]["numpy_float32"]["gflops_median"])
  report["matmul"]["float32_ceiling_gflops"] = ceiling
  for result in report["speed"]["results"].values():
    result["percent_of_float32_matmul_ceiling"] = 100 * result["gflops"] / ceiling
    result["percent_of_jax_float32_matmul"] = 100 * result["gflops"] / matmul
    result["percent_of_numpy_float32_matmul"] = 100 * result["gflops"] / report["matmul"]["numpy_float32"][
        "gflops_median"]
  if not args.skip_quality:
    print("3. bfloat16 sampling quality ...", flush=True)
    report["bf16_quality"] = sampling_quality(params, x0, 60 if args.quick else 200)
  elapsed = time.perf_counter() - start
  report.update({
      "targets": targets(report),
      "versions": versions(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "threads": {"cores_available": cores,
                  "jax": f"XLA:CPU, {NUM_DEVICES} CPU device(s) in this process (the data-parallel contestants "
                         f"use all, the others device 0), intra-op pool over {cores} cores; the data-parallel "
                         f"line runs in a child process with {DATA_PARALLEL_DEVICES} devices",
                  "numpy": "BLAS threads as named (numpy_blas1, numpy_blas2); numpy_2proc: two worker "
                           "processes, one BLAS thread each"},
      "machine": {**machine.describe(), "processor": platform.processor(),
                  "other_processes_cpu_share_during_timings": None if others is None else round(others, 3),
                  "load_average_1min_start_end": [round(load_start[0], 2), round(os.getloadavg()[0], 2)]},
      "measured_seconds": round(elapsed, 1),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": command,
  })
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(report, indent=2) + "\n")

  m = report["matmul"]
  print(f"matrix product {m['size']}³: jax float32 {m['jax_float32']['gflops_median']:.0f}, "
        f"numpy float32 {m['numpy_float32']['gflops_median']:.0f}, "
        f"jax bfloat16 {m['jax_bfloat16']['gflops_median']:.0f} GFLOP/s")
  s = report["speed"]
  print(f"HMC, {BATCH} particles × {NUM_LEAPFROG} leapfrog steps (reference: {s['numpy_reference']}):")
  for name, r in s["results"].items():
    ratio_text = ""
    if f"{name}/numpy" in s["ratios"]:
      q = s["ratios"][f"{name}/numpy"]
      ratio_text = (f" {q['ratio_of_medians']:.2f}× numpy (rounds: {q['median_of_round_ratios']:.2f}×, "
                    f"CPU time: {q['cpu_time_ratio']:.2f}×)")
    print(f"  {name:29s} {r['ms_per_trajectory']:6.2f} ms/trajectory "
          f"{r['particle_leapfrog_steps_per_s']:8.0f} particle-steps/s {r['gflops']:4.0f} GFLOP/s "
          f"({r['percent_of_float32_matmul_ceiling']:3.0f}% of matmul)"
          f"{ratio_text}")
  for name, why in s["skipped"].items():
    print(f"  {name:29s} skipped: {why}")
  if "bf16_quality" in report:
    q = report["bf16_quality"]
    for name in ("float32", "float32_other_key", "bfloat16"):
      print(f"  {name:18s} acceptance {q[name]['mean_acceptance']:.3f}  "
            f"step {q[name]['final_step_size']:.4f}  "
            f"F {q[name]['free_energy_mean']:8.3f} ± {q[name]['free_energy_se']:.3f}  "
            f"‖x‖² {q[name]['sq_norm_mean']:.2f}")
    print(f"  bfloat16 quality holds: {q['summary']['holds']}")
  for target in report["targets"]:
    print(f"target: {target['name']}: {'met' if target['met'] else 'NOT MET'} (measured {target['measured']:.2f}, "
          f"target {target['comparison']} {target['target']:g})")
  if others is not None and others > 0.1:
    print(f"warning: other processes used {100 * others:.0f}% of the {cores} cores during the timings; "
          "rerun on an idle machine for representative ratios.")
  print(f"{elapsed:.0f} s; wrote {out}")
  return report


if __name__ == "__main__":
  main()
