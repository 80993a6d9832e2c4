"""One small DIVE model trained once per session on simulated conversations, shared by the
pipeline and command-line tests (about 40 s on 2 cores)."""

import pytest
import torch

from lutece.audio.diarization.dive import DiveConfig
from lutece.audio.diarization.simulate import simulate_conversations, synthetic_utterances
from lutece.audio.diarization.training import DiarizationTrainConfig, train_diarizer

TINY_STEPS = 500


@pytest.fixture(scope="session")
def held_out_voices():
    """Voices no training conversation uses (indices past the training voices)."""
    return synthetic_utterances(6, 10, seed=0, first_speaker=5000)


@pytest.fixture(scope="session")
def tiny_dive():
    voices = synthetic_utterances(80, 10, seed=0)
    conversations = simulate_conversations(voices, 200, num_speakers=(1, 3),
                                           utterances_per_speaker=(3, 6), seed=1)
    torch.manual_seed(0)
    return train_diarizer([(c.wave, c.annotation) for c in conversations],
                          DiveConfig(channels=48),
                          DiarizationTrainConfig(steps=TINY_STEPS, batch_size=12,
                                                 chunk_seconds=6.0, learning_rate=4e-3,
                                                 num_chunks=TINY_STEPS * 12, progress=False))
