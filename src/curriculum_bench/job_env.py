"""Where a workflow job finds this package: the directory its PYTHONPATH gets (no torch import).

The Snakemake process imports curriculum_bench (installed: `pip install -e <clone>`, or
`pip install git+<repository URL>`), and every job must run the same code, also in a conda
env from envs/ that holds only the third-party dependencies (`--use-conda`). A checkout's
`src/` holds the package alone, so it goes on the job's PYTHONPATH as it is; an installed
copy sits among other packages in site-packages, so the job gets a directory holding only a
link to it, under the working directory's `.snakemake/` (on the filesystem that cluster jobs share).
"""

from __future__ import annotations

from pathlib import Path

import curriculum_bench

LINK_DIR = Path(".snakemake/curriculum_bench_code")


def job_pythonpath(workdir: Path | str = ".") -> str:
    """An absolute directory whose only package is this curriculum_bench."""
    package = Path(curriculum_bench.__file__).resolve().parent
    root = package.parent
    if root.name == "src" and (root.parent / "pyproject.toml").exists():
        return str(root)
    link_dir = (Path(workdir) / LINK_DIR).resolve()
    link = link_dir / package.name
    if not (link.is_symlink() and link.resolve() == package):
        link_dir.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(package, target_is_directory=True)
    return str(link_dir)
