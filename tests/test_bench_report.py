"""bench/report.py: goal rows from the scripts' JSON, the rewrite of docs/benchmarks.md, failing scripts."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def report():
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_rates_must_reach_their_goal_and_times_stay_under_it(report):
    rows = report.measurement_rows({"va_dwf": "VA search", "expr_dwf": "EXPR search"})(
        [
            {"name": "va_dwf_x", "value": 3.4e6, "unit": "candidates/s", "goal": 1e6}
            | {"reference": "loop", "reference_value": 57, "speedup": 59000},
            {"name": "expr_dwf_y", "value": 61.0, "unit": "s", "goal": 60.0},
            {"name": "unlisted", "value": 1.0, "unit": "s", "goal": 2.0},
        ]
    )
    assert [(r.goal, r.met) for r in rows] == [("VA search", True), ("EXPR search", False)]
    assert rows[0].reference == "loop: 57 candidates/s (ratio 59,000×)"


def test_kelm_rows_compare_the_largest_landmark_count_with_exact(report):
    result = [
        {"n": 20000, "method": "exact", "landmarks": None, "seconds": 150.0, "peak_mib": 6500.0, "score": 0.96},
        {"n": 20000, "method": "nystrom", "landmarks": 2000, "seconds": 35.0, "peak_mib": 178.0, "score_gap": 0.011},
        {"n": 20000, "method": "nystrom", "landmarks": 3000, "seconds": 55.0, "peak_mib": 312.0, "score_gap": 0.007},
        {"n": 10**6, "method": "nystrom", "landmarks": 1000, "seconds": 170.0, "peak_mib": 111.0, "score": 0.945},
    ]
    rows = report.kelm_rows(result)
    assert [r.met for r in rows] == [True, True, None]
    assert "M = 3,000" in rows[1].measured and "0.70%" in rows[1].measured
    assert "1,000,000" in rows[2].measured


def test_rewrite_replaces_only_the_marked_block_and_inserts_it_once(report):
    document = "# Benchmarks\n\nIntro.\n\n## Metrics\n\nHand-written analysis.\n"
    first = report.rewrite(document, "| table one |")
    assert first.index(report.BEGIN) < first.index("## Metrics") and "Hand-written analysis." in first
    second = report.rewrite(first, "| table two |")
    assert "| table two |" in second and "| table one |" not in second
    assert second.count(report.BEGIN) == 1 and second.endswith("Hand-written analysis.\n")


def test_render_names_unmeasured_benchmarks_and_each_machine_once(report):
    entry = {"date": "2026-11-29", "machine": "x86_64, 2 CPU cores", "quick": True}
    rerun = {"system": "s", "task": "va", "nodes": 1, "first_seconds": 40.0, "rerun_seconds": 1.5}
    results = {
        "rerun": entry | {"result": rerun | {"rerun_hit_share": 1.0}},
        "suite": entry | {"result": {"seconds": 700.0, "exit_code": 0, "summary": "563 passed"}},
    }
    table = report.render(results)
    assert (
        "| a re-run of an unchanged system: 100% store hits, seconds | 1.5 s, 100% store hits (quick) | yes |" in table
    )
    assert "| **no** |" in table  # 700 s > 10 minutes
    assert "`bench_metrics.py` | not measured yet" in table
    assert table.count("- M1: x86_64, 2 CPU cores") == 1 and "M2" not in table


def test_a_failing_or_silent_script_is_named(report, tmp_path):
    broken = tmp_path / "bench_broken.py"
    broken.write_text("import sys\nsys.exit('no data')\n")
    with pytest.raises(report.BenchFailed, match="bench_broken.py exited with 1: no data"):
        report.run_bench(broken, ())
    silent = tmp_path / "bench_silent.py"
    silent.write_text("print('a table, but no JSON')\n")
    with pytest.raises(report.BenchFailed, match="bench_silent.py printed no JSON"):
        report.run_bench(silent, ())
    good = tmp_path / "bench_good.py"
    good.write_text("import json\nprint('table')\nprint(json.dumps({'ratio': 0.95}))\n")
    assert report.run_bench(good, ()) == {"ratio": 0.95}


def test_scale_rows_judge_the_largest_scale_and_state_the_memory_constant(report):
    def entry(rows: int, seconds: float) -> dict:
        phases = {phase: {"seconds": seconds, "peak_mib": 10.0} for phase in report.SCALE_GOALS}
        return {"label_rows": rows, "phases": phases}

    result = {"scales": {"tiny": entry(25_000, 0.1), "affwild2": entry(3_000_000, 3.0)}}
    result["memory"] = {"data_check": 120.5, "score": 3.5}
    rows = report.scale_rows(result)
    met = {row.goal: row.met for row in rows}
    assert met["harness: discovery + fingerprint ≤ 30 s cold"] is True
    assert met["harness: discovery + fingerprint ≤ 1 s when unchanged"] is False
    assert met["harness: scoring a split + 10⁴ bootstrap ≤ 2 s"] is False
    assert rows[0].reference == "tiny: 0.1 s" and "affwild2, 3.00 M rows" in rows[0].measured
    assert rows[-1].measured.startswith("≤ 120.5 bytes a label row (data_check")
