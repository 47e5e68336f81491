"""``bench/mutation.py`` without training: every break's old snippet occurs exactly once in the tree (so the list
cannot rot), a break applies, the affected nodes include everything downstream, and the table reports each break."""

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutation():
    spec = importlib.util.spec_from_file_location("bench_mutation", ROOT / "bench" / "mutation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_mutation"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_mutation", None)


def test_every_break_names_a_snippet_found_exactly_once(mutation) -> None:
    assert len(mutation.BREAKS) >= 8
    assert len({brk.name for brk in mutation.BREAKS}) == len(mutation.BREAKS)
    assert mutation.snippet_problems(ROOT) == []
    for brk in mutation.BREAKS:
        assert brk.old != brk.new and brk.systems and brk.tests
        assert all((ROOT / test).is_file() for test in brk.tests), brk.name
        assert all((ROOT / "systems" / f"{system}.yaml").is_file() for system in brk.systems), brk.name


def test_a_rotted_snippet_is_reported(mutation, tmp_path: Path) -> None:
    brk = mutation.BREAKS[0]
    (tmp_path / brk.path).parent.mkdir(parents=True)
    (tmp_path / brk.path).write_text(brk.old + "\n" + brk.old)
    other = mutation.Break("gone", "a file that is missing", "nowhere.py", "a", "b", ("kelm",), (), ())
    problems = mutation.snippet_problems(tmp_path, [brk, other])
    assert problems[0].startswith(f"{brk.name}: {brk.path} holds its old snippet 2 times")
    assert problems[1] == "gone: nowhere.py does not exist"


def test_apply_edits_the_named_file_once(mutation, tmp_path: Path) -> None:
    brk = mutation.Break("b", "a break", "pkg/m.py", "x = 1\n", "x = 2\n", ("kelm",), ("kelm",), ())
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("a = 0\nx = 1\n")
    mutation.apply(tmp_path, brk)
    assert (tmp_path / "pkg" / "m.py").read_text() == "a = 0\nx = 2\n"
    with pytest.raises(SystemExit, match="does not hold its old snippet exactly once"):
        mutation.apply(tmp_path, brk)


def plan(key: str, kind: str, *inputs):
    return SimpleNamespace(key=key, resolved=SimpleNamespace(kind=kind), inputs=list(inputs))


def test_affected_nodes_are_the_named_kinds_and_everything_downstream(mutation) -> None:
    video = plan("v", "video")
    kelm = plan("k", "kelm", video)
    dynamic = plan("d", "dynamic", video)
    fused = plan("f", "dwf", kelm, dynamic)
    plans = [video, kelm, dynamic, fused]
    assert mutation.affected(plans, ["kelm"]) == ["k", "f"]
    assert mutation.affected(plans, ["video"]) == ["v", "k", "d", "f"]
    assert mutation.affected(plans, []) == []


def test_the_table_marks_caught_blind_and_not_run(mutation) -> None:
    first, second, third = (brk.name for brk in mutation.BREAKS[:3])
    outcomes = [
        mutation.Outcome(first, True, False, 12.4, "FAILED tests/x.py::t | why"),
        mutation.Outcome(second, None, True, 3.0, "kelm va: below baseline"),
    ]
    lines = mutation.table(outcomes).splitlines()
    assert lines[0] == "| break | what | caught by tests | caught by regress | seconds | detail |"
    assert len(lines) == 2 + len(mutation.BREAKS)
    assert lines[2].startswith(f"| `{first}` |") and "| yes | **no** | 12 | FAILED tests/x.py::t / why |" in lines[2]
    assert "| not run | yes | 3 | kelm va: below baseline |" in lines[3]
    assert lines[4].startswith(f"| `{third}` |") and lines[4].endswith("| not run | not run | | |")
    merged = mutation.merge(outcomes, [mutation.Outcome(first, False, True, 1.0)])
    assert [(o.name, o.tests) for o in merged] == [(first, False), (second, None)]


def test_regress_detail_names_the_first_failing_row_or_the_drift(mutation) -> None:
    report = {
        "rows": [
            {"system": "kelm", "task": "expr", "status": "ok", "message": None},
            {"system": "kelm", "task": "va", "status": "FAIL", "message": "ccc_valence 0.1 below; other"},
        ]
    }
    assert mutation.regress_detail(report) == "kelm va: ccc_valence 0.1 below"
    drift = {"rows": [], "drift": {"findings": [{"system": "kelm", "task": "au", "field": "score"}]}}
    assert mutation.regress_detail(drift) == "drift: kelm au score"
    assert mutation.regress_detail({"rows": []}) == ""


def test_list_prints_every_break(mutation, capsys) -> None:
    assert mutation.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert all(brk.name in out for brk in mutation.BREAKS)
    with pytest.raises(SystemExit, match="unknown break 'nope'"):
        mutation.main(["--only", "nope"])


def test_controls_recompute_each_systems_nodes_without_an_edit(mutation) -> None:
    found = {brk.name: brk for brk in mutation.controls(mutation.BREAKS)}
    assert "control_kelm" in found and found["control_kelm"].path == "" and found["control_kelm"].tests == ()
    assert set(found["control_kelm"].kinds) >= {"kelm"}
    assert all(brk.kinds for brk in found.values())
    outcomes = [mutation.Outcome("control_kelm", None, False, 40.0), mutation.Outcome("control_dwf", None, True, 9.0)]
    lines = mutation.table(outcomes).splitlines()
    assert lines[2].startswith("| `control_dwf` |") and "| not run | **failed** (noise) | 9 |" in lines[2]
    assert lines[3].startswith("| `control_kelm` |") and "| passed (as it must) |" in lines[3]
