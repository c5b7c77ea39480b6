"""Estimators of RBM normalisers and likelihoods: exact log Z by enumeration (`partition`), annealed
importance sampling (`ais`) and pseudo-likelihood (`pseudo_likelihood`)."""
