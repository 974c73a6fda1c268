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


def kernel(impl, ms_min, ms_median, threads=1, samples=10, faults=0.0):
    return {"op": "forward", "impl": impl, "shape": [1024, 256], "axis": 1, "dtype": "float32",
            "layout": "nc", "data": "normal", "threads": threads, "tensor_bytes": 1024 * 256 * 4,
            "ms_min": ms_min, "ms_median": ms_median, "samples": samples, "calls_per_sample": 1,
            "faults_per_call": faults}


def triad(when, ms_min, threads=1):
    # 24 MB in ms_min milliseconds
    return {"op": "triad", "impl": "stream", "threads": threads, "when": when, "bytes": 24_000_000,
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
