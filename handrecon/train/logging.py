"""Run logs: CSV tables, PNG plots, and TensorBoard when it is installed.

Files in the run folder (rewritten atomically at every log / validation point, by rank 0 only)::

    train_log.csv     step, epoch, total, each loss term (unweighted), lr, images_per_s
    val_log.csv       step, epoch, loss, pa_mpjpe_mm, pa_mpvpe_mm, mpjpe_mm, mpvpe_mm, kp2d_px, samples
    plots/losses.png  loss terms and learning rate against step
    plots/val.png     validation metrics against step
    tensorboard/      event files (only if ``torch.utils.tensorboard`` imports)

On resume, rows after the checkpoint's step are dropped, so the tables read as one uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from handrecon.fileio import atomic_path

__all__ = ["CsvTable", "RunLogger", "plot_series"]


class CsvTable:
    """A CSV file kept in memory and rewritten atomically on every append (columns grow as needed)."""

    def __init__(self, path, keep_until_step: int | None = None):
        self.path = Path(path)
        self.rows: list[dict] = []
        self.columns: list[str] = []
        if keep_until_step is not None and self.path.is_file():
            with open(self.path, newline="") as fh:
                reader = csv.DictReader(fh)
                self.columns = list(reader.fieldnames or [])
                for row in reader:
                    try:
                        if int(row["step"]) <= keep_until_step:
                            self.rows.append({k: _parse(v) for k, v in row.items()})
                    except (KeyError, TypeError, ValueError):
                        continue

    def append(self, row: dict) -> None:
        for key in row:
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append(dict(row))
        self.write()

    def write(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _format(v) for k, v in row.items()})
        with atomic_path(self.path) as tmp:
            Path(tmp).write_text(buf.getvalue())

    def series(self, column: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for row in self.rows:
            v = row.get(column)
            if isinstance(v, (int, float)) and math.isfinite(v):
                xs.append(int(row["step"]))
                ys.append(float(v))
        return xs, ys


def _parse(text):
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _format(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def plot_series(path, table: CsvTable, groups: list[tuple[str, list[str], bool]], title: str) -> None:
    """One panel per (panel title, columns, log y) group; written atomically as PNG (Agg, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = [(t, [c for c in cols if table.series(c)[0]], logy) for t, cols, logy in groups]
    groups = [g for g in groups if g[1]]
    if not groups:
        return
    fig = Figure(figsize=(7, 2.6 * len(groups)), dpi=90)
    FigureCanvasAgg(fig)
    for i, (panel, columns, logy) in enumerate(groups):
        ax = fig.add_subplot(len(groups), 1, i + 1)
        values = []
        for column in columns:
            xs, ys = table.series(column)
            values += ys
            ax.plot(xs, ys, label=column, linewidth=1.2, marker="." if len(xs) < 30 else None)
        if logy and min(values) > 0 and max(values) > 20 * min(values):  # log scale only for a wide range
            ax.set_yscale("log")
        ax.set_title(panel, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        ax.tick_params(labelsize=7)
    fig.axes[-1].set_xlabel("step", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")


class RunLogger:
    """Writes the run's tables, plots and TensorBoard events (a no-op when ``enabled`` is False).

    Args:
        out_dir: the run folder.
        enabled: False on ranks other than 0.
        tensorboard: also write TensorBoard events when ``torch.utils.tensorboard`` is importable.
        resume_step: keep existing rows up to this step (a resumed run); None = start new tables.
        plots: write PNG plots.
    """

    def __init__(self, out_dir, enabled: bool = True, tensorboard: bool = True, resume_step: int | None = None,
                 plots: bool = True, title: str = ""):
        self.out = Path(out_dir)
        self.enabled = enabled
        self.plots = plots
        self.title = title
        self.train = CsvTable(self.out / "train_log.csv", resume_step) if enabled else None
        self.val = CsvTable(self.out / "val_log.csv", resume_step) if enabled else None
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard is optional
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(str(self.out / "tensorboard"), purge_step=resume_step)

    def log_train(self, row: dict, terms: list[str]) -> None:
        if not self.enabled:
            return
        self.train.append(row)
        if self.tb is not None:
            for key, value in row.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"train/{key}", value, row["step"])
        if self.plots:
            plot_series(self.out / "plots" / "losses.png", self.train,
                        [("loss terms (unweighted)", ["total", *terms], True), ("learning rate", ["lr"], False),
                         ("images/s", ["images_per_s"], False)], self.title)

    def log_val(self, row: dict) -> None:
        if not self.enabled:
            return
        self.val.append(row)
        if self.tb is not None:
            for key, value in row.items():
                if key not in ("step", "epoch", "samples") and isinstance(value, (int, float)):
                    self.tb.add_scalar(f"val/{key}", value, row["step"])
        if self.plots:
            plot_series(self.out / "plots" / "val.png", self.val,
                        [("3D errors, mm", ["pa_mpjpe_mm", "pa_mpvpe_mm", "mpjpe_mm", "mpvpe_mm"], False),
                         ("2D keypoint error, crop pixels", ["kp2d_px"], False), ("validation loss", ["loss"], True)],
                        self.title)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
