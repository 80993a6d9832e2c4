"""Tests of lutece.audio.lm.transformers: token layouts, the KV-cached causal Transformer,
sampling and the three AudioLM stages.

Oracles: the inverse map (flatten/unflatten), the teacher-forced pass (for incremental
KV-cache decoding), argmax (greedy, top-k = 1, temperature -> 0), the top-k set over many
draws, torch.unique_consecutive and the rate arithmetic of AudioLM (Borsos et al., 2022:
50 Hz / 25 Hz = 2 acoustic frames per semantic token, ``r Q'`` coarse tokens each).
"""

import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lutece.audio.lm import (
    CausalTransformer,
    CoarseStage,
    CoarseStageConfig,
    FineStage,
    FineStageConfig,
    KVCache,
    SemanticStage,
    SemanticStageConfig,
    SpecialTokens,
    TransformerConfig,
    flatten_codes,
    sample_logits,
    stage_loss,
    unflatten_codes,
)

K, N, Q, QC = 7, 5, 4, 2  # semantic vocab, codebook size, levels, coarse levels



def _arch(positions="rotary", max_length=128, **changes):
    return TransformerConfig(**{"dim": 16, "num_layers": 2, "num_heads": 2, "dropout": 0.0,
                                "max_length": max_length, "positions": positions, **changes})


def _stages(positions="rotary", dtype=torch.float32):
    torch.manual_seed(0)
    semantic = SemanticStage(SemanticStageConfig(vocab_size=K, transformer=_arch(positions)))
    coarse = CoarseStage(CoarseStageConfig(semantic_vocab_size=K, codebook_size=N,
                                           coarse_levels=QC, frames_per_semantic=2,
                                           transformer=_arch(positions)))
    fine = FineStage(FineStageConfig(codebook_size=N, num_levels=Q, coarse_levels=QC,
                                     chunk_frames=6, transformer=_arch(positions)))
    return [stage.to(dtype).eval() for stage in (semantic, coarse, fine)]


def _tokens(batch, frames, high, seed=0):
    return torch.randint(0, high, (batch, frames), generator=torch.Generator().manual_seed(seed))


