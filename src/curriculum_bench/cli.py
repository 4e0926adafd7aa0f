"""Command line: `python -m curriculum_bench {prepare,derive,train,probe,forgetting-stats,select,
table,figure,index,list,plan,dvc-record,dvc-restore}`.

Each Snakemake rule makes exactly one of these calls; all logic stays in the package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .config import ConfigError
from .errors import MissingInputFile, UserError, read_json_file, read_json_lines
from .train.config import Run

# The keys of a run's metrics.json that the linear probe reads (contrastive.linear_probe.probe_run).
PROBE_KEYS = (
    "run",
    "study",
    "dataset",
    "model",
    "variant",
    "seed",
    "num_train",
    "num_eval",
    "train_images_per_s",
    "peak_mem_mb",
    "device_name",
    "speed",
    "dataset_source",
    "final_epoch",
    "eval_split",
    "final_acc",
    "wall_s",
)


class UsageError(UserError):
    """A command-line argument that is wrong, found once the command runs: refused as argparse refuses one."""


def parse_json(text: str) -> dict:
    """An argument's type: a JSON object, inline or as @file.json; anything else is refused (usage, exit 2)."""
    where = "the argument"
    try:
        if text.startswith("@"):
            where = text[1:]
            text = Path(where).read_text()
        value = json.loads(text)
    except OSError as err:
        raise argparse.ArgumentTypeError(
            f"{where}: cannot read it ({err.strerror or err}); give the JSON inline or @ an existing file"
        ) from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise argparse.ArgumentTypeError(f"{where} is not JSON ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{where} is JSON but not an object {{...}}: a {type(value).__name__}")
    return value


def parse_run_config(text: str) -> Run:
    """An argument's type: the run config a rule wrote, checked and typed once (train.config.Run)."""
    try:
        return Run.from_dict(parse_json(text))
    except ConfigError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def device_name(text: str) -> str:
    """An argument's type: a torch device this machine has (checked before any data is loaded)."""
    import torch

    available = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    if torch.backends.mps.is_available():
        available.append("mps")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device name; available here: {', '.join(available)}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(
            f"{text}: CUDA is not available on this machine; available: {', '.join(available)}"
        )
    if (
        device.type not in ("cpu", "cuda", "mps")
        or (device.type == "mps" and "mps" not in available)
        or (device.type == "cuda" and device.index is not None and f"cuda:{device.index}" not in available)
    ):
        raise argparse.ArgumentTypeError(f"{text}: no such device on this machine; available: {', '.join(available)}")
    return text


def cmd_prepare(args) -> None:
    from .data.prepare import prepare

    prepare(args.dataset, args.spec, args.out)


def cmd_derive(args) -> None:
    from .data.derive import derive

    derive(args.dataset, args.spec, args.base, args.out)


def cmd_train(args) -> None:
    import torch

    from .train.engine import Preempted, fit
    from .train.speed import keep_freed_memory

    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        fit(
            args.run_config,
            args.data,
            args.out,
            args.checkpoint,
            device=args.device,
            stop_after_epoch=args.stop_after_epoch,
            placement=args.data_placement,
            loader_workers=args.loader_workers,
            compile_cache=args.compile_cache,
        )
    except Preempted:
        # Non-zero, so that Snakemake's retries (or SLURM's requeue) run it again to resume.
        sys.exit(128 + 15)


def cmd_probe(args) -> None:
    from .contrastive.linear_probe import probe_run
    from .train.speed import keep_freed_memory

    keep_freed_memory()
    read_json_file(args.run_dir / "metrics.json", "the pretraining run's metrics", keys=PROBE_KEYS)
    if not (args.run_dir / "final_model.pt").is_file():
        raise MissingInputFile(
            args.run_dir / "final_model.pt",
            "no final model of the pretraining run",
            "rerun its training (snakemake does when its metrics.json is deleted)",
        )
    probe_run(args.run_dir, args.data, args.out, args.probe, device=args.device)


def cmd_table(args) -> None:
    from .report.table import write_table

    write_table(args.metrics, args.study, args.out_md, args.out_csv, args.reported, args.options, args.out_html)


