"""The ``clvcast`` command line: parse the arguments, call one job, print its summary.

Every command is one call into :mod:`clvcast.jobs` (the same functions a notebook calls);
this module only turns arguments into the jobs' settings and results into text.
Errors of the :class:`~clvcast.errors.ClvcastError` family end as one line on stderr and
exit code 2 (bad input) or 1 (other failures); ``--verbose`` adds the traceback. Warnings
are printed once each, as ``clvcast: warning: ...`` lines.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from clvcast.cli_parser import build_parser
from clvcast.errors import ClvcastError
from clvcast.process_exit import exit_quickly

log = logging.getLogger("clvcast")


def _read_options(args: argparse.Namespace) -> Any:
    """The transaction options as :class:`~clvcast.data.ReadOptions` (as-of set by the job)."""
    from clvcast.data import ReadOptions
    from clvcast.data.rules import THOUSANDS_CHOICES
    from clvcast.data.statuses import listed_statuses

    return ReadOptions(
        contact_col=args.contact_col,
        date_col=args.date_col,
        amount_col=args.amount_col,
        date_format=args.date_format,
        nonpositive=args.nonpositive,
        duplicates=args.duplicates,
        invalid="drop" if args.drop_invalid else "error",
        dayfirst=args.dayfirst,
        timezone=args.timezone,
        sep=_separator(args.sep),
        decimal=args.decimal,
        thousands=None if args.thousands is None else THOUSANDS_CHOICES[args.thousands],
        currency=args.currency,
        encoding=args.encoding,
        id_case=args.id_case,
        quantity_col=args.quantity_col,
        price_col=args.price_col,
        order_col=args.order_col,
        status_col=args.status_col,
        purchase_statuses=listed_statuses(args.purchase_statuses),
        not_purchase_statuses=listed_statuses(args.not_purchase_statuses),
        guest_id=args.guest_id,
        refund_col=args.refund_col,
        currency_col=args.currency_col,
    )


def _separator(text: str | None) -> str | None:
    """--sep as a character: 'tab' and '\\t' mean a tab."""
    if text is None:
        return None
    return "\t" if text.lower() in {"tab", "\\t"} else text


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments every job that reads transactions takes."""
    return {
        "as_of": args.as_of,
        "contacts": args.contacts,
        "contacts_id_col": args.contacts_id_col,
        "read": _read_options(args),
    }


def _engine(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "engine": args.engine,
        "spark_master": args.spark_master,
        "chunk_contacts": args.chunk_contacts,
        "work_dir": args.work_dir,
    }


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    """Progress lines go to a terminal (stderr), or anywhere with --verbose; never with
    --quiet."""
    if args.quiet or not (args.verbose or sys.stderr.isatty()):
        return None
    return lambda message: print(f"clvcast: {message}", file=sys.stderr, flush=True)


def _print(args: argparse.Namespace, text: Callable[[], str]) -> None:
    """Print ``text()`` unless --quiet: the text is made only when it is printed (the
    segment table of 470k contacts took 0.02 s to format, for nothing under --quiet)."""
    if not args.quiet:
        print(text())


