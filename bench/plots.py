"""A suite's plots, drawn so that "which method wins at this size?" reads at a glance.

- frontier.png: accuracy (its change against `dense`) against the deployable size in bytes (log
  scale), every method on one y axis, the Pareto frontier drawn and its rows labelled, error bars
  over the seeds; below it, on the same x, the measured speedup in the suite's best runtime at
  batch 1 and at its largest batch.
- pareto.png: a detail panel per method family, on the same x, with a line per method and per
  non-default setting other than the swept one.
- speedup.png: measured against theoretical speedup, a panel per runtime, coloured by method.

Each method keeps one colour and marker in every plot of every suite (`styles`), so that a reader
learns them once; a point outside the y range is drawn hollow in a shaded band at the edge, and
no line is drawn to it, so that no segment runs along an axis.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench import files
from bench.board import as_shown, at_decimals, best_speedups, measured_columns
from bench.errors import printable
from bench.metrics import Column

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf")  # matplotlib's tab10
MARKERS = ("o", "s", "D", "^", "v", "<", ">", "P", "h", "X", "p")
# 10 colours and 11 markers, stepped together, give 110 distinct pairs before one repeats.
PAIRS = len(COLORS) * len(MARKERS)
REFERENCE_STYLES = {"dense": ("#000000", "*"), "dense-ft": ("#000000", "d")}


# The methods in the order they take the (colour, marker) pairs: the built-in methods when this
# list was made, sorted. Append a new method at the end, never reorder: a method's look then never
# changes, whichever plugins are installed and whichever methods another suite's records hold (the
# plots are a function of their own records). A method not listed (a chain, a user's plugin) takes
# a place after these fixed by its name's checksum.
STYLE_ORDER = ("deep-compression", "dynamic-int8", "filter-l1", "gating", "gmp", "gptq", "imp", "kd", "l1",
               "lottery", "magnitude", "magnitude-oneshot", "nm", "ptq-int8", "qat", "random", "rigl", "rtn",
               "set", "sft", "slimming", "snip", "sparse-coding", "sparsegpt", "static", "student", "uniform",
               "wanda")


def _slot(method: str) -> int:
    """A method's place among the pairs: its place in STYLE_ORDER, or one after those fixed by
    its name's checksum."""
    if method in STYLE_ORDER:
        return STYLE_ORDER.index(method)
    return len(STYLE_ORDER) + zlib.crc32(method.encode()) % (PAIRS - len(STYLE_ORDER))


