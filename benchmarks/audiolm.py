"""AudioLM benchmark: SoundStream codec encode/decode real-time factor and stage sampling
speed with and without the KV cache, on CPU, against audiolm-pytorch when it is installed.

Protocol (each measurement in its own fresh process pinned to the same core, torch with one
intra-op thread: the machine's cores are shared with other jobs, and with two threads every
operator's OpenMP barrier waits for a descheduled thread, which made batch-1 sampling about
20x and the codec about 2x slower here than one thread; the other sections' norm too):
- Codec (``lutece.audio.lm.SoundStream``, randomly initialized, eval mode, no_grad): batch
  1, 10 s of Gaussian noise at 16 kHz (2 s in the quick grid); ``encode`` (wave -> codes)
  and ``decode`` (codes -> wave) timed apart, median of 5 calls (3 quick) after a warm-up.
  RTF = compute seconds / audio seconds (below 1: faster than real time). Presets: the
  AudioLM size (``CodecConfig()``: 32 channels doubled per block, strides (2, 4, 5, 8),
  128-d latents, 12 x 1024 codes, 6 kbit/s) and a small one (16 channels, 64-d latents,
  8 x 256 codes, 3.2 kbit/s), each also with ``architecture="spectral"`` (frame-rate STFT
  encoder / iSTFT decoder, width 32 x 16 = 512 and 16 x 16 = 256; no anchor counterpart,
  so its anchor columns read "-"), with its complex head and with its magnitude head
  (``spectral_output="magnitude"``: decoding includes 32 Griffin-Lim iterations).
- Sampling (``SemanticStage.generate(None, n, use_cache=...)``, a 1024-token vocabulary, a
  Transformer with d = 256, 4 layers, 4 heads, FFN 1024, rotary positions, temperature
  0.6): tokens/s = n / seconds of the whole call (BOS prefix pass included) for n = 250,
  500, 1000 (100, 200 quick). Cached runs: median of 3 after a warm-up. Uncached runs
  re-read the whole sequence at every step (quadratic): median of 3 at n = 250, else (and
  in the quick grid) one timed call after a short warm-up. The issue requires the cache to
  be at least 5x faster at 1000 tokens; the script prints that check (PASS / FAIL).
- Anchor: audiolm-pytorch (PyPI ``audiolm-pytorch``; not a dependency, and not installed
  here: its columns then read "-"). Its ``SoundStream`` in the same shape (channels,
  strides, codebook size and count, ``codebook_dim`` = our latent size, local attention off
  since ours has none), timed with ``tokenize`` / ``decode_from_codebook_indices``; its
  ``SemanticTransformer`` (dim 256, depth 4, 4 heads of 64) through
  ``SemanticTransformerWrapper.generate(use_kv_cache=...)``, EOS suppressed where its logit
  layer has a bias, tokens/s counted on the tokens it returns. Ratios are times, lutece /
  anchor: below 1 means lutece is faster.

    python benchmarks/audiolm.py          # the full grid -> RESULTS.md
    python benchmarks/audiolm.py --quick  # 2 s of audio, 100 and 200 tokens, printed only
"""

from __future__ import annotations

import importlib.util
import os
import platform
import time

from _workers import fmt, median_time, spawn, torch_setup, versions
from _workers import main as worker_main

SECTION = "## AudioLM (lutece.audio.lm: codec real-time factor, KV-cache sampling)"
THREADS = 1
SAMPLE_RATE = 16000
VOCAB_SIZE = 1024
TEMPERATURE = 0.6
MAX_LENGTH = 1024  # transformer positions: BOS + the longest run (1000 tokens)
CACHE_TARGET = 5.0  # the issue: the cache at least 5x faster at 1000 tokens
CACHE_TARGET_TOKENS = 1000
ANCHOR = "audiolm_pytorch"

# name -> CodecConfig keyword arguments
CODEC_PRESETS = {
    "AudioLM (CodecConfig())": {},
    "small": {"channels": 16, "latent_dim": 64, "num_levels": 8, "codebook_size": 256},
    "AudioLM size, spectral": {"architecture": "spectral", "causal": False},
    "small, spectral": {"channels": 16, "latent_dim": 64, "num_levels": 8,
                        "codebook_size": 256, "architecture": "spectral", "causal": False},
    "AudioLM size, spectral magnitude": {"architecture": "spectral", "causal": False,
                                         "spectral_output": "magnitude"},
    "small, spectral magnitude": {"channels": 16, "latent_dim": 64, "num_levels": 8,
                                  "codebook_size": 256, "architecture": "spectral",
                                  "causal": False, "spectral_output": "magnitude"},
}
TRANSFORMER = {"dim": 256, "num_layers": 4, "num_heads": 4}


def _wave(seconds: float):
    import torch

    generator = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(1, int(seconds * SAMPLE_RATE), generator=generator)


