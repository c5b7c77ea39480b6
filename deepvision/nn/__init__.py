"""Layers: convolution, local contrast normalisation, pooling, initialisers."""
