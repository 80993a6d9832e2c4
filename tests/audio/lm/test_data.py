"""Tests of lutece.audio.lm.data: seeded random crops of a folder of audio, precomputed tokens
and the stages' token crops.

Oracles: the files themselves (a crop of a file at the dataset's rate equals the slice of the
file at the crop's position; a resampled crop matches the slice of the whole file resampled by
libsoxr, away from the edges), the rate arithmetic of AudioLM (16 kHz, 25 Hz semantic, 50 Hz
acoustic: 640 samples and 2 acoustic frames per semantic frame), and token stores built so
that every id encodes its own frame index (alignment is then read off the values).
"""

import math

import numpy as np
import pytest
import soundfile
import torch
from torch.utils.data import default_collate

from lutece.audio.io import load, resample
from lutece.audio.lm import (
    AudioCropDataset,
    CoarseStage,
    CoarseStageConfig,
    CoarseTokenCrops,
    CodecConfig,
    FineStage,
    FineStageConfig,
    FineTokenCrops,
    SemanticStage,
    SemanticStageConfig,
    SemanticTokenCrops,
    SoundStream,
    TokenStore,
    TransformerConfig,
    find_audio_files,
    precompute_tokens,
    stage_loss,
)

RATE = 16000
SEMANTIC_HOP = 640  # 25 Hz at 16 kHz



