"""Audio: file I/O, dataset loaders for the field's on-disk layouts, learnable frontends
(LEAF and its baselines) and a classifier to put behind them. Seeded synthetic corpora live
in :mod:`lutece.audio.synth`.

- :mod:`.io`: ``load``, ``save``, ``resample``, ``info`` (soundfile + soxr).
- :mod:`.datasets`: ``AudioFolder``, ``NSynth``, ``SpeechCommands``, ``LibriSpeech``.
- :mod:`.frontends`: ``Leaf`` (Zeghidour et al., ICLR 2021) and its components,
  ``MelFilterbank``, ``TDFilterbank``, ``SincNet``.
- :mod:`.classifier`: ``AudioClassifier`` (frontend -> CNN backbone -> one head per task).
"""

from .classifier import AudioClassifier, MultiTaskDataset, multitask_loss
from .datasets import AudioFolder, LibriSpeech, NSynth, SpeechCommands, collate_padded
from .frontends import (
    PCEN,
    GaborConv1d,
    GaussianLowpass,
    Leaf,
    MelFilterbank,
    SincNet,
    SquaredModulus,
    TDFilterbank,
    make_frontend,
    squared_modulus,
)
from .io import AudioFileError, AudioInfo, info, load, resample, save

__all__ = ["load", "save", "resample", "info", "AudioInfo", "AudioFileError", "AudioFolder",
           "NSynth", "SpeechCommands", "LibriSpeech", "collate_padded", "Leaf", "GaborConv1d",
           "SquaredModulus", "squared_modulus", "GaussianLowpass", "PCEN", "MelFilterbank",
           "TDFilterbank", "SincNet", "make_frontend", "AudioClassifier", "MultiTaskDataset",
           "multitask_loss"]
