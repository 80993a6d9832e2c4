"""Tests of lutece.audio.lm.semantic (the semantic tokenizer of AudioLM).

Oracles: scikit-learn's KMeans (inertia) and the true labels of well-separated Gaussian
clusters; scipy.fft.dct (orthonormal DCT-II) for the MFCCs; MelFilterbank's own frames for
the log-mel features; numpy's FFT of explicitly cut windows and the pitch class of pure tones
for the chroma; the frame rule floor(samples * frame_rate / sample_rate); the exact
expected masked fraction of independent span starts; a tiny masked-prediction run whose
loss must fall; save/load round-trips that must give identical tokens.
"""

import math
from types import SimpleNamespace

import pytest
import torch

from lutece.audio.frontends import MelFilterbank
from lutece.audio.lm import (
    ChromaFeatures,
    ConcatenatedFeatures,
    HuBERTFeatures,
    KMeansTokenizer,
    LogMelFeatures,
    MaskedFeatureEncoder,
    MFCCFeatures,
    SSLFeatures,
    Tokenizer,
    check_rate_alignment,
    kmeans,
    num_token_frames,
    remove_consecutive_duplicates,
    semantic,
    train_masked_encoder,
)

SR = 16000



def _notes(count=8, seconds=1.0, seed=0):
    """Sequences of harmonic notes (0.1-0.3 s each, 6 pitches) plus faint noise: audio
    whose frames fall into a few clusters, with temporal structure to predict."""
    generator = torch.Generator().manual_seed(seed)
    pitches = torch.tensor([110.0, 165.0, 220.0, 330.0, 440.0, 660.0])
    samples = int(seconds * SR)
    waves = []
    for _ in range(count):
        parts, total = [], 0
        while total < samples:
            length = int(SR * (0.1 + 0.2 * float(torch.rand((), generator=generator))))
            f0 = pitches[int(torch.randint(len(pitches), (), generator=generator))]
            t = torch.arange(length) / SR
            note = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in (1, 2, 3))
            parts.append(0.3 * note * torch.hann_window(length, periodic=False).sqrt())
            total += length
        wave = torch.cat(parts)[:samples]
        waves.append(wave + 0.003 * torch.randn(samples, generator=generator))
    return torch.stack(waves)


@pytest.fixture(scope="module")
def waves():
    return _notes(count=8, seconds=1.0, seed=0)


@pytest.fixture(scope="module")
def mfcc_tokenizer(waves):
    return KMeansTokenizer("mfcc", num_clusters=8, frame_rate=25.0).fit(waves, seed=0)


# ----------------------------------------------------------------------------- contract
def test_frame_rule_and_rate_alignment():
    assert num_token_frames(16000, SR, 25.0) == 25
    assert num_token_frames(639, SR, 25.0) == 0
    assert num_token_frames(1279, SR, 25.0) == 1
    assert num_token_frames(1280, SR, 50.0) == 4
    assert check_rate_alignment(25.0, 50.0) == 2
    assert check_rate_alignment(25, 25) == 1
    assert check_rate_alignment(12.5, 75.0) == 6
    with pytest.raises(ValueError, match="integer multiple"):
        check_rate_alignment(25.0, 40.0)
    with pytest.raises(ValueError, match="integer multiple"):
        check_rate_alignment(50.0, 25.0)  # fewer acoustic frames than semantic ones
    with pytest.raises(ValueError, match="semantic_rate"):
        check_rate_alignment(0.0, 50.0)
    with pytest.raises(ValueError, match="acoustic_rate"):
        check_rate_alignment(25.0, float("nan"))