def _write(path, seconds, rate, frequency=220.0, channels=1):
    t = np.arange(round(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * frequency * t) + 0.05 * np.sin(2 * np.pi * 3.1 * t)
    if channels > 1:
        wave = np.stack([wave] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, wave, rate, subtype="FLOAT")
    return path


@pytest.fixture
def folder(tmp_path):
    """Files of various lengths, rates, channels and formats, one in a sub-folder, plus a
    hidden file and a non-audio file that must be ignored."""
    root = tmp_path / "audio"
    _write(root / "a.wav", 1.0, RATE, 200)
    _write(root / "b.wav", 0.3, RATE, 300)           # shorter than the crop
    _write(root / "nested" / "c.wav", 2.5, 22050, 400, channels=2)
    soundfile.write(root / "d.flac", 0.2 * np.ones(12000), 8000)  # 1.5 s at 8 kHz
    _write(root / ".hidden.wav", 1.0, RATE)
    (root / "notes.txt").write_text("not audio")
    return root


# ------------------------------------------------------------------------------ audio
def test_find_audio_files_is_recursive_sorted_and_skips_hidden(folder):
    names = [path.relative_to(folder).as_posix() for path in find_audio_files(folder)]
    assert names == ["a.wav", "b.wav", "d.flac", "nested/c.wav"]


def test_crops_have_the_crop_length_from_files_of_any_length_and_rate(folder):
    dataset = AudioCropDataset(folder, sample_rate=RATE, crop_samples=8000, seed=0)
    # slots: a 1 s -> 2, b short -> 1 (padded), c 2.5 s -> 5, d 1.5 s -> 3
    assert dataset.num_samples == [16000, 4800, 24000, 40000]
    assert len(dataset) == 2 + 1 + 3 + 5
    for index in range(len(dataset)):
        crop = dataset[index]
        assert crop.shape == (8000,) and crop.dtype == torch.float32
        assert torch.isfinite(crop).all()


def test_crops_are_reproducible_and_independent_of_reading_order(folder):
    first = AudioCropDataset(folder, sample_rate=RATE, crop_samples=4000, seed=3, repeats=2)
    second = AudioCropDataset(folder, sample_rate=RATE, crop_samples=4000, seed=3, repeats=2)
    forward = [first[i] for i in range(len(first))]
    backward = [second[i] for i in reversed(range(len(second)))][::-1]
    for a, b in zip(forward, backward):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    other = AudioCropDataset(folder, sample_rate=RATE, crop_samples=4000, seed=4, repeats=2)
    assert [first.position(i) for i in range(len(first))] \
        != [other.position(i) for i in range(len(other))]
    # a later repeat draws fresh positions for the same slots
    slots = first.num_slots
    assert [first.position(i) for i in range(slots)] \
        != [first.position(i + slots) for i in range(slots)]


def test_a_crop_is_the_files_slice_at_its_position(folder):
    dataset = AudioCropDataset(folder, sample_rate=RATE, crop_samples=4000, seed=1)
    whole = {path: None for path in dataset.files}
    checked_resampled = False
    for index in range(len(dataset)):
        item, start = dataset.position(index)
        path = dataset.files[item]
        if whole[path] is None:
            whole[path] = load(path)
        wave, rate = whole[path]
        crop = dataset[index]
        if rate == RATE:
            expected = wave[0, start:start + 4000]
            expected = torch.nn.functional.pad(expected, (0, 4000 - expected.shape[0]))
            torch.testing.assert_close(crop, expected, rtol=0, atol=0)
        elif 200 <= start and start + 4000 <= dataset.num_samples[item] - 200:
            reference = resample(wave, rate, RATE)[0, start:start + 4000]
            # libsoxr on a chunk vs on the whole file: equal away from the chunk's edges
            torch.testing.assert_close(crop[100:-100], reference[100:-100], atol=2e-3,
                                       rtol=0)
            checked_resampled = True
    assert checked_resampled


def test_short_files_are_zero_padded_or_skipped(folder):
    padded = AudioCropDataset(folder, sample_rate=RATE, crop_samples=8000, seed=0)
    short = padded.files.index(folder / "b.wav")
    index = next(i for i in range(len(padded)) if padded.position(i)[0] == short)
    crop = padded[index]
    assert crop[:4800].abs().max() > 0.1 and (crop[4800:] == 0).all()
    skipped = AudioCropDataset(folder, sample_rate=RATE, crop_samples=8000, seed=0,
                               short="skip")
    assert short not in skipped.eligible and len(skipped) == len(padded) - 1


def test_audio_dataset_errors(tmp_path, folder):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("no audio here")
    with pytest.raises(ValueError, match="found no audio files .* under"):
        AudioCropDataset(tmp_path / "empty", sample_rate=RATE, crop_samples=100)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        AudioCropDataset(tmp_path / "missing", sample_rate=RATE, crop_samples=100)
    with pytest.raises(ValueError, match="no file is at least crop_samples"):
        AudioCropDataset(folder, sample_rate=RATE, crop_samples=10 * RATE, short="skip")
    with pytest.raises(ValueError, match="short must be"):
        AudioCropDataset(folder, sample_rate=RATE, crop_samples=100, short="trim")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(ValueError, match="broken.wav"):
        AudioCropDataset(tmp_path / "bad", sample_rate=RATE, crop_samples=100)


def test_a_list_of_files_is_accepted(folder):
    files = [folder / "a.wav", folder / "d.flac"]
    dataset = AudioCropDataset(files, sample_rate=8000, crop_samples=2000)
    assert dataset.files == files and dataset.num_samples == [8000, 12000]


# ----------------------------------------------------------------------------- tokens
class CountingTokenizer:
    """25 Hz ids: the sign pattern of four 160-sample means per 640-sample frame (16 ids);
    counts its calls and can fail on a chosen call (to interrupt a precomputation)."""

    sample_rate, frame_rate, vocab_size = RATE, 25.0, 16

    def __init__(self, fail_on=None):
        self.calls, self.fail_on = 0, fail_on

    def tokenize(self, wave):
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt
        frames = wave.shape[-1] // SEMANTIC_HOP
        x = wave[:, :frames * SEMANTIC_HOP].reshape(wave.shape[0], frames, 4, 160).mean(-1)
        return ((x > 0).long() * torch.tensor([1, 2, 4, 8])).sum(-1)


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    model = SoundStream(CodecConfig(channels=2, latent_dim=8, num_levels=3, codebook_size=8,
                                    kmeans_iterations=2))
    model.train()
    t = torch.arange(3200) / RATE
    model(0.3 * torch.sin(2 * math.pi * torch.tensor([[150.0], [320.0]]) * t))
    return model.eval()


def test_precompute_tokens_shapes_follow_the_rate_ratio_and_are_cached(folder, codec,
                                                                         tmp_path):
    tokenizer = CountingTokenizer()
    path = tmp_path / "cache" / "tokens.pt"
    store = precompute_tokens(folder, tokenizer, codec, path=path, progress=False)
    assert store.complete and store.frames_per_semantic == 2 and len(store) == 4
    for file, semantic, codes in zip(store.files, store.semantic, store.codes):
        samples = load(file, RATE)[0].shape[-1]
        assert semantic.shape == (samples // SEMANTIC_HOP,)
        assert codes.shape == (2 * semantic.shape[0], 3)
        assert semantic.dtype == codes.dtype == torch.int64
    calls = tokenizer.calls
    again = precompute_tokens(folder, tokenizer, codec, path=path, progress=False)
    assert tokenizer.calls == calls  # loaded, not recomputed
    for a, b in zip(store.codes, again.codes):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    _write(folder / "a.wav", 1.2, RATE, 250)  # a changed file invalidates the cache
    changed = precompute_tokens(folder, tokenizer, codec, path=path, progress=False)
    assert tokenizer.calls > calls and changed.semantic[0].shape == (30,)


def test_precompute_tokens_resumes_an_interrupted_run(folder, codec, tmp_path):
    path = tmp_path / "tokens.pt"
    with pytest.raises(KeyboardInterrupt):
        precompute_tokens(folder, CountingTokenizer(fail_on=3), codec, path=path,
                          progress=False)
    partial = TokenStore.load(path)
    assert not partial.complete and len(partial) == 2
    resumed = CountingTokenizer()
    store = precompute_tokens(folder, resumed, codec, path=path, progress=False)
    assert store.complete and len(store) == 4 and resumed.calls == 2
    fresh = precompute_tokens(folder, CountingTokenizer(), codec, progress=False)
    for a, b in zip(store.semantic, fresh.semantic):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_precompute_tokens_refuses_mismatched_rates(folder, codec):
    other_rate = CountingTokenizer()
    other_rate.sample_rate = 8000
    with pytest.raises(ValueError, match="reads 8000 Hz audio but the codec 16000 Hz"):
        precompute_tokens(folder, other_rate, codec, progress=False)
    unaligned = CountingTokenizer()
    unaligned.frame_rate = 20.0
    with pytest.raises(ValueError, match="integer multiple"):
        precompute_tokens(folder, unaligned, codec, progress=False)


def _indexed_store(semantic_lengths=(40, 7, 25), r=2, levels=3):
    """Ids that encode their position: semantic[t] = t, codes[f, q] = 100 q + f."""
    semantic = [torch.arange(n) for n in semantic_lengths]
    codes = [torch.arange(r * n)[:, None] + 100 * torch.arange(levels) for n in semantic_lengths]
    return TokenStore(files=[f"f{i}.wav" for i in range(len(semantic))], semantic=semantic,
                      codes=codes, sample_rate=RATE, semantic_rate=25.0, acoustic_rate=50.0,
                      frames_per_semantic=r, semantic_vocab_size=1000, codebook_size=1000,
                      num_levels=levels)


def test_coarse_crops_start_their_codes_on_the_semantic_boundary():
    store = _indexed_store()
    crops = CoarseTokenCrops(store, semantic_frames=10, seed=5, repeats=3)
    assert crops.eligible == [0, 2]  # the 7-frame file is too short
    for index in range(len(crops)):
        item, start = crops.position(index)
        semantic, codes = crops[index]
        assert semantic.shape == (10,) and codes.shape == (20, 3)
        torch.testing.assert_close(semantic, torch.arange(start, start + 10))
        torch.testing.assert_close(codes[:, 0], torch.arange(2 * start, 2 * start + 20))
        assert 0 <= start <= store.semantic_lengths[item] - 10
    levels = CoarseTokenCrops(store, semantic_frames=10, levels=2)
    assert levels[0][1].shape == (20, 2)


def test_semantic_and_fine_crops_and_their_lengths():
    store = _indexed_store()
    semantic = SemanticTokenCrops(store, frames=8, seed=0)
    assert len(semantic) == 40 // 8 + 25 // 8 and semantic[0].shape == (8,)
    item, start = semantic.position(3)
    torch.testing.assert_close(semantic[3], store.semantic[item][start:start + 8])
    fine = FineTokenCrops(store, chunk_frames=15, seed=0)
    assert fine.eligible == [0, 2]  # 14 acoustic frames < 15
    item, start = fine.position(1)
    assert fine[1].shape == (15, 3)
    torch.testing.assert_close(fine[1], store.codes[item][start:start + 15])


def test_token_crops_refuse_audio_too_short():
    store = _indexed_store()
    with pytest.raises(ValueError, match="audio too short: no file gives 50 frames"):
        SemanticTokenCrops(store, frames=50)
    with pytest.raises(ValueError, match="audio too short"):
        CoarseTokenCrops(store, semantic_frames=41)
    with pytest.raises(ValueError, match="audio too short"):
        FineTokenCrops(store, chunk_frames=81)
    store.complete = False
    with pytest.raises(ValueError, match="incomplete"):
        SemanticTokenCrops(store, frames=5)


def test_collated_crops_are_what_each_stage_loss_expects():
    store = _indexed_store(semantic_lengths=(30, 20), levels=4)
    store.semantic = [tokens % 8 for tokens in store.semantic]
    store.codes = [codes % 16 for codes in store.codes]
    arch = TransformerConfig(dim=16, num_layers=1, num_heads=2, dropout=0.0, max_length=128)
    stages = [
        (SemanticStage(SemanticStageConfig(vocab_size=8, transformer=arch)),
         SemanticTokenCrops(store, frames=10)),
        (CoarseStage(CoarseStageConfig(semantic_vocab_size=8, codebook_size=16,
                                       coarse_levels=2, transformer=arch)),
         CoarseTokenCrops(store, semantic_frames=10)),
        (FineStage(FineStageConfig(codebook_size=16, num_levels=4, coarse_levels=2,
                                   chunk_frames=10, transformer=arch)),
         FineTokenCrops(store, chunk_frames=10)),
    ]
    for stage, crops in stages:
        batch = default_collate([crops[i] for i in range(3)])
        loss = stage_loss(stage, batch)
        assert loss.ndim == 0 and torch.isfinite(loss)
