"""Tests of lutece.audio.lm.audiolm (AudioLM: prompt continuation and acoustic generation
from semantic tokens), with a tiny SoundStream and a fake 25 Hz semantic tokenizer.

Oracles: the rate arithmetic of AudioLM (Borsos et al., 2022: 16 kHz, 25 Hz semantic, 50 Hz
acoustic, so 640 samples and 2 acoustic frames per semantic token), the requested output
length, what each stage receives (recorded by wrapping its ``generate``), and one error per
documented bad input.
"""

import math

import pytest
import torch

from lutece.audio.lm import (
    AudioLM,
    CoarseStage,
    CoarseStageConfig,
    CodecConfig,
    FineStage,
    FineStageConfig,
    SemanticStage,
    SemanticStageConfig,
    SoundStream,
    TransformerConfig,
    stage_loss,
)

RATE, K, N, Q, QC = 16000, 8, 16, 4, 2
SEMANTIC_HOP = 640  # 25 Hz at 16 kHz


class FakeTokenizer:
    """A fixed random projection of each 40 ms frame + argmax: ``vocab_size`` ids at 25 Hz,
    the interface of ``lutece.audio.lm.semantic.Tokenizer``."""

    def __init__(self, vocab_size=K, sample_rate=RATE, frame_rate=25.0, seed=0):
        self.vocab_size, self.sample_rate, self.frame_rate = vocab_size, sample_rate, frame_rate
        self.hop = round(sample_rate / frame_rate)
        self.projection = torch.randn(self.hop, vocab_size,
                                      generator=torch.Generator().manual_seed(seed))

    def tokenize(self, wave):
        frames = wave.shape[-1] // self.hop
        x = wave[:, :frames * self.hop].reshape(wave.shape[0], frames, self.hop)
        return (x @ self.projection).argmax(-1)



def _arch(max_length=256):
    return TransformerConfig(dim=32, num_layers=1, num_heads=2, dropout=0.0,
                             max_length=max_length)


def _tones(count, samples, seed=0):
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / RATE
    f0 = 150 + 300 * torch.rand(count, 1, generator=generator)
    return 0.3 * sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in (1, 2, 3))


def _parts(**changes):
    torch.manual_seed(0)
    codec = SoundStream(CodecConfig(channels=4, latent_dim=16, num_levels=Q, codebook_size=N,
                                    strides=(2, 4, 5, 8)))
    codec.train()
    codec(_tones(4, RATE))  # k-means initialization of the codebooks
    codec.eval()
    parts = {
        "tokenizer": FakeTokenizer(),
        "codec": codec,
        "semantic_stage": SemanticStage(SemanticStageConfig(vocab_size=K, transformer=_arch())),
        "coarse_stage": CoarseStage(CoarseStageConfig(
            semantic_vocab_size=K, codebook_size=N, coarse_levels=QC, frames_per_semantic=2,
            transformer=_arch())),
        "fine_stage": FineStage(FineStageConfig(codebook_size=N, num_levels=Q,
                                                coarse_levels=QC, chunk_frames=10,
                                                transformer=_arch(64))),
    }
    parts.update(changes)
    return parts


@pytest.fixture(scope="module")
def model():
    """A tiny AudioLM whose three stages each trained a few steps on tones."""
    parts = _parts()
    audio = _tones(6, 32 * SEMANTIC_HOP, seed=1)  # 1.28 s: 32 semantic, 64 acoustic frames
    semantic = parts["tokenizer"].tokenize(audio)
    codes = parts["codec"].encode(audio)
    assert semantic.shape == (6, 32) and codes.shape == (6, 64, Q)
    batches = {"semantic_stage": (semantic,), "coarse_stage": (semantic[:, :16], codes[:, :32]),
               "fine_stage": (codes[:, :20],)}
    for name, batch in batches.items():
        stage = parts[name]
        optimizer = torch.optim.Adam(stage.parameters(), lr=3e-3)
        for _ in range(5):
            optimizer.zero_grad()
            loss = stage_loss(stage, batch)
            loss.backward()
            optimizer.step()
        assert math.isfinite(float(loss.detach()))
        stage.eval()
    return AudioLM(**parts)


@pytest.fixture()
def prompt():
    return _tones(1, 10 * SEMANTIC_HOP + 100, seed=2)[0]  # 0.4 s + a 100-sample tail