def cmd_figure(args) -> None:
    from .report.figures import figure_names, write_figure

    if args.name not in figure_names(args.study):
        raise UsageError(
            f"argument --name: no figure {args.name!r} for study {args.study!r}; "
            f"have {', '.join(figure_names(args.study))}"
        )
    for path in args.metrics:
        read_json_file(path, "run metrics")
        read_json_lines(path.parent / "history.jsonl", "the run's per-epoch history")
    write_figure(args.study, args.name, args.metrics, args.out)


def cmd_index(args) -> None:
    from .report.index import write_index

    write_index(
        args.studies, args.config_files, args.out, fabricated_data=args.fabricated_data, reported_path=args.reported
    )


def cmd_claims(args) -> None:
    from .report.claims import write_claims

    write_claims(
        args.planned["claims"],
        args.metrics,
        args.out_md,
        args.out_csv,
        args.out_html,
        fabricated_data=args.planned.get("fabricated_data", False),
    )


def cmd_forgetting_stats(args) -> None:
    from .coreset.forgetting_stats import write_forgetting_stats, write_precomputed_stats

    if bool(args.runs) == bool(args.precomputed) or bool(args.precomputed) != bool(args.store):
        raise UserError(
            "forgetting-stats: give either proxy runs' forgetting.npz files, or --precomputed FILE --store DIR"
        )
    if args.precomputed:
        write_precomputed_stats(args.precomputed, args.store, args.never_learned, args.out_npz, args.out_csv)
    else:
        write_forgetting_stats(args.runs, args.never_learned, args.out_npz, args.out_csv)


def cmd_select(args) -> None:
    from .config import config_from_dict
    from .coreset.select import SelectionConfig, write_selection

    cfg = config_from_dict(SelectionConfig, args.spec, where="selection")
    write_selection(args.stats, cfg, args.out, dataset=args.dataset)


def cmd_list(args) -> None:
    from .data.sources import SOURCES
    from .models import MODELS
    from .train.hooks import discover_methods

    for kind, registry in (("dataset sources", SOURCES), ("models", MODELS), ("methods", discover_methods())):
        print(f"{kind}: {', '.join(registry.names())}")


def cmd_plan(args) -> None:
    from .plan import main as plan_main

    # `--configfile a.yaml b.yaml hybrid` (nargs="+", as snakemake's): a study name is not a file.
    files = [f for f in args.configfile if os.path.exists(f) or not f.isidentifier()]
    protocol = None
    if args.check_protocol:
        from .protocol import PROTOCOL

        protocol = args.protocol or PROTOCOL
    status = plan_main(files, [f for f in args.configfile if f not in files] + args.studies, protocol)
    if status:
        sys.exit(status)


def cmd_progress(args) -> None:
    from .progress import main as progress_main

    progress_main(args.configfile, Path.cwd())