# ---------------------------------------------------------------------------- workers
def worker_codec(preset: str, seconds: float, repeats: int) -> dict:
    torch = torch_setup(THREADS)
    from lutece.audio.lm import CodecConfig, SoundStream

    torch.manual_seed(0)
    codec = SoundStream(CodecConfig(**CODEC_PRESETS[preset])).eval()
    wave = _wave(seconds)
    with torch.no_grad():
        encode, codes = median_time(lambda: codec.encode(wave), repeats)
        decode, decoded = median_time(lambda: codec.decode(codes), repeats)
    return {"encode": encode, "decode": decode, "frames": codes.shape[1],
            "levels": codes.shape[2], "samples": decoded.shape[-1],
            "parameters": sum(p.numel() for p in codec.parameters()),
            "kbps": codec.bitrate() / 1000}


def worker_anchor_codec(preset: str, seconds: float, repeats: int) -> dict:
    torch = torch_setup(THREADS)
    from audiolm_pytorch import SoundStream as AnchorSoundStream

    from lutece.audio.lm import CodecConfig

    config = CodecConfig(**CODEC_PRESETS[preset])
    torch.manual_seed(0)
    codec = AnchorSoundStream(channels=config.channels, strides=config.strides,
                              codebook_dim=config.latent_dim,
                              codebook_size=config.codebook_size,
                              rq_num_quantizers=config.num_levels,
                              target_sample_hz=config.sample_rate,
                              use_local_attn=False).eval()
    wave = _wave(seconds)
    with torch.no_grad():
        encode, codes = median_time(lambda: codec.tokenize(wave), repeats)
        decode, _ = median_time(lambda: codec.decode_from_codebook_indices(codes), repeats)
    return {"encode": encode, "decode": decode,
            "parameters": sum(p.numel() for p in codec.parameters())}


def _timed(fn, repeats: int, warm_up) -> tuple[float, object]:
    """Median seconds of ``fn`` (``repeats`` calls after one warm-up call) when the run is
    short; else one timed call after ``warm_up()`` (a short generation)."""
    if repeats > 1:
        return median_time(fn, repeats)
    warm_up()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def worker_sampling(tokens: int, use_cache: bool, repeats: int) -> dict:
    torch = torch_setup(THREADS)
    from lutece.audio.lm import SemanticStage, SemanticStageConfig, TransformerConfig

    torch.manual_seed(0)
    stage = SemanticStage(SemanticStageConfig(
        vocab_size=VOCAB_SIZE, temperature=TEMPERATURE,
        transformer=TransformerConfig(**TRANSFORMER, dropout=0.0,
                                      max_length=MAX_LENGTH))).eval()

    def sample(n: int):
        generator = torch.Generator().manual_seed(0)
        return stage.generate(None, n, generator=generator, use_cache=use_cache)

    seconds, out = _timed(lambda: sample(tokens), repeats, lambda: sample(20))
    return {"seconds": seconds, "tokens": int(out.shape[1])}


