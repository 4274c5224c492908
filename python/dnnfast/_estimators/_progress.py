"""Training history, the progress display and the learning-curve plot."""
from __future__ import annotations

import sys


class TrainingHistory(dict):
    """Per-epoch record of a fit: ``history["loss"]`` (or ``history.loss``).

    Keys, each a list with one entry per epoch (per L-BFGS iteration for
    ``solver="lbfgs"``):

    - ``loss``: training loss (the objective: data loss plus the L2 term), as
      in ``loss_curve_``;
    - ``val_loss``: data loss on the validation set (no L2 term), NaN without
      early stopping;
    - ``val_score``: accuracy (classifier) or R² (regressor) on the validation
      set, as in ``validation_scores_``; NaN without early stopping;
    - ``time``: seconds the epoch took.
    """

    KEYS = ("loss", "val_loss", "val_score", "time")

    def __init__(self):
        super().__init__((k, []) for k in self.KEYS)

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def append(self, **values):
        for k in self.KEYS:
            self[k].append(float(values.get(k, float("nan"))))

    def add_epoch(self, loss, val_loss, val_score, time):
        """``append`` of all four keys, for the per-epoch path, without its loop
        over ``KEYS`` (BENCHMARKS.md, "Measurements behind the code":
        TrainingHistory.add_epoch)."""
        self["loss"].append(float(loss))
        self["val_loss"].append(float(val_loss))
        self["val_score"].append(float(val_score))
        self["time"].append(float(time))

    def __reduce__(self):  # pickles as a plain dict subclass with its lists
        return (TrainingHistory._rebuild, (dict(self),))

    @staticmethod
    def _rebuild(items):
        h = TrainingHistory()
        h.update(items)
        return h


def _call(fn):
    fn()


class Progress:
    """scikit-learn's ``Iteration k, loss = ...`` line per epoch on stdout (code
    and tests read it there), and a tqdm bar on stderr when tqdm is installed
    (the lines are then written above it).

    ``alone(fn)`` runs each output (the fit's step provider's ``alone``:
    over MPI, where rank 0 alone writes, what a write raises is raised on
    every rank at their next agreement)."""

    def __init__(self, total, enabled, desc="fit", alone=_call):
        self.enabled = bool(enabled)
        self._bar = None
        self._alone = alone
        if not self.enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self._bar = tqdm(total=total, desc=desc, unit="epoch", leave=True)

    def update(self, iteration, loss, val_score=None):
        if self.enabled:
            self._alone(lambda: self._update(iteration, loss, val_score))

    def _update(self, iteration, loss, val_score):
        lines = ["Iteration %d, loss = %.8f" % (iteration, loss)]
        if val_score is not None:
            lines.append("Validation score: %f" % val_score)
        if self._bar is not None:
            for line in lines:
                self._bar.write(line, file=sys.stdout)
            post = {"loss": f"{loss:.6g}"}
            if val_score is not None:
                post["val_score"] = f"{val_score:.4f}"
            self._bar.set_postfix(post, refresh=False)
            self._bar.update(1)
        else:
            print("\n".join(lines), file=sys.stdout, flush=True)

    def message(self, text):
        if self.enabled:
            self._alone(lambda: self._message(text))

    def _message(self, text):
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self):
        if self._bar is not None:
            self._alone(self._close)

    def _close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def plot_history(history, ax=None, title=None):
    """Learning curves: training (and validation) loss against the epoch, and
    the validation score on a second y axis when there is one.

    Returns
    -------
    matplotlib.figure.Figure
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plot_history needs matplotlib: pip install matplotlib "
                          "(or pip install 'dnnfast[plot]')") from None
    import math

    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
    else:
        fig = ax.figure
    epochs = list(range(1, len(history["loss"]) + 1))
    ax.plot(epochs, history["loss"], label="training loss", color="C0")
    has_val = any(not math.isnan(v) for v in history["val_loss"])
    if has_val:
        ax.plot(epochs, history["val_loss"], label="validation loss", color="C1")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    handles, labels = ax.get_legend_handles_labels()
    if any(not math.isnan(v) for v in history["val_score"]):
        ax2 = ax.twinx()
        ax2.plot(epochs, history["val_score"], label="validation score", color="C2", linestyle="--")
        ax2.set_ylabel("validation score")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="best")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
