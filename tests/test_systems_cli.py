"""``abaw systems`` and ``abaw show`` on the real systems/ folder, and names and paths printed whole in a narrow
terminal (``abaw run``, ``submit``, ``leaderboard``, ``regress``, ``systems``)."""

import json
from pathlib import Path

import pytest
from rich.console import Console
from test_leaderboard import make_honest_run, make_run, make_split, predict
from typer.testing import CliRunner

import harness.cli as cli
from harness.data.affwild2 import Dataset
from harness.drift import Drift, DriftReport
from harness.leaderboard import Leaderboard
from harness.regress import RegressReport, Row
from harness.runner import plan_nodes
from harness.spec import available_specs
from harness.store import Store

runner = CliRunner()
SWEEP = "dynamic_vit_context[window_s=8]"
DEEP = "submissions/team_sun/final_round/" + "dynamic_vit_context_window_s-8"


@pytest.fixture
def board(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Leaderboard:
    """An empty leaderboard that the commands read through ``$ABAW_LEADERBOARD``."""
    path = tmp_path / "board.sqlite"
    monkeypatch.setenv("ABAW_LEADERBOARD", str(path))
    return Leaderboard(path)


def narrow(monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    """The CLI's stdout console as a terminal ``width`` columns wide."""
    monkeypatch.setattr(cli, "out", Console(width=width, highlight=False))


def assert_lines_fit(text: str, width: int) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > width and "│" in line]
    assert not too_wide, too_wide
    assert "…" not in text, text


# ----------------------------------------------------------------------------------------------- abaw systems


def test_systems_lists_every_spec_with_its_inputs_sweep_and_latest_scores(board: Leaderboard, monkeypatch) -> None:
    va, expr = make_split("va", 12, seed=1), make_split("expr", 12, seed=1)
    board.record(make_run(va, predict(va, 0.3, 0), "video_b1"))
    board.record(make_run(va, predict(va, 0.8, 0), "video_b1"))  # the later row is the one shown
    board.record(make_run(expr, predict(expr, 0.5, 1), "dynamic_vit_context[window_s=2]"))
    board.record(make_run(expr, predict(expr, 0.9, 1), "dynamic_vit_context[window_s=4]"))
    board.record(make_honest_run(va, predict(va, 0.95, 2), predict(va, 0.6, 2), "dwf"))
    result = runner.invoke(cli.app, ["systems", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    entries = {entry["name"]: entry for entry in report["systems"]}
    assert list(entries) == available_specs(Path("systems"))
    dwf = entries["dwf"]
    assert (dwf["kind"], dwf["tasks"], dwf["inputs"]) == (
        "dwf",
        ["va", "expr", "au"],
        ["audio_v3", "dynamic_b1", "dynamic_vit", "kelm"],
    )
    sweep = entries["dynamic_vit_context"]
    assert sweep["swept"] == ["window_s"] and len(sweep["variants"]) == 6 and sweep["variants"][-1] == SWEEP
    assert entries["video_b1"]["variants"] == [] and entries["video_b1"]["latest"]["va"][0]["rank_score"] > 0.7
    assert [run["system"] for run in sweep["latest"]["expr"]] == [f"dynamic_vit_context[window_s={w}]" for w in (2, 4)]
    assert dwf["latest"]["va"][0]["honest"] and dwf["latest"]["va"][0]["rank_score"] < dwf["latest"]["va"][0]["score"]
    assert entries["kelm"]["latest"] == {}

    narrow(monkeypatch, 160)
    table = runner.invoke(cli.app, ["systems"])
    assert table.exit_code == 0, table.output
    best = sweep["latest"]["expr"][1]["rank_score"]
    assert f"{best:.4f} smoke [window_s=4]" in table.stdout  # a sweep shows its best variant
    assert f"{dwf['latest']['va'][0]['rank_score']:.4f}† smoke" in table.stdout


@pytest.mark.parametrize("width", [80, 60])
def test_systems_keeps_names_whole_in_a_narrow_terminal(board: Leaderboard, monkeypatch, width: int) -> None:
    narrow(monkeypatch, width)
    result = runner.invoke(cli.app, ["systems"])
    assert result.exit_code == 0, result.output
    for name in available_specs(Path("systems")):
        assert f"│ {name} " in result.stdout, name
    assert_lines_fit(result.stdout, width)


def test_systems_names_a_broken_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ok.yaml").write_text("kind: video\n", encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("kind: video\nepochz: 3\n", encoding="utf-8")
    monkeypatch.setenv("ABAW_SYSTEMS", str(tmp_path))
    monkeypatch.setenv("ABAW_LEADERBOARD", str(tmp_path / "none.sqlite"))
    result = runner.invoke(cli.app, ["systems"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "broken.yaml: key 'epochz': unknown setting of kind 'video'; did you mean 'epochs'?" in result.stderr
    assert not (tmp_path / "none.sqlite").exists()  # listing never creates a leaderboard


# ----------------------------------------------------------------------------------------------- abaw show


def test_show_gives_the_dag_in_run_order_with_store_status(handmade_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ABAW_STORE", str(tmp_path / "store"))
    plans = plan_nodes("dwf", ["va"], Dataset(handmade_root), "smoke")
    store = Store(tmp_path / "store")
    done = store.node(plans[1].key)  # video_b1: as a finished run leaves it
    done.write_json("run.json", {"train_seconds": 1.0})
    done.complete({"system": "video_b1"})
    store.node(plans[2].key).write_json("run.json", {})  # dynamic_b1: a killed run's files
    args = ["show", "dwf", "--task", "va", "--profile", "smoke", "--data", str(handmade_root)]
    result = runner.invoke(cli.app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    nodes = shown["nodes"]
    assert [(n["name"], n["store_key"]) for n in nodes] == [(p.name, p.key) for p in plans]  # the runner's own plan
    assert [n["name"] for n in nodes] == ["audio_v3", "video_b1", "dynamic_b1", "kelm", "dwf"]
    assert nodes[-1]["inputs"] == [1, 3, 4] and nodes[2]["inputs"] == [2] and nodes[-1]["own"]
    assert [n["status"] for n in nodes] == ["missing", "in store", "partial", "missing", "missing"]
    assert shown["dataset"]["fingerprint"] == Dataset(handmade_root).fingerprint()
    assert nodes[-1]["settings"]["folds"] == 5 and nodes[-1]["settings"]["seed"] == 0
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == sorted([plans[1].key, plans[2].key])  # no writes

    text = runner.invoke(cli.app, args).stdout
    lines = text.splitlines()
    order = [next(i for i, line in enumerate(lines) if f"  {name} (va" in line) for name in ("audio_v3", "dwf")]
    assert order == sorted(order) and "  alpha = 1.0" in lines
    assert f"   2  in store  video_b1 (va, video)  {plans[1].key}" in lines
    assert f"   5  missing   dwf (va, dwf) ← 1, 3, 4  {plans[4].key}" in lines


def test_show_lists_each_value_of_a_sweep(handmade_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ABAW_STORE", str(tmp_path / "store"))
    narrow(monkeypatch, 60)
    result = runner.invoke(cli.app, ["show", "dynamic_vit_context", "--data", str(handmade_root), "--profile", "smoke"])
    assert result.exit_code == 0, result.output
    assert "  window_s = 1.0 | 2.0 | 3.0 | 4.0 | 6.0 | 8.0" in result.stdout
    assert "6 variants" in result.stdout and "  layers = 1" in result.stdout  # the smoke profile's override
    assert f"  {SWEEP} (expr, dynamic) ← 1  dynamic-" in result.stdout  # one line, never cut at 60 columns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "dwff"], "no spec named 'dwff' in systems/; did you mean 'dwf'?"),
        (["show", "dynamic_vit", "--task", "va"], "'dynamic_vit' serves only expr"),
        (["show", "dynamic_vit_context[window_s=5]"], "no variant 'dynamic_vit_context[window_s=5]'"),
    ],
)
def test_show_rejects_what_cannot_run(handmade_root: Path, args: list[str], message: str) -> None:
    result = runner.invoke(cli.app, [*args, "--data", str(handmade_root)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in result.stderr.replace("\n", ""), result.stderr


def test_task_option_takes_every_registered_task_both_and_all(handmade_root: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ABAW_STORE", str(tmp_path / "store"))
    assert cli._tasks(cli.TaskChoice("both")) == ["va", "expr"]
    assert cli._tasks(cli.TaskChoice("all")) == ["va", "expr", "au"]
    assert cli._tasks(cli.TaskChoice("au")) == ["au"]
    base = ["show", "dwf", "--profile", "smoke", "--data", str(handmade_root), "--json"]
    shown = {choice: json.loads(runner.invoke(cli.app, [*base, "--task", choice]).stdout) for choice in ("all", "both")}
    assert {node["task"] for node in shown["all"]["nodes"]} == {"va", "expr", "au"}  # dwf serves all three
    assert {node["task"] for node in shown["both"]["nodes"]} == {"va", "expr"}
    only_two = ["show", "dwf_av", "--profile", "smoke", "--data", str(handmade_root), "--json"]
    shown_av = {
        choice: json.loads(runner.invoke(cli.app, [*only_two, "--task", choice]).stdout) for choice in ("all", "both")
    }
    assert shown_av["all"] == shown_av["both"]  # dwf_av serves va and expr: all plans those two
    result = runner.invoke(cli.app, [*only_two, "--task", "au"])
    assert result.exit_code == 2 and "'dwf_av' serves only va, expr" in result.stderr.replace("\n", "")
    result = runner.invoke(cli.app, [*base, "--task", "vaa"])
    assert result.exit_code == 2 and all(name in result.output for name in ("va", "expr", "au", "both", "all"))


def test_leaderboard_lists_the_tasks_with_runs_or_every_task(board: Leaderboard) -> None:
    empty = runner.invoke(cli.app, ["leaderboard"])
    assert empty.exit_code == 0
    assert [line for line in empty.stdout.splitlines() if "no runs" in line] == [
        f"{task}: no runs recorded yet" for task in ("va", "expr", "au")
    ]
    assert list(json.loads(runner.invoke(cli.app, ["leaderboard", "--json"]).stdout)) == ["va", "expr", "au"]
    va, expr = make_split("va", 6, seed=1), make_split("expr", 6, seed=1)
    board.record(make_run(va, predict(va, 0.8, 0), "video_b1"))
    board.record(make_run(expr, predict(expr, 0.8, 0), "video_b1"))
    shown = runner.invoke(cli.app, ["leaderboard"])
    assert "va validation" in shown.stdout and "expr validation" in shown.stdout
    assert "au validation" not in shown.stdout and "au:" not in shown.stdout
    shown = json.loads(runner.invoke(cli.app, ["leaderboard", "--json"]).stdout)
    assert list(shown) == ["va", "expr", "multitask"]  # the multi-task score sums the tasks shown
    assert list(shown["multitask"][0]["parts"]) == ["va", "expr"]
    only = runner.invoke(cli.app, ["leaderboard", "--task", "au"])
    assert only.exit_code == 0 and only.stdout.strip() == "au: no runs recorded yet"
    au = make_split("au", 6, seed=1)
    board.record(make_run(au, predict(au, 0.8, 0), "video_b1"))
    shown = json.loads(runner.invoke(cli.app, ["leaderboard", "--json"]).stdout)
    assert list(shown) == ["va", "expr", "au", "multitask"] and len(shown["au"]["entries"][0]["f1_per_au"]) == 12
    (multitask,) = shown["multitask"]
    assert list(multitask["parts"]) == ["va", "expr", "au"]
    assert multitask["score"] == pytest.approx(sum(shown[t]["entries"][0]["rank_score"] for t in ("va", "expr", "au")))
    text = runner.invoke(cli.app, ["leaderboard"]).stdout
    assert "au validation" in text and "P = P_VA + P_EXPR + P_AU" in text


# ----------------------------------------------------------------------------------------------- narrow terminals


@pytest.mark.parametrize("width", [80, 60])
def test_run_keeps_system_names_whole(monkeypatch: pytest.MonkeyPatch, capsys, width: int) -> None:
    narrow(monkeypatch, width)
    rows = [
        {"system": "video_vit", "task": "expr", "store_hit": True, "train_seconds": 12.5},
        {
            "system": SWEEP,
            "task": "expr",
            "store_hit": False,
            "train_seconds": 301.2,
            "score": 0.41,
            "ci95": [0.4, 0.42],
        },
    ]
    cli._render_run("dynamic_vit_context", rows)
    text = capsys.readouterr().out
    assert f"│ {SWEEP} │" in text and "0.4100" in text
    assert ("│ computed │" in text) == (width == 80) and ("too narrow for: store, train s" in text) == (width == 60)
    assert_lines_fit(text, width)


@pytest.mark.parametrize("width", [80, 60])
def test_submit_prints_written_paths_whole(monkeypatch: pytest.MonkeyPatch, capsys, width: int) -> None:
    narrow(monkeypatch, width)
    score = {"score": 0.5, "ci95": [0.4, 0.6]}
    summary = {
        "system": SWEEP,
        "zip": f"{DEEP}/dynamic_vit_context_window_s-8.zip",
        "manifest": f"{DEEP}/manifest.json",
        "tasks": {
            "expr": {
                "file": f"{DEEP}/CVPR_6th_ABAW_Expr_test_set.txt",
                "validation": score,
                "honest": None,
                "test": score,
            }
        },
    }
    cli._render_submit(summary)
    lines = capsys.readouterr().out.splitlines()
    assert f"expr: {DEEP}/CVPR_6th_ABAW_Expr_test_set.txt" in lines  # longer than the terminal, yet one line
    assert f"  {DEEP}/dynamic_vit_context_window_s-8.zip" in lines and f"  {DEEP}/manifest.json" in lines
    assert any(SWEEP in line for line in lines) and "0.5000" in "".join(lines)
    assert_lines_fit("\n".join(lines), width)


@pytest.mark.parametrize("width", [80, 60])
def test_leaderboard_keeps_system_names_whole(board: Leaderboard, monkeypatch, width: int) -> None:
    split = make_split("va", 12, seed=1)
    board.record(make_run(split, predict(split, 0.9, 0), "video_b1"))
    board.record(make_run(split, predict(split, 0.3, 1), SWEEP))
    board.record(make_honest_run(split, predict(split, 0.95, 2), predict(split, 0.5, 2), "dwf_av"))
    narrow(monkeypatch, width)
    result = runner.invoke(cli.app, ["leaderboard", "--task", "va"])
    assert result.exit_code == 0, result.output
    for name in ("video_b1", SWEEP, "dwf_av"):
        assert f"│ {name} " in result.stdout, name
    assert "date (UTC)" in " ".join(result.stdout.split()) and "too narrow for:" in result.stdout
    assert_lines_fit(result.stdout, width)


def test_leaderboard_shows_every_column_when_wide(board: Leaderboard, monkeypatch: pytest.MonkeyPatch) -> None:
    split = make_split("va", 12, seed=1)
    board.record(make_run(split, predict(split, 0.9, 0), SWEEP))
    narrow(monkeypatch, 200)
    result = runner.invoke(cli.app, ["leaderboard", "--task", "va"])
    assert "date (UTC)" in result.stdout and "breakdown" in result.stdout and "too narrow" not in result.stdout


@pytest.mark.parametrize("width", [80, 60])
def test_regress_keeps_system_names_whole(monkeypatch: pytest.MonkeyPatch, capsys, width: int) -> None:
    narrow(monkeypatch, width)
    drift = DriftReport(1, [Drift(SWEEP, "expr", "dynamic-0123", "score", 0.5, 0.5000001, "leaderboard row 12")])
    report = RegressReport(
        Path("leaderboard/baselines.json"),
        "f00d",
        "smoke",
        rows=[
            Row(SWEEP, "expr", 0.41, 0.3, 0.02, "score", "FAIL", "below"),
            Row("dwf", "va", 0.5, 0.51, 0.02, "honest_score", "ok"),
        ],
        drift=drift,
    )
    cli._render_regress(report)
    text = capsys.readouterr().out
    assert f"│ {SWEEP} │ expr │" in text and "FAIL" in text
    # the drift table needs its four value columns; below 73 columns its names fold onto the next line instead
    assert (f"│ {SWEEP} │ expr │ score │" in text) == (width == 80)
    assert_lines_fit(text, width)


def test_a_terminal_too_narrow_for_any_table_folds_names_never_cuts_them(monkeypatch, capsys) -> None:
    narrow(monkeypatch, 30)
    cli._render_run("x", [{"system": SWEEP, "task": "expr", "store_hit": True, "train_seconds": 1.0}])
    text = capsys.readouterr().out
    assert "…" not in text, text
    assert "too narrow for: store, train s" in " ".join(text.split())
    first_cells = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert "".join(first_cells) == SWEEP  # folded over several lines, every character kept in order