# ---------------------------------------------------------------------------- end to end
def test_continue_audio_returns_the_requested_length(model, prompt):
    assert model.frames_per_semantic == 2 and model.semantic_hop == SEMANTIC_HOP
    out = model.continue_audio(prompt, 0.3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (10 * SEMANTIC_HOP + round(0.3 * RATE),)  # the tail is dropped
    assert bool(torch.isfinite(out).all()) and float(out.abs().max()) > 0
    assert torch.equal(out[:10 * SEMANTIC_HOP], prompt[:10 * SEMANTIC_HOP])
    only = model.continue_audio(prompt[None], 0.3, include_prompt=False,
                                generator=torch.Generator().manual_seed(0))
    assert only.shape == (1, round(0.3 * RATE))
    torch.testing.assert_close(only[0], out[10 * SEMANTIC_HOP:])  # same seed, same result


def test_continue_audio_cache_and_greedy(model, prompt):
    kwargs = {"temperature": (0.0, 0.0, 0.0), "include_prompt": False}
    greedy = model.continue_audio(prompt, 0.2, **kwargs)
    assert torch.equal(greedy, model.continue_audio(prompt, 0.2, use_cache=False, **kwargs))
    other_seed = model.continue_audio(prompt, 0.2, generator=torch.Generator().manual_seed(7),
                                      **kwargs)
    assert torch.equal(greedy, other_seed)  # greedy draws nothing
    seeded = [model.continue_audio(prompt, 0.2, temperature=1.0, top_k=(None, 4, 2),
                                   generator=torch.Generator().manual_seed(5))
              for _ in range(2)]
    assert torch.equal(*seeded)


def test_generate_from_semantic(model):
    tokens = torch.tensor([[1, 1, 2, 3, 3, 3, 0, 7]])
    wave = model.generate_from_semantic(tokens, generator=torch.Generator().manual_seed(0))
    assert wave.shape == (1, 8 * SEMANTIC_HOP) and bool(torch.isfinite(wave).all())
    assert model.generate_from_semantic(tokens[0]).shape == (8 * SEMANTIC_HOP,)


# ------------------------------------------------------- what each stage is given to read
def _record(monkeypatch, stage):
    calls = []
    original = stage.generate

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append((args, kwargs, result))
        return result

    monkeypatch.setattr(stage, "generate", wrapper)
    return calls


def test_dedup_only_in_the_semantic_stage_and_rates_follow(model, monkeypatch):
    """A constant prompt gives one repeated semantic token: the semantic stage reads it once,
    the coarse stage reads every repetition, aligned 1:2 with the acoustic frames."""
    semantic_calls = _record(monkeypatch, model.semantic_stage.transformer)
    coarse_calls = _record(monkeypatch, model.coarse_stage)
    fine_calls = _record(monkeypatch, model.fine_stage)
    constant = torch.full((6 * SEMANTIC_HOP,), 0.25)
    prompt_tokens = model.tokenizer.tokenize(constant[None])
    assert prompt_tokens.unique().numel() == 1  # six repetitions of one token
    model.continue_audio(constant, 0.2, generator=torch.Generator().manual_seed(0))

    (prefix, ranges), _, new_semantic = semantic_calls[0]
    bos = model.semantic_stage.special.bos
    assert prefix.tolist() == [[bos, int(prompt_tokens[0, 0])]]  # de-duplicated
    assert new_semantic.shape == (1, 5)  # ceil(0.2 s x 25 Hz)

    (semantic, prompt_codes), _, coarse = coarse_calls[0]
    assert torch.equal(semantic[:, :6], prompt_tokens)  # the repetitions are kept
    assert torch.equal(semantic[:, 6:], new_semantic)
    assert prompt_codes.shape == (1, 12, QC)  # 6 semantic frames x 2
    assert coarse.shape == (1, 2 * 11, QC)  # acoustic frames = 2 x semantic frames

    # the fine stage gets the continuation's coarse codes and nothing else
    (fine_input,), fine_kwargs, fine = fine_calls[0]
    assert set(fine_kwargs) == {"temperature", "top_k", "generator", "use_cache"}
    assert torch.equal(fine_input, coarse[:, 12:])
    assert fine.shape == (1, 10, Q - QC)


def test_fine_stage_output_does_not_depend_on_semantic_tokens(model, monkeypatch):
    """With the coarse codes fixed, any semantic tokens give the same fine codes."""
    fixed = torch.randint(0, N, (1, 8, QC), generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(model.coarse_stage, "generate", lambda *args, **kwargs: fixed)
    fine_calls = _record(monkeypatch, model.fine_stage)
    for tokens in (torch.tensor([[0, 1, 2, 3]]), torch.tensor([[7, 7, 5, 6]])):
        model.generate_from_semantic(tokens, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fine_calls[0][2], fine_calls[1][2])


# ----------------------------------------------------------------------- error paths
def test_construction_errors():
    with pytest.raises(ValueError, match=r"semantic_stage.config.vocab_size = 9 does not match "
                                         r"tokenizer.vocab_size = 8"):
        AudioLM(**_parts(semantic_stage=SemanticStage(SemanticStageConfig(
            vocab_size=9, transformer=_arch()))))
    with pytest.raises(ValueError, match="coarse_stage.config.codebook_size = 8 does not match "
                                         "codec.config.codebook_size = 16"):
        AudioLM(**_parts(coarse_stage=CoarseStage(CoarseStageConfig(
            semantic_vocab_size=K, codebook_size=8, coarse_levels=QC, transformer=_arch()))))
    with pytest.raises(ValueError, match="coarse_stage.config.semantic_vocab_size = 5"):
        AudioLM(**_parts(coarse_stage=CoarseStage(CoarseStageConfig(
            semantic_vocab_size=5, codebook_size=N, coarse_levels=QC, transformer=_arch()))))
    with pytest.raises(ValueError, match="frames_per_semantic = 3 does not match codec frame "
                                         "rate / tokenizer frame rate = 2"):
        AudioLM(**_parts(coarse_stage=CoarseStage(CoarseStageConfig(
            semantic_vocab_size=K, codebook_size=N, coarse_levels=QC, frames_per_semantic=3,
            transformer=_arch()))))
    with pytest.raises(ValueError, match="fine_stage.config.num_levels = 5 does not match "
                                         "codec.config.num_levels = 4"):
        AudioLM(**_parts(fine_stage=FineStage(FineStageConfig(
            codebook_size=N, num_levels=5, coarse_levels=QC, chunk_frames=4,
            transformer=_arch()))))
    with pytest.raises(ValueError, match="fine_stage.config.coarse_levels = 3 does not match "
                                         "coarse_stage.config.coarse_levels = 2"):
        AudioLM(**_parts(fine_stage=FineStage(FineStageConfig(
            codebook_size=N, num_levels=Q, coarse_levels=3, chunk_frames=4,
            transformer=_arch()))))
    with pytest.raises(ValueError, match="tokenizer reads 8000 Hz audio but the codec 16000 Hz"):
        AudioLM(**_parts(tokenizer=FakeTokenizer(sample_rate=8000, frame_rate=12.5)))
    with pytest.raises(ValueError, match=r"integer multiple.*ratio of 1\.66667"):
        AudioLM(**_parts(tokenizer=FakeTokenizer(frame_rate=30.0)))
    with pytest.raises(TypeError, match="tokenizer must have .* lacks vocab_size"):
        AudioLM(**_parts(tokenizer=type("NoVocab", (), {"sample_rate": RATE,
                                                        "frame_rate": 25.0,
                                                        "tokenize": lambda self, w: w})()))
    with pytest.raises(TypeError, match="fine_stage must be a FineStage, got CoarseStage"):
        AudioLM(**_parts(fine_stage=_parts()["coarse_stage"]))


def test_call_errors(model, prompt):
    with pytest.raises(ValueError, match=r"639 samples, shorter than one semantic frame "
                                         r"\(640 samples = 40 ms at 16000 Hz\)"):
        model.continue_audio(prompt[:639], 1.0)
    with pytest.raises(ValueError, match="the prompt is at 8000 Hz but the tokenizer and codec "
                                         "read 16000 Hz"):
        model.continue_audio(prompt, 1.0, sample_rate=8000)
    model.continue_audio(prompt, 0.05, sample_rate=RATE)  # the right rate is accepted
    with pytest.raises(ValueError, match="seconds must be a positive finite number"):
        model.continue_audio(prompt, 0.0)
    with pytest.raises(ValueError, match=r"shape \(samples,\) or \(1, samples\)"):
        model.continue_audio(torch.stack([prompt, prompt]), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        model.continue_audio(torch.full_like(prompt, math.nan), 1.0)
    with pytest.raises(ValueError, match="coarse sequence of .* tokens, more than the coarse "
                                         "stage's max_length=256; ask for fewer seconds"):
        model.continue_audio(prompt, 2.0)
    with pytest.raises(ValueError, match="need a semantic sequence of .* semantic stage's "
                                         "max_length=256"):
        model.continue_audio(prompt, 10.0)
    with pytest.raises(ValueError, match="temperature must be one value or one per stage"):
        model.continue_audio(prompt, 0.1, temperature=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"tokens must hold semantic tokens of the tokenizer's "
                                         r"vocabulary in \[0, 8\), got values in \[0, 8\]"):
        model.generate_from_semantic(torch.tensor([[0, 8]]))
    with pytest.raises(TypeError, match="integer dtype"):
        model.generate_from_semantic(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"shape \(frames,\) or \(1, frames\)"):
        model.generate_from_semantic(torch.zeros(2, 4, dtype=torch.long))


def test_tokenizer_output_outside_its_vocabulary(prompt):
    class Broken(FakeTokenizer):
        def tokenize(self, wave):
            return super().tokenize(wave) + self.vocab_size

    lm = AudioLM(**_parts(tokenizer=Broken()))
    with pytest.raises(ValueError, match=r"the tokenizer's output must hold semantic tokens of "
                                         r"its vocabulary in \[0, 8\)"):
        lm.continue_audio(prompt, 0.1)


def test_codes_outside_the_vocabulary_are_rejected(model):
    with pytest.raises(ValueError, match=r"coarse must hold codes in \[0, 16\)"):
        model.fine_stage.generate(torch.full((1, 4, QC), N))
    with pytest.raises(ValueError, match=r"prompt_codes|codes must hold codes in \[0, 16\)"):
        model.coarse_stage.generate(torch.zeros(1, 2, dtype=torch.long),
                                    torch.full((1, 2, QC), -1))
