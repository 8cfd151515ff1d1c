"""The ``mlxtune`` command: ``demo``, ``sweep``, ``info``, ``compare``, ``report`` and ``model``.

The commands run the same engine and reports as the notebook.

A thin front end: it parses arguments, calls :func:`mlxtune.sweep.sweep` and the workloads, and
prints. Exit codes: 0 done, 1 the work failed or stopped early (what was measured is still
printed and written; for ``compare``: a gate failed), 2 the command line was wrong (checked before
anything is measured, output paths included), 3 a file could not be written after the work (the
result is then saved elsewhere, and the message says where), 130 interrupted before any result.
Every error is one line on stderr, never a traceback; text from users and workloads is printed
with control characters escaped. Nothing here imports IPython or widgets, so
the command runs on hosts without them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mlxtune._argtypes import cache_limits, fraction, seconds, size, whole_number
from mlxtune._argtypes import repeats as repeats_type
from mlxtune.decision import TOLERANCE
from mlxtune.paired import DESIGNS, Blocks
from mlxtune.remote import RemoteError
from mlxtune.sweep import PlanError, SweepError
from mlxtune.units import ACCEPTED_FORMS, format_size
from mlxtune.view import terminal_text

if TYPE_CHECKING:
    from mlxtune.fleet_result import FleetResult
    from mlxtune.result import SweepResult

__all__ = ["main"]

PROG = "mlxtune"
#: Exit code when the work was done but a file could not be written (see the module docstring).
EXIT_WRITE_FAILED = 3
DEFAULT_LIMITS = "0,1MB,16MB,unlimited"
DEMO_LIMITS = "0,1MB,4MB,32MB,unlimited"


class UsageError(Exception):
    """What was typed cannot be used (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (with a pointer to ``--help``) and exits 2.

    Options are never abbreviated: ``--cache-limit 1MB`` (the magic's spelling) would otherwise be read
    as ``--cache-limits``, a one-limit sweep that cannot compare anything."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# -- argument types: bad values become usage errors (sizes and counts: mlxtune._argtypes) ------


def _scalar(text: str) -> Any:
    """A grid value as typed: int, then float, else the string itself."""
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text)
    return text


def _grid_axis(text: str) -> tuple[str, list[Any]]:
    name, sep, values = text.partition("=")
    name = name.strip()
    items = [_scalar(v.strip()) for v in values.split(",") if v.strip()]
    if not sep or not name.isidentifier() or not items:
        raise argparse.ArgumentTypeError(f"invalid grid axis {text!r}: expected NAME=V1,V2 like batch=1,4")
    return name, items


# -- the parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``mlxtune`` parser: one subparser per command, each with its handler in ``func``."""
    parser = _Parser(prog=PROG, description="Measure how MLX's cache limit trades speed for memory.")
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    _add_demo(commands)
    _add_sweep(commands)
    _add_info(commands)
    _add_compare(commands)
    _add_report(commands)
    _add_model(commands)
    return parser


def _add_common_sweep_options(parser: argparse.ArgumentParser, *, repeats: int | str, limits: str) -> None:
    parser.add_argument("--cache-limits", type=cache_limits, default=cache_limits(limits), metavar="SIZES",
                        help=f"comma-separated cache limits (default {limits}); sizes: {ACCEPTED_FORMS}")
    parser.add_argument("--repeats", type=repeats_type, default=repeats,
                        help=f"measured runs per point (cycles of blocks, paired), or auto: until the "
                        f"recommendation is decided (default {repeats})")
    parser.add_argument("--max-runs", type=whole_number(1), default=None, metavar="N",
                        help="with --repeats auto: at most this many runs per workload point "
                        "(default: 10 rounds)")
    parser.add_argument("--max-seconds", type=seconds, default=None, metavar="SECONDS",
                        help="with --repeats auto: stop starting rounds after this long")
    parser.add_argument("--tolerance", type=fraction, default=TOLERANCE, metavar="FRACTION",
                        help="how much slower than the best a recommended limit may be, e.g. 0.05 or 5%% "
                        "(default 5%%)")
    parser.add_argument("--warmup", type=whole_number(0), default=1, help="unmeasured runs first (default 1)")
    parser.add_argument("--budget", type=size, default=None, metavar="SIZE",
                        help="memory budget the recommended point's footprint must fit")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress bar (default: when stderr is a terminal)")
    parser.add_argument("--design", choices=DESIGNS, default="auto",
                        help="paired: switch the limit between blocks of steps inside each run and compare "
                        "within it (for models and step workloads); runs: time whole runs; auto: paired "
                        "where the workload runs in steps (default auto)")
    parser.add_argument("--block-steps", type=whole_number(1), default=Blocks.block, metavar="N",
                        help=f"paired: timed steps per block (default {Blocks.block})")
    parser.add_argument("--settle-steps", type=whole_number(0), default=Blocks.settle, metavar="N",
                        help=f"paired: untimed steps after each switch (default {Blocks.settle})")


def _add_lm_options(parser: argparse.ArgumentParser, *, prompt: int, gen: int) -> None:
    parser.add_argument("--prompt-tokens", type=whole_number(1), default=prompt, help=f"default {prompt}")
    parser.add_argument("--gen-tokens", type=whole_number(1), default=gen, help=f"default {gen}")
    parser.add_argument("--mlx-cache-clearing", choices=("keep", "avoid"), default="keep",
                        help="keep mlx-lm's own cache clearing during generation, or avoid it (default keep)")


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="build a small model, sweep cache limits, recommend one",
                               description="Build a small random-weight model (once), sweep a handful of "
                               "cache limits over its generation, print the summary and a recommendation, "
                               "and write the results.")
    demo.add_argument("--out-dir", type=Path, default=Path("mlxtune-out"), help="default ./mlxtune-out")
    demo.add_argument("--size", choices=("tiny", "small"), default="small", help="model size (default small)")
    _add_common_sweep_options(demo, repeats="auto", limits=DEMO_LIMITS)
    demo.set_defaults(demo_seconds=60.0)  # with --repeats auto: a minute at most, then the answer so far
    _add_lm_options(demo, prompt=64, gen=32)
    demo.set_defaults(func=cmd_demo)


