"""Tests of lutece.audio.lm.evaluation.

Oracles: a brute-force enumeration of every monotone warping path (DTW), a brute-force loop
over every (A, B, X) triplet (ABX), the closed form of a uniform model's perplexity (the
size of the vocabulary it spreads over), :func:`lutece.audio.lm.metrics.si_snr` on the
codec's own decoding (codec quality), AudioLM's token arithmetic (25 Hz semantic, 50 Hz x
``Q'`` coarse, 50 Hz x ``(Q - Q')`` fine), and one error per documented bad input.
"""

import itertools
import math

import numpy as np
import pytest
import torch

from lutece.audio.lm import (
    CoarseStage,
    CoarseStageConfig,
    CodecConfig,
    FineStage,
    FineStageConfig,
    SemanticStage,
    SemanticStageConfig,
    SoundStream,
    TransformerConfig,
    si_snr,
)
from lutece.audio.lm.evaluation import (
    abx_error,
    abx_error_from_distances,
    chroma_profile,
    codec_quality,
    consistency_scores,
    dtw_distance,
    frame_costs,
    music_consistency,
    pairwise_dtw,
    speaker_embeddings,
    speech_consistency,
    stage_perplexity,
    timbre_features,
    token_rates,
)
from lutece.audio.synth import play_note, random_instrument

RATE = 8000



# ------------------------------------------------------------------------------- DTW
def _paths(n, m):
    """Every monotone path from (0, 0) to (n - 1, m - 1) with steps (1,0), (0,1), (1,1)."""
    if (n, m) == (1, 1):
        yield [(0, 0)]
        return
    for di, dj in ((1, 1), (1, 0), (0, 1)):
        if n - di >= 1 and m - dj >= 1:
            for path in _paths(n - di, m - dj):
                yield path + [(n - 1, m - 1)]


def _brute_dtw(cost, normalize):
    best = min(_paths(*cost.shape), key=lambda p: sum(float(cost[i, j]) for i, j in p))
    total = sum(float(cost[i, j]) for i, j in best)
    return total / len(best) if normalize else total


@pytest.mark.parametrize("normalize", [False, True])
def test_dtw_matches_brute_force_over_all_paths(normalize):
    generator = torch.Generator().manual_seed(0)
    for n, m in ((1, 1), (1, 4), (3, 5), (5, 3), (4, 4)):
        cost = torch.rand(3, n, m, generator=generator, dtype=torch.float64)
        got = dtw_distance(cost, normalize=normalize)
        want = torch.tensor([_brute_dtw(c, normalize) for c in cost], dtype=torch.float64)
        torch.testing.assert_close(got, want)


def test_dtw_with_lengths_ignores_padding_and_2d_input():
    generator = torch.Generator().manual_seed(1)
    cost = torch.rand(2, 5, 6, generator=generator, dtype=torch.float64)
    got = dtw_distance(cost, torch.tensor([3, 5]), torch.tensor([6, 2]))
    torch.testing.assert_close(got[0], dtw_distance(cost[0, :3, :6]))
    torch.testing.assert_close(got[1], dtw_distance(cost[1, :5, :2]))
    assert dtw_distance(cost[0]).ndim == 0


