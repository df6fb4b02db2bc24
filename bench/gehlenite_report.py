"""The report of the gehlenite EFG benchmark (``accuracy_gehlenite_efg.py``): statistics
over the outer folds, the Markdown tables of ``docs/accuracy_gehlenite.md`` (component MAE
in 10⁻³ a.u. and % of span, CQ (MHz) and η MAE, Harper C̃Q / η̃ MAE and mean q̃, mean ± std
over the folds) and the learning-curve figure."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from ase_mlnmr.training.model_selection import fold_statistics

#: The two methods compared, in report order.
METHOD_LABELS = {"ours": "ase_mlnmr NMRModel", "baseline": "featomic λ-SOAP + ridge"}
SHORT_LABELS = {"ours": "ours", "baseline": "featomic"}


def aggregate(final: dict) -> dict:
    """{method: {species: {metric: {"mean", "std", "n_folds", "values"}}}} over the outer folds."""
    return {method: fold_statistics([per_fold[k]["metrics"] for k in sorted(per_fold)])
            for method, per_fold in final.items()}


def fmt(entry: dict | None, digits: int = 3, scale: float = 1.0, fixed: int | None = None) -> str:
    """"mean ± std" of a :func:`fold_statistics` entry ("—" when absent)."""
    if entry is None:
        return "—"
    if fixed is not None:
        return f"{entry['mean'] * scale:.{fixed}f} ± {entry['std'] * scale:.{fixed}f}"
    return f"{entry['mean'] * scale:.{digits}g} ± {entry['std'] * scale:.2g}"


def verdict(summary: dict, sp: str) -> str:
    """Whether ours' mean component MAE is at most the baseline's, and in how many folds."""
    o, b = summary["ours"][sp]["efg_mae_au"], summary["baseline"][sp]["efg_mae_au"]
    wins = sum(x <= y for x, y in zip(o["values"], b["values"]))
    word = "yes" if o["mean"] <= b["mean"] else "**no**"
    return f"{word} ({wins}/{len(o['values'])})"


def markdown_tables(summary: dict, species: Sequence[str]) -> str:
    """The three result tables (component MAE, CQ/η, Harper metrics) of both methods."""
    methods = [m for m in METHOD_LABELS if m in summary]
    short = SHORT_LABELS
    header = " | ".join
    lines = [
        "| species | n test atoms / fold | " + header(f"MAE {short[m]} (10⁻³ a.u.)" for m in methods) + " | "
        + header(f"% span {short[m]}" for m in methods) + " | ours ≤ featomic (folds) |",
        "|---" * (2 + 2 * len(methods) + 1) + "|",
    ]
    for sp in species:
        row = [sp, f"{summary['ours'][sp]['n']['mean']:.0f}"]
        row += [fmt(summary[m][sp]["efg_mae_au"], scale=1e3) for m in methods]
        row += [fmt(summary[m][sp]["efg_mae_pct_span"]) for m in methods]
        row += [verdict(summary, sp)]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| species | " + header(f"CQ MAE {short[m]} (MHz)" for m in methods) + " | "
              + header(f"η MAE {short[m]}" for m in methods) + " |", "|---" * (1 + 2 * len(methods)) + "|"]
    for sp in species:
        row = [sp] + [fmt(summary[m][sp].get("cq_mae_MHz")) for m in methods]
        row += [fmt(summary[m][sp].get("eta_mae")) for m in methods]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| species | " + header(f"C̃Q MAE {short[m]}" for m in methods) + " | "
              + header(f"η̃ MAE {short[m]}" for m in methods) + " | " + header(f"mean q̃ {short[m]}" for m in methods)
              + " |", "|---" * (1 + 3 * len(methods)) + "|"]
    for sp in species:
        row = [sp] + [fmt(summary[m][sp]["cq_tilde_mae"]) for m in methods]
        row += [fmt(summary[m][sp]["eta_tilde_mae"]) for m in methods]
        row += [fmt(summary[m][sp]["q_tilde_mean"], fixed=5) for m in methods]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def learning_curve_figure(curve: dict, species: Sequence[str], path: Path, title: str) -> None:
    """Component MAE (10⁻³ a.u.) against training cells, one panel per species, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    styles = {"ours": "o-", "baseline": "s--"}
    fig, axes = plt.subplots(1, len(species), figsize=(13, 3.6), dpi=120)
    for ax, sp in zip(axes, species):
        for method in METHOD_LABELS:
            if not curve.get(method):
                continue
            sizes = sorted(int(n) for n in curve[method])
            values = [1e3 * curve[method][str(n)]["metrics"][sp]["efg_mae_au"] for n in sizes]
            ax.plot(sizes, values, styles[method], label=METHOD_LABELS[method])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(n) for n in sizes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.2g"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.2g"))
        ax.set_xlabel("training cells (288 atoms each)")
        ax.set_title(sp)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("EFG component MAE (10⁻³ a.u.)")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_results(final: dict, species: Sequence[str], record: dict, path: Path) -> Path:
    """Print the tables and whether ours matches or beats the baseline on the mean component
    MAE of every species; write ``record`` with the final fits, their statistics and the
    tables as JSON to ``path``."""
    summary = aggregate(final)
    table = markdown_tables(summary, species)
    print()
    print(table)
    wins = {sp: summary["ours"][sp]["efg_mae_au"]["mean"] <= summary["baseline"][sp]["efg_mae_au"]["mean"]
            for sp in species}
    print(f"{METHOD_LABELS['ours']} matches or beats featomic on the component MAE for every species: "
          f"{all(wins.values())} {wins}")
    output = {**record, "final": {m: {str(k): v for k, v in per.items()} for m, per in final.items()},
              "summary": summary, "wins": {"ours": wins}, "ours_wins_every_species": all(wins.values()),
              "markdown": table}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(output, indent=1, default=float))
    return path
