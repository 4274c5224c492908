"""python -m dnnfast: train a network on the shipped digits and report
progress, test accuracy, and the speed against dnnfast.reference (NumPy)
doing the same work."""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from . import Network, NonFiniteError, __version__, get_num_threads, reference, set_num_threads
from ._validation import check_normal
from ._train.state import MAX_LEARNING_RATE
from ._validation import MAX_THREADS
from .datasets import load_digits, train_test_split


# argparse types: a bad value is a usage error naming the option, before the
# banner and any work, not a traceback from deep in the library naming its
# internal parameter (or a run of -3 epochs reporting a negative speed).
def _int_at_least(lo, hi=None, what=None):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return parse


def _learning_rate(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    # The bound is the one fit enforces; NaN fails both comparisons.
    if not 0.0 < value <= MAX_LEARNING_RATE:
        raise argparse.ArgumentTypeError(f"must be a finite number in (0, {MAX_LEARNING_RATE:g}], got {text!r}")
    return value


_positive_int = _int_at_least(1, what="a positive integer")

EX_DIVERGED = 3
EX_IOERR = 74  # sysexits.h
#: Exit statuses, each its own cause, listed by --help.
EXIT_STATUSES = (
    (0, "the test accuracy reached 95%"),
    (1, "the test accuracy is below 95% (or an unexpected error: a traceback)"),
    (2, "usage error: a bad option or value"),
    (EX_DIVERGED, "training diverged (NaN or infinity): lower --learning-rate"),
    (EX_IOERR, "stdout could not be written (a full disk, a closed stdout): EX_IOERR"),
    (130, "interrupted by Ctrl-C"),
    (141, "stdout's reader went away (| head): 128 + SIGPIPE"),
)


class _StdoutError(Exception):
    """Writing the report to stdout failed (not a closed pipe: BrokenPipeError passes)."""


def _say(*args, **kw):
    """print to stdout: an OSError there is the report's own failure (exit
    status 74), told from the library's OSErrors by this wrapper."""
    if sys.stdout is None:
        # Started with stdout closed (`>&-`): print writes nothing without a
        # word, and the run's report would be lost. Said at the first line,
        # the banner (or --help's text), before any training.
        raise _StdoutError("stdout is closed")
    try:
        print(*args, **kw)
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _StdoutError(exc) from None


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each option's default, and the epilog's lines (the exit statuses) kept as written."""


class _Parser(argparse.ArgumentParser):
    """--help through _say: argparse's own writer drops an OSError, and
    `--help > /dev/full` exited 0 with nothing written."""

    def print_help(self, file=None):
        if file is None:
            _say(self.format_help(), end="")
        else:
            super().print_help(file)


def main(argv=None):
    epilog = "exit status:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_STATUSES)
    p = _Parser(prog="python -m dnnfast", description=__doc__, epilog=epilog,
                                formatter_class=_HelpFormatter)
    p.add_argument("--epochs", type=_positive_int, default=30, help="training epochs")
    p.add_argument("--batch-size", type=_positive_int, default=32, help="rows per step")
    p.add_argument("--learning-rate", type=_learning_rate, default=0.1, help="SGD step size")
    p.add_argument("--hidden", type=_positive_int, nargs="+", default=[128, 64], help="hidden layer widths")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="the network's dtype")
    p.add_argument("--threads", type=_int_at_least(0, MAX_THREADS, f"an integer in [0, {MAX_THREADS}]"), default=0,
                   help="0 = OMP_NUM_THREADS / all cores")
    p.add_argument("--seed", type=_int_at_least(0, what="a non-negative integer"), default=0,
                   help="the split's and the initial weights' seed")
    p.add_argument("--no-reference", action="store_true", help="skip the NumPy reference run")
    args = p.parse_args(argv)
    try:  # fit's floor, which depends on --dtype: a rate below its smallest normal number updates nothing
        check_normal(args.learning_rate, "learning_rate", np.dtype(args.dtype))
    except ValueError as exc:
        p.error(f"argument --learning-rate: {exc}")
    if args.threads:
        set_num_threads(args.threads)

    X, y = load_digits()
    X = X / 16.0
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_fraction=0.25, seed=args.seed)
    sizes = [X.shape[1], *args.hidden, 10]
    acts = ["relu"] * len(args.hidden) + ["softmax"]
    try:  # before the banner: a network too large for memory is a usage error naming --hidden
        net = Network(sizes, acts, loss="cce", dtype=args.dtype, seed=args.seed)
    except (ValueError, MemoryError) as exc:
        p.error(f"argument --hidden: {exc}")
    _say(f"dnnfast {__version__}: digits 8x8, {len(ytr)} train / {len(yte)} test rows, "
         f"network {sizes} {acts[0]}/softmax + cce, {args.dtype}, batch {args.batch_size}, "
         f"lr {args.learning_rate}, {get_num_threads()} thread(s)")

    fit_args = dict(batch_size=args.batch_size, learning_rate=args.learning_rate, shuffle=True)
    t0 = time.perf_counter()
    done = 0
    try:  # one fit call an epoch: the KeyboardInterrupt's own count would say 0 epochs
        for epoch in range(args.epochs):
            h = net.fit(Xtr, ytr, epochs=1, **fit_args)
            done = epoch + 1
            if epoch % 5 == 4 or epoch == 0 or epoch == args.epochs - 1:
                acc = np.mean(net.predict(Xte).argmax(axis=1) == yte)
                _say(f"  epoch {epoch + 1:3d}/{args.epochs}  train cost {h.cost[0]:.4f}  test accuracy {acc:6.2%}",
                     flush=True)
    except KeyboardInterrupt:
        print(f"interrupted after {done} of {args.epochs} epochs", file=sys.stderr)
        return 130
    except NonFiniteError as exc:
        # Valid options can still diverge (a rate of 1 on wide layers, one row a
        # step): one line naming the option to change, not a traceback whose
        # status, 1, means "accuracy below 95%". (exc.epoch counts within the
        # one-epoch fit call.)
        where = f"layer {exc.layer} ({exc.where})" if exc.layer else exc.where or "the parameters"
        print(f"python -m dnnfast: training diverged in epoch {done + 1} of {args.epochs} (NaN or infinity in "
              f"{where}); lower --learning-rate (now {args.learning_rate:g})", file=sys.stderr)
        return EX_DIVERGED
    t_fast = time.perf_counter() - t0
    acc = float(np.mean(net.predict(Xte).argmax(axis=1) == yte))
    rate = args.epochs * len(ytr) / t_fast
    _say(f"dnnfast:   {t_fast:7.3f} s for {args.epochs} epochs ({rate:,.0f} samples/s), test accuracy {acc:.2%}")

    if not args.no_reference:
        ref = reference.Network(sizes, acts, loss="cce", dtype=args.dtype, seed=args.seed)
        t0 = time.perf_counter()
        ref.fit(Xtr, ytr, epochs=args.epochs, **fit_args)
        t_ref = time.perf_counter() - t0
        ref_acc = float(np.mean(ref.predict(Xte).argmax(axis=1) == yte))
        _say(f"reference: {t_ref:7.3f} s (NumPy, same work), test accuracy {ref_acc:.2%}")
        _say(f"speed-up:  {t_ref / t_fast:.1f}x")
    if acc < 0.95:
        print(f"warning: test accuracy {acc:.2%} is below 95%", file=sys.stderr)
        return 1
    return 0


def _flush_stdout():
    if sys.stdout is None:  # closed from the start: _say has said so, or nothing was written
        return
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _StdoutError(exc) from None


if __name__ == "__main__":
    try:
        try:
            status = main()
        except SystemExit as exc:  # --help, a usage error: its text may still wait in stdout's buffer
            status = exc.code
        _flush_stdout()  # here, where a closed pipe can be caught, not at interpreter exit
    except BrokenPipeError:
        # The reader (`| head -1`) has gone: stop quietly. Point stdout at
        # devnull so the flush at exit does not raise again. Status 141
        # (128 + SIGPIPE), what a shell reports for a tool SIGPIPE ended:
        # 1 already means "accuracy below 95%".
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = 141
    except _StdoutError as exc:
        # A full disk (`> /dev/full`): one line, and a status of its own (it
        # was a traceback and 1, "accuracy below 95%"); stdout to devnull so
        # the flush at exit does not fail again.
        if sys.stdout is not None:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"python -m dnnfast: cannot write to stdout: {exc}", file=sys.stderr)
        status = EX_IOERR
    except KeyboardInterrupt:  # outside a fit (the reference run, a report): no traceback either
        print("interrupted", file=sys.stderr)
        status = 130
    sys.exit(status)