def use_malloc_for_arrow() -> None:
    """Give the process's new Arrow buffers the C library's ``malloc``, unless the user chose
    a pool with ``ARROW_DEFAULT_MEMORY_POOL``. Every command that reads a purchase log calls
    it.

    pyarrow's default pool, mimalloc, hands freed memory back to the system within
    milliseconds, so a command that builds its table column by column and then writes it
    faults the same memory in again and again: ``clvcast forecast`` on 1M contacts took
    3.34 s with it against 3.03 s with ``malloc`` (and 3.01 s with jemalloc, which not every
    build has), medians of eight alternated runs; ``rfm`` the same or a little quicker. Its
    fresh memory can also come slowly: on this project's test machine (a virtual machine)
    its first touch of 100 MB took 0.01-1.0 s against 0.06 s from ``malloc``, and joining
    the 80 chunks of 9.8M contact ids 1.5 s against 0.09 s. ``predict`` on 10M rows (1M
    contacts, three alternated pairs): 19.1 s against 22.8 s, peak 2,109 MB against 2,520
    MB; with ``--previous``, ``--audiences`` and ``--changed-only`` (four pairs) 25.0 s
    against 32.3 s, peak 2,440 MB against 2,880 MB. Buffers made before keep their pool. A
    choice for the whole process, like the logging set-up in :func:`main`, which the
    library's functions leave alone.
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def cmd_rfm(args: argparse.Namespace) -> int:
    """clvcast rfm: contact table with summary, RFM scores, cells and segments."""
    use_malloc_for_arrow()
    from clvcast.console import format_table_job
    from clvcast.jobs import rfm

    result = rfm(
        args.transactions,
        **_inputs(args),
        output=args.output,
        csv_format=args.csv_format,
        monetary_basis=args.monetary_basis,
        boundaries=args.boundaries,
        save_boundaries=args.save_boundaries,
    )
    _print(args, lambda: format_table_job(result, args.output))
    return 0


def cmd_forecast(args: argparse.Namespace) -> int:
    """clvcast forecast: contact table plus predicted purchases, P(alive) and CLV."""
    use_malloc_for_arrow()
    from clvcast.console import format_table_job
    from clvcast.jobs import forecast

    result = forecast(
        args.transactions,
        **_inputs(args),
        output=args.output,
        csv_format=args.csv_format,
        horizon_days=args.horizon_days,
        discount_rate_monthly=args.discount_rate_monthly,
        penalizer=args.penalizer,
        holdout_days=args.holdout_days,
        compare_models=args.compare_models,
        monetary_basis=args.monetary_basis,
        boundaries=args.boundaries,
        save_boundaries=args.save_boundaries,
        plots=args.plots,
        progress=_progress(args),
    )
    _print(args, lambda: format_table_job(result, args.output, args.plots))
    return 0


def cmd_churn(args: argparse.Namespace) -> int:
    """clvcast churn: contact table with churn risk, bands and drift dates."""
    use_malloc_for_arrow()
    from clvcast.console import format_table_job
    from clvcast.jobs import churn

    result = churn(
        args.transactions,
        **_inputs(args),
        output=args.output,
        csv_format=args.csv_format,
        horizon_days=args.churn_horizon_days,
        cutoffs=args.cutoffs,
        spacing_days=args.spacing_days,
        threads=args.threads,
        evaluate=not args.no_evaluation,
        monetary_basis=args.monetary_basis,
        boundaries=args.boundaries,
        save_boundaries=args.save_boundaries,
        plots=args.plots,
        progress=_progress(args),
    )
    _print(args, lambda: format_table_job(result, args.output, args.plots))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """clvcast train: fit the pipeline, log an MLflow run, register a model version."""
    use_malloc_for_arrow()
    from clvcast.console import format_train
    from clvcast.jobs import TrainConfig, train

    inputs = _inputs(args)
    del inputs["contacts"], inputs["contacts_id_col"]  # training uses purchases only
    result = train(
        args.transactions,
        **inputs,
        **_engine(args),
        config=TrainConfig(
            horizon_days=args.horizon_days,
            discount_rate_monthly=args.discount_rate_monthly,
            churn_horizon_days=args.churn_horizon_days,
            holdout_days=args.holdout_days,
            churn_sample_contacts=args.churn_sample_contacts,
        ),
        store=args.tracking_uri,
        experiment=args.experiment,
        register_as=args.register_as or None,
        alias=args.alias,
        force_alias=args.force_alias,
        save=args.save,
        progress=_progress(args),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _print(args, lambda: format_train(result, args.holdout_days))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """clvcast predict: score every contact with a model version and write the table."""
    use_malloc_for_arrow()
    from clvcast.console import format_predict
    from clvcast.jobs import predict

    result = predict(
        args.model,
        args.transactions,
        **_inputs(args),
        **_engine(args),
        output=args.output,
        table=args.table,
        previous=args.previous,
        previous_table=args.previous_table,
        csv_format=args.csv_format,
        audiences=args.audiences,
        changed_only=args.changed_only,
        clv_tolerance=args.clv_tolerance,
        store=args.tracking_uri,
        scored_at=args.scored_at,
        trust_model_file=args.trust_model_file,
        progress=_progress(args),
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print(args, lambda: format_predict(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """clvcast report: a self-contained HTML report (and PNG figures) of a model version."""
    from clvcast.jobs import report

    made = report(
        args.model,
        output=args.output,
        scored=args.scored,
        transactions=args.transactions,
        **_inputs(args),
        holdout_days=args.holdout_days,
        title=args.title,
        currency=args.currency,
        store=args.tracking_uri,
        trust_model_file=args.trust_model_file,
        progress=_progress(args),
    )
    _print(
        args,
        lambda: (
            f"Wrote {made.path} (open it in a browser; no server needed) and its figures "
            f"as PNG in {made.path.parent}"
        ),
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """clvcast demo: train, register, alias, batch-predict and report on bundled CDNOW."""
    use_malloc_for_arrow()
    from clvcast.console import format_demo
    from clvcast.jobs import demo

    result = demo(args.output_dir, store=args.tracking_uri, progress=_progress(args))
    _print(args, lambda: format_demo(result))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "rfm": cmd_rfm,
    "forecast": cmd_forecast,
    "churn": cmd_churn,
    "train": cmd_train,
    "predict": cmd_predict,
    "report": cmd_report,
    "demo": cmd_demo,
}


def _print_warnings(caught: list[warnings.WarningMessage], verbose: bool) -> None:
    """clvcast's own warnings, each text once; others (numpy, pandas) only with --verbose.

    A raw library warning ("invalid value encountered in divide") tells a marketer nothing;
    whatever it means for the scores is clvcast's job to say in its own words.
    """
    from clvcast.errors import WARNINGS

    shown = set()
    for message in caught:
        text = str(message.message)
        if text in shown:
            continue
        shown.add(text)
        if issubclass(message.category, WARNINGS):
            print(f"clvcast: warning: {text}", file=sys.stderr)
        elif verbose:
            print(
                f"clvcast: debug: {message.category.__name__} from {message.filename}:"
                f"{message.lineno}: {text}",
                file=sys.stderr,
            )


def _error_line(exc: ClvcastError, args: argparse.Namespace, parser: Any) -> str:
    """The error's line; a setting outside its limits is named by the command's option."""
    from clvcast.limits import ParameterError

    if isinstance(exc, ParameterError) and parser is not None:
        option = _option_of(parser, args.command, exc.name)
        if option:
            value = f"{exc.value:g}" if isinstance(exc.value, float) else exc.value
            return f"{option} {value}: use {exc.rule}."
    return str(exc)


def _option_of(parser: argparse.ArgumentParser, command: str, dest: str) -> str | None:
    """The option of ``command`` whose value lands in ``dest``."""
    for action in parser._actions:  # argparse keeps no public index of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices[command]._actions:
                if sub.dest == dest and sub.option_strings:
                    return sub.option_strings[-1]
    return None


def run(
    handler: Callable[[argparse.Namespace], int],
    args: argparse.Namespace,
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """Run one command; turn clvcast errors into one stderr line and an exit code."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for noisy in ("lifetimes", "autograd", "mlflow"):
            warnings.filterwarnings("ignore", module=noisy)
        try:
            code = handler(args)
        except ClvcastError as exc:
            if args.verbose:
                traceback.print_exc()
            print(f"clvcast: error: {_error_line(exc, args, parser)}", file=sys.stderr)
            code = exc.exit_code
        except KeyboardInterrupt:
            print("clvcast: interrupted; outputs were not changed.", file=sys.stderr)
            code = 130
        except MemoryError:
            if args.verbose:
                traceback.print_exc()
            print(
                "clvcast: error: out of memory; outputs were not changed. Process the log in "
                "smaller pieces (--chunk-contacts) or on a machine with more memory.",
                file=sys.stderr,
            )
            code = 1
        except BrokenPipeError:  # the reader of our output went away (`| head`)
            code = 141
        except OSError as exc:  # the environment: disk full, permissions, a vanished file
            if args.verbose:
                traceback.print_exc()
            print(f"clvcast: error: {_os_problem(exc)}", file=sys.stderr)
            code = 1
        except Exception as exc:  # a bug: still one line unless --verbose
            if args.verbose:
                traceback.print_exc()
            print(
                f"clvcast: internal error: {type(exc).__name__}: {exc} "
                "(run again with --verbose for the traceback and report it)",
                file=sys.stderr,
            )
            code = 1
    if not args.quiet:
        _print_warnings(caught, args.verbose)
    return code


