#!/usr/bin/python3
"""Tests of bench/report.py, the benchmark's report: how it merges rounds and derives its
columns. Synthetic measurements with known answers, worked out by hand below.

Usage: /usr/bin/python3 tests/test_bench_report.py
Prints PASS/FAIL per test; exits with 1 if any failed.
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPORT = os.path.join(HERE, "..", "bench", "report.py")


def kernel(impl, ms_min, ms_median, threads=1, samples=10, faults=0.0, op="forward"):
    return {"op": op, "impl": impl, "shape": [1024, 256], "axis": 1, "dtype": "float32",
            "layout": "nc", "data": "normal", "threads": threads, "tensor_bytes": 1024 * 256 * 4,
            "ms_min": ms_min, "ms_median": ms_median, "samples": samples, "calls_per_sample": 1,
            "faults_per_call": faults}


def triad(when, ms_min, threads=1, op="triad"):
    # 24 MB in ms_min milliseconds (the copy and read streams: 16 MB)
    return {"op": op, "impl": "stream", "threads": threads, "when": when,
            "bytes": 24_000_000 if op.startswith("triad") else 16_000_000,
            "ms_min": ms_min, "ms_median": ms_min, "samples": 5, "calls_per_sample": 1,
            "faults_per_call": 0.0}


def run_report(tmp, cpp_rounds, peer_rounds):
    def write(name, value):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            json.dump(value, f)
        return path

    machine = write("machine.json", {"date": "today", "cpu": "test cpu", "cores": 2, "kernel": "test"})
    cpp = [write(f"bench_{i}.json", {"onednn": "2.6", "notes": [f"note {i % 2}"], "records": r})
           for i, r in enumerate(cpp_rounds)]
    peers = [write(f"peers_{i}.json", {"pytorch": "1.13", "notes": [], "records": r})
             for i, r in enumerate(peer_rounds)]
    out = os.path.join(tmp, "out.json")
    text = subprocess.run([sys.executable, REPORT, "--machine", machine, "--cpp", *cpp, "--peers", *peers,
                           "--json", out], check=True, capture_output=True, text=True).stdout
    with open(out) as f:
        return text, json.load(f)


def test_rounds_merge_to_least_min_and_median_of_medians(tmp):
    # bnorm: mins 3.0, 2.0, 4.0 -> 2.0; medians 3.5, 2.5, 9.0 -> 3.5. PyTorch: 4.0, 5.0 ->
    # 4.0 (a round may lack a peer). Triad: before 2.0 / 1.5 ms, after 3.0 / 2.5 ms -> the
    # best, 1.5 ms: 24 MB / 1.5 ms = 16 GB/s.
    cpp_rounds = [
        [triad("before", 2.0), kernel("bnorm", 3.0, 3.5), kernel("onednn", 6.0, 7.0), triad("after", 3.0)],
        [triad("before", 1.5), kernel("bnorm", 2.0, 2.5), kernel("onednn", 5.0, 5.5), triad("after", 2.5)],
        [triad("before", 2.5), kernel("bnorm", 4.0, 9.0), kernel("onednn", 8.0, 8.0), triad("after", 2.5)],
    ]
    # PyTorch faulted in its slower round: the most faults per call of any round is kept
    peer_rounds = [[kernel("pytorch", 4.0, 4.0)], [kernel("pytorch", 5.0, 6.0, faults=300.0)], []]
    text, records = run_report(tmp, cpp_rounds, peer_rounds)
    run = records[0]
    assert run["op"] == "run" and run["rounds"] == 3, run
    assert run["notes"] == ["note 0", "note 1"], run["notes"]  # each note once
    bnorm = [r for r in records if r["impl"] == "bnorm"]
    assert len(bnorm) == 1, bnorm
    b = bnorm[0]
    assert (b["ms_min"], b["ms_median"], b["samples"], b["rounds"]) == (2.0, 3.5, 30, 3), b
    pytorch = next(r for r in records if r["impl"] == "pytorch")
    assert (pytorch["ms_min"], pytorch["ms_median"], pytorch["rounds"]) == (4.0, 5.0, 2), pytorch
    assert pytorch["faults_per_call"] == 300.0, pytorch
    assert "pytorch forward 1024x256 float32 threads=1: 300 page faults per timed call" in text, text
    assert b["ratio_to_pytorch"] == 2.0 / 4.0 and b["ratio_to_onednn"] == 2.0 / 5.0, b
    # forward: 3 x 1 MiB = 3145728 bytes in 2 ms = 1.572864 GB/s, of 16 GB/s
    assert abs(b["gbps"] - 1.572864) < 1e-9 and abs(b["pct_of_bound"] - 100 * 1.572864 / 16) < 1e-9, b
    assert "rounds   3:" in text and "0.500x" in text and "0.400x" in text, text


def test_one_round_is_reported_as_before(tmp):
    text, records = run_report(tmp, [[triad("before", 2.0), kernel("bnorm", 3.0, 3.5), triad("after", 2.0)]],
                               [[kernel("pytorch", 6.0, 6.0)]])
    b = next(r for r in records if r["impl"] == "bnorm")
    assert (b["ms_min"], b["ms_median"], b["rounds"]) == (3.0, 3.5, 1), b
    assert b["ratio_to_pytorch"] == 0.5, b
    assert "\nrounds " not in text, text  # no rounds line for a single round


def test_eval_forward_against_the_copy_and_forward_running_against_forward(tmp):
    # Triad: 24 MB / 1.5 ms = 16 GB/s. Copy: 16 MB in 2.0 ms (before) or 1.6 ms (after,
    # the best) = 10 GB/s. eval_forward: 2 x 1 MiB = 2097152 bytes in 0.5 ms (round 2's
    # min) = 4.194304 GB/s, 41.94304% of the copy and not compared with the triad.
    # forward_running: 2.2 ms over forward's 2.0 ms = 1.1 for bnorm; PyTorch 4.4 / 4.0.
    cpp_rounds = [
        [triad("before", 1.5), triad("before", 2.0, op="copy"), kernel("bnorm", 2.0, 2.5),
         kernel("bnorm", 2.3, 2.4, op="forward_running"), kernel("bnorm", 0.6, 0.7, op="eval_forward"),
         kernel("onednn", 1.0, 1.1, op="eval_forward"), triad("after", 2.0), triad("after", 1.6, op="copy")],
        [triad("before", 1.5), triad("before", 2.0, op="copy"), kernel("bnorm", 2.1, 2.2),
         kernel("bnorm", 2.2, 2.3, op="forward_running"), kernel("bnorm", 0.5, 0.9, op="eval_forward"),
         kernel("onednn", 1.2, 1.3, op="eval_forward"), triad("after", 2.0), triad("after", 1.7, op="copy")],
    ]
    peer_rounds = [[kernel("pytorch", 4.0, 4.0), kernel("pytorch", 4.4, 4.5, op="forward_running"),
                    kernel("pytorch", 2.0, 2.0, op="eval_forward")]]
    text, records = run_report(tmp, cpp_rounds, peer_rounds)
    get = {(r["impl"], r["op"]): r for r in records if r["impl"] not in (None, "stream")}
    ev = get["bnorm", "eval_forward"]
    assert (ev["ms_min"], ev["ms_median"], ev["bytes"], ev["bound"]) == (0.5, 0.8, 2097152, "copy"), ev
    assert abs(ev["gbps"] - 4.194304) < 1e-9 and abs(ev["pct_of_bound"] - 41.94304) < 1e-9, ev
    assert ev["ratio_to_pytorch"] == 0.5 / 2.0 and ev["ratio_to_onednn"] == 0.5 / 1.0, ev
    fwd = get["bnorm", "forward"]
    assert fwd["bound"] == "triad" and abs(fwd["pct_of_bound"] - 100 * 3 * 1048576 / 2.0 / 1e6 / 16) < 1e-9, fwd
    run = get["bnorm", "forward_running"]
    assert run["bytes"] == 3 * 1048576 and run["bound"] == "triad", run
    assert abs(run["ratio_to_forward"] - 1.1) < 1e-12, run
    assert abs(run["ratio_to_pytorch"] - 2.2 / 4.4) < 1e-12, run
    assert abs(get["pytorch", "forward_running"]["ratio_to_forward"] - 1.1) < 1e-12
    assert "copy     1 thread 10.0 GB/s" in text, text
    assert "bnorm 1024x256 float32 thr 1 1.10x" in text and "PyTorch 1024x256 float32 thr 1 1.10x" in text, text
    # the table: forward, then forward_running beside it, then eval_forward. Without the
    # read stream (an older run) only eval_forward, all copy, has a floor: 2 MiB at the
    # copy's 10 GB/s = 209.7152 µs, 41.94304% of its 0.5 ms.
    rows = [line.split() for line in text.splitlines()
            if line.startswith(("forward", "eval_forward")) and line.split()[1] == "1024x256"]
    assert [row[0] for row in rows] == ["forward", "forward_running", "eval_forward"], rows
    after_gbps = [row[row.index(gbps) + 1:row.index(gbps) + 4] for row, gbps in zip(rows, ["1.57", "1.43", "4.19"])]
    assert after_gbps == [["-", "-", "4.00"], ["-", "-", "4.40"], ["210", "µs", "42%"]], rows
    assert abs(ev["floor_ms"] - 0.2097152) < 1e-12 and abs(ev["pct_of_floor"] - 41.94304) < 1e-9, ev
    assert fwd["floor_ms"] is None and fwd["pct_of_floor"] is None, fwd


def test_floor_from_the_read_copy_and_triad_streams(tmp):
    # One tensor of T = 1 MiB = 1048576 bytes, 1 thread. Streams (GB/s = MB / ms / 1000):
    #   read2: 16 MB in 1.25 ms (before) or 1.0 ms (after, the best) = 16 GB/s;
    #   copy 16 MB in 2.0 ms = 8 GB/s, copy_nt in 1.6 ms = 10 GB/s: the copy yardstick is 10;
    #   triad 24 MB in 2.0 ms = 12 GB/s, triad_nt in 2.4 ms = 10 GB/s: the triad yardstick is 12.
    # forward, 0.5 ms: floor = T/16 + 2T/10 GB/s = 1048576 × 0.2625 ns = 0.2752512 ms, 55.05024%.
    # backward, 1.0 ms: floor = 2T/16 + 3T/12 = 1048576 × 0.375 ns = 0.393216 ms, 39.3216%;
    #   floor_gbps = 5T / 0.393216 ms = 13.3333 GB/s; its % of the triad stays 5.24288 / 12.
    # eval_forward, 0.25 ms: floor = 2T/10 = 0.2097152 ms, 83.88608%.
    # With 2 threads only the triad ran: no floor.
    cpp = [triad("before", 2.0), triad("before", 2.4, op="triad_nt"), triad("before", 2.0, op="copy"),
           triad("before", 1.6, op="copy_nt"), triad("before", 1.25, op="read2"),
           triad("before", 1.0, threads=2),
           kernel("bnorm", 0.5, 0.6), kernel("bnorm", 0.6, 0.7, threads=2), kernel("bnorm", 1.0, 1.1, op="backward"),
           kernel("bnorm", 0.25, 0.3, op="eval_forward"), triad("after", 1.0, op="read2")]
    text, records = run_report(tmp, [cpp], [[]])
    get = {(r["op"], r["threads"]): r for r in records if r["impl"] == "bnorm"}
    expected = {"forward": (0.2752512, 55.05024), "backward": (0.393216, 39.3216), "eval_forward": (0.2097152, 83.88608)}
    for op, (floor, pct) in expected.items():
        r = get[op, 1]
        assert abs(r["floor_ms"] - floor) < 1e-12 and abs(r["pct_of_floor"] - pct) < 1e-9, r
    bwd = get["backward", 1]
    assert abs(bwd["floor_gbps"] - 5 * 1048576 / 0.393216 / 1e6) < 1e-9, bwd
    assert abs(bwd["pct_of_bound"] - 100 * 5.24288 / 12) < 1e-9 and bwd["bound"] == "triad", bwd
    assert get["forward", 2]["floor_ms"] is None and get["forward", 2]["pct_of_floor"] is None
    assert "read2    1 thread 16.0 GB/s" in text and "copy_nt  1 thread 10.0 GB/s" in text, text
    assert "triad_nt 1 thread 10.0 GB/s" in text and "\nfloor    forward: x at read speed" in text, text
    header = next(line for line in text.splitlines() if line.startswith("op "))
    assert "% floor" in header and "% triad" not in header and "% copy" not in header, header
    # after GB/s (the 10th word: op, shape, dtype, layout, thr, min and median with units)
    rows = {(row[0], row[4]): " ".join(row[10:]) for row in (line.split() for line in text.splitlines())
            if len(row) > 10 and row[0] in expected and row[1] == "1024x256"}
    assert rows == {("forward", "1"): "275 µs 55% - - - -", ("forward", "2"): "- - - - - -",
                    ("backward", "1"): "393 µs 39% - - - -", ("eval_forward", "1"): "210 µs 84% - - - -"}, rows


def test_no_copy_stream_in_older_runs(tmp):
    # a run without the copy stream still reports, with no percentage for eval_forward
    text, records = run_report(tmp, [[triad("before", 1.5), kernel("bnorm", 0.5, 0.5, op="eval_forward")]], [[]])
    ev = next(r for r in records if r["op"] == "eval_forward")
    assert ev["pct_of_bound"] is None and ev["bound"] == "copy", ev
    assert "\ncopy " not in text, text


def main():
    tests = [(name, f) for name, f in globals().items() if name.startswith("test_")]
    failed = 0
    for name, f in tests:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                f(tmp)
                print("PASS", name)
            except Exception as e:  # noqa: BLE001 (report any failure and go on)
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
