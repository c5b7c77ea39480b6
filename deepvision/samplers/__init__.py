"""MCMC samplers as `(init, step)` pairs (the blackjax shape, `base.py`), and the procedures built on them.

Kernels: block Gibbs for RBMs (`gibbs`), fixed-step-size Hybrid Monte Carlo on an energy (`hmc`); the
original mcRBM code's step-size adaptation wraps a kernel (`adaptation`). The registry of model-level
samplers chosen by name from configs is `registry.SAMPLERS` ('gibbs', 'hmc', the latter the sharded
HMC chains of `hmc_chains`). Sampling procedures of the models: DBNs (`dbn`), gated MRFs' visibles and
tiled images (`gated_mrf`), deep gated MRFs (`deep_gated_mrf`), inpainting (`conditional`,
with the pixel-space energy of whitened models in `pixel_space`).
"""