def test_frame_costs_ids_cosine_euclidean():
    ids = frame_costs(torch.tensor([[1, 2]]), torch.tensor([[2, 2, 3]]), "ids")
    torch.testing.assert_close(ids, torch.tensor([[[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]]))
    a = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    b = torch.tensor([[[3.0, 0.0]]])
    torch.testing.assert_close(frame_costs(a, b, "cosine"), torch.tensor([[[0.0], [1.0]]]))
    torch.testing.assert_close(frame_costs(a, b, "euclidean"),
                               torch.tensor([[[2.0], [math.sqrt(13.0)]]]))


def test_pairwise_dtw_is_symmetric_and_matches_single_pairs():
    generator = torch.Generator().manual_seed(2)
    items = [torch.randn(length, 3, generator=generator) for length in (2, 5, 4, 7)]
    matrix = pairwise_dtw(items, "cosine", chunk=3)
    torch.testing.assert_close(matrix, matrix.T)
    single = dtw_distance(frame_costs(items[1][None], items[3][None]).double())[0]
    torch.testing.assert_close(matrix[1, 3], single)
    assert torch.allclose(matrix.diagonal(), torch.zeros(4, dtype=torch.float64), atol=1e-6)
    ids = pairwise_dtw([torch.tensor([1, 1, 2]), torch.tensor([1, 2]), torch.tensor([3])],
                       "ids")
    assert float(ids[0, 1]) == 0.0 and float(ids[0, 2]) == 1.0


# ------------------------------------------------------------------------------- ABX
def _brute_abx(d, labels, groups=None, mode="any", tie_weight=1.0):
    errors, count = 0.0, 0
    n = len(labels)
    for a, b, x in itertools.product(range(n), repeat=3):
        if a == x or labels[a] != labels[x] or labels[b] == labels[x]:
            continue
        if mode == "within" and not groups[a] == groups[b] == groups[x]:
            continue
        if mode == "across" and not (groups[a] == groups[b] and groups[x] != groups[a]):
            continue
        count += 1
        if d[a, x] > d[b, x]:
            errors += 1
        elif d[a, x] == d[b, x]:
            errors += tie_weight
    return errors / count


@pytest.mark.parametrize("mode", ["any", "within", "across"])
def test_abx_from_distances_matches_brute_force_triplet_count(mode):
    generator = torch.Generator().manual_seed(3)
    labels = ["a", "a", "b", "b", "c", "a", "b", "c"]
    groups = [0, 1, 0, 1, 0, 0, 1, 1]
    d = torch.rand(8, 8, generator=generator, dtype=torch.float64)
    d = (d + d.T) / 2
    d[2, 3] = d[3, 2] = d[2, 6] = d[6, 2]  # ties count as errors under the >= rule
    for tie_weight in (1.0, 0.5):
        got = abx_error_from_distances(d, labels, groups, mode=mode, tie_weight=tie_weight)
        assert got == pytest.approx(_brute_abx(d, labels, groups, mode, tie_weight))


def test_abx_triplets_match_the_definition_and_separable_data_scores_zero():
    generator = torch.Generator().manual_seed(4)
    a = [torch.randn(4, 2, generator=generator) for _ in range(5)]
    b = [torch.randn(3, 2, generator=generator) for _ in range(5)]
    x = [torch.randn(5, 2, generator=generator) for _ in range(5)]
    d_ax = [float(dtw_distance(frame_costs(u[None], v[None]).double())[0]) for u, v in zip(a, x)]
    d_bx = [float(dtw_distance(frame_costs(u[None], v[None]).double())[0]) for u, v in zip(b, x)]
    want = np.mean([p >= q for p, q in zip(d_ax, d_bx)])
    assert abx_error(a, b, x, "cosine") == pytest.approx(want)
    # token ids: A and X are the same word, B another
    same, other = torch.tensor([1, 1, 2, 3]), torch.tensor([4, 5, 5])
    assert abx_error([same] * 3, [other] * 3, [same] * 3, "ids") == 0.0
    assert abx_error([same], [same], [same], "ids") == 1.0  # a tie is an error
    assert abx_error([same], [same], [same], "ids", tie_weight=0.5) == 0.5
    assert abx_error([1.0], [3.0], [1.5], lambda u, v: abs(u - v)) == 0.0


# ----------------------------------------------------------------------- perplexity
def _arch(max_length=128):
    return TransformerConfig(dim=16, num_layers=1, num_heads=2, dropout=0.0,
                             max_length=max_length)


def _uniform(stage):
    with torch.no_grad():
        stage.transformer.head.weight.zero_()
    return stage


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    generator = torch.Generator().manual_seed(5)
    semantic = _uniform(SemanticStage(SemanticStageConfig(vocab_size=7, transformer=_arch())))
    tokens = torch.randint(7, (3, 10), generator=generator)
    assert stage_perplexity(semantic, [tokens, tokens[:1]]) == pytest.approx(semantic.vocab_size)
    assert stage_perplexity(semantic, tokens, restrict_to_level=True) == pytest.approx(7)
    coarse = _uniform(CoarseStage(CoarseStageConfig(semantic_vocab_size=7, codebook_size=5,
                                                    coarse_levels=2, transformer=_arch())))
    codes = torch.randint(5, (2, 8, 3), generator=generator)
    batch = (tokens[:2, :4], codes)
    assert stage_perplexity(coarse, [batch]) == pytest.approx(7 + 2 * 5 + 3)
    assert stage_perplexity(coarse, [batch], restrict_to_level=True) == pytest.approx(5)
    fine = _uniform(FineStage(FineStageConfig(codebook_size=5, num_levels=3, coarse_levels=2,
                                              chunk_frames=3, transformer=_arch())))
    assert stage_perplexity(fine, [codes]) == pytest.approx(3 * 5 + 3)
    assert stage_perplexity(fine, [codes], restrict_to_level=True) == pytest.approx(5)


def test_perplexity_is_exp_of_the_stage_loss_and_keeps_the_mode():
    torch.manual_seed(0)
    stage = SemanticStage(SemanticStageConfig(vocab_size=6, deduplicate=False,
                                              transformer=_arch()))
    stage.train()
    tokens = torch.randint(6, (2, 9))
    with torch.no_grad():
        stage.eval()
        want = math.exp(float(stage.loss(tokens)))
        stage.train()
    assert stage_perplexity(stage, [tokens]) == pytest.approx(want, rel=1e-5)
    assert stage.training


def test_perplexity_errors():
    stage = SemanticStage(SemanticStageConfig(vocab_size=6, transformer=_arch()))
    with pytest.raises(TypeError, match="stage must be"):
        stage_perplexity(torch.nn.Linear(2, 2), [])
    with pytest.raises(ValueError, match="no target token"):
        stage_perplexity(stage, [])
    with pytest.raises(TypeError, match="iterable"):
        stage_perplexity(stage, 3)
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        stage_perplexity(stage, [torch.tensor([[9, 1]])])


# ------------------------------------------------------------------------ token rates
def test_token_rates_follow_audiolm_arithmetic():
    coarse = CoarseStageConfig(transformer=_arch())
    fine = FineStageConfig(chunk_frames=8, transformer=_arch(128))
    rates = token_rates(25.0, coarse, fine, semantic_tokens=torch.tensor([[1, 1, 2, 2]]))
    assert rates["semantic"] == 25 and rates["coarse"] == 200 and rates["fine"] == 400
    assert rates["acoustic"] == 600 and rates["acoustic_bps"] == 6000
    assert rates["semantic_bps"] == 250 and rates["coarse_bps"] == 2000
    assert rates["semantic_deduplicated"] == pytest.approx(12.5)
    with pytest.raises(ValueError, match="semantic_frame_rate"):
        token_rates(0, coarse, fine)
    with pytest.raises(TypeError, match="coarse must be"):
        token_rates(25.0, fine, fine)
    with pytest.raises(TypeError, match="fine must be"):
        token_rates(25.0, coarse, coarse)
    with pytest.raises(ValueError, match="disagree"):
        token_rates(25.0, CoarseStageConfig(coarse_levels=3, transformer=_arch()), fine)
    with pytest.raises(ValueError, match="semantic_tokens"):
        token_rates(25.0, coarse, fine, semantic_tokens=torch.zeros(2, 3))


# ------------------------------------------------------------------- codec quality
@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    model = SoundStream(CodecConfig(sample_rate=RATE, channels=2, latent_dim=8,
                                    strides=(2, 4, 5, 4), num_levels=4, codebook_size=8,
                                    kmeans_iterations=2))
    t = torch.arange(1600) / RATE
    waves = torch.stack([0.3 * torch.sin(2 * math.pi * f * t) for f in (200, 300, 450, 700)])
    model.train()
    model(waves)  # k-means initialization of the codebooks
    return model.eval(), waves


def test_codec_quality_rows_are_monotone_in_bitrate_and_match_si_snr(codec):
    model, waves = codec
    rows = codec_quality(model, waves, pesq=False, batch_size=3)
    assert [row.levels for row in rows] == [1, 2, 4]
    kbps = [row.kbps for row in rows]
    assert kbps == sorted(kbps) and kbps[0] == pytest.approx(3 * 50 / 1000)
    with torch.no_grad():
        decoded = model.decode(model.encode(waves), levels=2)[:, :waves.shape[1]]
    assert rows[1].si_snr_db == pytest.approx(float(si_snr(decoded, waves).mean()), abs=1e-4)
    assert all(row.pesq is None and row.log_mel_distance >= 0 for row in rows)
    assert [row.levels for row in codec_quality(model, waves, [3, 1, 3], pesq=False)] == [1, 3]


def test_codec_quality_errors(codec):
    model, waves = codec
    with pytest.raises(TypeError, match="SoundStream"):
        codec_quality(torch.nn.Linear(1, 1), waves)
    with pytest.raises(ValueError, match="batch >= 1, samples"):
        codec_quality(model, waves[0])
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        codec_quality(model, waves, [0, 2])
    with pytest.raises(ValueError, match="non-empty sequence"):
        codec_quality(model, waves, [])
    with pytest.raises(ValueError, match="batch_size"):
        codec_quality(model, waves, batch_size=0)
    with pytest.raises(ValueError, match="one hop"):
        codec_quality(model, waves[:, :10], pesq=False)
    try:
        import pesq  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pesq"):
            codec_quality(model, waves, pesq=True)


# ---------------------------------------------------------------------- consistency
def test_consistency_scores_identical_pairs_beat_random_pairs():
    generator = torch.Generator().manual_seed(6)
    prompts = torch.randn(6, 8, generator=generator)
    score = consistency_scores(prompts, prompts.clone())
    assert score.matched == pytest.approx(1.0)
    assert score.random < score.matched and score.auc == 1.0 and score.effect_size > 1
    assert score.matched_values.shape == (6,) and score.random_values.shape == (30,)
    # identities drop mismatched pairs of the same identity
    score = consistency_scores(prompts, prompts, identities=[0, 0, 1, 1, 2, 2])
    assert score.random_values.shape == (24,)
    # unrelated continuations are at chance
    flipped = consistency_scores(prompts, prompts.flip(0))
    assert flipped.auc < 1.0


def test_consistency_scores_errors():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="at least 2"):
        consistency_scores(x[:1], x[:1])
    with pytest.raises(ValueError, match="one shape"):
        consistency_scores(x, x[:, :2])
    with pytest.raises(ValueError, match="one entry per pair"):
        consistency_scores(x, x, identities=[0, 1])
    with pytest.raises(ValueError, match="no mismatched pair"):
        consistency_scores(x, x, identities=[0, 0, 0])
    with pytest.raises(ValueError, match="NaN|finite|inf"):
        consistency_scores(x, torch.full((3, 4), math.nan))