def _add_sweep(commands: argparse._SubParsersAction) -> None:
    sweep = commands.add_parser(
        "sweep", help="sweep cache limits (and a grid) over a model or a workload",
        description="Sweep cache limits over a model's generation (--model) or any workload "
        "(--workload module:function, a function returning a callable workload; with --grid it is called "
        "with each grid point as keyword arguments).",
    )
    target = sweep.add_mutually_exclusive_group(required=True)
    target.add_argument("--model", metavar="PATH_OR_ID", help="a model folder or id that mlx_lm.load reads")
    target.add_argument("--workload", metavar="MODULE:FUNCTION",
                        help="e.g. mlxtune.workloads:allocator_churn")
    _add_common_sweep_options(sweep, repeats="auto", limits=DEFAULT_LIMITS)
    sweep.add_argument("--grid", type=_grid_axis, action="append", default=[], metavar="NAME=V1,V2",
                       help="another axis, repeatable: dtype=float16,q4 (models), memory_limit=1GB,2GB, ...")
    _add_lm_options(sweep, prompt=512, gen=128)
    sweep.add_argument("--batch", type=whole_number(1), default=1,
                       help="sequences per run (--model; default 1)")
    sweep.add_argument("--label", default=None, help="name of the result in tables and reports")
    sweep.add_argument("--seed", type=int, default=0, help="seed of the run order (default 0)")
    sweep.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS", help="limit per run")
    sweep.add_argument("--out", type=Path, default=None, metavar="FILE.json", help="write the result as JSON")
    sweep.add_argument("--csv", type=Path, default=None, metavar="FILE.csv", help="write the runs as CSV")
    where = sweep.add_mutually_exclusive_group()
    where.add_argument("--isolate", action="store_true",
                       help="run in a fresh ipyparallel engine process, not in this one (mlx-memtune[fleet])")
    where.add_argument("--cluster", metavar="PROFILE",
                       help="sweep on the engines of this running ipyparallel profile, one per host, and "
                       "recommend one limit for all (mlx-memtune[fleet])")
    sweep.add_argument("--engines", choices=("host", "all"), default="host",
                       help="--cluster: one engine per host (default), or every engine")
    sweep.add_argument("--one-at-a-time", action="store_true",
                       help="--cluster: measure one host after another, not at the same time")
    sweep.set_defaults(func=cmd_sweep)


