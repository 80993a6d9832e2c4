"""AudioLM (Borsos et al., 2022, arXiv 2209.03143): audio generation by language modeling
over hybrid tokens, trained from scratch on a folder of audio (no pretrained weights).

- :mod:`.quantizers`: ``ResidualVectorQuantizer`` (SoundStream's RVQ with EMA codebooks,
  k-means initialization, dead-code replacement, quantizer dropout, straight-through
  estimator and commitment loss) and its ``QuantizerOutput``.
- :mod:`.codec`: ``SoundStream`` (Zeghidour et al., 2021), a causal convolutional codec
  with an RVQ bottleneck (16 kHz, strides (2, 4, 5, 8) -> 50 Hz, 12 x 1024 codes ->
  6 kbit/s by default), ``CodecConfig``, and ``train_codec`` / ``CodecTrainConfig``: the
  acoustic tokens.
- :mod:`.codec_spectral`: the frame-rate STFT encoder and inverse-STFT decoder of the
  codec's ``architecture="spectral"`` (Vocos-style; ``centred_stft``, ``overlap_add``,
  ``griffin_lim`` for its magnitude head).
- :mod:`.codec_losses`: multi-scale mel reconstruction loss, the multi-scale waveform and
  STFT discriminators, hinge adversarial and feature-matching losses.
- :mod:`.semantic`: the ``Tokenizer`` protocol, k-means tokenizers over log-mel / MFCC
  features or the layer of a masked-prediction encoder trained here
  (``MaskedFeatureEncoder``, HuBERT-style), a loader for a local HuBERT checkpoint: the
  semantic tokens.
- :mod:`.transformers`: the causal Transformer with a KV cache, token layouts with
  per-level offsets, and the semantic, coarse and fine stages.
- :mod:`.audiolm`: ``AudioLM`` (``continue_audio``, ``generate_from_semantic``).
- :mod:`.data`, :mod:`.presets`, :mod:`.commands`: the training recipe on a folder of audio
  (seeded random crops, precomputed tokens, size presets) and ``lutece audiolm ...``.
- :mod:`.metrics`: ``si_snr``, ``log_mel_distance`` and ``pesq_score`` (optional ``pesq``).
- :mod:`.evaluation`: codec quality vs bitrate, token rates and stage perplexity, a machine
  ABX over DTW-aligned frames, and prompt/continuation consistency (speaker, key, timbre).
"""

from .audiolm import AudioLM
from .codec import (
    CodecConfig,
    CodecOutput,
    CodecTrainConfig,
    CodecTrainResult,
    SoundStream,
    train_codec,
)
from .codec_losses import (
    CodecDiscriminator,
    DiscriminatorOutput,
    MultiScaleWaveDiscriminator,
    STFTDiscriminator,
    WaveDiscriminator,
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_hinge_loss,
    mel_spectrogram,
    multiscale_mel_loss,
    spectral_magnitude_loss,
)
from .codec_spectral import (
    SPECTRAL_OUTPUTS,
    SpectralDecoder,
    SpectralEncoder,
    centred_stft,
    griffin_lim,
    overlap_add,
    spectral_lookahead,
)
from .data import (
    AudioCropDataset,
    CoarseTokenCrops,
    FineTokenCrops,
    SemanticTokenCrops,
    TokenStore,
    find_audio_files,
    model_fingerprint,
    precompute_tokens,
)
from .evaluation import (
    CodecQualityRow,
    ConsistencyScore,
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
from .metrics import log_mel_distance, pesq_score, si_snr
from .presets import AudioLMPreset, StageRecipe, TokenizerRecipe, load_preset
from .quantizers import QuantizerOutput, ResidualVectorQuantizer
from .semantic import (
    ChromaFeatures,
    ConcatenatedFeatures,
    HuBERTFeatures,
    KMeansResult,
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
    train_masked_encoder,
)
from .transformers import (
    CausalTransformer,
    CoarseStage,
    CoarseStageConfig,
    FineStage,
    FineStageConfig,
    KVCache,
    SemanticStage,
    SemanticStageConfig,
    SpecialTokens,
    TokenSequence,
    TransformerConfig,
    flatten_codes,
    sample_logits,
    stage_loss,
    unflatten_codes,
)

__all__ = [
    # acoustic tokens
    "ResidualVectorQuantizer", "QuantizerOutput", "SoundStream", "CodecConfig",
    "CodecOutput", "CodecTrainConfig", "CodecTrainResult", "train_codec",
    "SpectralEncoder", "SpectralDecoder", "centred_stft", "overlap_add", "spectral_lookahead",
    "griffin_lim", "SPECTRAL_OUTPUTS", "spectral_magnitude_loss",
    "mel_spectrogram", "multiscale_mel_loss", "DiscriminatorOutput", "WaveDiscriminator",
    "MultiScaleWaveDiscriminator", "STFTDiscriminator", "CodecDiscriminator",
    "discriminator_hinge_loss", "generator_hinge_loss", "feature_matching_loss",
    # semantic tokens
    "Tokenizer", "num_token_frames", "check_rate_alignment", "LogMelFeatures",
    "MFCCFeatures", "ChromaFeatures", "ConcatenatedFeatures", "KMeansResult", "kmeans",
    "KMeansTokenizer", "MaskedFeatureEncoder",
    "SSLFeatures", "train_masked_encoder", "HuBERTFeatures", "remove_consecutive_duplicates",
    # stages and the model
    "TransformerConfig", "CausalTransformer", "KVCache", "sample_logits", "flatten_codes",
    "unflatten_codes", "SpecialTokens", "TokenSequence", "SemanticStageConfig",
    "CoarseStageConfig", "FineStageConfig", "SemanticStage", "CoarseStage", "FineStage",
    "stage_loss", "AudioLM",
    # training recipe
    "find_audio_files", "AudioCropDataset", "TokenStore", "precompute_tokens",
    "model_fingerprint", "SemanticTokenCrops", "CoarseTokenCrops", "FineTokenCrops",
    "AudioLMPreset", "TokenizerRecipe", "StageRecipe", "load_preset",
    # metrics
    "si_snr", "log_mel_distance", "pesq_score",
    # evaluation
    "CodecQualityRow", "codec_quality", "token_rates", "stage_perplexity", "frame_costs",
    "dtw_distance", "pairwise_dtw", "abx_error", "abx_error_from_distances",
    "ConsistencyScore", "consistency_scores", "speaker_embeddings", "chroma_profile",
    "timbre_features", "speech_consistency", "music_consistency",
]
