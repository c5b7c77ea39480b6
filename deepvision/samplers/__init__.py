"""MCMC samplers as `(init, step)` pairs: block Gibbs for RBMs (HMC joins them with the gated MRFs)."""
