"""Audio frontends: waveform ``(batch, samples)`` -> features ``(batch, n_filters, frames)``,
all on one frame convention (``ceil(samples / hop)`` frames centered on hop * i + hop // 2),
so any of them drops into the same classifier.

``Leaf`` (Zeghidour et al., ICLR 2021) and its components (``GaborConv1d``,
``squared_modulus``, ``GaussianLowpass``, ``PCEN``); the baselines ``MelFilterbank``,
``TDFilterbank`` (Zeghidour et al., ICASSP 2018) and ``SincNet`` (Ravanelli & Bengio, 2018).
"""

from .gabor import GaborConv1d, SquaredModulus, gabor_impulse_responses, squared_modulus
from .leaf import Leaf, LogCompression, PreEmphasis
from .mel import MelFilterbank
from .mel_scale import gabor_parameters_from_mel, hz_to_mel, mel_filter_matrix, mel_to_hz
from .pcen import PCEN, exponential_moving_average
from .pooling import GaussianLowpass, LearnablePooling
from .sincnet import SincNet
from .tdfbank import TDFilterbank

__all__ = ["Leaf", "GaborConv1d", "SquaredModulus", "squared_modulus", "GaussianLowpass",
           "LearnablePooling", "PCEN", "exponential_moving_average", "MelFilterbank",
           "TDFilterbank", "SincNet", "LogCompression", "PreEmphasis", "gabor_impulse_responses",
           "gabor_parameters_from_mel", "mel_filter_matrix", "hz_to_mel", "mel_to_hz",
           "FRONTENDS", "make_frontend"]

FRONTENDS = {"mel": MelFilterbank, "leaf": Leaf, "tdfbank": TDFilterbank, "sincnet": SincNet}


def make_frontend(name: str, **kwargs):
    """A frontend by name: ``"mel"``, ``"leaf"``, ``"tdfbank"`` or ``"sincnet"``."""
    if name not in FRONTENDS:
        raise ValueError(f"make_frontend: name must be one of {sorted(FRONTENDS)}, got {name!r}")
    return FRONTENDS[name](**kwargs)
