"""``lutece reproduce quantile-factorization``: Cuturi, Teboul, Niles-Weed & Vert,
"Supervised Quantile Normalization for Low-rank Matrix Factorization" (ICML 2020).

Held-out reconstruction error of a rank-r factorization with learned row-wise quantile
normalizations (:class:`~lutece.factorization.QuantileNormalizedFactorization`) against
the same factorization after a fixed normalization (none, log1p, z-score, hard quantile
normalization by scikit-learn's ``QuantileTransformer``, tf-idf; each inverted so that
every prediction is scored in the data's own units), across ranks:

1. synthetic: low-rank matrices (U ~ Poisson(2), V ~ Dirichlet(0.5)) distorted row by row
   by random monotone maps (convex, concave or S-shaped, with random bumps) plus 3%
   heavy-tailed outliers (3 std x |Student-t(3)|); 20% of the entries held out and scored
   against the outlier-free distorted values;
2. (full run) the paper's own generator: rows hard quantile-normalized onto
   cumsum(exp(2 N(0, 1))), no outliers;
3. real: the Wisconsin breast cancer table bundled with scikit-learn
   (``load_breast_cancer``, offline): 30 features (radius, texture, area, concavity, ...)
   x 569 tumours, columns subsampled. Chosen because it ships with a core dependency (no
   download) and its features have the heterogeneous units (1e-3 to 1e3) and skewed
   marginals that make the choice of a per-feature normalization matter; all values are
   >= 0, so log1p and tf-idf apply. 20% of the entries held out.

The score is the mean squared error on held-out entries in units of each row's standard
deviation (:func:`~lutece.factorization.heldout_error`; 1.0 is about the error of
predicting row means). The synthetic runs also measure how well the learned
normalization recovers the inverse distortion: R^2 of ``normalized(X)`` against the clean
low-rank matrix after an affine fit per row (values, not ranks). Every fit runs
single-threaded: the matrices are tiny and one thread is faster than two fighting for a
busy machine.
"""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from ..factorization import (  # noqa: E402
    BASELINES,
    QuantileNormalizedFactorization,
    distorted_low_rank,
    fit_baseline,
    heldout_error,
)
from ..report import ExperimentResult, Table, figure_to_png  # noqa: E402
from . import register  # noqa: E402

PAPER = ("Cuturi, Teboul, Niles-Weed & Vert, Supervised Quantile Normalization for "
         "Low-rank Matrix Factorization, ICML 2020")
CLAIM = ("Learning row-wise quantile normalization operators jointly with a low-rank "
         "factorization reconstructs held-out entries better than fixing a normalization "
         "(none, log, z-score, quantile normalization, tf-idf) beforehand.")
LEARNED_LABELS = {"both": "learned QMFQ (both)", "input": "learned (input)",
                  "output": "learned QMF (output)"}
HELDOUT_FRACTION = 0.2
#: the model every verdict is taken on, fixed in advance (the CLI's default)
JUDGED = "both"


def _config(quick: bool) -> dict:
    if quick:
        return {"d": 30, "n": 100, "ranks": (2, 5), "seeds": 1, "learned": ("both",),
                "paper_ranks": (), "paper_seeds": 1, "paper_learned": (),
                "real_n": 150, "real_ranks": (3,), "real_learned": ("both",),
                "epochs": 300, "baseline_epochs": 50}
    return {"d": 30, "n": 100, "ranks": (2, 4, 6, 8), "seeds": 2,
            "learned": ("both", "input", "output"),
            "paper_ranks": (2, 4, 6, 8), "paper_seeds": 1, "paper_learned": ("both", "output"),
            "real_n": 300, "real_ranks": (2, 5), "real_learned": ("both", "input"),
            "epochs": 300, "baseline_epochs": 50}


