"""Speaker diarization: DIVE (Zeghidour, Teboul & Grangier, ASRU 2021), the field's formats
and metrics, conversation simulation, a long-audio pipeline and baselines.

- :mod:`.annotation`: ``pyannote.core.Annotation`` <-> frame activity matrices.
- :mod:`.formats`: RTTM, UEM, ``wav.scp``, ``segments``, ``utt2spk``, ``reco2dur``.
- :mod:`.metrics`: DER (md-eval collar convention), checked against pyannote.metrics.
- :mod:`.simulate`: EEND-style simulated conversations -> Kaldi-style data dirs.
- :mod:`.dive`: the DIVE model, its loss, the PIT (SA-EEND) baseline.
- :mod:`.training`: windows, training, checkpoints.
- :mod:`.pipeline`: :func:`diarize` / :func:`diarize_file` with windowing and speaker linking.
- :mod:`.vad`, :mod:`.embeddings`, :mod:`.clustering`: the offline clustering pipelines
  (silero-vad + pretrained d-vectors; energy VAD + MFCC statistics).
"""

import importlib

# Names are loaded on first use (PEP 562), so ``lutece --help`` and the other commands do
# not pay for pyannote, scikit-learn and the models when they only build their parsers.
_EXPORTS = {
    "annotation": ["Annotation", "Segment", "annotation_from_turns", "annotation_to_frames",
                   "frames_to_annotation", "relabel", "turns"],
    "formats": ["DiarizationFormatError", "read_rttm", "write_rttm", "read_uem", "write_uem",
                "read_wav_scp", "write_wav_scp", "read_kaldi_data_dir"],
    "metrics": ["diarization_error_rate", "pyannote_der", "evaluate", "evaluate_files",
                "DERReport"],
    "simulate": ["Conversation", "synthetic_utterances", "utterances_from_folder",
                 "simulate_conversations", "write_conversations"],
    "dive": ["DIVE", "DiveConfig", "DiveOutput", "PITDiarizer", "collar_mask", "dive_loss",
             "pit_loss"],
    "training": ["DiarizationChunks", "DiarizationTrainConfig", "train_diarizer",
                 "save_diarizer", "load_diarizer"],
    "pipeline": ["diarize", "diarize_file", "LinkingConfig"],
    "clustering": ["ClusteringDiarizer", "default_pipeline", "baseline_pipeline"],
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