def _add_model(commands: argparse._SubParsersAction) -> None:
    model = commands.add_parser(
        "model", help="build the random-weight test model (once) and print its folder",
        description="Build a small llama-style model with random weights and a locally trained tokenizer (no "
        "download), or reuse the one built before, and print its folder: "
        '`mlxtune sweep --model "$(mlxtune model)"` tries a sweep anywhere.',
    )
    model.add_argument("--size", choices=("tiny", "small"), default="tiny", help="model size (default tiny)")
    model.set_defaults(func=cmd_model)


def _add_info(commands: argparse._SubParsersAction) -> None:
    info = commands.add_parser("info", help="backend, device, versions and the limits in force")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_info)


def _gate(text: str) -> Any:
    from mlxtune.gates import parse_gate

    try:
        return parse_gate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_compare(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare", help="compare two saved results; fail on regressions (a CI gate)",
        description="Compare NEW against the baseline BASE (JSON files written by `mlxtune sweep --out` or "
        "to_json) at every grid point they share. A difference counts as a change only when it beats both "
        "--factor and the noise of the runs. Exit 1 when a --fail-if gate fails, 0 otherwise, 2 for bad "
        "files or arguments.",
    )
    compare.add_argument("base", type=Path, help="baseline results (JSON)")
    compare.add_argument("new", type=Path, help="results to check against it (JSON)")
    compare.add_argument("--fail-if", dest="gates", type=_gate, action="append", default=[], metavar="GATE",
                         help='repeatable; fails when a real change crosses it: "throughput<-5%%", '
                         '"peak>+10%%", "footprint>+5%%"')
    compare.add_argument("--factor", type=float, default=1.05,
                         help="smallest ratio reported as a change (default 1.05)")
    compare.add_argument("--html", type=Path, default=None, metavar="FILE", help="write an HTML comparison")
    compare.add_argument("--md", type=Path, default=None, metavar="FILE", help="write a Markdown comparison")
    compare.set_defaults(func=cmd_compare)


def _add_report(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="render saved results as HTML and Markdown reports",
                                 description="Render a saved result (JSON) as a self-contained HTML report "
                                 "and/or Markdown with its figures beside it; with neither flag, the HTML "
                                 "report is written next to the JSON file.")
    report.add_argument("results", type=Path, help="results file (JSON)")
    report.add_argument("--html", type=Path, default=None, metavar="FILE", help="HTML report to write")
    report.add_argument("--md", type=Path, default=None, metavar="FILE", help="Markdown report to write")
    report.add_argument("--budget", type=size, default=None, metavar="SIZE",
                        help="memory budget the recommended point's footprint must fit")
    report.set_defaults(func=cmd_report)


# -- commands ---------------------------------------------------------------------------------