def _heldout_mask(shape: tuple[int, int], seed: int) -> torch.Tensor:
    """True = observed; each entry held out with probability HELDOUT_FRACTION, and every
    row and column keeps at least two observed entries."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        mask = torch.rand(shape, generator=generator) >= HELDOUT_FRACTION
        if bool((mask.sum(1) >= 2).all()) and bool((mask.sum(0) >= 2).all()):
            return mask


def _row_r2(estimate: np.ndarray, truth: np.ndarray, keep: np.ndarray | None = None
            ) -> np.ndarray:
    """Per row, R^2 of estimate against the best affine function of truth, over the
    entries where ``keep`` is True (default all)."""
    scores = []
    keep = np.ones(truth.shape, dtype=bool) if keep is None else keep
    for row_estimate, row_truth, row_keep in zip(estimate, truth, keep):
        row_estimate, row_truth = row_estimate[row_keep], row_truth[row_keep]
        design = np.stack([row_truth, np.ones_like(row_truth)], axis=1)
        coefficients, *_ = np.linalg.lstsq(design, row_estimate, rcond=None)
        residual = row_estimate - design @ coefficients
        total = ((row_estimate - row_estimate.mean()) ** 2).sum()
        scores.append(1 - (residual ** 2).sum() / total if total > 0 else 1.0)
    return np.asarray(scores)


def _evaluate(x: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor, rank: int,
              learned: tuple[str, ...], config: dict, seed: int, clean: torch.Tensor | None,
              keep: torch.Tensor | None, bar: tqdm
              ) -> tuple[dict[str, dict[str, float]], dict[str, float], dict]:
    """Held-out errors {metric: {method: value}} of every method on one matrix; R^2 of
    the recovered inverse distortion of the learned models when ``clean`` is known
    (over the entries ``keep``, i.e. not outliers); the learned models."""
    errors: dict[str, dict[str, float]] = {"mse": {}, "mae": {}}
    recovery: dict[str, float] = {}
    models = {}
    heldout = ~mask

    def score(method: str, prediction: torch.Tensor) -> None:
        for metric in errors:
            errors[metric][method] = heldout_error(prediction, truth, heldout, metric=metric)

    for mode in learned:
        model = QuantileNormalizedFactorization(rank, normalize=mode, seed=seed)
        model.fit(x, mask, epochs=config["epochs"], progress=False)
        score(LEARNED_LABELS[mode], model.reconstruct())
        if clean is not None:
            recovery[mode] = float(_row_r2(model.normalized(x).numpy(), clean.numpy(),
                                           None if keep is None else keep.numpy()).mean())
        models[mode] = model
        bar.update()
    for name in BASELINES:
        score(name, fit_baseline(name, x, mask, rank, epochs=config["baseline_epochs"],
                                 seed=seed))
        bar.update()
    return errors, recovery, models


def _synthetic_study(config: dict, seed: int, distortion: str, ranks: tuple[int, ...],
                     seeds: int, learned: tuple[str, ...], outliers: float, bar: tqdm
                     ) -> dict:
    errors: dict[str, dict[str, dict[int, list[float]]]] = {"mse": {}, "mae": {}}
    recovery: dict[str, list[float]] = {}
    example = None
    for rank in ranks:
        for repeat in range(seeds):
            data_seed = 1000 * seed + 100 * repeat + rank
            data = distorted_low_rank(config["d"], config["n"], rank, distortion=distortion,
                                      outlier_fraction=outliers, outlier_scale=3.0,
                                      seed=data_seed)
            mask = _heldout_mask(data.X.shape, data_seed + 1)
            scores, r2, models = _evaluate(data.X, data.distorted, mask, rank, learned,
                                           config, data_seed, data.clean, ~data.outliers,
                                           bar)
            _collect(errors, scores, rank)
            for mode, value in r2.items():
                recovery.setdefault(mode, []).append(value)
            if example is None and JUDGED in models:
                example = {"data": data, "model": models[JUDGED], "rank": rank}
    return {"errors": errors["mse"], "mae": errors["mae"], "recovery": recovery,
            "example": example, "ranks": ranks}


def _collect(errors: dict, scores: dict, rank: int) -> None:
    for metric, per_method in scores.items():
        for method, value in per_method.items():
            errors[metric].setdefault(method, {}).setdefault(rank, []).append(value)


def _real_study(config: dict, seed: int, bar: tqdm) -> dict:
    from sklearn.datasets import load_breast_cancer

    dataset = load_breast_cancer()
    full = torch.from_numpy(np.ascontiguousarray(dataset.data.T, dtype=np.float64))
    rng = np.random.default_rng(seed)
    columns = np.sort(rng.choice(full.shape[1], min(config["real_n"], full.shape[1]),
                                 replace=False))
    x = full[:, torch.from_numpy(columns)]
    mask = _heldout_mask(tuple(x.shape), seed + 7)
    errors: dict[str, dict[str, dict[int, list[float]]]] = {"mse": {}, "mae": {}}
    for rank in config["real_ranks"]:
        scores, _, _ = _evaluate(x, x, mask, rank, config["real_learned"], config, seed,
                                 None, None, bar)
        _collect(errors, scores, rank)
    return {"errors": errors["mse"], "mae": errors["mae"], "ranks": config["real_ranks"],
            "shape": tuple(x.shape), "features": list(dataset.feature_names)}


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def _table(title: str, study: dict) -> Table:
    """Cells: mean held-out MSE (± std over seeds) and, in brackets, the mean MAE."""
    ranks = study["ranks"]
    rows = []
    for method, per_rank in study["errors"].items():
        absolute = study["mae"][method]
        cells = []
        for rank in ranks:
            values = per_rank[rank]
            cell = f"{_mean(values):.4f}"
            if len(values) > 1:
                cell += f" ± {float(np.std(values)):.4f}"
            cells.append(f"{cell} ({_mean(absolute[rank]):.3f})")
        everything = [v for r in ranks for v in per_rank[r]]
        everything_mae = [v for r in ranks for v in absolute[r]]
        rows.append([method, *cells, f"{_mean(everything):.4f} ({_mean(everything_mae):.3f})"])
    return Table(title, ["method", *[f"r = {rank}" for rank in ranks], "mean"], rows)


def _key(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def _error_figure(studies: dict[str, dict]) -> bytes:
    fig, axes = plt.subplots(1, len(studies), figsize=(5.2 * len(studies), 4), squeeze=False)
    for ax, (title, study) in zip(axes[0], studies.items()):
        ranks = study["ranks"]
        for method, per_rank in study["errors"].items():
            learned = method.startswith("learned")
            ax.plot(ranks, [_mean(per_rank[r]) for r in ranks], "o-" if learned else "s--",
                    linewidth=2 if learned else 1, label=method)
        ax.set_yscale("log")
        ax.set_xlabel("rank r")
        ax.set_ylabel("held-out MSE / row variance")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(list(ranks))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return figure_to_png(fig)


def _recovery_figure(example: dict) -> bytes:
    """For three rows: the learned normalization of X against the clean low-rank values
    (a straight line = the inverse distortion recovered), and X against them."""
    data, model = example["data"], example["model"]
    normalized = model.normalized(data.X).numpy()
    clean, observed = data.clean.numpy(), data.X.numpy()
    keep = ~data.outliers.numpy()
    colors = np.where(keep, "tab:blue", "tab:red")
    rows = [0, 1, 2]
    fig, axes = plt.subplots(2, len(rows), figsize=(3.4 * len(rows), 6))
    for column, row in enumerate(rows):
        r2 = _row_r2(normalized[row:row + 1], clean[row:row + 1], keep[row:row + 1])[0]
        axes[0][column].scatter(clean[row], observed[row], s=6, c=colors[row])
        axes[0][column].set_title(f"row {row}: data X (red: outliers)", fontsize=9)
        axes[1][column].scatter(clean[row], normalized[row], s=6, c=colors[row])
        axes[1][column].set_title(f"row {row}: learned QN_in(X), R² = {r2:.3f}", fontsize=9)
        axes[1][column].set_xlabel("clean low-rank value (U V)")
    axes[0][0].set_ylabel("observed value")
    axes[1][0].set_ylabel("normalized value")
    fig.suptitle(f"Data and learned input normalization against the clean low-rank values "
                 f"(QMFQ, rank {example['rank']}; a straight line = distortion undone)",
                 fontsize=10)
    fig.tight_layout()
    return figure_to_png(fig)


@register("quantile-factorization", "Supervised quantile normalization for low-rank "
                                    "factorization", quick_budget_seconds=90)
def run(quick: bool, seed: int) -> ExperimentResult:
    return run_with(_config(quick), quick, seed)


def run_with(config: dict, quick: bool, seed: int) -> ExperimentResult:
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        total = (len(config["ranks"]) * config["seeds"] * (len(config["learned"])
                                                             + len(BASELINES))
                 + len(config["paper_ranks"]) * config["paper_seeds"] * (
                     len(config["paper_learned"]) + len(BASELINES))
                 + len(config["real_ranks"]) * (len(config["real_learned"]) + len(BASELINES)))
        bar = tqdm(total=total, desc="quantile-factorization: fits", leave=False)
        random_maps = _synthetic_study(config, seed, "random", config["ranks"],
                                       config["seeds"], config["learned"], 0.03, bar)
        paper = _synthetic_study(config, seed + 500, "quantile", config["paper_ranks"],
                                 config["paper_seeds"], config["paper_learned"], 0.0, bar) \
            if config["paper_ranks"] else None
        real = _real_study(config, seed, bar)
        bar.close()
    finally:
        torch.set_num_threads(threads)
    return _result(config, quick, seed, random_maps, paper, real,
                   time.perf_counter() - started)


def _result(config: dict, quick: bool, seed: int, random_maps: dict, paper: dict | None,
            real: dict, seconds: float) -> ExperimentResult:
    d, n = config["d"], config["n"]
    judged = LEARNED_LABELS[JUDGED]
    metrics: dict[str, object] = {}
    studies = {"random": random_maps, "real": real}
    if paper is not None:
        studies["paper"] = paper
    for prefix, study in studies.items():
        for metric, key in (("errors", "mse"), ("mae", "mae")):
            for method, per_rank in study[metric].items():
                for rank, values in per_rank.items():
                    metrics[f"heldout_{key}_{prefix}_{_key(method)}_r{rank}"] = round(
                        _mean(values), 5)
                metrics[f"heldout_{key}_{prefix}_{_key(method)}_mean"] = round(
                    _mean([v for values in per_rank.values() for v in values]), 5)
    for prefix, study in (("random", random_maps), ("paper", paper)):
        if study is None:
            continue
        for mode, values in study["recovery"].items():
            metrics[f"recovery_r2_{prefix}_{mode}"] = round(_mean(values), 4)

    def verdict(study: dict, key: str = "errors") -> tuple[bool, str, float, float, int]:
        """Whether the judged model beats every baseline on average over ranks (and
        seeds), the best baseline, both means, and at how many ranks it wins; on the MSE
        (key "errors") or the MAE (key "mae")."""
        table = study[key]
        mean = {m: _mean([v for values in per.values() for v in values])
                for m, per in table.items()}
        baselines = {m: mean[m] for m in BASELINES}
        best = min(baselines, key=baselines.get)
        wins = sum(_mean(table[judged][r]) < min(_mean(table[m][r]) for m in BASELINES)
                   for r in study["ranks"])
        return mean[judged] < baselines[best], best, mean[judged], baselines[best], wins

    synthetic_mse_win, best, ours, theirs, wins = verdict(random_maps)
    synthetic_mae_win, best_mae, ours_mae, theirs_mae, wins_mae = verdict(random_maps, "mae")
    num_ranks = len(random_maps["ranks"])
    # the claim needs both scores on average and the robust one (MAE) at half the ranks
    synthetic_win = synthetic_mse_win and synthetic_mae_win and 2 * wins_mae >= num_ranks
    real_win, real_best, real_ours, real_theirs, _ = verdict(real)
    real_mae_win, real_best_mae, real_ours_mae, real_theirs_mae, _ = verdict(real, "mae")
    metrics.update({"synthetic_learned_beats_all_baselines": synthetic_win,
                    "synthetic_best_baseline_mse": best, "synthetic_best_baseline_mae":
                    best_mae, "synthetic_ranks_won_mse": wins, "synthetic_ranks_won_mae":
                    wins_mae, "real_learned_beats_all_baselines": real_win and real_mae_win,
                    "real_best_baseline_mse": real_best})
    recovery = random_maps["recovery"].get(JUDGED)
    paper_text = ""
    if paper is not None:
        _, paper_best, paper_ours, paper_theirs, paper_wins = verdict(paper)
        paper_text = (f"On the paper's own generator (hard quantile distortion, no outliers; "
                      f"{config['paper_seeds']} seed(s) per rank) it scores {paper_ours:.4f} "
                      f"against {paper_theirs:.4f} ({paper_best}), best at {paper_wins} of "
                      f"{len(paper['ranks'])} ranks. ")
    summary = (
        f"On {d} x {n} matrices of rank r in {list(random_maps['ranks'])} distorted row-wise "
        f"by random monotone maps with 3% heavy-tailed outliers ({config['seeds']} seed(s) "
        f"per rank, 20% of entries held out, scored against the outlier-free values), the "
        f"learned-quantile factorization ({judged}) has a mean held-out MSE / row variance "
        f"of {ours:.4f} against {theirs:.4f} for the best fixed normalization ({best}), "
        f"and a mean absolute error / row std of {ours_mae:.3f} against {theirs_mae:.3f} "
        f"({best_mae}); it has the lowest error at {wins} of {num_ranks} ranks by MSE and "
        f"{wins_mae} of {num_ranks} by MAE. "
        + (f"Its learned input normalization recovers the inverse distortion's values with "
           f"a mean per-row R² of {_mean(recovery):.3f} (affine fit against the clean "
           f"low-rank matrix, outlier entries left out). " if recovery else "")
        + paper_text
        + f"On scikit-learn's breast cancer table ({real['shape'][0]} features x "
          f"{real['shape'][1]} tumours, r in {list(real['ranks'])}) it scores "
          f"{real_ours:.4f} (MAE {real_ours_mae:.3f}) against {real_theirs:.4f} for the "
          f"best fixed normalization ({real_best}; best MAE {real_theirs_mae:.3f}, "
          f"{real_best_mae}): "
        + ("the learned normalization is better there too." if real_win and real_mae_win
           else "a fixed normalization does at least as well there (the verdict is taken "
                "on the synthetic study)."))
    notes = []
    if quick:
        notes.append(f"Quick run: one seed, ranks {list(config['ranks'])} on {d} x {n} "
                     f"synthetic matrices, only the {judged} model, no paper-generator "
                     f"study, {real['shape'][1]} breast-cancer columns at rank "
                     f"{list(config['real_ranks'])}. That is too small to show the claim "
                     "(no spread over seeds, two ranks): the verdict is left open; run "
                     "--full (several seeds, four ranks, three learned models, the "
                     "paper's generator).")
    notes.append("Real data: sklearn.datasets.load_breast_cancer, bundled with "
                 "scikit-learn (a core dependency), so nothing is downloaded; chosen for "
                 "its 30 features of heterogeneous units (1e-3 to 1e3) and skewed "
                 "marginals, the situation where the per-feature normalization matters, "
                 "and its nonnegative values (log1p and tf-idf apply). The paper used "
                 "genomics data we do not ship.")
    notes.append(f"Every model is fitted by full-batch Adam ({config['epochs']} steps, lr "
                 "1e-2, 16 targets per row, epsilon 1e-2); baselines by ALS then "
                 f"{config['baseline_epochs']} Adam steps of the same squared loss "
                 "(each row weighted by 1 / its variance), in the normalized space, their "
                 "predictions mapped back by each normalization's inverse. The verdict is "
                 f"taken on the {judged} model, fixed in advance, in the random-maps study: "
                 "it must beat every baseline in mean MSE and in mean MAE over ranks and "
                 "seeds, and in MAE at half the ranks or more (the MSE of every method is "
                 "dominated by a few wild held-out predictions near outliers).")
    tables = [_table(f"Synthetic: random monotone maps + 3% outliers, {d} x {n}, held-out "
                     "MSE / row variance (mean over seeds ± std) and, in brackets, MAE / row std",
                     random_maps)]
    if paper is not None:
        tables.append(_table(f"Synthetic: the paper's generator (hard quantile distortion), "
                             f"{d} x {n}, held-out MSE / row variance (MAE / row std)", paper))
    tables.append(_table(f"Breast cancer (scikit-learn), {real['shape'][0]} x "
                         f"{real['shape'][1]}, held-out MSE / row variance (MAE / row std)", real))
    titles = {"synthetic: random maps + outliers": random_maps}
    if paper is not None:
        titles["synthetic: paper's generator"] = paper
    titles["breast cancer (scikit-learn)"] = real
    figures = {"quantile_factorization_heldout": _error_figure(titles)}
    if random_maps["example"] is not None:
        figures["quantile_factorization_recovery"] = _recovery_figure(random_maps["example"])
    return ExperimentResult(
        name="quantile-factorization",
        title="Supervised quantile normalization for low-rank factorization",
        paper=PAPER, claim=CLAIM, summary=summary, metrics=metrics, tables=tables,
        figures=figures, seed=seed, quick=quick,
        claim_shown=None if quick else synthetic_win, notes=" ".join(notes),
        seconds=seconds)