def _melody(pitches, instrument, seed):
    rng = np.random.default_rng(seed)
    return np.concatenate([play_note(p, 100, instrument.family, sample_rate=RATE, duration=0.25,
                                     rng=rng, instrument=instrument) for p in pitches])


def test_music_and_speech_consistency_of_identical_pairs():
    rng = np.random.default_rng(0)
    instruments = [random_instrument(f, rng) for f in ("flute", "brass", "keyboard", "organ")]
    scales = [[60, 62, 64, 65, 67], [61, 63, 66, 68, 70], [62, 64, 66, 67, 69],
              [66, 68, 70, 71, 73]]
    waves = [torch.from_numpy(_melody(s, i, k)) for k, (s, i) in
             enumerate(zip(scales, instruments))]
    scores = music_consistency(waves, waves, RATE, keys=[0, 1, 2, 3],
                               instruments=[0, 1, 2, 3])
    for score in scores.values():
        assert score.matched == pytest.approx(1.0) and score.random < 0.99
        assert score.auc == 1.0
    speech, method = speech_consistency(waves, waves, RATE, method="mfcc")
    assert method == "mfcc" and speech.matched > speech.random and speech.auc == 1.0


def test_chroma_profile_finds_the_pitch_class_and_timbre_shapes():
    t = torch.arange(RATE) / RATE
    a440 = torch.sin(2 * math.pi * 440.0 * t)
    c = torch.sin(2 * math.pi * 261.63 * t)
    profile = chroma_profile([a440, c], RATE)
    assert profile.shape == (2, 12) and int(profile[0].argmax()) == 9
    assert int(profile[1].argmax()) == 0
    torch.testing.assert_close(profile.sum(-1), torch.ones(2, dtype=torch.float64))
    assert timbre_features(torch.stack([a440, c]), RATE, n_mfcc=13).shape == (2, 12)
    embeddings, method = speaker_embeddings([a440, c, a440[:4000]], RATE, "mfcc")
    assert embeddings.shape == (3, 76) and method == "mfcc"


