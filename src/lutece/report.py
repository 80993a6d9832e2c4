"""Experiment results -> ``metrics.json`` and one self-contained ``report.html``.

Each experiment returns an :class:`ExperimentResult`: the paper's claim, what we measured,
the numbers, tables, figures (PNG bytes) and sound examples (WAV bytes), both embedded in the
page as base64 and kept as files beside ``result.json``, the seed and whether the run was a
quick one too small to show the claim. Sound players never start on their own
(``preload="none"``, no autoplay). The page also records the
software versions and the machine, so a number can always be traced to how it was made.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import html
import importlib.metadata
import io
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Table",
    "ExperimentResult",
    "figure_to_png",
    "wave_to_wav",
    "environment",
    "write_report",
    "save_result",
    "load_result",
    "saved_version",
]


@dataclass
class Table:
    """A small table: ``rows`` are lists of cells aligned with ``columns``."""

    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class ExperimentResult:
    """What one experiment (one paper claim) produced.

    Attributes:
        name: registry name (``lutece reproduce NAME``).
        title: human title.
        paper: the paper, as a citation.
        claim: the paper's claim this experiment checks, in one or two sentences.
        summary: what we measured, in a few sentences, with the key numbers.
        metrics: flat ``{name: number or string}``; every number of the summary is here.
        tables: further tables shown on the page.
        figures: ``{file stem: PNG bytes}``.
        audio: ``{file stem: WAV bytes}`` (see :func:`wave_to_wav`), shown as players.
        seed: the seed of the run.
        quick: whether this is the reduced quick mode.
        claim_shown: True / False if the run supports / contradicts the claim, None if it is
            too small to tell (always say why in ``notes``).
        notes: caveats, e.g. that a quick run is too small to show the claim.
        seconds: wall-clock time of the run.
    """

    name: str
    title: str
    paper: str
    claim: str
    summary: str
    metrics: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)
    audio: dict[str, bytes] = field(default_factory=dict)
    seed: int = 0
    quick: bool = True
    claim_shown: bool | None = None
    notes: str = ""
    seconds: float = 0.0


def figure_to_png(figure: Any, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def wave_to_wav(wave: Any, sample_rate: int) -> bytes:
    """A mono wave (``(samples,)`` floats, nominally in [-1, 1]; tensor or array) as the bytes
    of a 16-bit PCM WAV file at ``sample_rate`` Hz. Samples outside [-1, 1] are clipped."""
    import wave as wave_module

    import numpy as np

    if hasattr(wave, "detach"):
        wave = wave.detach().cpu().numpy()
    samples = np.asarray(wave, dtype=np.float64)
    if samples.ndim != 1 or samples.size == 0:
        raise ValueError(f"wave_to_wav: wave must be a non-empty 1-D array, got shape "
                         f"{samples.shape}")
    if not np.isfinite(samples).all():
        raise ValueError("wave_to_wav: wave contains NaN or inf")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise ValueError(f"wave_to_wav: sample_rate must be a positive int, got {sample_rate!r}")
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave_module.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(pcm.tobytes())
    return buffer.getvalue()


def environment() -> dict[str, str]:
    """Versions and machine facts recorded with every report."""
    import numpy
    import torch

    from . import __version__

    info = {
        "lutece": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    for package in ("numba", "scipy", "matplotlib", "torchsort"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def save_result(result: ExperimentResult, directory: Path) -> None:
    """Write one result as ``result.json`` plus its PNG figures and WAV sounds
    (atomically)."""
    from . import __version__

    record = dataclasses.asdict(result)
    record["figures"] = sorted(result.figures)
    record["audio"] = sorted(result.audio)
    record["lutece_version"] = __version__
    for stem, png in result.figures.items():
        _atomic_write(directory / f"{stem}.png", png)
    for stem, wav in result.audio.items():
        _atomic_write(directory / f"{stem}.wav", wav)
    _atomic_write(directory / "result.json", json.dumps(record, indent=2, default=str).encode())


def saved_version(directory: Path) -> str | None:
    """The lutece version that wrote the result in ``directory``, if any."""
    try:
        return json.loads((directory / "result.json").read_text()).get("lutece_version")
    except (OSError, ValueError):
        return None


def load_result(directory: Path) -> ExperimentResult:
    """Inverse of :func:`save_result`."""
    record = json.loads((directory / "result.json").read_text())
    record.pop("lutece_version", None)
    record["tables"] = [Table(**table) for table in record["tables"]]
    record["figures"] = {stem: (directory / f"{stem}.png").read_bytes()
                         for stem in record["figures"]}
    record["audio"] = {stem: (directory / f"{stem}.wav").read_bytes()
                       for stem in record.get("audio", [])}  # results saved before audio existed
    return ExperimentResult(**record)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table_html(title: str, columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_format(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return (f"<h4>{html.escape(title)}</h4><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


_VERDICT = {True: ("shown", "ok"), False: ("not shown", "bad"), None: ("inconclusive", "na")}

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:0}table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
section{border-top:2px solid #ddd;margin-top:2em;padding-top:.5em}
.claim{background:#f6f8fa;border-left:4px solid #888;padding:.4em .8em}
.note{background:#fff8e1;border-left:4px solid #e0a800;padding:.4em .8em}
.badge{font-size:.8em;padding:.1em .5em;border-radius:.6em;color:#fff}
.ok{background:#2e7d32}.bad{background:#c62828}.na{background:#777}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}
"""