def cmd_dvc_record(args) -> None:
    from .versioning import VersioningError, record

    try:
        record(
            Path.cwd(),
            args.configfile,
            remote=args.remote,
            push=not args.no_push,
            commit_message=None if args.no_commit else args.message,
        )
    except VersioningError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def cmd_dvc_restore(args) -> None:
    from .versioning import VersioningError, restore

    try:
        restore(Path.cwd(), pull=not args.no_pull, cores=args.cores)
    except VersioningError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m curriculum_bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="build a dataset's canonical store under resources/")
    p.add_argument("--dataset", required=True, help="dataset name (a key of the config's `datasets`)")
    p.add_argument(
        "--spec", required=True, type=parse_json, help='JSON: {"source": ..., "test_fraction": ..., "split_seed": ...}'
    )
    p.add_argument("--out", required=True, type=Path, help="store directory")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("derive", help="build a subset / label-noise dataset from a prepared one")
    p.add_argument("--dataset", required=True, help="derived dataset name")
    p.add_argument(
        "--spec",
        required=True,
        type=parse_json,
        help='JSON: {"source": "derived", "from": ..., "subset": {...}, "label_noise": {...}}',
    )
    p.add_argument("--base", required=True, type=Path, help="store directory of the `from` dataset")
    p.add_argument("--out", required=True, type=Path, help="store directory to write")
    p.set_defaults(func=cmd_derive)

    p = sub.add_parser("train", help="train one run; resumes from its checkpoint")
    p.add_argument(
        "--run-config",
        required=True,
        type=parse_run_config,
        help="resolved run config as JSON or @file.json (see config.resolve_run)",
    )
    p.add_argument("--data", required=True, type=Path, help="dataset store directory")
    p.add_argument("--out", required=True, type=Path, help="run directory (metrics.json, history.jsonl)")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint file, kept outside --out")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    p.add_argument(
        "--device", default=None, type=device_name, help="cpu, cuda, cuda:1 ... (default: cuda if available)"
    )
    p.add_argument(
        "--data-placement",
        choices=["auto", "memory", "mmap"],
        default="auto",
        help="keep splits in (GPU) memory, memory-map them, or decide by size",
    )
    p.add_argument("--loader-workers", type=int, default=4, help="reader processes for mmap placement")
    p.add_argument(
        "--stop-after-epoch",
        type=int,
        default=None,
        help="end this session after N epochs, as a preemption would (for testing resume)",
    )
    p.add_argument(
        "--compile-cache",
        type=Path,
        default=os.environ.get("CURRICULUM_BENCH_COMPILE_CACHE"),
        help="folder that keeps torch.compile's kernels between jobs "
        "(default: $CURRICULUM_BENCH_COMPILE_CACHE; the workflow sets it)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("probe", help="linear evaluation of a finished contrastive pretraining run")
    p.add_argument("--run-dir", required=True, type=Path, help="run folder with metrics.json and final_model.pt")
    p.add_argument("--data", required=True, type=Path, help="dataset store directory")
    p.add_argument("--out", required=True, type=Path, help="metrics file to write (the table reads it)")
    p.add_argument(
        "--probe",
        type=parse_json,
        default=None,
        help="JSON: weight_decays, epochs, lr, batch_size, val_fraction, seed (ETH defaults)",
    )
    p.add_argument(
        "--device", default=None, type=device_name, help="cpu, cuda, cuda:1 ... (default: cuda if available)"
    )
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("table", help="tabulate a study's finished runs")
    p.add_argument("--study", required=True)
    p.add_argument("--out-md", required=True, type=Path)
    p.add_argument("--out-csv", required=True, type=Path)
    p.add_argument("--out-html", type=Path, default=None, help="the same table as a standalone HTML page")
    p.add_argument(
        "--reported", type=Path, default=None, help="YAML of reported numbers per study (config/reported.yaml)"
    )
    p.add_argument(
        "--options",
        type=parse_json,
        default=None,
        help="the study's `report:` section as JSON: per_class, at_epochs, baseline",
    )
    p.add_argument("metrics", nargs="+", type=Path, help="metrics.json of each run")
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("figure", help="draw one of a study's figures from its finished runs")
    p.add_argument("--study", required=True)
    p.add_argument("--name", required=True, help="figure name (report.figures.figure_names)")
    p.add_argument("--out", required=True, type=Path, help="PNG path; an SVG is written beside it")
    p.add_argument("metrics", nargs="+", type=Path, help="metrics.json of each run (its folder holds history.jsonl)")
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser(
        "claims", help="decide each source study's claims from the finished runs (paper_tables/claims.md)"
    )
    p.add_argument(
        "--planned",
        required=True,
        type=parse_json,
        help='JSON {"claims": [...]}: report.claims.plan_claims, each claim with its configurations',
    )
    p.add_argument("--out-md", required=True, type=Path)
    p.add_argument("--out-csv", required=True, type=Path)
    p.add_argument("--out-html", type=Path, default=None)
    p.add_argument("metrics", nargs="*", type=Path, help="metrics.json (or probe_metrics.json) of each run")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("index", help="write paper_tables/README.md: every table and figure, one line each")
    p.add_argument(
        "--studies",
        required=True,
        type=parse_json,
        help="JSON: study -> {datasets, models, variants, runs, rows, groups} (report.run_summary)",
    )
    p.add_argument("--config-files", nargs="+", required=True, help="the config files the workflow ran with")
    p.add_argument(
        "--reported", type=Path, default=None, help="config/reported.yaml: the index shows which numbers have a row"
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--fabricated-data", action="store_true", help="say above everything that the data are fabricated")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser(
        "dvc-record",
        help="version resources/, results/, paper_tables/ with DVC, "
        "commit the .dvc files and push (run in the repository root)",
    )
    p.add_argument(
        "--configfile",
        nargs="*",
        type=Path,
        default=[],
        help="the --configfile(s) snakemake ran with (none: config/config.yaml)",
    )
    p.add_argument(
        "--remote",
        default=None,
        help="DVC remote URL or folder to make the default (default: the configured one, "
        "else ~/.cache/curriculum-bench/dvc-remote)",
    )
    p.add_argument("--message", default="Record artifacts with DVC", help="git commit message")
    p.add_argument("--no-commit", action="store_true", help="stage the .dvc files, do not commit")
    p.add_argument("--no-push", action="store_true", help="do not push to the remote")
    p.set_defaults(func=cmd_dvc_record)

    p = sub.add_parser(
        "dvc-restore",
        help="dvc pull, verify, and mark the pulled artifacts up to "
        "date for Snakemake (no retraining); run in the repository root",
    )
    p.add_argument("--no-pull", action="store_true", help="files already pulled / checked out")
    p.add_argument("--cores", type=int, default=1)
    p.set_defaults(func=cmd_dvc_restore)
    p = sub.add_parser("forgetting-stats", help="coreset study: forgetting statistics from proxy runs")
    p.add_argument(
        "--never-learned",
        choices=["presentations", "max_plus_one"],
        default="max_plus_one",
        help="rank never-learned examples by their presentations (FE) or max + 1 (cifar_1k)",
    )
    p.add_argument("--out-npz", required=True, type=Path)
    p.add_argument("--out-csv", required=True, type=Path)
    p.add_argument("runs", nargs="*", type=Path, help="forgetting.npz of each proxy run")
    p.add_argument(
        "--precomputed",
        type=Path,
        default=None,
        help="instead of proxy runs: a statistics file with per-example forgetting_events and nr_correct "
        "(cifar_1k's torch.save format, or .npz)",
    )
    p.add_argument("--store", type=Path, default=None, help="with --precomputed: the dataset store (its train labels)")
    p.set_defaults(func=cmd_forgetting_stats)

    p = sub.add_parser("select", help="coreset study: choose a coreset (or removal set) from forgetting stats")
    p.add_argument("--stats", required=True, type=Path, help="forgetting_stats.npz")
    p.add_argument(
        "--spec",
        required=True,
        type=parse_json,
        help='JSON: {"method": ..., "size": ..., "tie_break": ..., "class_balanced": ..., "seed": ...}',
    )
    p.add_argument("--dataset", default="", help="dataset name, recorded in the selection file")
    p.add_argument("--out", required=True, type=Path, help="selection JSON (indices into the train split)")
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("list", help="list registered dataset sources, models and methods")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "plan",
        help="print each run's resolved settings (a diff against its study's baseline) "
        "and the run counts; refuse a config whose rows are not what they say",
    )
    p.add_argument(
        "--configfile",
        nargs="+",
        action="extend",
        default=[],
        help="config file(s) as given to snakemake, later ones merged over earlier (none: config/config.yaml)",
    )
    p.add_argument("studies", nargs="*", help="only these studies (default: every study)")
    p.add_argument(
        "--check-protocol",
        action="store_true",
        help="list every resolved setting that differs from the source protocol (config/protocol.yaml) "
        "and is not declared under studies.<study>.deviations; exit 1 if there is one",
    )
    p.add_argument("--protocol", type=Path, default=None, help="another protocol file (default: config/protocol.yaml)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "progress",
        help="runs finished, running (with their log's last line) and the time left "
        "for the whole workflow, from the finished runs' wall time (make run prints it every minute)",
    )
    p.add_argument(
        "--configfile",
        nargs="+",
        action="extend",
        default=[],
        help="config file(s) as given to snakemake (none: config/config.yaml)",
    )
    p.set_defaults(func=cmd_progress)

    for command in sub.choices.values():  # a UsageError is refused with the command's usage line
        command.set_defaults(refuse=command.error)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UsageError as err:
        args.refuse(str(err))  # exits 2
    except (ConfigError, UserError) as err:
        # Only errors in what the user gave (a config value, an input file); any other exception is
        # a bug and keeps its traceback.
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