def worker_anchor_sampling(tokens: int, use_cache: bool, repeats: int) -> dict:
    torch = torch_setup(THREADS)
    from audiolm_pytorch import SemanticTransformer, SemanticTransformerWrapper

    torch.manual_seed(0)
    transformer = SemanticTransformer(num_semantic_tokens=VOCAB_SIZE, dim=TRANSFORMER["dim"],
                                      depth=TRANSFORMER["num_layers"],
                                      heads=TRANSFORMER["num_heads"],
                                      dim_head=TRANSFORMER["dim"] // TRANSFORMER["num_heads"])
    bias = getattr(transformer.to_logits, "bias", None)
    if bias is not None:  # an untrained model would often stop at EOS
        with torch.no_grad():
            bias[transformer.eos_id] = -1e4
    wrapper = SemanticTransformerWrapper(transformer=transformer,
                                         unique_consecutive=False).eval()

    def sample(n: int):
        return wrapper.generate(max_length=n, batch_size=1, temperature=TEMPERATURE,
                                use_kv_cache=use_cache)

    seconds, out = _timed(lambda: sample(tokens), repeats, lambda: sample(20))
    return {"seconds": seconds, "tokens": int(out.shape[-1])}


WORKERS = {"codec": worker_codec, "anchor_codec": worker_anchor_codec,
           "sampling": worker_sampling, "anchor_sampling": worker_anchor_sampling}


# ---------------------------------------------------------------------------- driver
def _spawn(name: str, *args) -> dict | None:
    return spawn(__file__, THREADS, name, *args)


def _ratio(ours: float | None, anchor: float | None) -> float | None:
    return ours / anchor if ours is not None and anchor else None


def _per_token(result: dict | None) -> float | None:
    """Seconds per generated token, or None."""
    return result["seconds"] / result["tokens"] if result and result["tokens"] else None


def _rate(result: dict | None) -> float | None:
    seconds = _per_token(result)
    return 1 / seconds if seconds else None


def run(quick: bool) -> str:
    seconds = 2.0 if quick else 10.0
    codec_repeats = 3 if quick else 5
    lengths = [100, 200] if quick else [250, 500, 1000]
    anchor = importlib.util.find_spec(ANCHOR) is not None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    codec_rows = []
    for preset in CODEC_PRESETS:
        ours = _spawn("codec", preset, seconds, codec_repeats)
        like_for_like = anchor and "architecture" not in CODEC_PRESETS[preset]
        theirs = _spawn("anchor_codec", preset, seconds, codec_repeats) if like_for_like else None
        enc, dec = (ours and ours["encode"] / seconds), (ours and ours["decode"] / seconds)
        anchor_enc = theirs and theirs["encode"] / seconds
        anchor_dec = theirs and theirs["decode"] / seconds
        codec_rows.append(
            f"| {preset} | {ours and ours['parameters']} | {fmt(ours and ours['kbps'])} | "
            f"{fmt(ours and ours['encode'])} | {fmt(enc)} | {fmt(ours and ours['decode'])} "
            f"| {fmt(dec)} | {fmt(anchor_enc)} | {fmt(anchor_dec)} | "
            f"{fmt(_ratio(enc, anchor_enc))} | {fmt(_ratio(dec, anchor_dec))} |")

    sampling_rows, speedups = [], {}
    for tokens in lengths:
        uncached_repeats = 3 if tokens <= 250 and not quick else 1
        cached = _spawn("sampling", tokens, True, 3)
        uncached = _spawn("sampling", tokens, False, uncached_repeats)
        anchor_cached = _spawn("anchor_sampling", tokens, True, 3) if anchor else None
        anchor_uncached = (_spawn("anchor_sampling", tokens, False, uncached_repeats)
                           if anchor else None)
        speedup = _ratio(_per_token(uncached), _per_token(cached))
        speedups[tokens] = speedup
        sampling_rows.append(
            f"| {tokens} | {fmt(cached and cached['seconds'])} | {fmt(_rate(cached))} | "
            f"{fmt(uncached and uncached['seconds'])} | {fmt(_rate(uncached))} | "
            f"{fmt(speedup)} | {fmt(_rate(anchor_cached))} | {fmt(_rate(anchor_uncached))} "
            f"| {fmt(_ratio(_per_token(anchor_uncached), _per_token(anchor_cached)))} | "
            f"{fmt(_ratio(_per_token(cached), _per_token(anchor_cached)))} | "
            f"{fmt(_ratio(_per_token(uncached), _per_token(anchor_uncached)))} |")

    checked = max(lengths)
    speedup = speedups[checked]
    if checked != CACHE_TARGET_TOKENS:
        verdict = f"not checked (quick grid; the requirement is at {CACHE_TARGET_TOKENS} tokens)"
    elif speedup is None:
        verdict = "FAIL (no measurement)"
    else:
        verdict = "PASS" if speedup >= CACHE_TARGET else "FAIL"
    check = (f"KV cache speedup at {checked} tokens: {fmt(speedup)}x (required at "
             f"{CACHE_TARGET_TOKENS} tokens: >= {CACHE_TARGET:g}x): {verdict}")

    machine = (f"{platform.machine()}, {os.cpu_count()} cores visible, {THREADS} thread per "
               f"run, {versions('torch', 'lutece', 'audiolm-pytorch')}; load average "
               f"{fmt(load)} at the start; "
               f"{time.strftime('%Y-%m-%d')}")
    transformer = (f"d = {TRANSFORMER['dim']}, {TRANSFORMER['num_layers']} layers, "
                   f"{TRANSFORMER['num_heads']} heads, vocabulary {VOCAB_SIZE}")
    return "\n".join([
        SECTION, "",
        f"Machine: {machine}. {'Quick grid' if quick else 'Full grid'}; protocol in "
        "benchmarks/audiolm.py. The cores are shared with other jobs: absolute times are "
        "noisy, the ratios are the result.", "",
        *([] if anchor else ["audiolm-pytorch not installed: anchor columns skipped.", ""]),
        f"Codec, CPU, batch 1, {seconds:g} s of 16 kHz audio, randomly initialized weights; "
        "RTF = compute seconds / audio seconds:", "",
        "| codec | parameters | kbit/s | encode s | encode RTF | decode s | decode RTF | "
        "anchor encode RTF | anchor decode RTF | encode lutece / anchor | "
        "decode lutece / anchor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *codec_rows, "",
        f"Stage sampling (SemanticStage, {transformer}), batch 1, tokens/s over the whole "
        "call; cache speedup = uncached time / cached time:", "",
        "| tokens | cached s | cached tokens/s | uncached s | uncached tokens/s | "
        "cache speedup | anchor cached tokens/s | anchor uncached tokens/s | "
        "anchor cache speedup | cached lutece / anchor | uncached lutece / anchor |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *sampling_rows, "",
        check, "",
    ])


def main() -> None:
    worker_main(__doc__, WORKERS, SECTION, run,
                "2 s of audio, 100 and 200 tokens; printed only")


if __name__ == "__main__":
    main()