def write_report(results: list[ExperimentResult], out_dir: str | Path,
                 title: str = "lutece: reproduced results") -> Path:
    """Write ``metrics.json`` and ``report.html`` into ``out_dir``; returns the HTML path."""
    out_dir = Path(out_dir)
    env = environment()
    metrics = {
        "environment": env,
        "experiments": {
            r.name: {"metrics": r.metrics, "seed": r.seed, "quick": r.quick,
                     "claim_shown": r.claim_shown, "seconds": round(r.seconds, 2)}
            for r in results
        },
    }
    _atomic_write(out_dir / "metrics.json", json.dumps(metrics, indent=2, default=str).encode())

    overview_rows = [[r.name, r.title, "quick" if r.quick else "full", _VERDICT[r.claim_shown][0],
                      f"{r.seconds:.1f}"] for r in results]
    sections = []
    for r in results:
        verdict, css = _VERDICT[r.claim_shown]
        parts = [
            f'<section id="{html.escape(r.name)}"><h2>{html.escape(r.title)} '
            f'<span class="badge {css}">claim {verdict}</span></h2>',
            f"<p><em>{html.escape(r.paper)}</em> &middot; <code>lutece reproduce {r.name}"
            f"{' --quick' if r.quick else ''} --seed {r.seed}</code> &middot; "
            f"{r.seconds:.1f} s</p>",
            f'<p class="claim"><b>Paper\'s claim.</b> {html.escape(r.claim)}</p>',
            f"<p><b>Our result.</b> {html.escape(r.summary)}</p>",
        ]
        if r.notes:
            parts.append(f'<p class="note">{html.escape(r.notes)}</p>')
        for stem, png in r.figures.items():
            encoded = base64.b64encode(png).decode()
            parts.append(f'<img alt="{html.escape(stem)}" src="data:image/png;base64,{encoded}">')
        for stem, wav in r.audio.items():
            encoded = base64.b64encode(wav).decode()
            parts.append(f'<p class="sound">{html.escape(stem)}<br><audio controls '
                         f'preload="none" src="data:audio/wav;base64,{encoded}"></audio></p>')
        for table in r.tables:
            parts.append(_table_html(table.title, table.columns, table.rows))
        parts.append(_table_html("Every number", ["metric", "value"],
                                 [[k, v] for k, v in r.metrics.items()]))
        parts.append("</section>")
        sections.append("\n".join(parts))

    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Generated {html.escape(env['date'])} by lutece {html.escape(env['lutece'])}.
Quick runs use one seed and reduced sizes: where a quick run is too small to show a claim,
its section says so, and the claim is judged on the <code>--full</code> run.</p>
{_table_html("Overview", ["experiment", "title", "mode", "claim", "seconds"], overview_rows)}
{''.join(sections)}
<section><h2>Environment</h2>
{_table_html("Software and machine", ["item", "value"], [[k, v] for k, v in env.items()])}
</section></body></html>
"""
    path = out_dir / "report.html"
    _atomic_write(path, page.encode())
    return path
