"""The propagation table as a grouped bar chart (matplotlib): one group per row, one bar per column."""
from __future__ import annotations

from pathlib import Path

from corrtrack.bench.propagation import COLUMN_TITLES, COLUMNS, ROW_TITLES, ROWS

COLUMN_COLOURS = {"zero": (150, 150, 150), "dis_flow": (230, 120, 60), "siamese": (70, 170, 70),
                  "refined": (40, 110, 200)}  # RGB
CHART_SIZE = (9.0, 4.2)       # inches; at CHART_DPI a 900 x 420 PNG
CHART_DPI = 100


def plot_table(result: dict, path: str | Path) -> Path:
    """PCKh@0.5 (%) of each row (group) and column (bar) of a ``run_propagation`` result as a PNG; an
    unavailable cell is marked n/a. Returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=CHART_SIZE, dpi=CHART_DPI)
    width = 0.8 / len(COLUMNS)
    for ci, c in enumerate(COLUMNS):
        xs = [gi + (ci - (len(COLUMNS) - 1) / 2) * width for gi in range(len(ROWS))]
        values = [result["table"][r][c]["pckh"] for r in ROWS]
        colour = tuple(v / 255 for v in COLUMN_COLOURS[c])
        bars = ax.bar([x for x, v in zip(xs, values) if v is not None], [v for v in values if v is not None],
                      width * 0.9, color=colour, label=COLUMN_TITLES[c], antialiased=False)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
        for x, v in zip(xs, values):
            if v is None:
                ax.text(x, 1, "n/a", ha="center", va="bottom", fontsize=7, color="0.45")
    ax.set_xticks(range(len(ROWS)), [ROW_TITLES[r] for r in ROWS])
    ax.set_ylim(0, 105)
    ax.set_ylabel("PCKh@0.5 (%)")
    ax.yaxis.grid(True, color="0.9")
    ax.set_axisbelow(True)
    ax.legend(loc="upper center", ncol=len(COLUMNS), fontsize=8, frameon=False, bbox_to_anchor=(0.5, 1.12))
    ax.set_title(f"{result['pairs']} frame pairs, {Path(str(result['data'])).name}", fontsize=8, loc="left",
                 y=-0.2)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.87, bottom=0.2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=CHART_DPI)
    plt.close(fig)
    return path
