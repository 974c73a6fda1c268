#!/usr/bin/python3
"""End-to-end timing of the bnorm command line against copying the same files with cat,
and the peak memory of each bnorm run (scripts/bench.sh runs it).

  forward   bnorm forward --x x.npy --y y.npy               vs  cat x.npy > out.npy
  backward  bnorm backward --x x.npy --dy dy.npy --dx dx.npy vs  cat x.npy dy.npy > out.npy
  csv       bnorm forward --x big.csv --y y.csv             vs  cat big.csv > out.csv

x and dy are (65536, 256) float32 NPY files written here with numpy into --dir; the CSV
file is given (bnorm_bench --csv-out writes it into --dir). Every command runs warm (a
warm-up run fills the page cache) and the minimum of the runs is reported; the CSV run
is repeated half as often. Times come from hyperfine when it is installed, else from a
timing loop here; both run each command through a shell. Peak RSS comes from one more
run of each bnorm command under GNU time (/usr/bin/time, package `time`); without it,
it is null.

Usage: e2e.py --bnorm build-bench/bnorm --dir TMPDIR [--csv NAME] [--runs N] [--out FILE]
"""
import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from jsonout import write_json


def time_command(command, runs, folder):
    """Returns (per-run seconds, timer name) for a shell command run in `folder`, after
    one warm-up run."""
    if shutil.which("hyperfine"):
        with tempfile.NamedTemporaryFile(suffix=".json") as report:
            done = subprocess.run(["hyperfine", "--warmup", "1", "--runs", str(runs), "--style", "none",
                                   "--export-json", report.name, command],
                                  capture_output=True, text=True, cwd=folder)
            if done.returncode != 0:
                sys.exit(f"e2e.py: hyperfine failed on {command}:\n{done.stderr}")
            times = json.load(report)["results"][0]["times"]
        version = subprocess.run(["hyperfine", "--version"], capture_output=True, text=True).stdout
        return times, version.strip()
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(["/bin/sh", "-c", command], check=True, cwd=folder)
        if i > 0:  # run 0 is the warm-up
            times.append(time.perf_counter() - start)
    return times, "python timing loop"


GNU_TIME = "/usr/bin/time"


def peak_rss_bytes(argv, folder):
    """The peak resident set size of one run of argv, measured by GNU time; None without it.

    (os.wait4 on a child of this process would not do: Linux carries the peak RSS of the
    process image before exec over, and a child spawned from Python starts as Python, so
    the result would be at least this process's own peak.)"""
    if not os.access(GNU_TIME, os.X_OK):
        return None
    with tempfile.NamedTemporaryFile("r") as out:
        done = subprocess.run([GNU_TIME, "-f", "%M", "-o", out.name] + argv, cwd=folder)
        if done.returncode != 0:
            sys.exit(f"e2e.py: {shlex.join(argv)} failed")
        return int(out.read().split()[-1]) * 1024  # GNU time reports KiB


class Runner:
    """Runs commands on files of one folder, named relative to it."""

    def __init__(self, bnorm, folder, runs):
        self.bnorm, self.folder, self.runs = os.path.abspath(bnorm), folder, runs

    def size(self, names):
        return sum(os.path.getsize(os.path.join(self.folder, n)) for n in names)

    def compare(self, bnorm_args, inputs, outputs, copy_command, runs=None):
        """Times `bnorm bnorm_args` and copy_command; measures bnorm's peak RSS."""
        runs = runs or self.runs
        argv = [self.bnorm] + bnorm_args
        times, timer = time_command(shlex.join(argv), runs, self.folder)
        copy_times, _ = time_command(copy_command, runs, self.folder)
        rss = peak_rss_bytes(argv, self.folder)
        io_bytes = self.size(inputs + outputs)
        ms_min, copy_ms_min = 1e3 * min(times), 1e3 * min(copy_times)
        command = shlex.join(["bnorm"] + bnorm_args)
        print(f"  {command:<52} {ms_min:10.1f} ms   {copy_command}: {copy_ms_min:.1f} ms   "
              f"peak RSS {rss / 1e6 if rss else float('nan'):.0f} MB", file=sys.stderr)
        return {
            "command": command,
            "ms_min": ms_min,
            "ms_median": 1e3 * statistics.median(times),
            "runs": len(times),
            "copy_command": copy_command,
            "copy_ms_min": copy_ms_min,
            "copy_ms_median": 1e3 * statistics.median(copy_times),
            "ratio_to_copy": ms_min / copy_ms_min,
            "input_mb_per_s": self.size(inputs) / 1e3 / ms_min,
            "peak_rss_bytes": rss,
            "io_bytes": io_bytes,
            "rss_over_io": rss / io_bytes if rss else None,
            "timer": timer,
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bnorm", required=True, help="the bnorm executable")
    parser.add_argument("--dir", required=True, help="a scratch folder for the files")
    parser.add_argument("--csv", help="name of a float64 CSV file in --dir for the CSV run")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each command")
    parser.add_argument("--out", default="-", help="JSON output ('-': stdout)")
    args = parser.parse_args()

    shape = (65536, 256)
    rng = np.random.default_rng(0)
    for name in ("x.npy", "dy.npy"):
        np.save(os.path.join(args.dir, name), rng.standard_normal(shape, dtype=np.float32))
    run = Runner(args.bnorm, args.dir, args.runs)
    npy = {"impl": "bnorm", "shape": list(shape), "dtype": "float32", "layout": "nc", "format": "npy"}
    records = [
        {"op": "e2e_forward", **npy, **run.compare(
            ["forward", "--x", "x.npy", "--y", "y.npy"], ["x.npy"], ["y.npy"],
            "cat x.npy > out.npy")},
        {"op": "e2e_backward", **npy, **run.compare(
            ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "dx.npy"], ["x.npy", "dy.npy"],
            ["dx.npy"], "cat x.npy dy.npy > out.npy")},
    ]
    if args.csv:
        with open(os.path.join(args.dir, args.csv)) as f:
            cols = len(f.readline().split(","))
            rows = 1 + sum(1 for _ in f)
        csv = dict(npy, shape=[rows, cols], dtype="float64", format="csv")
        q = shlex.quote(args.csv)
        records.append({"op": "e2e_forward", **csv, **run.compare(
            ["forward", "--x", args.csv, "--y", "y.csv"], [args.csv], ["y.csv"],
            f"cat {q} > out.csv", runs=max(1, args.runs // 2))})

    write_json({"records": records}, args.out)


if __name__ == "__main__":
    main()