def styles(methods: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(colour, marker) per method, the same in every plot (`_slot`); the rare method whose
    checksum lands on a pair already taken in this plot takes the next free one, so that no two
    methods of one plot look alike."""
    out: dict[str, tuple[str, str]] = {}
    taken: set[int] = set()
    for method in sorted(set(methods), key=lambda m: (m not in STYLE_ORDER, m)):
        if method in REFERENCE_STYLES:
            out[method] = REFERENCE_STYLES[method]
            continue
        slot = _slot(method)
        while slot in taken:
            slot = (slot + 1) % PAIRS
        taken.add(slot)
        out[method] = COLORS[slot % len(COLORS)], MARKERS[slot % len(MARKERS)]
    return out


def variant_styles(series: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """(colour, marker) per series of a figure (columns `series`, `method`): a method's first
    series keeps the method's pair; its other settings keep its colour with the next markers that
    no method and no other series has, so that every series of the figure looks unlike the others."""
    base = styles(series.method)
    used = set(base.values()) | set(styles(STYLE_ORDER).values())
    out: dict[str, tuple[str, str]] = {}
    for method, m in series.drop_duplicates("series").groupby("method", sort=True):
        color, marker = base[method]
        for i, label in enumerate(sorted(m.series, key=lambda s: (s != method, s))):
            if i:
                marker = next((k for k in MARKERS if (color, k) not in used), marker)
                used.add((color, marker))
            out[label] = color, marker
    return out


def frontier(t: pd.DataFrame, x: str = "size_KiB", y: str = "accuracy_mean_%") -> list[Any]:
    """The index of the rows no other row dominates: none is at most as large and at least as
    accurate, and strictly better in one of the two. Rows without a size take no part. Accuracy
    is compared at the 2 decimals the figure's key and the tables show it, the tie rule of the
    site's best at each size: a row a hair more accurate than a smaller one, both reading -0.26,
    is no step of the frontier."""
    t = t[t[x].notna() & t[y].notna()]
    xs, ys = t[x].astype(float).to_numpy(), as_shown(t[y], "accuracy").to_numpy()
    return [i for i, xi, yi in zip(t.index, xs, ys)
            if not ((xs <= xi) & (ys >= yi) & ((xs < xi) | (ys > yi))).any()]


def _y_range(values: pd.Series, refs: list[float]) -> tuple[float, float]:
    """A y range from the informative rows: their middle 80% widened by half its span (by at
    least 0.5 pts), cut to the rows' extremes, then stretched to show the references; so that one
    collapsed method (random at 98%) does not squash the others into a band a point wide. A
    margin of 5% of the range (at least 0.1 pts) keeps the outermost points off the axes."""
    q_low, q_high = values.quantile(0.1), values.quantile(0.9)
    pad = max(0.5 * (q_high - q_low), 0.5)
    low = min([max(values.min(), q_low - pad), *refs])
    high = max([min(values.max(), q_high + pad), *refs])
    margin = max(0.05 * (high - low), 0.1)
    return low - margin, high + margin


def _clip_bands(ax: Any, values: pd.Series, low: float, high: float) -> tuple[float, float]:
    """Shade a band below `low` (and above `high`) where the points beyond the range are drawn,
    labelled as off the scale; returns the y at which they are drawn."""
    band = 0.07 * (high - low)
    below, above = low - band / 2, high + band / 2
    bottom = low - band if (values < low).any() else low
    top = high + band if (values > high).any() else high
    for edge, start, end, text in ((bottom < low, bottom, low, f"below {low:.1f}: off the scale"),
                                   (top > high, high, top, f"above {high:.1f}: off the scale")):
        if edge:
            ax.axhspan(start, end, color="#eeeeee", zorder=0)
            ax.text(0.005, (start + end) / 2, text, transform=ax.get_yaxis_transform(), fontsize=6,
                    va="center", color="#555555")
    ax.set_ylim(bottom, top)
    return below, above


def _points(ax: Any, x: pd.Series, y: pd.Series, err: pd.Series, low: float, high: float,
            below: float, above: float, color: str, marker: str, label: str, line: bool) -> None:
    """A series: points inside the range with their error bars (joined by a line when `line`, but
    never to a point outside), and those outside hollow in the band."""
    inside = (y >= low) & (y <= high)
    shown = y.where(inside)  # a gap in the line at each point off the scale
    ax.errorbar(x, shown, yerr=err.where(inside), color=color, marker=marker,
                markersize=5, capsize=2, linewidth=1 if line else 0, elinewidth=0.8, label=_cut(label))
    off = ~inside & y.notna()
    if off.any():
        ax.scatter(x[off], y[off].map(lambda v: below if v < low else above), marker=marker,
                   facecolors="none", edgecolors=color, s=24, linewidths=1)


def _cut(label: str, width: int = 60) -> str:
    """A legend entry or title cut to `width` characters (a long name would squeeze the axes to
    nothing), shown as written (`_literal`)."""
    return _literal(label if len(label) <= width else label[:width - 1] + "…")


def _literal(text: str) -> str:
    """A record's text (a setting, family, runtime, data source) as matplotlib draws it as
    written: it reads text between two `$` as math, and `$\\foo{$` in a record stopped every
    leaderboard rebuild at its first save with a ParseFatalException. An escaped `\\$` is drawn
    as `$`; the axes' own tick labels keep their math (10^2 on a log scale). Control characters
    are drawn as `?`: matplotlib warns of each glyph its font lacks quoting the character, so an
    ESC in a record reached the terminal in a warning."""
    return printable(text).replace("$", r"\$")


def _ylabel(ycol: str) -> str:
    return "Δ accuracy vs dense (pts)" if ycol == "delta_acc_pts" else "accuracy (%)"


def _size_axis(ax: Any, plt: Any) -> None:
    """A log x axis of bytes, ticked at 1, 2 and 5 of each decade ("50 kB"), so that a range
    shorter than a decade still has labels."""
    from matplotlib.ticker import EngFormatter, LogLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(EngFormatter(unit="B", sep=" "))
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.grid(True, which="both", alpha=0.3)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def frontier_figure(t: pd.DataFrame, ycol: str, cols: list[Column],
                    title: str) -> tuple[Any, pd.DataFrame] | None:
    """Accuracy against size for every method on one axis, the frontier joined and labelled, and
    the measured speedup below on the same x; with it, each row's marker in data coordinates
    (x, y: a row off the scale where it is drawn, in the band). None if no compressed row has a
    size. `t` is one table's rows (`bench.board.plot_frame`)."""
    t = t[t.size_bytes.notna() & t[ycol].notna()]
    if t.empty or t.reference.all():
        return None
    plt = _pyplot()
    speed = best_speedups(t, cols)
    fig, axes = plt.subplots(2 if speed else 1, 1, figsize=(10.0, 7.0 if speed else 5.0), dpi=110, sharex=True,
                             squeeze=False, layout="constrained",
                             gridspec_kw={"height_ratios": [2.2, 1] if speed else [1]})
    ax = axes[0, 0]
    style = styles(t.method)
    y = t[ycol].astype(float)
    best = t.loc[frontier(t, "size_bytes", ycol)].sort_values("size_bytes")
    # The range the frontier needs, with room below it: a method far below the frontier at every
    # size loses at every size, and is drawn in the band rather than squashing the contest.
    top, bottom = float(best[ycol].max()), float(best[ycol].min())
    span = max(top - bottom, 1.0)
    low, high = bottom - 0.6 * span, max(top, float(y.max())) + 0.08 * span
    below, above = _clip_bands(ax, y, low, high)
    for method, m in sorted(t.groupby("method", sort=False), key=lambda g: (not g[1].reference.any(), g[0])):
        _points(ax, m.size_bytes, m[ycol].astype(float), m["accuracy_std_%"], low, high, below, above,
                *style[method], method, line=False)
    shown = y.where((y >= low) & (y <= high), y.map(lambda v: below if v < low else above))
    points = pd.DataFrame({"x": t.size_bytes, "y": shown})  # where each row's marker is, for `positions`
    ax.step(best.size_bytes, best[ycol].astype(float).clip(below, above), where="post", color="black",
            linewidth=0.9, alpha=0.6, zorder=1, label="Pareto frontier")
    # Each frontier row numbered at its point, named in a key beside the axes: names written at
    # the points overlap where the frontier climbs steeply.
    for i, (_, r) in enumerate(best.iterrows(), start=1):
        ax.annotate(str(i), (r.size_bytes, min(max(float(r[ycol]), below), above)), textcoords="offset points",
                    xytext=(-3, 3), ha="right", fontsize=7, fontweight="bold")
    _size_axis(ax, plt)
    ax.set_ylabel(_ylabel(ycol), fontsize=8)
    ax.set_title("every method on one axis; the frontier is the best accuracy at each size", fontsize=9, loc="left")
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, ncol=1 + len(style) // 22)
    sign = "+" if ycol == "delta_acc_pts" else ""
    rows = [plt.Line2D([], [], linestyle="", label=f"{i}  {_cut(r['label'])}  ({at_decimals(r[ycol], 2):{sign}.2f})")
            for i, (_, r) in enumerate(best.iterrows(), start=1)]
    fig.legend(handles=rows, fontsize=6.5, loc="lower left", bbox_to_anchor=(1.01, 0.0), bbox_transform=ax.transAxes,
               borderaxespad=0.0, handlelength=0, handletextpad=0, title="Pareto frontier, smallest first",
               title_fontsize=6.5)
    if speed:
        sx = axes[1, 0]
        for method, m in t.groupby("method", sort=True):
            color, marker = style[method]
            for (col, _), fill in zip(speed, (color, "none")):
                ok = m[col.column].notna()
                sx.scatter(m.size_bytes[ok], m[col.column][ok], marker=marker, facecolors=fill, edgecolors=color,
                           s=22, linewidths=1)
        sx.axhline(1.0, color="black", linewidth=0.6, linestyle=":")
        _size_axis(sx, plt)
        sx.set_ylabel("measured speedup (x)", fontsize=8)
        sx.set_title("measured speedup over dense in the best runtime", fontsize=9, loc="left")
        handles = [plt.Line2D([], [], linestyle="", marker="o", color="#555555", markerfacecolor=fill, label=label)
                   for (_, label), fill in zip(speed, ("#555555", "none"))]
        sx.legend(handles=handles, fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    axes[-1, 0].set_xlabel("deployable size (bytes of the compressed encoding, log scale)", fontsize=8)
    fig.suptitle(_cut(title, 150), fontsize=10)
    return fig, points


def positions(fig: Any, points: pd.DataFrame) -> pd.DataFrame:
    """Where each row's marker lies in the frontier figure's saved PNG, as percentages of its width
    (from the left) and height (from the top), by row index: the site lays a link over each,
    whose tooltip names the row. The same records draw the same figure, so these match the PNG
    `save` wrote. The figure is closed. Its layout is computed without rasterizing it (the same
    positions, a third less time)."""
    import matplotlib.pyplot as plt

    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    box = fig.get_tightbbox(renderer).padded(0.1)  # what savefig's bbox_inches="tight" keeps, in inches
    ax = fig.axes[0]
    xy = ax.transData.transform(points[["x", "y"]].to_numpy()) / fig.dpi
    plt.close(fig)
    return pd.DataFrame({"left": 100 * (xy[:, 0] - box.x0) / box.width,
                         "top": 100 * (box.y1 - xy[:, 1]) / box.height}, index=points.index)


def family_figure(t: pd.DataFrame, ycol: str, title: str) -> Any:
    """A panel per method family (column `family`, in `bench.registry.FAMILIES` order), all on the
    frontier's x (size in bytes), each with its own y range; a line per series (column `series`:
    a method and its non-default settings other than the swept one); None if there is nothing
    but references."""
    from bench.registry import FAMILIES

    refs = {m: float(t[t.method == m][ycol].mean()) for m in ("dense", "dense-ft") if (t.method == m).any()}
    t = t[~t.reference & t.size_bytes.notna()]
    panels = [f for f in FAMILIES if (t.family == f).any()] + sorted(set(t.family) - set(FAMILIES))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(panels), 1, figsize=(10.0, 0.6 + 2.7 * len(panels)), dpi=110, sharex=True,
                             squeeze=False, layout="constrained")
    style = variant_styles(t)
    for ax, name in zip(axes[:, 0], panels):
        rows = t[t.family == name]
        y = rows[ycol].astype(float)
        low, high = _y_range(y, list(refs.values()))
        below, above = _clip_bands(ax, y, low, high)
        for label, m in rows.groupby("series", sort=True):
            m = m.sort_values("size_bytes")
            _points(ax, m.size_bytes, m[ycol].astype(float), m["accuracy_std_%"], low, high, below, above,
                    *style[label], label, line=True)
        for ref, linestyle in (("dense", "-"), ("dense-ft", "--")):
            if ref in refs:
                ax.axhline(refs[ref], color="black", linestyle=linestyle, linewidth=0.7, label=ref)
        _size_axis(ax, plt)
        ax.set_title(_cut(name), fontsize=9, loc="left")
        ax.set_ylabel(_ylabel(ycol), fontsize=7)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    for ax in axes[:, 0]:  # every panel labelled: a reader of the top one need not look down six
        ax.tick_params(labelbottom=True)
        ax.set_xlabel("deployable size (bytes, log scale)", fontsize=7)
    fig.suptitle(_cut(title, 150), fontsize=10)
    return fig


def speedup_figure(t: pd.DataFrame, cols: list[Column], title: str) -> Any:
    """Measured against theoretical speedup (log scales), a panel per runtime, a colour and marker
    per method, filled at batch 1 and hollow at the largest batch; the diagonal is where FLOPs
    saved become time saved. None if nothing was measured."""
    measured = measured_columns(t, cols)
    if not measured or "theoretical_speedup_x" not in t:
        return None
    plt = _pyplot()
    runtimes: dict[str, list[Column]] = {}
    for col in measured:
        runtimes.setdefault(col.runtime, []).append(col)
    ncols = min(2, len(runtimes))
    nrows = -(-len(runtimes) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 3.6 * nrows), dpi=110, squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    style = styles(t.method)
    top = max(float(t["theoretical_speedup_x"].max()), *(float(t[c.column].max()) for c in measured), 2.0)
    batches = sorted({c.batch for c in measured})
    fills = {batches[-1]: False, batches[0]: True}
    for ax, (runtime, rcols) in zip(axes.flat, runtimes.items()):
        for method, m in t.groupby("method", sort=True):
            color, marker = style[method]
            for col in rcols:
                filled = fills.get(col.batch)
                ok = m[col.column].notna()
                if filled is not None and ok.any():
                    ax.scatter(m.loc[ok, "theoretical_speedup_x"], m.loc[ok, col.column], marker=marker, s=22,
                               facecolors=color if filled else "none", edgecolors=color, linewidths=1)
        ax.plot([1, top], [1, top], color="black", linewidth=0.8)
        ax.axhline(1.0, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(_cut(runtime), fontsize=9, loc="left")
    for ax in axes.flat[len(runtimes):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("theoretical speedup (dense FLOPs / effective FLOPs)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("measured speedup over dense", fontsize=8)
    handles = [plt.Line2D([], [], linestyle="", marker=style[m][1], color=style[m][0], label=_cut(m))
               for m in sorted(style, key=lambda m: (m not in REFERENCE_STYLES, m))]
    handles += [plt.Line2D([], [], linestyle="", marker="o", color="#555555", markerfacecolor="#555555" if filled
                           else "none", label=f"batch {b}") for b, filled in sorted(fills.items())]
    handles.append(plt.Line2D([], [], color="black", linewidth=0.8, label="measured = theoretical"))
    fig.legend(handles=handles, fontsize=6.5, loc="upper left", bbox_to_anchor=(1.0, 0.95))
    fig.suptitle(_cut(title, 150), fontsize=10)
    return fig


def save(fig: Any, path: Path) -> None:
    """Write a figure as PNG, byte for byte the same for the same records (no software tag)."""
    import matplotlib.pyplot as plt

    files.atomic_write(path, lambda f: fig.savefig(f, format="png", metadata={"Software": None},
                                                     bbox_inches="tight"))
    plt.close(fig)
