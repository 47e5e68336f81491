"""Sweeps (a list-valued setting → one variant per value) and per-task inputs, at the spec and plan level."""

from pathlib import Path

import pytest

from harness.data.affwild2 import Dataset
from harness.errors import SpecError
from harness.runner import plan_nodes
from harness.spec import load_graph, load_spec, resolve, resolve_variants, split_variant


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")


def test_lists_expand_into_named_variants_with_their_own_hashes(tmp_path: Path) -> None:
    write(tmp_path, "v", "kind: video\nepochs: [1, 2]\nprofiles:\n  smoke: {image_size: [32, 48], flip: false}\n")
    variants = resolve_variants(load_spec("v", tmp_path), "smoke")
    assert [v.name for v in variants] == [
        "v[image_size=32,epochs=1]",
        "v[image_size=32,epochs=2]",
        "v[image_size=48,epochs=1]",
        "v[image_size=48,epochs=2]",
    ]
    assert [(v.settings.image_size, v.settings.epochs) for v in variants] == [(32, 1), (32, 2), (48, 1), (48, 2)]
    assert len({v.spec_hash for v in variants}) == 4
    assert [v.name for v in resolve_variants(load_spec("v", tmp_path), "paper")] == ["v[epochs=1]", "v[epochs=2]"]


def test_graph_runs_every_variant_or_the_one_named(tmp_path: Path) -> None:
    write(tmp_path, "v", "kind: video\nepochs: [1, 2]\n")
    assert [r.name for r in load_graph("v", "smoke", tmp_path)] == ["v[epochs=1]", "v[epochs=2]"]
    assert [r.name for r in load_graph("v[epochs=2]", "smoke", tmp_path)] == ["v[epochs=2]"]
    assert split_variant("v[epochs=2]") == ("v", "v[epochs=2]") and split_variant("v") == ("v", None)
    with pytest.raises(SpecError, match=r"no variant 'v\[epochs=3\]' of spec 'v'; did you mean 'v\[epochs=2\]'"):
        load_graph("v[epochs=3]", "smoke", tmp_path)


def test_an_input_names_one_variant(tmp_path: Path) -> None:
    write(tmp_path, "v", "kind: video\nepochs: [1, 2]\n")
    write(tmp_path, "uses_all", "kind: video\ninputs: [v]\n")
    write(tmp_path, "uses_one", "kind: video\ninputs: ['v[epochs=2]']\n")
    with pytest.raises(SpecError, match=r"uses_all\.yaml: key 'inputs': 'v' sweeps into 2 variants.*v\[epochs=1\]"):
        load_graph("uses_all", "smoke", tmp_path)
    assert [r.name for r in load_graph("uses_one", "smoke", tmp_path)] == ["v[epochs=2]", "uses_one"]


def test_sweep_errors_name_the_key(tmp_path: Path) -> None:
    write(tmp_path, "empty", "kind: video\nepochs: []\n")
    with pytest.raises(SpecError, match=r"empty\.yaml: key 'epochs' \(profile smoke\): a sweep needs at least one"):
        resolve_variants(load_spec("empty", tmp_path), "smoke")
    write(tmp_path, "bad", "kind: video\nepochs: [1, ten]\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: key 'epochs' \(profile smoke\): .*integer.*found 'ten'"):
        resolve_variants(load_spec("bad", tmp_path), "smoke")
    write(tmp_path, "two", "kind: video\nepochs: [1, 2]\n")
    with pytest.raises(SpecError, match=r"spec 'two' sweeps into 2 variants \(two\[epochs=1\], two\[epochs=2\]\)"):
        resolve(load_spec("two", tmp_path), "smoke")


def test_each_task_takes_the_inputs_that_serve_it(handmade_root: Path, tmp_path: Path) -> None:
    write(tmp_path, "for_va", "kind: video\ntasks: [va]\n")
    write(tmp_path, "for_expr", "kind: video\ntasks: [expr]\n")
    write(tmp_path, "both", "kind: video\ninputs: [for_va, for_expr]\n")
    plans = plan_nodes("both", ["va", "expr"], Dataset(handmade_root), "smoke", tmp_path)
    top = {plan.task: [p.name for p in plan.inputs] for plan in plans if plan.name == "both"}
    assert top == {"va": ["for_va"], "expr": ["for_expr"]}
    write(tmp_path, "expr_only", "kind: video\ntasks: [expr]\ninputs: [for_va]\n")
    with pytest.raises(SpecError, match=r"expr_only\.yaml: key 'inputs': 'for_va' serves va, none of the tasks"):
        plan_nodes("expr_only", ["expr"], Dataset(handmade_root), "smoke", tmp_path)


def test_an_input_task_no_user_needs_is_not_planned(handmade_root: Path, tmp_path: Path) -> None:
    write(tmp_path, "static", "kind: video\n")  # serves va and expr
    write(tmp_path, "over_expr", "kind: video\ntasks: [expr]\ninputs: [static]\n")
    write(tmp_path, "top", "kind: video\ninputs: [static, over_expr]\n")
    plans = plan_nodes("top", ["va", "expr"], Dataset(handmade_root), "smoke", tmp_path)
    assert [(plan.name, plan.task) for plan in plans] == [
        ("static", "va"),
        ("static", "expr"),
        ("over_expr", "expr"),
        ("top", "va"),
        ("top", "expr"),
    ]
    plans = plan_nodes("over_expr", ["va", "expr"], Dataset(handmade_root), "smoke", tmp_path)
    assert [(plan.name, plan.task) for plan in plans] == [("static", "expr"), ("over_expr", "expr")]


def test_both_tasks_means_the_tasks_a_system_serves(handmade_root: Path, tmp_path: Path) -> None:
    write(tmp_path, "for_va", "kind: video\ntasks: [va]\n")
    plans = plan_nodes("for_va", ["va", "expr"], Dataset(handmade_root), "smoke", tmp_path)
    assert [plan.task for plan in plans] == ["va"]
    with pytest.raises(SpecError, match=r"for_va\.yaml: key 'tasks': 'for_va' serves only va"):
        plan_nodes("for_va", ["expr"], Dataset(handmade_root), "smoke", tmp_path)


def test_cli_prints_variant_names_verbatim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, handmade_root: Path
) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    write(tmp_path, "v", "kind: video\nepochs: [1, 2]\n")
    monkeypatch.setenv("ABAW_SYSTEMS", str(tmp_path))
    result = CliRunner().invoke(app, ["run", "v[epochs=3]", "--data", str(handmade_root)])
    assert result.exit_code == 2
    assert "no variant 'v[epochs=3]'" in result.output and "v[epochs=1], v[epochs=2]" in result.output
