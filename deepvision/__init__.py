"""deepvision: the methods of "Deep Learning for Vision: Tricks of the Trade" in JAX."""

__version__ = "0.1.0"