def cmd_model(args: argparse.Namespace) -> int:
    """Print the folder of the built-in random-weight model, building it the first time."""
    from mlxtune.workloads import tiny_model

    _say(str(tiny_model(size=args.size)))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print where measurements would be taken and the limits in force."""
    from mlxtune import memory
    from mlxtune.environment import environment

    facts = environment()
    now = memory.snapshot()
    facts.update(cache_limit=now.cache_limit, memory_limit=now.memory_limit, wired_limit=now.wired_limit,
                 active_memory=now.active, cache_memory=now.cache)
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    sizes = {"device_memory", "system_memory", "cache_limit", "memory_limit", "wired_limit", "active_memory",
             "cache_memory"}
    width = max(map(len, facts))
    for key, value in facts.items():
        shown = f"{format_size(value)} ({value})" if key in sizes else value
        print(f"{key.replace('_', ' '):<{width}}  {shown}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Sweep a model or a workload and print the summary and the recommendation."""
    outputs = _outputs(("--out", args.out, "to_json"), ("--csv", args.csv, "to_csv"))
    settings = _sweep_options(args)  # checked before any workload is built
    if not args.cluster and (args.engines != "host" or args.one_at_a_time):
        raise UsageError("--engines and --one-at-a-time say how a --cluster sweep runs: give --cluster too")
    grid = _grid(args.grid)
    gridded = any(name != "memory_limit" for name in grid)  # sweep then wants a factory of grid points
    if args.model:
        from mlxtune.workloads import lm, lm_factory
        from mlxtune.workloads.named import model_reference

        try:
            model = model_reference(args.model)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        options = dict(prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens, batch=args.batch,
                       mlx_cache_clearing=args.mlx_cache_clearing)
        workload = lm_factory(model, **options) if gridded else lm(model, **options)
        label = args.label or Path(model).name
    else:
        workload = _workload_from_spec(args.workload, gridded)
        label = args.label or args.workload.partition(":")[2]
        if args.isolate or args.cluster:
            workload = args.workload  # the engines import it themselves
    options = dict(label=label, grid=grid or None, seed=args.seed, timeout=args.timeout)
    if args.cluster:
        fleet = _run_fleet(workload, args, **settings, **options)
        _print_fleet(fleet, args.budget, args.tolerance)
        return _write(fleet, outputs, "mlxtune sweep") or _fleet_exit_code(fleet, "mlxtune sweep")
    try:
        result = _run_sweep(workload, **settings, **options, **({"isolate": True} if args.isolate else {}))
    except SweepError as exc:  # e.g. its engine died: the runs it sent back are shown and saved, incomplete
        result = exc.result
    _print_result(result, args.budget, args.tolerance)
    return _write(result, outputs, "mlxtune sweep") or _exit_code(result, "mlxtune sweep")


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the model if missing, sweep a handful of limits, print, and write JSON and CSV."""
    from mlxtune.workloads import lm, tiny_model

    started = time.perf_counter()
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use --out-dir {args.out_dir}: {exc.strerror or exc}") from None
    wanted = [(None, args.out_dir / f"demo.{kind}", f"to_{kind}") for kind in ("json", "csv", "html")]
    outputs = _outputs(*wanted)
    settings = _sweep_options(args)
    print(f"Model: {args.size} random-weight llama (built once, then reused)...", flush=True)
    path = tiny_model(size=args.size)
    print(f"  {path}")
    workload = lm(str(path), prompt_tokens=args.prompt_tokens, gen_tokens=args.gen_tokens,
                  mlx_cache_clearing=args.mlx_cache_clearing)
    limits = ", ".join(format_size(v) for v in args.cache_limits)
    rounds, how = ("runs", "") if args.design == "runs" else ("cycles", ", switching inside each generation")
    runs = f"{rounds} until the answer is decided" if args.repeats == "auto" else f"{args.repeats} {rounds}"
    print(f"Sweeping cache limits {limits}{how}: {runs} after {args.warmup} warm-up, prompt "
          f"{args.prompt_tokens} tokens, generating {args.gen_tokens}...", flush=True)
    result = _run_sweep(workload, **settings, label=f"demo-{args.size}", model=str(path))
    _print_result(result, args.budget, args.tolerance)
    print(f"\nFiles ({time.perf_counter() - started:.0f}s in all):")
    return _write(result, outputs, "mlxtune demo", budget=args.budget) or _exit_code(result, "mlxtune demo")


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two saved results, print what changed, write reports, check the gates."""
    from mlxtune.compare import comparison_text, write_comparison_html, write_comparison_markdown
    from mlxtune.comparison import check_gates, compare
    from mlxtune.view import gate_result_text

    _outputs(("--html", args.html, ""), ("--md", args.md, ""), inputs=(args.base, args.new))
    base, new = _load_results(args.base, args.new)
    try:
        frame = compare(base, new, factor=args.factor)
        results = check_gates(frame, args.gates)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _say(comparison_text(frame))
    for result in results:
        _say(gate_result_text(result))
    for path, writer in ((args.html, write_comparison_html), (args.md, write_comparison_markdown)):
        if path:
            try:
                _say(f"wrote {writer(base, new, path, gates=args.gates, factor=args.factor)}")
            except OSError as exc:
                _say(f"{PROG} compare: error: {exc}", sys.stderr)
                return EXIT_WRITE_FAILED
    failed = [str(r.gate) for r in results if not r.passed]
    if failed:
        _say(f"{PROG} compare: {len(failed)} of {len(results)} gates failed: {', '.join(failed)}", sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Render a saved result as HTML and/or Markdown."""
    html = args.html if args.html or args.md else args.results.with_suffix(".html")
    outputs = _outputs(("--html", html, "to_html"), ("--md", args.md, "to_markdown"), inputs=(args.results,))
    (result,) = _load_results(args.results)  # one sweep, or one per host (a fleet)
    return _write(result, outputs, "mlxtune report", budget=args.budget, rescue=False)


# -- helpers ----------------------------------------------------------------------------------


def _load_results(*paths: Path) -> list[SweepResult | FleetResult]:
    """Saved results; a missing, unreadable or invalid file is a usage error naming it."""
    from mlxtune.fleet_result import load

    results = []
    for path in paths:
        try:
            results.append(load(path))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        except OSError as exc:
            raise UsageError(f"{path}: {exc.strerror or exc}") from None
    return results


def _grid(axes: Sequence[tuple[str, list[Any]]]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for name, values in axes:
        if name in grid:
            raise UsageError(f"grid axis {name!r} given twice: put all its values in one --grid {name}=...")
        grid[name] = values
    return grid


def _workload_from_spec(spec: str, gridded: bool) -> Callable[..., Any]:
    """``module:function`` -> the workload (no grid) or a factory taking the grid point (with one)."""
    from mlxtune.workloads.named import import_factory

    try:
        return import_factory(spec, gridded, "--workload")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _sweep_options(args: argparse.Namespace) -> dict[str, Any]:
    """What every sweep command passes on to the engine, from the common options."""
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.repeats != "auto" and (args.max_runs is not None or args.max_seconds is not None):
        raise UsageError("--max-runs and --max-seconds bound an adaptive sweep: give --repeats auto too")
    max_seconds = args.max_seconds if args.max_seconds is not None else getattr(args, "demo_seconds", None)
    adaptive = {"max_runs": args.max_runs, "max_seconds": max_seconds} if args.repeats == "auto" else {}
    return dict(cache_limits=args.cache_limits, repeats=args.repeats, warmup=args.warmup, progress=progress,
                tolerance=args.tolerance, budget=args.budget, design=args.design,
                blocks=Blocks(block=args.block_steps, settle=args.settle_steps), **adaptive)


def _run_sweep(workload: Callable[..., Any] | str, **options: Any) -> SweepResult:
    from mlxtune.sweep import sweep

    return sweep(workload, **options)


def _run_fleet(workload: Callable[..., Any] | str, args: argparse.Namespace, **options: Any) -> FleetResult:
    from mlxtune import fleet

    return fleet.sweep(args.cluster, workload, engines=args.engines, parallel=not args.one_at_a_time,
                       **options)


#: A file a command writes, and the SweepResult method that writes it ("" for compare's own writers).
_Output = tuple[Path, str]


def _outputs(*wanted: tuple[str | None, Path | None, str], inputs: Sequence[Path] = ()) -> list[_Output]:
    """The files a command will write, checked before any work (a usage error otherwise): each can be
    written (:func:`mlxtune.files.check_writable`) and none is one of the command's inputs."""
    from mlxtune.files import WriteError, check_writable

    outputs = []
    for option, path, writer in wanted:
        if path is None:
            continue
        where = f"{option} {path}" if option else str(path)
        for source in inputs:
            if _same_file(path, source):
                raise UsageError(f"{where} would overwrite the input {source}: choose another file name")
        try:
            check_writable(path)
        except WriteError as exc:
            raise UsageError(f"{option}: {exc}" if option else str(exc)) from None
        outputs.append((path, writer))
    return outputs


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


def _write(result: SweepResult | FleetResult, outputs: list[_Output], command: str, *, rescue: bool = True,
           **options: Any) -> int:
    """Write each output (``options`` go to the reports); 0, or 3 when one failed.

    A failure is said in one line, and (``rescue``) the result is saved as JSON where it can be, so
    nothing measured is lost: the current folder, else the system's temporary folder.
    """
    failed = False
    for path, writer in outputs:
        extra = options if writer in ("to_html", "to_markdown") else {}
        try:
            _say(f"wrote {getattr(result, writer)(str(path), **extra)}")
        except OSError as exc:
            failed = True
            _say(f"{command}: error: {exc}", sys.stderr)
    if failed and rescue:
        _say(f"{command}: {_rescue(result)}", sys.stderr)
    return EXIT_WRITE_FAILED if failed else 0


def _rescue(result: SweepResult | FleetResult) -> str:
    """Save ``result`` as JSON in the first folder that takes it; says where (or that none did)."""
    import tempfile

    name = f"mlxtune-rescued-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.json"
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            return f"the result was saved in {result.to_json(str(folder / name))} instead"
        except OSError:
            continue
    return "the result could not be saved anywhere; it is lost when this command ends"


def _say(text: str, stream: Any = None) -> None:
    """Print a line for people: control characters in user and workload text are shown escaped."""
    print(terminal_text(text), file=stream or sys.stdout)


def _exit_code(result: SweepResult, command: str) -> int:
    """0 when every planned run was measured without error; else 1, with one line saying why."""
    if result.failed_runs:
        _say(f"{command}: error: {result.failed_runs} of {len(result.runs)} runs failed; "
             f"first: {result.first_error}", sys.stderr)
        return 1
    if not result.complete:
        _say(f"{command}: error: incomplete: {result.stop_reason}", sys.stderr)
        return 1
    return 0


def _print_result(result: SweepResult, budget: int | None, tolerance: float) -> None:
    from mlxtune.present import text_report

    _say("\n" + text_report(result, budget, tolerance))


def _print_fleet(fleet: FleetResult, budget: int | None, tolerance: float) -> None:
    from mlxtune.present import fleet_text_report

    _say(fleet_text_report(fleet, budget, tolerance))


def _fleet_exit_code(fleet: FleetResult, command: str) -> int:
    """0 when every host measured every planned run; else 1, with one line per reason."""
    code = 0
    for host, why in fleet.failures.items():
        _say(f"{command}: error: {host}: {why}", sys.stderr)
        code = 1
    for host, result in fleet.results.items():
        code = _exit_code(result, f"{command}: {host}") or code
    return code


# -- entry point ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")  # no "PyTorch was not found" notice
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed in one line
        return exc.code if isinstance(exc.code, int) else 2
    command = f"{PROG} {args.command}"
    try:
        code = args.func(args)
        sys.stdout.flush()  # inside the try, so a closed pipe is handled here, not at exit
        return code
    except (UsageError, PlanError) as exc:
        _say(f"{command}: error: {exc}", sys.stderr)
        return 2
    except RemoteError as exc:  # no cluster to run on, or an isolated sweep's engine gave nothing back
        _say(f"{command}: error: {exc}", sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`mlxtune info | head`): nothing left to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # one line instead of a traceback, by design
        from mlxtune.record import describe_error

        _say(f"{command}: error: {describe_error(exc)}", sys.stderr)
        return 1
