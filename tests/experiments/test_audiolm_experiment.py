"""The AudioLM experiment runs end to end (at a toy size here; the quick mode itself is a slow
test) and reports every number, table and figure; a quick run makes no verdict."""

import io

import pytest
import torch
from scipy.io import wavfile

from lutece.experiments import get
from lutece.experiments.audiolm import (
    CONDITIONS,
    KEY_KEPT_AUC,
    _narrow_key_note,
    _run_seeds,
    default_config,
    run_with,
)

# Many tiny ops: one thread is faster than two here, and far faster on a busy machine.
pytestmark = pytest.mark.usefixtures("one_thread")


def _toy_config():
    config = default_config(True, 0)
    config.update({"clip_seconds": 1.2, "prompt_seconds": 0.6, "voices": 2, "words": 3,
                   "instruments": 2, "train_speech": 6, "train_music": 6,
                   "test_per_identity": 2, "abx_repeats": 2, "abx_pitches": 3,
                   "codec_channels": 2, "latent_dim": 8, "levels": 2, "codebook_size": 16,
                   "codec_steps": 2, "codec_batch": 4, "num_clusters": 8, "encoder_dim": 16,
                   "encoder_layers": 1, "ssl_layer": 1, "encoder_steps": 2,
                   "coarse_levels": 1, "stage_dim": 16, "stage_layers": 1, "stage_steps": 2,
                   "stage_batch": 4, "probe_steps": 2})
    return config


def test_audiolm_experiment_at_toy_size():
    config = _toy_config()
    result = run_with(config, quick=True, seed=0)
    metrics = result.metrics
    assert result.claim_shown is None and "too small" in result.notes
    assert "60k hours" in result.notes and "51.2%" in result.notes
    ssl = "masked-encoder_layer_1_k-means"
    for domain in ("words", "notes"):
        for mode in ("within", "across"):
            for name in ("MFCC_k-means", ssl, "codec_level_1", "codec_all_levels_(embedded)",
                         "MFCC_frames", "masked-encoder_layer", "codec_encoder_latent",
                         "music_LM:_chroma_k-means"):
                assert 0.0 <= metrics[f"abx_{domain}_{mode}_{name}"] <= 1.0
    for name in ("MFCC_k-means", ssl, "codec_level_1", "codec_all_2_levels"):
        assert metrics[f"probe_log_mel_{name}"] > 0
    for condition in CONDITIONS:
        key = condition.replace(" ", "_")
        for field in ("speech_voice_accuracy", "speech_voice_auc", "music_instrument_accuracy",
                      "music_instrument_auc", "music_key_auc"):
            assert 0.0 <= metrics[f"{field}_{key}"] <= 1.0
    for levels in (1, 2):
        assert metrics[f"codec_log_mel_{levels}_levels"] > 0
        assert f"codec_si_snr_db_{levels}_levels" in metrics
    for domain in ("speech", "music"):  # one AudioLM per domain
        for stage in ("semantic", "coarse", "fine"):
            assert metrics[f"perplexity_{domain}_{stage}"] >= 1.0
            assert metrics[f"stage_train_seconds_{domain}_{stage}"] > 0
    # AudioLM's arithmetic at this size: 25 Hz semantic, 50 Hz x 1 coarse, 50 Hz x 1 fine
    assert metrics["token_rate_semantic"] == 25 and metrics["token_rate_coarse"] == 50
    assert metrics["token_rate_fine"] == 50
    for key in ("part1_semantic_lower_abx", "part1_semantic_reconstructs_worse",
                "part2_continuation_keeps_identity", "codec_log_mel_monotone"):
        assert metrics[key] in (0, 1)
    assert metrics["speaker_embedding"] in ("dvector", "mfcc")
    assert metrics["semantic_tokenizer_for_lm_speech"] == "MFCC k-means"
    assert metrics["semantic_tokenizer_for_lm_music"] == "music LM: chroma k-means"
    assert metrics["voice_chance"] == 0.5 and metrics["seeds"] == 1
    assert set(result.figures) == {"audiolm_codec_bitrate", "audiolm_spectrograms",
                                   "audiolm_tradeoff"}
    assert all(png.startswith(b"\x89PNG") for png in result.figures.values())
    # one speech and one music example, each prompt + continuation at the clip's length
    assert set(result.audio) == {f"audiolm_{domain}_{kind}" for domain in ("speech", "music")
                                 for kind in ("prompt_then_real", "prompt_then_codec",
                                              "prompt_then_audiolm", "semantic_only")}
    rate, wave = wavfile.read(io.BytesIO(result.audio["audiolm_speech_prompt_then_audiolm"]))
    hop = config["sample_rate"] // 25
    assert rate == config["sample_rate"]
    assert wave.shape == (round(config["clip_seconds"] * config["sample_rate"]) // hop * hop,)
    assert [len(table.rows) for table in result.tables] == [8, 4, 4, 2, 6]
    assert result.tables[2].rows[0][0] == CONDITIONS[0]


def test_seeds_in_parallel_processes_give_the_sequential_numbers():
    # seed 1 draws one key for all 4 clips; the masked encoder's tokens drive the speech LM
    # here, and MFCC + chroma tokens the music LM
    config = {**_toy_config(), "seeds": [0, 2],
              "lm_tokenizers": {"speech": "masked-encoder", "music": "mfcc_chroma"},
              "lm_feature_options": {"music": {"n_mfcc": 5, "deltas": False}}}
    sequential = _run_seeds({**config, "workers": 1})
    parallel = _run_seeds({**config, "workers": 2})
    assert len(parallel) == 2
    for one, other in zip(sequential, parallel):
        for field in ("abx", "probe", "perplexity", "speech", "music", "key_auc"):
            assert one[field] == other[field]
        for domain in ("speech", "music"):
            for name, wave in one["examples"][domain].items():
                assert torch.equal(wave, other["examples"][domain][name])
    assert sequential[0]["probe"] != sequential[1]["probe"]


def test_unknown_lm_tokenizer_is_a_clear_error():
    with pytest.raises(ValueError, match=r"lm_tokenizers\['music'\] must be one of 'mfcc', "
                                         r"'masked-encoder', 'chroma'"):
        run_with({**_toy_config(), "lm_tokenizers": {"music": "hubert"}}, quick=True, seed=0)
    with pytest.raises(ValueError, match="an lm_tokenizers domain must be one of 'speech'"):
        run_with({**_toy_config(), "lm_tokenizers": {"piano": "chroma"}}, quick=True, seed=0)


@pytest.mark.slow
def test_quick_audiolm_experiment_within_budget():
    result = get("audiolm").run(True, 0)
    assert result.seconds < 300
    assert result.claim_shown is None


def test_a_narrow_key_margin_is_said_with_the_seeds_values():
    narrow = [KEY_KEPT_AUC - 0.02, KEY_KEPT_AUC + 0.03, KEY_KEPT_AUC + 0.07]  # mean +0.027
    note = _narrow_key_note(narrow)
    assert "kept narrowly" in note and "standard deviation (0.04" in note
    assert f"per seed {narrow[0]:.2f}, {narrow[1]:.2f}, {narrow[2]:.2f}" in note
    assert _narrow_key_note([KEY_KEPT_AUC + 0.10, KEY_KEPT_AUC + 0.12]) == ""  # clear margin
    assert _narrow_key_note([KEY_KEPT_AUC - 0.05, KEY_KEPT_AUC - 0.01]) == ""  # not kept
    assert _narrow_key_note([KEY_KEPT_AUC + 0.01]) == ""  # one seed: no spread to compare
