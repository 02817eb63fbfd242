"""spiralprune: JAX-vectorised batch training of masked MLPs on the Cubist Spiral."""

__version__ = "0.1.0"