def test_consistency_input_errors():
    wave = torch.randn(RATE)
    with pytest.raises(ValueError, match="2 prompts but 1"):
        music_consistency([wave, wave], [wave], RATE)
    with pytest.raises(ValueError, match="2 prompts but 1"):
        speech_consistency([wave, wave], [wave], RATE, method="mfcc")
    with pytest.raises(ValueError, match="method"):
        speaker_embeddings([wave], RATE, "xvector")
    with pytest.raises(ValueError, match="sample_rate"):
        chroma_profile([wave], 100)
    with pytest.raises(ValueError, match="1-d float"):
        timbre_features([torch.zeros(3, 4)], RATE)
    with pytest.raises(ValueError, match="is empty"):
        chroma_profile([], RATE)
    with pytest.raises(TypeError, match="list of waves"):
        chroma_profile("wave", RATE)
    with pytest.raises(ValueError, match="min_freq"):
        chroma_profile([wave], RATE, min_freq=5000.0)
    with pytest.raises(ValueError, match="10 ms"):
        timbre_features([wave[:10]], RATE)


# -------------------------------------------------------------------------- DTW/ABX errors
def test_dtw_and_abx_errors():
    with pytest.raises(ValueError, match="cost must have shape"):
        dtw_distance(torch.zeros(2, 0, 3))
    with pytest.raises(ValueError, match="lengths_a"):
        dtw_distance(torch.zeros(2, 3, 3), torch.tensor([1, 4]))
    with pytest.raises(TypeError, match="floating"):
        dtw_distance(torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="metric"):
        frame_costs(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), "manhattan")
    with pytest.raises(ValueError, match="integer"):
        frame_costs(torch.zeros(1, 2), torch.zeros(1, 2), "ids")
    with pytest.raises(ValueError, match="one dim"):
        frame_costs(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3), "cosine")
    with pytest.raises(ValueError, match="non-empty list"):
        pairwise_dtw([])
    with pytest.raises(ValueError, match="same frame dim"):
        pairwise_dtw([torch.zeros(2, 2), torch.zeros(2, 3)])
    with pytest.raises(ValueError, match=r"\(frames,\) integer ids"):
        pairwise_dtw([torch.zeros(2, 2, dtype=torch.long)], "ids")
    with pytest.raises(ValueError, match="one length"):
        abx_error([torch.zeros(2, 2)], [], [torch.zeros(2, 2)])
    with pytest.raises(TypeError, match="distance must be"):
        abx_error([1], [2], [3], 5)
    with pytest.raises(TypeError, match="sequence of representations"):
        abx_error("abc", [1], [1])
    with pytest.raises(ValueError, match="tie_weight"):
        abx_error([1], [2], [3], lambda u, v: 0.0, tie_weight=2.0)
    d = torch.rand(4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="square"):
        abx_error_from_distances(d[:3], [0, 0, 1])
    with pytest.raises(ValueError, match="one entry per item"):
        abx_error_from_distances(d, [0, 0, 1])
    with pytest.raises(ValueError, match="needs groups"):
        abx_error_from_distances(d, [0, 0, 1, 1], mode="within")
    with pytest.raises(ValueError, match="mode"):
        abx_error_from_distances(d, [0, 0, 1, 1], mode="between")
    with pytest.raises(ValueError, match="no valid"):
        abx_error_from_distances(d, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="no valid"):
        abx_error_from_distances(d, [0, 0, 1, 1], [0, 0, 0, 0], mode="across")
    with pytest.raises(ValueError, match="tie_weight"):
        abx_error_from_distances(d, [0, 0, 1, 1], tie_weight=-1.0)