def _os_problem(exc: OSError) -> str:
    """One line for an operating-system error, with what to do."""
    where = f" ({exc.filename})" if exc.filename else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free some space or write elsewhere"
    elif isinstance(exc, PermissionError):
        advice = "check the permissions"
    elif isinstance(exc, IsADirectoryError):
        advice = "give a file name, not a folder"
    else:
        advice = "check the path and the disk"
    return f"{reason}{where}; outputs were not changed: {advice}."


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:  # read by MLflow when it is first imported
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    # MLflow writes a link to each run of a server store on stdout; the command prints the
    # run itself, and --json must stay JSON.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # A scoring job must not call out to the internet: MLflow's usage telemetry stays off
    # unless the user turned it on.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.verbose:  # clvcast's own debug lines; not every font matplotlib looked at
        logging.getLogger("clvcast").setLevel(logging.DEBUG)
        for chatty in ("matplotlib", "PIL"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    else:  # MLflow's own progress chatter; errors still surface as ours
        for noisy in ("mlflow", "alembic", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    return run(COMMANDS[args.command], args, parser)


def console_main() -> int:
    """The ``clvcast`` command: :func:`main`, then an exit without the interpreter's teardown.

    See :mod:`clvcast.process_exit` (0.07-0.1 s of every command); it returns the exit code
    when the usual exit is needed. Usage errors and ``--help`` exit from argparse as usual.

    The process's NumPy gets the kernel's ordinary 4 KB pages: by default it asks for 2 MB
    pages for every large array, and on virtual machines whose host backs guest memory
    only when it is first touched (as on this project's test machine) a fresh 2 MB page is
    slow and its cost varies from hour to hour: ``np.diff`` and one ``astype`` of 10M
    values took 1.6 s on fresh 2 MB pages against 0.06-0.17 s. On 10M rows (1M contacts),
    alternated pairs: ``train`` 67.2 s against 81.6 s (two), ``predict`` 16.2 s against
    18.6 s (three); ``rfm`` and ``forecast`` are the same either way. Set before NumPy is
    imported; a user's ``NUMPY_MADVISE_HUGEPAGE`` wins.
    """
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    code = main()
    exit_quickly(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
