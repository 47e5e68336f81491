"""Which dataset a command uses: --data, then $ABAW_DATA, then the default synthetic one under $ABAW_HOME."""

from pathlib import Path

from harness.data.root import default_synthetic_root, resolve_root
from harness.data.synthetic import GENERATOR_VERSION


def test_explicit_root_wins_over_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ABAW_DATA", str(tmp_path / "env"))
    assert resolve_root(tmp_path / "given") == (tmp_path / "given", False)
    assert resolve_root(None) == (tmp_path / "env", False)


def test_default_folder_names_the_generator_version(tmp_path: Path, monkeypatch) -> None:
    """A dataset made by an older generator is never mistaken for the current one: the folder name differs."""
    monkeypatch.setenv("ABAW_HOME", str(tmp_path))
    monkeypatch.delenv("ABAW_DATA", raising=False)
    root = default_synthetic_root()
    assert root == tmp_path / "data" / f"synthetic-tiny-seed0-v{GENERATOR_VERSION}"
    (tmp_path / "data" / "synthetic-tiny-seed0").mkdir(parents=True)  # version 1's folder, as older harnesses named it
    root.mkdir()  # the current one, already made (an empty stand-in: nothing is generated when it exists)
    assert resolve_root(None) == (root, True)


def test_a_scale_has_its_own_folder_generated_once(tmp_path: Path, monkeypatch) -> None:
    from harness.data import root as root_module

    monkeypatch.setenv("ABAW_HOME", str(tmp_path))
    made = []
    monkeypatch.setattr(
        "harness.data.synthetic.generate", lambda root, **options: made.append(options) or root.mkdir(parents=True)
    )
    small = root_module.synthetic_dataset("small")
    assert small == tmp_path / "data" / f"synthetic-small-seed0-v{GENERATOR_VERSION}"
    assert root_module.synthetic_dataset("small") == small and made == [
        {"seed": 0, "scale": "small", "progress": made[0]["progress"]}
    ]
