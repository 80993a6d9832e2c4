"""lutece: ten research results on learning with discrete structure, optimal transport,
audio and pooled testing, in one PyTorch library and command line."""

__version__ = "0.1.0"

__all__ = ["__version__"]