def _codes(batch, frames, levels=Q, seed=1):
    return torch.randint(0, N, (batch, frames, levels),
                         generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------ layouts
@settings(max_examples=60, deadline=None)
@given(batch=st.integers(0, 3), frames=st.integers(0, 6), levels=st.integers(1, 5),
       codebook_size=st.integers(1, 9), first_level=st.integers(0, 3), seed=st.integers(0, 99))
def test_flatten_unflatten_round_trip(batch, frames, levels, codebook_size, first_level, seed):
    codes = torch.randint(0, codebook_size, (batch, frames, levels),
                          generator=torch.Generator().manual_seed(seed))
    ids = flatten_codes(codes, codebook_size, first_level)
    assert ids.shape == (batch, frames * levels) and ids.dtype == torch.int64
    back = unflatten_codes(ids, codebook_size, levels, first_level)
    assert torch.equal(back, codes)


def test_flatten_is_row_major_with_level_offsets():
    codes = torch.tensor([[[1, 2, 0], [3, 4, 1]]])  # 2 frames x 3 levels, N = 5
    assert flatten_codes(codes, 5).tolist() == [[1, 7, 10, 3, 9, 11]]
    assert flatten_codes(codes[..., 1:], 5, first_level=1).tolist() == [[7, 10, 9, 11]]


def test_flatten_rejects_codes_outside_codebook():
    with pytest.raises(ValueError, match=r"codes must hold codes in \[0, 5\), got values in "
                                         r"\[0, 5\]"):
        flatten_codes(torch.tensor([[[0, 5]]]), 5)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        flatten_codes(torch.tensor([[[-1, 2]]]), 5)
    with pytest.raises(TypeError, match="integer dtype"):
        flatten_codes(torch.zeros(1, 2, 2), 5)
    with pytest.raises(ValueError, match="3-d"):
        flatten_codes(torch.zeros(2, 2, dtype=torch.long), 5)


def test_unflatten_rejects_ids_of_the_wrong_level():
    with pytest.raises(ValueError, match=r"ids\[0, 1\] = 3 is not an id of level 1"):
        unflatten_codes(torch.tensor([[1, 3]]), 5, 2)  # position 1 must be in [5, 10)
    with pytest.raises(ValueError, match="not a multiple of num_levels=2"):
        unflatten_codes(torch.tensor([[1, 6, 2]]), 5, 2)
    with pytest.raises(ValueError, match=r"in \[10, 20\)"):
        unflatten_codes(torch.tensor([[1, 16]]), 5, 2, first_level=2)


def test_special_tokens_follow_all_real_ids():
    special = SpecialTokens(10)
    assert (special.bos, special.separator, special.eos, special.vocab_size) == (10, 11, 12, 13)
    semantic, coarse, fine = _stages()
    assert semantic.special.bos == K and semantic.vocab_size == K + 3
    assert coarse.special.bos == K + QC * N and coarse.vocab_size == K + QC * N + 3
    assert fine.special.bos == Q * N and fine.vocab_size == Q * N + 3


# --------------------------------------------------------------------- stage sequences
def test_semantic_sequence_is_deduplicated_and_padded():
    semantic, _, _ = _stages()
    tokens = torch.tensor([[1, 1, 2, 2, 2, 1], [4, 5, 6, 0, 1, 2]])
    sequence = semantic.build_sequence(tokens)
    bos, eos = semantic.special.bos, semantic.special.eos
    assert sequence.ids.tolist() == [[bos, 1, 2, 1, eos, eos, eos], [bos, 4, 5, 6, 0, 1, 2]]
    assert sequence.loss_mask.tolist() == [[False, True, True, True, False, False, False],
                                           [False] + [True] * 6]
    no_dedup = SemanticStage(SemanticStageConfig(vocab_size=K, deduplicate=False,
                                                 transformer=_arch()))
    assert no_dedup.build_sequence(tokens).ids[0, 1:].tolist() == tokens[0].tolist()


def test_coarse_sequence_keeps_semantic_repetitions_and_follows_the_rate_ratio():
    _, coarse, _ = _stages()
    semantic = torch.tensor([[1, 1, 2, 2]])  # repeated: the coarse stage sees them as they are
    codes = _codes(1, 8)  # 4 semantic frames x r = 2
    sequence = coarse.build_sequence(semantic, codes)
    assert sequence.ids.shape == (1, 4 + 1 + 8 * QC)
    assert sequence.ids.shape[1] == coarse.config.sequence_length(4)
    assert sequence.ids[0, :4].tolist() == [1, 1, 2, 2]
    assert sequence.ids[0, 4] == coarse.special.separator
    acoustic = sequence.ids[:, 5:]
    assert torch.equal(unflatten_codes(acoustic - K, N, QC), codes[..., :QC])
    assert bool((acoustic >= K).all()) and bool((acoustic < K + QC * N).all())
    assert not sequence.loss_mask[0, :5].any() and sequence.loss_mask[0, 5:].all()
    # per semantic token: r Q' coarse tokens (AudioLM: 2 x 4 = 8)
    assert acoustic.shape[1] / semantic.shape[1] == 2 * QC
    with pytest.raises(ValueError, match=r"4 semantic frames x frames_per_semantic=2 = 8 "
                                         r"acoustic frames expected, got codes with 7 frames"):
        coarse.build_sequence(semantic, codes[:, :7])
    with pytest.raises(ValueError, match=r"semantic must hold semantic tokens in \[0, 7\)"):
        coarse.build_sequence(semantic + K, codes)
    with pytest.raises(ValueError, match=r"codes must hold codes in \[0, 5\)"):
        coarse.build_sequence(semantic, codes + N)


def _interleaved_coarse(positions="rotary", dtype=torch.float32):
    torch.manual_seed(0)
    return CoarseStage(CoarseStageConfig(semantic_vocab_size=K, codebook_size=N,
                                         coarse_levels=QC, frames_per_semantic=2,
                                         transformer=_arch(positions),
                                         layout="interleaved")).to(dtype).eval()


def test_interleaved_coarse_sequence_puts_each_semantic_token_before_its_frames():
    coarse = _interleaved_coarse()
    semantic, codes = _tokens(2, 4, K), _codes(2, 8)
    sequence = coarse.build_sequence(semantic, codes)
    for b in range(2):  # the layout written out token by token
        ids = semantic[b].tolist() + [coarse.special.separator]
        targets = [False] * 5
        for t in range(4):
            ids.append(int(semantic[b, t]))
            targets.append(False)
            for frame in (2 * t, 2 * t + 1):
                ids += [K + q * N + int(codes[b, frame, q]) for q in range(QC)]
                targets += [True] * QC
        assert sequence.ids[b].tolist() == ids
        assert sequence.loss_mask[b].tolist() == targets
    assert sequence.ids.shape[1] == coarse.config.sequence_length(4) == 4 + 1 + 4 * (1 + 2 * QC)
    # the same acoustic tokens as the prefix layout, so the loss has as many targets
    _, prefix_coarse, _ = _stages()
    assert int(prefix_coarse.build_sequence(semantic, codes).loss_mask.sum()) == \
        int(sequence.loss_mask.sum())
    with pytest.raises(ValueError, match="layout must be one of"):
        CoarseStageConfig(layout="side-by-side")


@pytest.mark.parametrize("prompt_frames", [0, 3, 4, 10])
def test_interleaved_coarse_generation_follows_its_own_layout(prompt_frames):
    """Greedy codes, laid out again by build_sequence and read teacher-forced, are each the
    argmax over their level at their position: generation inserts the semantic tokens where
    training puts them, after a prompt of any length (odd: mid semantic frame)."""
    coarse = _interleaved_coarse(dtype=torch.float64)
    semantic, prompt = _tokens(2, 5, K), _codes(2, prompt_frames, QC)
    out = coarse.generate(semantic, prompt, temperature=0.0)
    assert torch.equal(out, coarse.generate(semantic, prompt, temperature=0.0,
                                            use_cache=False))
    assert out.shape == (2, 10, QC) and torch.equal(out[:, :prompt_frames], prompt)
    sequence = coarse.build_sequence(semantic, out)
    logits, _ = coarse.transformer(sequence.ids[:, :-1])
    targets, is_target = sequence.ids[:, 1:], sequence.loss_mask[:, 1:].clone()
    is_target[:, :5 + (prompt_frames + 1) // 2 + prompt_frames * QC] = False  # the prompt
    level_low = K + (targets - K).clamp(min=0) // N * N
    ids = torch.arange(coarse.vocab_size)
    outside = (ids < level_low[..., None]) | (ids >= level_low[..., None] + N)
    greedy = logits.masked_fill(outside, -math.inf).argmax(-1)
    assert int(is_target.sum()) == 2 * (10 - prompt_frames) * QC
    assert torch.equal(greedy[is_target], targets[is_target])
    sampled = coarse.generate(semantic, prompt, generator=torch.Generator().manual_seed(0))
    assert bool((sampled >= 0).all()) and bool((sampled < N).all())


def test_interleaved_coarse_checkpoint_keeps_its_layout(tmp_path):
    coarse = _interleaved_coarse()
    path = coarse.save(tmp_path / "coarse.pt")
    assert CoarseStage.from_checkpoint(path).config.layout == "interleaved"
    _, prefix_coarse, _ = _stages()
    with pytest.raises(ValueError, match="another configuration.*layout"):
        CoarseStage.from_checkpoint(path, prefix_coarse.config)


def test_forced_tokens_are_fed_not_sampled():
    model = CausalTransformer(11, _arch()).eval()
    prefix = _tokens(2, 3, 11)
    ranges = torch.tensor([[0, 5]] * 4)
    forced = torch.tensor([[-1, 7, -1, 2], [-1, 9, -1, 4]])
    out = model.generate(prefix, ranges.clone().index_put_((torch.tensor([1, 3]),),
                                                           torch.tensor([0, 11])),
                         temperature=0.0, forced=forced)
    assert out[:, [1, 3]].tolist() == [[7, 2], [9, 4]]
    # the free tokens are the greedy continuation of the forced ones
    chained = torch.cat((prefix, out), dim=1)
    logits, _ = model(chained[:, :-1])
    for step in (0, 2):
        assert torch.equal(out[:, step], logits[:, 2 + step, :5].argmax(-1))
    wide = torch.tensor([[0, 11]] * 4)
    with pytest.raises(ValueError, match=r"forced must have shape \(batch, num_tokens\)"):
        model.generate(prefix, wide, forced=forced[:, :3])
    with pytest.raises(ValueError, match="in every row or in none"):
        model.generate(prefix, wide, forced=torch.tensor([[-1, 7, -1, 2], [-1, -1, -1, 4]]))
    with pytest.raises(ValueError, match="must lie in their position's range"):
        model.generate(prefix, ranges, forced=forced)
    with pytest.raises(ValueError, match=r"forced must hold ids in \[-1, 11\)"):
        model.generate(prefix, wide, forced=forced - 5)


def test_fine_sequences_hold_only_acoustic_ids():
    """The fine stage never sees semantic tokens: its builder takes codes only and every id
    it writes is an acoustic id of ``flatten_codes`` (or the separator/padding)."""
    _, _, fine = _stages()
    codes = _codes(2, 14)  # chunks of 6: 6 + 6 + 2 frames
    sequence = fine.build_sequence(codes)
    assert sequence.ids.shape == (2 * 3, 6 * Q + 1)
    special = fine.special
    body = sequence.ids[(sequence.ids != special.separator) & (sequence.ids != special.eos)]
    assert bool((body >= 0).all()) and bool((body < Q * N).all())
    first = sequence.ids[0]  # batch row 0, chunk 0
    assert torch.equal(first[:6 * QC], flatten_codes(codes[:1, :6, :QC], N)[0])
    assert first[6 * QC] == special.separator
    assert torch.equal(first[6 * QC + 1:], flatten_codes(codes[:1, :6, QC:], N, QC)[0])
    last = sequence.ids[4]  # batch row 0, last chunk (2 frames), padded
    assert torch.equal(last[:2 * QC], flatten_codes(codes[:1, 12:, :QC], N)[0])
    assert (last[2 * Q + 1:] == special.eos).all()
    assert sequence.loss_mask[4].sum() == 2 * (Q - QC)
    # the fine transformer's whole vocabulary is acoustic + 3 specials: no room for semantics
    assert fine.transformer.vocab_size == Q * N + 3
    for method in (fine.build_sequence, fine.generate, fine.loss):
        assert not any("semantic" in name for name in inspect.signature(method).parameters)


def test_stage_lengths_must_fit_max_length():
    semantic, coarse, _ = _stages()
    with pytest.raises(ValueError, match="more than this stage's transformer.max_length=128"):
        coarse.build_sequence(_tokens(1, 30, K), _codes(1, 60))
    with pytest.raises(ValueError, match="max_length"):
        semantic.generate(_tokens(1, 100, K), 60)
    with pytest.raises(ValueError, match="more than transformer.max_length=16"):
        FineStageConfig(codebook_size=N, num_levels=Q, coarse_levels=QC, chunk_frames=6,
                        transformer=_arch(max_length=16))


# ------------------------------------------------------------------- KV cache equality
@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_incremental_kv_cache_logits_equal_teacher_forced(positions):
    semantic, coarse, fine = _stages(positions, torch.float64)
    sequences = [semantic.build_sequence(_tokens(2, 12, K)).ids,
                 coarse.build_sequence(_tokens(2, 4, K), _codes(2, 8)).ids,
                 fine.build_sequence(_codes(2, 6)).ids]
    for stage, ids in zip((semantic, coarse, fine), sequences):
        full, _ = stage.transformer(ids)
        cache = KVCache()
        steps = [stage.transformer(ids[:, i:i + 1], cache)[0] for i in range(ids.shape[1])]
        assert len(cache) == ids.shape[1]
        torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=0, atol=1e-12)
        # a prefill of several tokens then single steps: the same again
        prefill, cache = stage.transformer(ids[:, :5])
        rest = [stage.transformer(ids[:, i:i + 1], cache)[0] for i in range(5, ids.shape[1])]
        torch.testing.assert_close(torch.cat([prefill, *rest], dim=1), full, rtol=0,
                                   atol=1e-12)
        # a chunk after a non-empty cache
        _, cache = stage.transformer(ids[:, :3])
        chunk, _ = stage.transformer(ids[:, 3:], cache)
        torch.testing.assert_close(chunk, full[:, 3:], rtol=0, atol=1e-12)


def test_kv_cache_float32_tolerance_and_causality():
    model = CausalTransformer(11, _arch()).eval()
    ids = _tokens(3, 20, 11)
    full, _ = model(ids)
    cache = KVCache()
    steps = torch.cat([model(ids[:, i:i + 1], cache)[0] for i in range(20)], dim=1)
    torch.testing.assert_close(steps, full, rtol=1e-5, atol=1e-5)
    changed = ids.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 11  # the future does not change the past
    torch.testing.assert_close(model(changed)[0][:, :10], full[:, :10])


def test_transformer_errors():
    model = CausalTransformer(11, _arch(max_length=8))
    with pytest.raises(ValueError, match="9 tokens.*max_length=8"):
        model(_tokens(1, 9, 11))
    _, cache = model(_tokens(1, 6, 11))
    with pytest.raises(ValueError, match=r"9 tokens \(6 cached \+ 3 new\)"):
        model(_tokens(1, 3, 11), cache)
    with pytest.raises(ValueError, match="batch size 2"):
        model(_tokens(2, 1, 11), cache)
    with pytest.raises(ValueError, match=r"token ids in \[0, 11\)"):
        model(torch.tensor([[11]]))
    with pytest.raises(ValueError, match="at least one position"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="exceed this model's max_length=8"):
        model.generate(_tokens(1, 5, 11), torch.tensor([[0, 11]]).expand(4, 2))
    with pytest.raises(ValueError, match="multiple of num_heads"):
        TransformerConfig(dim=10, num_heads=3)
    with pytest.raises(ValueError, match="positions must be"):
        TransformerConfig(positions="alibi")
    with pytest.raises(ValueError, match="even head width"):
        TransformerConfig(dim=6, num_heads=2)


# -------------------------------------------------------------------------- sampling
def test_greedy_sampling():
    logits = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sample_logits(logits, temperature=0), logits.argmax(-1))
    for seed in range(5):
        top1 = sample_logits(logits, top_k=1, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(top1, logits.argmax(-1))
    # temperature -> 0: the softmax concentrates on the argmax
    cold = sample_logits(logits.expand(500, 4, 10), temperature=1e-4,
                         generator=torch.Generator().manual_seed(0))
    assert (cold == logits.argmax(-1)).all()


def test_top_k_never_samples_outside_the_top_k():
    logits = torch.randn(20, generator=torch.Generator().manual_seed(1))
    draws = sample_logits(logits.expand(4000, 20), temperature=2.0, top_k=3,
                          generator=torch.Generator().manual_seed(0))
    top = set(logits.topk(3).indices.tolist())
    assert set(draws.tolist()) == top  # never outside, and every one of them occurs
    # the same seed gives the same draws; the distribution is the renormalized softmax
    again = sample_logits(logits.expand(4000, 20), temperature=2.0, top_k=3,
                          generator=torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)
    index = sorted(top)
    expected = torch.softmax(logits[index] / 2.0, 0)
    observed = torch.tensor([(draws == i).float().mean() for i in index])
    torch.testing.assert_close(observed, expected, atol=0.03, rtol=0)


def test_sampling_errors():
    with pytest.raises(ValueError, match="temperature must be a finite float >= 0"):
        sample_logits(torch.zeros(3), temperature=-1.0)
    with pytest.raises(ValueError, match="top_k must be a positive int"):
        sample_logits(torch.zeros(3), top_k=0)
    with pytest.raises(TypeError, match="floating-point"):
        sample_logits(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN or all -inf"):
        sample_logits(torch.full((3,), -math.inf))


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_stage_generation_is_deterministic_and_cache_free_equal(positions):
    semantic, coarse, fine = _stages(positions, torch.float64)
    prompt = _tokens(1, 5, K)
    runs = {}
    for use_cache in (True, False):
        for temperature in (0.0, 1.0):
            gen = torch.Generator().manual_seed(3)
            runs[use_cache, temperature] = (
                semantic.generate(prompt, 6, temperature=temperature, generator=gen,
                                  use_cache=use_cache),
                coarse.generate(prompt, _codes(1, 3, QC), temperature=temperature,
                                generator=gen, use_cache=use_cache),
                fine.generate(_codes(1, 8, QC), temperature=temperature, generator=gen,
                              use_cache=use_cache))
    for temperature in (0.0, 1.0):
        for a, b in zip(runs[True, temperature], runs[False, temperature]):
            assert torch.equal(a, b)
    new_semantic, new_coarse, new_fine = runs[True, 1.0]
    assert new_semantic.shape == (1, 6) and bool((new_semantic < K).all())
    assert new_coarse.shape == (1, 10, QC) and torch.equal(new_coarse[:, :3],
                                                           _codes(1, 3, QC))
    assert new_fine.shape == (1, 8, Q - QC)
    assert bool((new_coarse < N).all()) and bool((new_fine < N).all())
    # top_k = 1 equals greedy
    gen = torch.Generator().manual_seed(9)
    top1 = coarse.generate(prompt, temperature=1.0, top_k=1, generator=gen)
    greedy = coarse.generate(prompt, temperature=0.0)
    assert torch.equal(top1, greedy)


def test_semantic_generate_unconditional_and_batched():
    semantic, _, _ = _stages()
    out = semantic.generate(None, 4, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 4) and bool((out < K).all())
    with pytest.raises(ValueError, match="different lengths after de-duplication"):
        semantic.generate(torch.tensor([[1, 1, 2], [1, 2, 3]]), 2)


def test_generate_restores_training_mode():
    semantic, _, _ = _stages()
    semantic.train()
    semantic.generate(None, 2)
    assert semantic.training


# --------------------------------------------------------------------- loss, checkpoints
def test_losses_decrease_with_training():
    semantic, coarse, fine = _stages()
    batches = [(_tokens(4, 8, K),), (_tokens(4, 4, K), _codes(4, 8)), (_codes(4, 9),)]
    for stage, batch in zip((semantic, coarse, fine), batches):
        stage.train()
        optimizer = torch.optim.Adam(stage.parameters(), lr=1e-2)
        first = float(stage_loss(stage, batch).detach())
        assert math.isclose(first, math.log(stage.vocab_size), rel_tol=0.2)  # ~uniform start
        for _ in range(15):
            optimizer.zero_grad()
            loss = stage_loss(stage, batch)
            loss.backward()
            optimizer.step()
        assert float(stage.loss(*batch).detach()) < 0.7 * first


def test_coarse_loss_ignores_the_semantic_part():
    _, coarse, _ = _stages()
    semantic, codes = _tokens(2, 4, K), _codes(2, 8)
    sequence = coarse.build_sequence(semantic, codes)
    logits, _ = coarse.transformer(sequence.ids[:, :-1])
    targets = sequence.ids[:, 5:]  # acoustic ids only
    expected = torch.nn.functional.cross_entropy(logits[:, 4:].reshape(-1, coarse.vocab_size),
                                                 targets.reshape(-1))
    torch.testing.assert_close(coarse.loss(semantic, codes), expected)


def test_stage_checkpoint_round_trip(tmp_path):
    semantic, coarse, _ = _stages()
    path = coarse.save(tmp_path / "coarse.pt")
    loaded = CoarseStage.from_checkpoint(path, coarse.config)
    ids = coarse.build_sequence(_tokens(1, 3, K), _codes(1, 6)).ids
    torch.testing.assert_close(loaded.transformer(ids)[0], coarse.transformer(ids)[0])
    with pytest.raises(ValueError, match="holds a CoarseStage, not a SemanticStage"):
        SemanticStage.from_checkpoint(path)
    other = CoarseStageConfig(semantic_vocab_size=K, codebook_size=N, coarse_levels=3,
                              transformer=_arch())
    with pytest.raises(ValueError, match="another configuration.*coarse_levels: 2 vs 3"):
        CoarseStage.from_checkpoint(path, other)
    with pytest.raises(FileNotFoundError):
        CoarseStage.from_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="config must be a SemanticStageConfig"):
        SemanticStage(coarse.config)
