"""Which dataset a command works on: ``--data``, else ``$ABAW_DATA``, else the default synthetic dataset.

The default synthetic dataset (``tiny``, seed 0) is generated on first use under ``$ABAW_HOME`` (default
``./.abaw``); generation is atomic, so an interrupted first use leaves nothing that a later run would trust.
"""

import os
from pathlib import Path

DEFAULT_SEED = 0
DEFAULT_SCALE = "tiny"


def harness_home() -> Path:
    """Folder for the harness's own files (default dataset, store): ``$ABAW_HOME`` or ``./.abaw``."""
    return Path(os.environ.get("ABAW_HOME", ".abaw"))


def default_synthetic_root(scale: str = DEFAULT_SCALE) -> Path:
    """The folder of the synthetic dataset at ``scale`` (seed 0) under ``$ABAW_HOME``; its name carries the generator
    version, so a new generator makes a new one."""
    from harness.data.synthetic import GENERATOR_VERSION

    return harness_home() / "data" / f"synthetic-{scale}-seed{DEFAULT_SEED}-v{GENERATOR_VERSION}"


def synthetic_dataset(scale: str = DEFAULT_SCALE) -> Path:
    """:func:`default_synthetic_root` of ``scale``, generated there first when missing (``small``: minutes, once)."""
    root = default_synthetic_root(scale)
    if not root.is_dir():
        from harness.data.synthetic import generate
        from harness.progress import bar

        with bar() as progress:
            job = progress.add_task(f"generating the {scale} synthetic dataset", total=None)
            generate(
                root, seed=DEFAULT_SEED, scale=scale, progress=lambda d, t: progress.update(job, completed=d, total=t)
            )
    return root


def resolve_root(data: Path | None) -> tuple[Path, bool]:
    """The dataset root to use and whether it is the default synthetic one (generated here when missing)."""
    if data is not None:
        return Path(data), False
    if os.environ.get("ABAW_DATA"):
        return Path(os.environ["ABAW_DATA"]), False
    return synthetic_dataset(), True
