#!/usr/bin/python3
"""Describes the machine for the benchmark report, and how much other work ran beside it.

  machine.py --out START.json                 CPU model, cores, L3 size, date, kernel; how
                                              busy the CPUs are right now (a 0.5 s sample);
                                              and a snapshot of the CPU time counters
  machine.py --since START.json --out E.json  the CPU time that processes other than the
                                              caller and its children used since START, in
                                              cores on average: 0 on an otherwise idle machine

The caller is the parent process (scripts/bench.sh): its own CPU time and that of the
children it has waited for are subtracted from the machine's.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import time

from jsonout import write_json


def lscpu():
    """lscpu's fields as a dict ({} when lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu", "--bytes"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    fields = (line.partition(":") for line in out.splitlines())
    return {key.strip(): value.strip() for key, _, value in fields}


def l3_bytes(fields):
    """The total L3 size, e.g. from "33554432 (1 instance)"; None when unknown."""
    try:
        return int(fields["L3 cache"].split()[0])
    except (KeyError, ValueError, IndexError):
        return None


def machine_ticks():
    """(busy, total) CPU time of the whole machine, in clock ticks summed over the CPUs."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:8]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def caller_ticks():
    """CPU time of the parent process and of the children it has waited for, in ticks."""
    with open(f"/proc/{os.getppid()}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime


def snapshot():
    busy, total = machine_ticks()
    return {"machine_busy": busy, "machine_total": total, "caller": caller_ticks(),
            "time": time.time()}


def busy_cores(seconds=0.5):
    """All the CPU time used over the next `seconds`, in cores (this process sleeps)."""
    busy0, total0 = machine_ticks()
    time.sleep(seconds)
    busy1, total1 = machine_ticks()
    return os.cpu_count() * (busy1 - busy0) / max(total1 - total0, 1)


def cpu_name(fields):
    """The model name with its family and model numbers: a VM's "AMD EPYC" alone does not
    tell Zen 4 (family 25) from Zen 5 (family 26)."""
    name = fields.get("Model name") or platform.processor() or "unknown CPU"
    if fields.get("CPU family") and fields.get("Model"):
        name += f" (family {fields['CPU family']}, model {fields['Model']})"
    return name


def describe():
    fields = lscpu()
    return {
        "cpu": cpu_name(fields),
        "cores": os.cpu_count(),
        "l3_bytes": l3_bytes(fields),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "kernel": platform.release(),
        "busy_cores_before": round(busy_cores(), 2),
        "snapshot": snapshot(),
    }


def others_since(start):
    now = snapshot()
    busy = now["machine_busy"] - start["machine_busy"]
    total = now["machine_total"] - start["machine_total"]
    ours = now["caller"] - start["caller"]
    return {
        "seconds": round(now["time"] - start["time"], 1),
        "others_busy_cores": round(max(0, busy - ours) * os.cpu_count() / max(total, 1), 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--since", help="the output of an earlier run")
    parser.add_argument("--out", default="-")
    args = parser.parse_args()
    if args.since:
        with open(args.since) as f:
            info = others_since(json.load(f)["snapshot"])
    else:
        info = describe()
    write_json(info, args.out)


if __name__ == "__main__":
    main()