def test_remove_consecutive_duplicates():
    tokens = torch.tensor([[3, 3, 5, 3, 3, 3], [1, 2, 2, 2, 2, 7]])
    rows = remove_consecutive_duplicates(tokens)
    assert [row.tolist() for row in rows] == [[3, 5, 3], [1, 2, 7]]
    with pytest.raises(ValueError, match="batch, frames"):
        remove_consecutive_duplicates(torch.tensor([1, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        remove_consecutive_duplicates(torch.zeros(2, 3))


# ----------------------------------------------------------------------------- features
def test_log_mel_is_melfilterbank_with_floor_frames(waves):
    features = LogMelFeatures(SR, n_mels=40, hop_length=160)
    reference = MelFilterbank(n_filters=40, sample_rate=SR).eval()
    for length in (160, 400, 1000, 1601):
        ours = features(waves[:2, :length])
        assert ours.shape == (2, length // 160, 40)
        padded = torch.nn.functional.pad(waves[:2, :length], (0, max(0, 401 - length)))
        expected = reference(padded)[..., :length // 160].transpose(1, 2)
        torch.testing.assert_close(ours, expected)


def test_mfcc_is_orthonormal_dct_of_log_mel(waves):
    scipy_fft = pytest.importorskip("scipy.fft")
    log_mel = LogMelFeatures(SR, n_mels=40)(waves[:3])
    expected = scipy_fft.dct(log_mel.double().numpy(), type=2, norm="ortho", axis=-1)[..., :13]
    plain = MFCCFeatures(SR, n_mfcc=13, n_mels=40, deltas=False)(waves[:3])
    torch.testing.assert_close(plain.double(), torch.from_numpy(expected), rtol=1e-4,
                               atol=1e-4)
    full = MFCCFeatures(SR, n_mfcc=13, n_mels=40)(waves[:3])
    assert full.shape == (3, 100, 39)
    torch.testing.assert_close(full[..., :13], plain)
    # first differences of a linear ramp in time are its slope (away from the edges)
    ramp = torch.arange(10.0)[None, :, None].expand(1, 10, 2)
    torch.testing.assert_close(semantic._deltas(ramp)[:, 2:-2], torch.ones(1, 6, 2))
    with pytest.raises(ValueError, match="n_mfcc"):
        MFCCFeatures(n_mfcc=41, n_mels=40)


def test_mean_normalization_removes_each_clips_mean_frame_and_a_gain(waves):
    plain = MFCCFeatures(SR, n_mfcc=13, n_mels=40)(waves[:3])
    normalized = MFCCFeatures(SR, n_mfcc=13, n_mels=40, mean_normalization=True)
    cepstra = normalized(waves[:3])
    # the DCT is linear: CMN of the cepstra, deltas unchanged
    torch.testing.assert_close(cepstra[..., :13], plain[..., :13]
                               - plain[..., :13].mean(1, keepdim=True), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cepstra[..., 13:], plain[..., 13:], rtol=1e-4, atol=1e-4)
    log_mel = LogMelFeatures(SR, mean_normalization=True)
    assert log_mel(waves[:3]).mean(1).abs().max() < 1e-4
    # a gain adds log(gain^2) to every band of every frame: CMN removes it (loud enough
    # that the 1e-5 floor of the log plays no part)
    loud = 100.0 * waves[:3]
    torch.testing.assert_close(log_mel(4.0 * loud), log_mel(loud), rtol=0, atol=1e-3)
    assert (LogMelFeatures(SR)(4.0 * loud) - LogMelFeatures(SR)(loud)).mean() > 2.7
    assert "mean_normalization=True" in repr(log_mel)
    tokenizer = KMeansTokenizer("mfcc", 4, sample_rate=SR, feature_options={
        "mean_normalization": True}).fit(waves, seed=0)
    assert tokenizer.features.log_mel.mean_normalization


# ------------------------------------------------------------------------------ k-means
def _blobs(seed=0, clusters=5, per_cluster=60, dim=4):
    generator = torch.Generator().manual_seed(seed)
    centers = 10.0 * torch.randn(clusters, dim, generator=generator)
    truth = torch.arange(clusters).repeat_interleave(per_cluster)
    points = centers[truth] + 0.3 * torch.randn(len(truth), dim, generator=generator)
    order = torch.randperm(len(truth), generator=generator)
    return points[order], truth[order]


def _tone(frequency, seconds=0.5, sr=8000, harmonics=(1.0,)):
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return sum(a * torch.sin(2 * math.pi * (k + 1) * frequency * t)
               for k, a in enumerate(harmonics))


@pytest.mark.parametrize("midi", [57, 60, 61, 66, 70, 76, 83])
def test_chroma_of_a_harmonic_tone_peaks_at_its_pitch_class(midi):
    frequency = 440.0 * 2 ** ((midi - 69) / 12)
    wave = _tone(frequency, harmonics=(1.0, 0.5, 0.3))[None]
    chroma = ChromaFeatures(8000, hop_length=80)(wave)
    assert chroma.shape == (1, 50, 12)
    middle = chroma[0, 10:40]
    assert (middle.argmax(-1) == midi % 12).all()
    torch.testing.assert_close(middle.sum(-1), torch.ones(30, dtype=torch.float64))
    # an octave up is the same pitch class
    up = ChromaFeatures(8000, hop_length=80)(_tone(2 * frequency)[None])[0, 10:40]
    assert (up.argmax(-1) == midi % 12).all()


def test_chroma_frames_match_numpy_windows_and_the_frame_rule():
    np = pytest.importorskip("numpy")
    sr, hop, n_fft = 8000, 80, 256
    generator = torch.Generator().manual_seed(3)
    wave = torch.randn(2, 1000, generator=generator, dtype=torch.float64)
    features = ChromaFeatures(sr, hop_length=hop, n_fft=n_fft, min_freq=100.0,
                              max_freq=3000.0, power=1.5)
    frames = features(wave)
    assert frames.shape == (2, 1000 // hop, 12)  # floor(samples / hop)
    x = wave.numpy()
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    used = (freqs >= 100) & (freqs <= 3000)
    classes = np.round(12 * np.log2(freqs[used] / 440) + 69).astype(int) % 12
    for i in (0, 1, 6, 11):  # edge frames see zeros outside the clip
        centre = i * hop + hop // 2
        segment = np.zeros((2, n_fft))
        for j in range(n_fft):
            k = centre - n_fft // 2 + j
            if 0 <= k < x.shape[1]:
                segment[:, j] = x[:, k]
        power = np.abs(np.fft.rfft(segment * window)) ** 2
        profile = np.stack([np.bincount(classes, row[used], minlength=12) for row in power])
        profile = profile ** 1.5
        expected = profile / profile.sum(-1, keepdims=True)
        np.testing.assert_allclose(frames[:, i].numpy(), expected, rtol=1e-9, atol=1e-12)
    # a gain changes nothing, silence gives zeros, a window shorter than the hop works
    torch.testing.assert_close(features(3.0 * wave), frames)
    assert features(torch.zeros(1, 400, dtype=torch.float64)).abs().max() == 0
    short = ChromaFeatures(sr, hop_length=80, n_fft=32, max_freq=4000.0)(wave)
    assert short.shape == (2, 12, 12) and torch.isfinite(short).all()


def test_chroma_errors():
    with pytest.raises(ValueError, match="power must be a positive number"):
        ChromaFeatures(8000, power=0.0)
    with pytest.raises(ValueError, match="min_freq < max_freq"):
        ChromaFeatures(8000, min_freq=500.0, max_freq=400.0)
    with pytest.raises(ValueError, match="sample_rate / 2"):
        ChromaFeatures(8000, max_freq=5000.0)
    with pytest.raises(ValueError, match="pitch_class_matrix: need 0 < min_freq"):
        semantic.pitch_class_matrix(8000, 1024, 0.0, 100.0)
    with pytest.raises(ValueError, match="ChromaFeatures: need 0 < min_freq"):
        ChromaFeatures(8000, min_freq=-1.0)
    with pytest.raises(ValueError, match="no FFT bin"):
        ChromaFeatures(8000, n_fft=16, min_freq=100.0, max_freq=200.0)
    with pytest.raises(ValueError, match="built for 8000 Hz"):
        ChromaFeatures(8000, hop_length=80)(torch.zeros(1, 800), sample_rate=16000)
    with pytest.raises(ValueError, match="share sample_rate and frame_rate"):
        ConcatenatedFeatures(MFCCFeatures(8000, hop_length=80), ChromaFeatures(8000, 40))
    with pytest.raises(ValueError, match="at least one"):
        ConcatenatedFeatures()


def test_chroma_tokens_name_the_note_whatever_the_instrument_and_octave(tmp_path):
    """k-means on chroma gives one token per pitch class: a note played with two different
    harmonic spectra, or an octave higher, gets the same token (MFCC tokens separate them)."""
    sr = 8000
    scale = [60, 62, 64, 65, 67, 69, 71]
    bright, dull = (1.0, 0.8, 0.6, 0.5), (1.0, 0.1)
    train = torch.stack([torch.cat([_tone(440 * 2 ** ((m - 69) / 12), 0.2, sr, h)
                                    for m in scale]) for h in (bright, dull)]).float()
    tokenizer = KMeansTokenizer("chroma", num_clusters=7, sample_rate=sr, frame_rate=25.0,
                                feature_options={"hop_length": 80, "power": 2.0}, n_init=5)
    tokenizer.fit(train, seed=0)

    def token(midi, harmonics):
        wave = _tone(440 * 2 ** ((midi - 69) / 12), 0.4, sr, harmonics).float()[None]
        return int(tokenizer.tokenize(wave)[0, 3:7].mode().values)

    for midi in scale:
        assert token(midi, bright) == token(midi, dull) == token(midi + 12, dull)
    assert len({token(midi, bright) for midi in scale}) == 7
    loaded = KMeansTokenizer.load(tokenizer.save(tmp_path / "chroma.pt"))
    assert loaded.feature_kind == "chroma"
    assert torch.equal(loaded.tokenize(train), tokenizer.tokenize(train))


def test_mfcc_chroma_tokenizer_concatenates_and_round_trips(waves, tmp_path):
    options = {"n_mfcc": 13, "deltas": False, "mean_normalization": True,
               "chroma": {"power": 2.0, "max_freq": 3000.0}}
    tokenizer = KMeansTokenizer("mfcc_chroma", num_clusters=6, frame_rate=25.0,
                                feature_options=options)
    assert tokenizer.dim == 4 * (13 + 12)
    frames = tokenizer.features(waves[:2])
    mfcc = MFCCFeatures(SR, n_mfcc=13, deltas=False, mean_normalization=True)(waves[:2])
    chroma = ChromaFeatures(SR, power=2.0, max_freq=3000.0)(waves[:2])
    torch.testing.assert_close(frames, torch.cat([mfcc, chroma], -1))
    tokenizer.fit(waves, seed=0)
    loaded = KMeansTokenizer.load(tokenizer.save(tmp_path / "both.pt"))
    assert torch.equal(loaded.tokenize(waves), tokenizer.tokenize(waves))
    with pytest.raises(TypeError, match="'chroma' must be a dict"):
        KMeansTokenizer("mfcc_chroma", feature_options={"chroma": 2.0})
    with pytest.raises(TypeError, match="bad feature_options for 'chroma'"):
        KMeansTokenizer("chroma", feature_options={"n_mfcc": 13})


def test_kmeans_recovers_separated_clusters_and_matches_sklearn():
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    points, truth = _blobs()
    result = kmeans(points, 5, generator=torch.Generator().manual_seed(1))
    # exact recovery up to a permutation of the labels: a bijection between label sets
    pairs = set(zip(result.labels.tolist(), truth.tolist()))
    assert len(pairs) == 5 and len({a for a, _ in pairs}) == 5
    reference = sklearn_cluster.KMeans(5, n_init=10, random_state=0).fit(points.double().numpy())
    assert result.inertia == pytest.approx(reference.inertia_, rel=0.01)
    assert result.iterations <= 100 and result.centroids.shape == (5, 4)


def test_kmeans_reseeds_empty_clusters():
    points, _ = _blobs(clusters=3)
    # the third initial centroid is far from every point, so it starts empty
    start = torch.stack([points[0], points[1], torch.full((4,), 1e3)])
    centroids, _ = semantic._lloyd(points, start, max_iterations=50)
    labels, _ = semantic._assign(points, centroids)
    assert torch.bincount(labels, minlength=3).min() > 0
    assert bool((centroids.abs() < 100).all())


def test_kmeans_errors():
    points, _ = _blobs()
    with pytest.raises(ValueError, match="num_clusters must be >= 2"):
        kmeans(points, 1)
    with pytest.raises(ValueError, match="at least num_clusters"):
        kmeans(points[:3], 4)
    with pytest.raises(ValueError, match=r"\(n, dim\)"):
        kmeans(points[:, 0], 2)
    with pytest.raises(TypeError, match="floating"):
        kmeans(points.long(), 2)
    bad = points.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        kmeans(bad, 2)


# ---------------------------------------------------------------------------- tokenizer
@pytest.mark.parametrize("features, frame_rate, dim", [("mfcc", 25.0, 4 * 39),
                                                       ("log_mel", 50.0, 2 * 40)])
def test_tokenizer_shapes_follow_frame_rule(waves, features, frame_rate, dim):
    tokenizer = KMeansTokenizer(features, num_clusters=6, frame_rate=frame_rate)
    tokenizer.fit(list(waves[:4]), max_frames=150, seed=0)  # a sequence of 1-D waves
    assert isinstance(tokenizer, Tokenizer)
    assert tokenizer.vocab_size == 6 and tokenizer.dim == dim
    assert tokenizer.sample_rate == SR and tokenizer.frame_rate == frame_rate
    hop = SR // int(frame_rate)
    for length in (hop, hop + 1, 2 * hop - 1, 5 * hop, 5 * hop + 17):
        tokens = tokenizer.tokenize(waves[:3, :length])
        assert tokens.dtype == torch.int64
        assert tokens.shape == (3, num_token_frames(length, SR, frame_rate))
        assert tokens.shape[1] == math.floor(length * frame_rate / SR)
        assert int(tokens.min()) >= 0 and int(tokens.max()) < 6
    # (batch, 1, samples) and a stated matching rate are accepted; float64 too
    same = tokenizer.tokenize(waves[:2, None].double(), sample_rate=SR)
    assert torch.equal(same, tokenizer.tokenize(waves[:2]))


def test_tokenizer_standardizes_and_uses_all_clusters(mfcc_tokenizer, waves):
    tokens = mfcc_tokenizer.tokenize(waves)
    assert tokens.unique().numel() == 8
    frames = mfcc_tokenizer._frames("test", waves, None).reshape(-1, mfcc_tokenizer.dim)
    standardized = (frames - mfcc_tokenizer.mean_) / mfcc_tokenizer.std_
    torch.testing.assert_close(standardized.mean(0), torch.zeros(mfcc_tokenizer.dim),
                               atol=1e-4, rtol=0)
    torch.testing.assert_close(standardized.std(0, unbiased=False),
                               torch.ones(mfcc_tokenizer.dim), atol=1e-4, rtol=0)


def test_tokenizer_save_load_round_trip(mfcc_tokenizer, waves, tmp_path):
    path = mfcc_tokenizer.save(tmp_path / "mfcc.pt")
    loaded = KMeansTokenizer.load(path)
    assert loaded.feature_kind == "mfcc" and loaded.vocab_size == 8
    assert torch.equal(loaded.tokenize(waves), mfcc_tokenizer.tokenize(waves))
    fresh = KMeansTokenizer("mfcc", num_clusters=8, frame_rate=25.0)
    fresh.load_state_dict(mfcc_tokenizer.state_dict())
    assert torch.equal(fresh.tokenize(waves[:2]), mfcc_tokenizer.tokenize(waves[:2]))


def test_tokenizer_errors(mfcc_tokenizer, waves, tmp_path):
    unfitted = KMeansTokenizer("mfcc", num_clusters=8)
    with pytest.raises(RuntimeError, match="not fitted"):
        unfitted.tokenize(waves)
    with pytest.raises(RuntimeError, match="not fitted"):
        unfitted.save(tmp_path / "x.pt")
    with pytest.raises(ValueError, match="built for 16000 Hz"):
        mfcc_tokenizer.tokenize(waves, sample_rate=24000)
    with pytest.raises(ValueError, match="fewer than one frame"):
        mfcc_tokenizer.tokenize(waves[:, :639])
    with pytest.raises(ValueError, match="unsqueeze"):
        mfcc_tokenizer.tokenize(waves[0])
    with pytest.raises(ValueError, match=r"\(batch, samples\)"):
        mfcc_tokenizer.tokenize(waves.reshape(2, 4, -1))
    with pytest.raises(TypeError, match="floating"):
        mfcc_tokenizer.tokenize((waves * 1000).long())
    with pytest.raises(TypeError, match="torch.Tensor"):
        mfcc_tokenizer.tokenize(waves.numpy())
    with pytest.raises(ValueError, match="NaN"):
        mfcc_tokenizer.tokenize(waves.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="num_clusters must be >= 2"):
        KMeansTokenizer("mfcc", num_clusters=1)
    with pytest.raises(ValueError, match="features must be one of"):
        KMeansTokenizer("wav2vec")
    with pytest.raises(ValueError, match="whole number of samples"):
        KMeansTokenizer("mfcc", frame_rate=30.0)
    with pytest.raises(ValueError, match="whole multiple"):
        KMeansTokenizer("mfcc", frame_rate=40.0)  # hop 400 is not a multiple of 160
    with pytest.raises(TypeError, match="feature_options"):
        KMeansTokenizer("mfcc", feature_options={"n_bands": 3})
    with pytest.raises(ValueError, match="fewer than num_clusters"):
        KMeansTokenizer("mfcc", num_clusters=30).fit(waves[:1, :16000])
    with pytest.raises(ValueError, match="max_frames"):
        KMeansTokenizer("mfcc").fit(waves, max_frames=0)
    with pytest.raises(ValueError, match="empty"):
        KMeansTokenizer("mfcc").fit([])
    with pytest.raises(FileNotFoundError):
        KMeansTokenizer.load(tmp_path / "missing.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a lutece KMeansTokenizer"):
        KMeansTokenizer.load(tmp_path / "other.pt")


class _RateFeatures(torch.nn.Module):
    """A features module at 100 Hz that returns the frame rule's count (or one too few)."""

    sample_rate, frame_rate, dim = SR, 100.0, 3

    def __init__(self, short=False):
        super().__init__()
        self.short = short

    def forward(self, wave):
        frames = wave.shape[-1] // 160 - int(self.short)
        return wave[:, :frames * 160].reshape(wave.shape[0], frames, 160)[..., :3]


def test_tokenizer_with_a_custom_features_module(waves, tmp_path):
    tokenizer = KMeansTokenizer(_RateFeatures(), num_clusters=4, frame_rate=50.0)
    assert tokenizer.stack == 2 and tokenizer.dim == 6
    tokenizer.fit(waves[:2], seed=0)
    assert tokenizer.tokenize(waves[:1, :999]).shape == (1, 3)
    path = tokenizer.save(tmp_path / "custom.pt")
    with pytest.raises(ValueError, match="pass the same module"):
        KMeansTokenizer.load(path)
    loaded = KMeansTokenizer.load(path, features=_RateFeatures())
    assert torch.equal(loaded.tokenize(waves[:2]), tokenizer.tokenize(waves[:2]))
    broken = KMeansTokenizer(_RateFeatures(short=True), num_clusters=4, frame_rate=100.0)
    with pytest.raises(ValueError, match="floor"):
        broken.fit(waves[:2])
    with pytest.raises(ValueError, match="whole multiple"):
        KMeansTokenizer(_RateFeatures(), num_clusters=4, frame_rate=40.0)
    with pytest.raises(ValueError, match="layer applies"):
        KMeansTokenizer(_RateFeatures(), num_clusters=4, frame_rate=50.0, layer=1)
    with pytest.raises(TypeError, match="features must be"):
        KMeansTokenizer(3)


# ------------------------------------------------------------------------ masked encoder
def _encoder(frame_rate=50.0, **changes):
    torch.manual_seed(0)
    options = dict(n_mels=20, dim=32, layers=2, heads=2, frame_rate=frame_rate,
                   num_targets=8, conv_pos_kernel=5, dropout=0.0)
    return MaskedFeatureEncoder(**{**options, **changes})


def test_span_mask_covers_the_expected_fraction():
    encoder = _encoder(mask_prob=0.08, mask_span=10)
    frames = 2000
    mask = encoder.sample_mask(64, frames, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (64, frames) and mask.dtype == torch.bool
    # frame t is masked unless none of the min(t + 1, 10) frames that could start a span
    # over it did; away from the start this is 1 - 0.92^10 = 0.566 (HuBERT's setting)
    expected = sum(1 - 0.92 ** min(t + 1, 10) for t in range(frames)) / frames
    assert float(mask.float().mean()) == pytest.approx(expected, abs=0.01)
    assert 0.55 < expected < 0.57
    # every row is masked somewhere, even when no frame draws a start
    rare = _encoder(mask_prob=0.0, mask_span=3).sample_mask(5, 20)
    assert bool(((rare.sum(-1) >= 1) & (rare.sum(-1) <= 3)).all())


def test_encoder_features_shapes_and_layers(waves):
    encoder = _encoder(frame_rate=25.0).eval()
    assert encoder.stack == 4 and encoder.hop_length == 640
    for layer in (0, 1, 2):
        hidden = encoder.features(waves[:2, :3000], layer=layer)
        assert hidden.shape == (2, 3000 // 640, 32)
    with torch.no_grad():
        logits = encoder(waves[:2, :3000])
    assert logits.shape == (2, 4, 8)
    assert float(logits.abs().max()) <= 1 / 0.1 + 1e-4  # cosine / tau
    with pytest.raises(ValueError, match=r"layer must be in \[0, 2\]"):
        encoder.features(waves[:2], layer=3)
    with pytest.raises(ValueError, match="layer must be in"):
        encoder.features(waves[:2], layer=-1)
    with pytest.raises(TypeError, match="layer must be an int"):
        encoder.features(waves[:2], layer=1.0)
    with pytest.raises(ValueError, match="fewer than one frame"):
        encoder.features(waves[:2, :600], layer=1)
    with pytest.raises(ValueError, match="mask must be a bool"):
        encoder(waves[:2, :3000], mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        _encoder(dim=30, heads=4)
    with pytest.raises(ValueError, match="must divide"):
        _encoder(mel_hop_length=150)
    with pytest.raises(ValueError, match="odd"):
        _encoder(conv_pos_kernel=4)
    # an all-False mask changes nothing; masking every frame does
    with torch.no_grad():
        unmasked = encoder(waves[:2, :3000], mask=torch.zeros(2, 4, dtype=torch.bool))
        masked = encoder(waves[:2, :3000], mask=torch.ones(2, 4, dtype=torch.bool))
    torch.testing.assert_close(unmasked, logits)
    assert not torch.allclose(masked, logits)


def test_masked_training_lowers_the_loss_and_semantic_tokens(waves, tmp_path):
    train_waves = _notes(count=48, seconds=1.0, seed=1)
    targets = KMeansTokenizer("mfcc", num_clusters=8, frame_rate=50.0).fit(train_waves[:16])
    # spans of 5 frames (HuBERT: 10) so that a tiny model learns to fill them in seconds
    encoder = _encoder(frame_rate=50.0, mask_span=5)
    held = _notes(count=8, seconds=1.0, seed=2)
    held_targets = targets.tokenize(held)
    frequencies = torch.bincount(held_targets.flatten(), minlength=8).double()
    frequencies = frequencies[frequencies > 0] / frequencies.sum()
    marginal_entropy = float(-(frequencies * frequencies.log()).sum())

    def held_out_loss():
        mask = encoder.sample_mask(8, 50, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            return float(encoder.eval().masked_prediction_loss(held, held_targets,
                                                               mask=mask)[0])

    before = held_out_loss()
    result = train_masked_encoder(encoder, train_waves, targets, steps=100, batch_size=8,
                                  lr=3e-3, seed=0, progress=False, device="cpu")
    after = held_out_loss()
    assert result.steps == 100 and "masked_accuracy" in result.history[-1]
    # it learns more than the ids' frequencies: the masked frames are read from context
    assert after < 0.6 * before and after < marginal_entropy - 0.2, \
        (before, after, marginal_entropy)

    # the semantic tokens: k-means on a layer of the trained encoder, at 25 Hz (stack 2)
    tokenizer = KMeansTokenizer(encoder, num_clusters=6, frame_rate=25.0, layer=1)
    assert isinstance(tokenizer.features, SSLFeatures) and tokenizer.stack == 2
    tokenizer.fit(train_waves[:8], seed=0)
    tokens = tokenizer.tokenize(waves[:2, :5000])
    assert tokens.shape == (2, 5000 // 640) and int(tokens.max()) < 6
    loaded = KMeansTokenizer.load(tokenizer.save(tmp_path / "ssl.pt"))
    assert loaded.feature_kind == "masked_encoder" and loaded.features.layer == 1
    assert torch.equal(loaded.tokenize(waves[:2, :5000]), tokens)
    with pytest.raises(ValueError, match="pass layer="):
        KMeansTokenizer(encoder, num_clusters=6, frame_rate=25.0)


def test_train_masked_encoder_errors(waves):
    targets = KMeansTokenizer("mfcc", num_clusters=8, frame_rate=50.0).fit(waves[:2])
    encoder = _encoder(frame_rate=50.0)
    with pytest.raises(ValueError, match="frames/s"):
        train_masked_encoder(_encoder(frame_rate=25.0), waves, targets, steps=1)
    with pytest.raises(ValueError, match="num_targets"):
        train_masked_encoder(_encoder(num_targets=9), waves, targets, steps=1)
    with pytest.raises(TypeError, match="Tokenizer protocol"):
        train_masked_encoder(encoder, waves, object(), steps=1)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        train_masked_encoder(encoder, waves[:2], targets, steps=1, batch_size=8)
    with pytest.raises(ValueError, match="segment_samples"):
        train_masked_encoder(encoder, [waves[0], waves[1, :8000]], targets, steps=1)
    with pytest.raises(ValueError, match="shorter than segment_samples"):
        train_masked_encoder(encoder, [waves[0]], targets, steps=1, segment_samples=20000)
    with pytest.raises(ValueError, match="steps"):
        train_masked_encoder(encoder, waves, targets, steps=0)


# -------------------------------------------------------------------- local HuBERT loader
def test_hubert_loader_error_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        HuBERTFeatures.from_pretrained(tmp_path, layer=1)
    try:
        import transformers  # noqa: F401
    except ImportError:
        (tmp_path / "config.json").write_text("{}")
        with pytest.raises(ImportError, match="pip install transformers"):
            HuBERTFeatures.from_pretrained(tmp_path, layer=1)
    with pytest.raises(TypeError, match="HubertModel"):
        HuBERTFeatures(torch.nn.Linear(2, 2), layer=0)


def test_receptive_field_of_hubert_cnn():
    # HuBERT / wav2vec 2.0: kernels (10, 3, 3, 3, 3, 2, 2), strides (5, 2, 2, 2, 2, 2, 2)
    kernels, strides = (10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)
    assert semantic._receptive_field(kernels, strides) == 400
    assert math.prod(strides) == 320


class _StubHubert(torch.nn.Module):
    """What HuBERTFeatures reads of a transformers HubertModel: ``config`` and
    ``forward(x, output_hidden_states=True).hidden_states``, with HuBERT's unpadded CNN."""

    def __init__(self, kernels=(10, 3, 2), strides=(5, 2, 2), hidden=6, layers=2):
        super().__init__()
        self.config = SimpleNamespace(conv_kernel=kernels, conv_stride=strides,
                                      num_hidden_layers=layers, hidden_size=hidden)
        self.convs = torch.nn.ModuleList(
            torch.nn.Conv1d(1 if i == 0 else hidden, hidden, k, stride=s)
            for i, (k, s) in enumerate(zip(kernels, strides)))
        self.layers = torch.nn.ModuleList(torch.nn.Linear(hidden, hidden)
                                          for _ in range(layers))

    def forward(self, x, output_hidden_states=False):
        x = x[:, None]
        for conv in self.convs:
            x = conv(x)
        states = [x.transpose(1, 2)]
        for layer in self.layers:
            states.append(layer(states[-1]))
        return SimpleNamespace(hidden_states=tuple(states))


def test_hubert_features_pad_to_the_frame_rule(waves):
    stub = _StubHubert()
    features = HuBERTFeatures(stub, layer=2, normalize=True)
    # receptive field 1 + 9 * 1 + 2 * 5 + 1 * 10 = 30 samples, hop 5 * 2 * 2 = 20
    assert features.hop_length == 20 and features.padding == 30 - 20
    assert features.frame_rate == 800.0 and features.dim == 6
    for length in (20, 39, 40, 401, 1000):
        out = features(waves[:2, :length])
        assert out.shape == (2, length // 20, 6)
    features.train()
    assert features.training and not stub.training  # the wrapped model stays frozen
    with pytest.raises(ValueError, match="layer must be an int in"):
        HuBERTFeatures(stub, layer=3)
    with pytest.raises(ValueError, match="fewer than one frame"):
        features(waves[:2, :19])
    tokenizer = KMeansTokenizer(features, num_clusters=3, frame_rate=400.0)
    assert tokenizer.fit(waves[:1], seed=0).tokenize(waves[:2, :1000]).shape == (2, 25)


def test_hubert_features_from_a_tiny_local_checkpoint(tmp_path, waves):
    transformers = pytest.importorskip("transformers")
    config = transformers.HubertConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_stride=(10, 8), conv_kernel=(20, 16),
        num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    transformers.HubertModel(config).save_pretrained(tmp_path)
    features = HuBERTFeatures.from_pretrained(tmp_path, layer=1)
    assert features.hop_length == 80 and features.frame_rate == 200.0 and features.dim == 16
    for length in (80, 1000, 1601):
        assert features(waves[:2, :length]).shape == (2, length // 80, 16)
    features.train()
    assert not features.model.training
    with pytest.raises(ValueError, match="layer must be"):
        HuBERTFeatures.from_pretrained(tmp_path, layer=3)
    tokenizer = KMeansTokenizer(features, num_clusters=4, frame_rate=100.0)
    tokenizer.fit(waves[:2], seed=0)
    tokens = tokenizer.tokenize(waves[:2, :1000])
    assert tokens.shape == (2, 1000 // 160)  # 100 Hz at the model's 16 kHz: hop 160
    loaded = KMeansTokenizer.load(tokenizer.save(tmp_path / "hubert_km.pt"),
                                  features=HuBERTFeatures.from_pretrained(tmp_path, layer=1))
    assert torch.equal(loaded.tokenize(waves[:2, :1000]), tokens)
