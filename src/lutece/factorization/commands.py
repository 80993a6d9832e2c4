"""``lutece factorize``: quantile-normalized low-rank factorization of a CSV matrix.

    lutece factorize DATA.csv --rank R [--normalize both|output|input|none] [--out DIR]
        [--nonnegative] [--loss squared|kl] [--quantiles 16] [--epsilon 0.01]
        [--init data|uniform] [--epochs 300] [--lr 0.01] [--missing] [--seed 0]
        [--no-progress]

DATA.csv has features in rows and individuals in columns, a header row and an index
column (:mod:`.io`). DIR receives, with the input's labels kept:

* ``U.csv`` (features x factors) and ``V.csv`` (factors x individuals);
* ``targets.csv`` (features x quantile levels): the learned target quantiles, those of
  the output normalization for "output" and "both", of the input one for "input"; and
  ``input_targets.csv`` as well for "both";
* ``reconstruction.csv``: the fitted matrix in the data's units (missing cells filled);
* ``targets.png``: each feature's learned targets against the quantile level.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "factorize", help="low-rank factorization with learned quantile normalization",
        description="Fit X ~ U V to a CSV matrix (features in rows, individuals in "
                    "columns, header and index) through learned row-wise quantile "
                    "normalizations (Cuturi et al., ICML 2020), and write U, V, the "
                    "learned target quantiles and their plot.")
    parser.add_argument("data", type=Path, metavar="DATA.csv")
    parser.add_argument("--rank", type=int, required=True, help="r, at most min(d, n)")
    parser.add_argument("--normalize", default="both",
                        choices=["both", "output", "input", "none"],
                        help="where the learned normalization sits (default both)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: DATA_factorized next to DATA)")
    parser.add_argument("--nonnegative", action="store_true",
                        help="nonnegative factors (exp-parameterized; NMF inside)")
    parser.add_argument("--loss", default="squared", choices=["squared", "kl"])
    parser.add_argument("--quantiles", type=int, default=16,
                        help="target quantiles per feature (default 16)")
    parser.add_argument("--epsilon", type=float, default=1e-2,
                        help="entropic regularization of the soft operators (default 0.01)")
    parser.add_argument("--init", default="data", choices=["data", "uniform"])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--missing", action="store_true",
                        help="treat empty/NA/NaN cells as missing (they are errors "
                             "otherwise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import torch

    from .io import read_matrix_csv, write_matrix_csv
    from .models import QuantileNormalizedFactorization

    try:
        matrix = read_matrix_csv(args.data, missing=args.missing)
        d, n = matrix.values.shape
        if args.rank > min(d, n):
            raise ValueError(f"--rank must be <= min(d, n) = {min(d, n)} for a {d} x {n} "
                             f"matrix, got {args.rank}")
        mask = ~torch.isnan(matrix.values)
        model = QuantileNormalizedFactorization(
            args.rank, normalize=args.normalize, nonnegative=args.nonnegative,
            loss=args.loss, num_quantiles=args.quantiles, epsilon=args.epsilon,
            init=args.init, seed=args.seed)
        model.fit(matrix.values, None if bool(mask.all()) else mask, epochs=args.epochs,
                  lr=args.lr, progress=not args.no_progress)
    except (ValueError, TypeError) as error:
        print(f"lutece factorize: {error}", file=sys.stderr)
        return 2
    out = args.out or args.data.with_name(f"{args.data.stem}_factorized")
    factors = [f"factor_{k + 1}" for k in range(args.rank)]
    corner = matrix.corner
    write_matrix_csv(out / "U.csv", model.U_, matrix.rows, factors, corner)
    write_matrix_csv(out / "V.csv", model.V_, factors, matrix.columns, "factor")
    write_matrix_csv(out / "reconstruction.csv", model.reconstruct(), matrix.rows,
                     matrix.columns, corner)
    written = ["U.csv", "V.csv", "reconstruction.csv"]
    if model.targets_ is not None:
        levels = _levels(args.quantiles)
        write_matrix_csv(out / "targets.csv", model.targets_, matrix.rows, levels, corner)
        written.append("targets.csv")
        panels = {"targets": model.targets_}
        if model.normalize == "both":
            write_matrix_csv(out / "input_targets.csv", model.input_targets_, matrix.rows,
                             levels, corner)
            written.append("input_targets.csv")
            panels = {"output targets (data units)": model.output_targets_,
                      "input targets (normalized space)": model.input_targets_}
        _plot_targets(out / "targets.png", panels, matrix.rows)
        written.append("targets.png")
    else:
        print("lutece factorize: --normalize none learns no targets; none written",
              file=sys.stderr)
    print(f"fitted rank {args.rank} ({args.normalize}) to {d} x {n}, final loss "
          f"{model.loss_history_[-1]:.4g}; written to {out}: {', '.join(written)}")
    return 0


def _levels(m: int) -> list[str]:
    """The bin centres (j + 1/2) / m of the m targets, as column labels."""
    return [f"{(j + 0.5) / m:.6g}" for j in range(m)]


def _plot_targets(path: Path, panels: dict, labels: list[str]) -> None:
    """One panel per set of targets: each feature's targets, standardized per feature
    (features have their own units), against the quantile level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ..report import figure_to_png
    from .io import write_bytes_atomic

    m = next(iter(panels.values())).shape[1]
    levels = [(j + 0.5) / m for j in range(m)]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, targets) in zip(axes[0], panels.items()):
        values = targets.detach().to("cpu", dtype=torch.float64)
        spread = values.std(-1, keepdim=True)
        spread = spread.where(spread > 0, spread.new_ones(()))
        standardized = (values - values.mean(-1, keepdim=True)) / spread
        for label, row in zip(labels, standardized.tolist()):
            ax.plot(levels, row, marker=".", linewidth=1,
                    label=label if len(labels) <= 12 else None)
        ax.set_xlabel("quantile level")
        ax.set_ylabel("target (standardized per feature)")
        ax.set_title(title)
        if len(labels) <= 12:
            ax.legend(fontsize=7)
    fig.tight_layout()
    write_bytes_atomic(path, figure_to_png(fig))        # figure_to_png closes the figure
