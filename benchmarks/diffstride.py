"""DiffStride benchmark: forward+backward time of a pre-activation ResNet-18 with strided
convolutions, spectral pooling and DiffStride on a batch of 32x3x32x32 images, on CPU, in
one run (round robin, medians), with the share of the time spent in FFTs, the feature-map
sizes each variant produces and its counted multiply-accumulates.

Strided convolutions are the baseline (ratios > 1 mean slower than them). The paper's cost
of DiffStride is the FFTs; here most of it is the larger feature maps: the pooling variants
run the stage's first convolution before downsampling, and DiffStride keeps the mask's
ramp (2R frequencies per axis) on top of N / S.

    python benchmarks/diffstride.py          # full -> RESULTS.md
    python benchmarks/diffstride.py --quick  # width 16, fewer repeats, printed only
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from _results import publish
from lutece.nn import DOWNSAMPLING, ResNet18, count_conv_macs

SECTION = "## DiffStride (lutece.nn)"


def _step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    torch.nn.functional.cross_entropy(model(x), y).backward()


def _fft_share(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of one forward+backward's CPU time spent in FFT kernels."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        _step(model, x, y)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    fft = sum(e.self_cpu_time_total for e in events if "fft" in e.key)
    return fft / total if total else 0.0


def _stage_sizes(model: ResNet18, x: torch.Tensor) -> str:
    sizes = []
    hooks = [block.register_forward_hook(
        lambda _m, _i, out: sizes.append("x".join(map(str, out.shape[2:]))))
        for block in list(model.blocks)[1::2]]
    with torch.no_grad():
        model(x[:1])
    for hook in hooks:
        hook.remove()
    return " / ".join(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="width 16, 3 repeats; print only")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    width, repeats = (16, 3) if args.quick else (64, 7)
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    models = {m: ResNet18(10, 3, m, width=width) for m in DOWNSAMPLING}
    times: dict[str, list[float]] = {m: [] for m in models}
    for model in models.values():
        _step(model, x, y)  # warm-up (and DiffStride's first clamp)
    for _ in range(repeats):  # round robin: machine noise hits every variant alike
        for name, model in models.items():
            start = time.perf_counter()
            _step(model, x, y)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["strided_conv"])
    base_macs = count_conv_macs(models["strided_conv"], x)
    lines = [SECTION, "",
             f"{datetime.date.today()}, {platform.machine()} CPU, {torch.get_num_threads()} "
             f"threads, torch {torch.__version__}; pre-activation ResNet-18 (width {width}, "
             f"strides (1, 1, 2, 2, 2), DiffStride R = 4), batch 32x3x32x32, forward + "
             f"backward, medians of {repeats} round-robin repeats.", "",
             "| downsampling | parameters | fwd+bwd (ms) | / strided conv | FFT share | "
             "stage outputs | conv MACs / strided conv |",
             "|---|---|---|---|---|---|---|"]
    for name, model in models.items():
        median = statistics.median(times[name])
        params = sum(p.numel() for p in model.parameters())
        share = _fft_share(model, x, y)
        lines.append(f"| {name} | {params} | {median * 1e3:.1f} | {median / base:.2f} | "
                     f"{100 * share:.0f}% | {_stage_sizes(model, x)} | "
                     f"{count_conv_macs(model, x) / base_macs:.2f} |")
    ratio = statistics.median(times["diffstride"]) / base
    lines += ["", f"DiffStride's forward+backward is {ratio:.2f}x strided convolutions'; "
              f"the FFTs are the share above, the rest is the larger feature maps."]
    publish(SECTION, "\n".join(lines) + "\n", args.quick)


if __name__ == "__main__":
    main()
