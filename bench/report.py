#!/usr/bin/python3
"""Turns the measurements of one benchmark run into the report (scripts/bench.sh runs it).

Reads the JSON written by machine.py (at the start, and with --since at the end),
bnorm_bench, peers.py and e2e.py; derives the bandwidth of every kernel under the bytes
model below and its floor time under the yardstick streams measured in the same run;
prints the table; with --json, writes every record as one JSON list.

Bytes model (the "bandwidth floor" of a streaming kernel): forward (and forward_running,
which also updates the running statistics) reads x twice and writes y once, 3 × the
tensor's bytes; backward reads x and dy twice and writes dx, 5 × the tensor's bytes;
eval_forward (inference, from the running statistics) reads x once and writes y once,
2 × the tensor's bytes. gbps = bytes / ms_min; pct_of_bound = gbps / yardstick gbps
(same thread count) × 100, the yardstick (`bound`) being the triad, or for eval_forward
the copy stream a[i] = s*b[i] (read one array, write one) measured in the same run.
forward_running records get ratio_to_forward: their time over the same implementation's
forward on the same case.

Floor (the yardsticks of issue 27): each pass is timed as if it moved its bytes at the
speed of the stream that reads and writes as many arrays, with the same thread count:
  read   = read2, Σ b[i] + c[i]: reads two arrays, writes none (pass A);
  copy   = the faster of copy and copy_nt (a[i] = s*b[i], ordinary or non-temporal
           stores): reads one array, writes one (forward's pass B, eval_forward);
  triad  = the faster of triad and triad_nt (a[i] = b[i] + s*c[i]): reads two, writes one
           (backward's pass B).
  forward, forward_running: x at read speed (pass A) + x and y at copy speed (pass B);
  backward: x and dy at read speed (pass A) + x, dy and dx at triad speed (pass B);
  eval_forward: x and y at copy speed.
floor_ms is the sum of those times, floor_gbps = bytes / floor_ms, and pct_of_floor =
100 × floor_ms / ms_min (= gbps / floor_gbps): above 100%, the kernel beat the streams
(its tensor stayed in the cache between passes or calls). pct_of_bound (% of the triad,
or of the plain copy for eval_forward) is kept in the JSON; the table no longer shows it,
since the triad is slower than the reads that make up most of the bytes and so
overstates how close a kernel is to the memory.

Rounds: bnorm_bench and peers.py may each be given one file per round (scripts/bench.sh
runs them in turn). Each measurement then keeps its least ms_min over the rounds, the
median of the rounds' ms_median, the sum of their samples, the most page faults per call,
and `rounds`.

Usage: report.py --machine M.json [--during D.json] --cpp BENCH.json... [--peers P.json...]
                 [--e2e E.json] [--json OUT] [--quick]
"""
import argparse
import json
import math
import os
import statistics
import sys

BYTES_MODEL = {"forward": 3, "forward_running": 3, "backward": 5, "eval_forward": 2}  # × tensor bytes
YARDSTICK = {"eval_forward": "copy"}  # the others: "triad"
STREAMS = ("triad", "triad_nt", "copy", "copy_nt", "read2")
# Each pass of an op: (yardstick, tensors it moves); a yardstick is the fastest of its streams.
FLOOR_MODEL = {"forward": [("read", 1), ("copy", 2)], "forward_running": [("read", 1), ("copy", 2)],
               "backward": [("read", 2), ("triad", 3)], "eval_forward": [("copy", 2)]}
FLOOR_STREAMS = {"read": ("read2",), "copy": ("copy", "copy_nt"), "triad": ("triad", "triad_nt")}
PEERS = {"pytorch": "PyTorch", "onednn": "oneDNN"}


def load(path, default):
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return default


def sig3(v):
    """v with three significant digits, without exponent: 4.93, 52.3, 292, 1234."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    return f"{v:.{max(0, 2 - math.floor(math.log10(abs(v))))}f}"


def fmt_time(ms):
    if ms < 1:
        return sig3(ms * 1e3) + " µs"
    if ms < 1000:
        return sig3(ms) + " ms"
    return sig3(ms / 1e3) + " s"


def fmt_bytes(n):
    return sig3(n / 1e6) + " MB"


def fmt_mib(n):
    return sig3(n / 2**20) + " MiB"


def merge_rounds(rounds):
    """The records of several rounds (lists of records) as one list, a record per
    measurement, in the first round's order: the least ms_min (and that round's other
    fields), the median of the rounds' ms_median, the samples added up, and the most page
    faults per call of any round (so that the report's note on faults misses none)."""
    fields = ("op", "impl", "norm", "shape", "axis", "dtype", "layout", "data", "threads", "when")
    merged = {}
    for records in rounds:
        for r in records:
            merged.setdefault(json.dumps([r.get(k) for k in fields]), []).append(r)
    out = []
    for same in merged.values():
        best = dict(min(same, key=lambda r: r["ms_min"]))
        best["ms_median"] = statistics.median(r["ms_median"] for r in same)
        best["samples"] = sum(r.get("samples", 0) for r in same)
        if any("faults_per_call" in r for r in same):
            best["faults_per_call"] = max(r.get("faults_per_call", 0.0) for r in same)
        best["rounds"] = len(same)
        out.append(best)
    return out


def merge_runs(runs, default):
    """Several rounds' outputs of one program (bnorm_bench's or peers.py's) as one."""
    runs = [r for r in runs if r is not None]
    if not runs:
        return default
    first = dict(runs[0])
    first["records"] = merge_rounds([r["records"] for r in runs])
    first["notes"] = list(dict.fromkeys(n for r in runs for n in r.get("notes", [])))
    first["rounds"] = len(runs)
    return first


def kernel_key(r):
    return (r["op"], tuple(r["shape"]), r["dtype"], r["layout"], r.get("data", "normal"), r["threads"],
            r.get("norm", "batch"))


def shape_label(r):
    """The shape, after the norm when it is not batch norm (group norm with its groups),
    and the data when it is not plain random normal values."""
    shape = "x".join(map(str, r["shape"]))
    norm = r.get("norm", "batch")
    if norm != "batch":
        shape = f"{norm}{r.get('groups') or ''} {shape}"
    data = r.get("data", "normal")
    return shape if data == "normal" else f"{shape} {data}"


def derive(records):
    """Adds gbps to the streams; gbps, bound, pct_of_bound, floor_ms, floor_gbps and
    pct_of_floor to the kernels; mb_per_s to CSV; bnorm's time ratios to the peers, and
    forward_running's to forward. Returns the GB/s of the streams, {"triad": {threads:
    gbps}, "copy": ..., "read2": ...}, a stream missing from older runs left empty."""
    streams = {name: {} for name in STREAMS}  # the best of the runs before and after the kernels
    for r in records:
        if r["op"] in streams and r["impl"] == "stream":
            r["gbps"] = r["bytes"] / r["ms_min"] / 1e6
            best = streams[r["op"]]
            best[r["threads"]] = max(best.get(r["threads"], 0), r["gbps"])
    for r in records:
        if r["op"] in BYTES_MODEL:
            r["bytes"] = BYTES_MODEL[r["op"]] * r["tensor_bytes"]
            r["gbps"] = r["bytes"] / r["ms_min"] / 1e6
            r["bound"] = YARDSTICK.get(r["op"], "triad")
            bound = streams[r["bound"]].get(r["threads"])  # no copy stream in older runs
            r["pct_of_bound"] = 100 * r["gbps"] / bound if bound else None
            r["floor_ms"] = floor_ms(r, streams)
            r["floor_gbps"] = r["bytes"] / r["floor_ms"] / 1e6 if r["floor_ms"] else None
            r["pct_of_floor"] = 100 * r["floor_ms"] / r["ms_min"] if r["floor_ms"] else None
        elif r["op"] in ("csv_parse", "csv_format"):
            r["mb_per_s"] = r["bytes"] / r["ms_min"] / 1e3
    peer_ms = {(r["impl"],) + kernel_key(r): r["ms_min"]
               for r in records if r["op"] in BYTES_MODEL and r["impl"] in PEERS}
    for r in records:
        if r["op"] in BYTES_MODEL and r["impl"] == "bnorm":
            for impl in PEERS:
                theirs = peer_ms.get((impl,) + kernel_key(r))
                if theirs:
                    r[f"ratio_to_{impl}"] = r["ms_min"] / theirs
    forward_ms = {(r["impl"],) + kernel_key(r)[1:]: r["ms_min"] for r in records if r["op"] == "forward"}
    for r in records:
        if r["op"] == "forward_running":
            plain = forward_ms.get((r["impl"],) + kernel_key(r)[1:])
            if plain:
                r["ratio_to_forward"] = r["ms_min"] / plain
    return streams


def yardsticks(streams, threads):
    """{"read": gbps, "copy": gbps, "triad": gbps} with `threads` threads: each the fastest
    of its streams (FLOOR_STREAMS); a yardstick none of whose streams ran is left out."""
    out = {}
    for name, members in FLOOR_STREAMS.items():
        speeds = [streams[m][threads] for m in members if threads in streams[m]]
        if speeds:
            out[name] = max(speeds)
    return out


def floor_ms(r, streams):
    """The kernel's floor time (FLOOR_MODEL): each pass's bytes over its yardstick's GB/s,
    added up; None when a yardstick was not measured (older runs)."""
    speeds = yardsticks(streams, r["threads"])
    if any(name not in speeds for name, _ in FLOOR_MODEL[r["op"]]):
        return None
    return sum(k * r["tensor_bytes"] / speeds[name] / 1e6 for name, k in FLOOR_MODEL[r["op"]])


def table(header, rows, right):
    """Formats rows under header; columns whose index is in `right` are right-aligned."""
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    lines = []
    for row in [header] + rows:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def kernel_table(records):
    bnorm = [r for r in records if r["op"] in BYTES_MODEL and r["impl"] == "bnorm"]
    peers = {(r["impl"],) + kernel_key(r): r for r in records
             if r["op"] in BYTES_MODEL and r["impl"] in PEERS}
    header = ["op", "shape", "dtype", "layout", "thr", "min", "median", "GB/s", "floor", "% floor"]
    for name in PEERS.values():
        header += [name, "bnorm/" + name]
    rows = []
    for r in bnorm:
        floor = "-" if r["floor_ms"] is None else fmt_time(r["floor_ms"])
        pct = "-" if r["pct_of_floor"] is None else f"{r['pct_of_floor']:.0f}%"
        row = [r["op"], shape_label(r), r["dtype"], r["layout"], r["threads"],
               fmt_time(r["ms_min"]), fmt_time(r["ms_median"]), sig3(r["gbps"]), floor, pct]
        for impl in PEERS:
            peer = peers.get((impl,) + kernel_key(r))
            row += [fmt_time(peer["ms_min"]), sig3(r[f"ratio_to_{impl}"]) + "x"] if peer else ["-", "-"]
        rows.append(row)
    return table(header, rows, right=set(range(4, len(header))))


def e2e_table(records):
    header = ["bnorm command (end to end)", "min", "median", "copy", "bnorm/copy", "input MB/s",
              "peak RSS", "in+out", "RSS/(in+out)"]
    rows = []
    for r in records:
        rss = r["peak_rss_bytes"]  # None without GNU time
        rows.append([r["command"], fmt_time(r["ms_min"]), fmt_time(r["ms_median"]),
                     fmt_time(r["copy_ms_min"]), sig3(r["ratio_to_copy"]) + "x",
                     sig3(r["input_mb_per_s"]), fmt_bytes(rss) if rss else "-",
                     fmt_bytes(r["io_bytes"]), sig3(r["rss_over_io"]) if rss else "-"])
    return table(header, rows, right=set(range(1, len(header))))


def notes(machine, cpp, peers, records):
    """The lines under the kernel table: what the columns mean, and what to keep in mind."""
    lines = [
        "GB/s: bytes model / min time, forward 3x, backward 5x and eval_forward 2x the tensor's bytes.",
        "floor: the time of the same passes at the yardsticks' speeds, same thread count (the `floor` line",
        "above); % floor: floor / bnorm's min time, its GB/s as a share of the yardsticks' (above 100%: the",
        "tensor stayed in the cache). bnorm/peer: bnorm's min time over the peer's (above 1: bnorm",
        "is slower). Peers' backward starts from saved statistics (only the backward is timed); bnorm's",
        "backward recomputes them. oneDNN gets (N, C) as the same bytes in (N, C, 1, 1) nhwc form: its",
        "`nc` tag selects a generic kernel about ten times slower. eval_forward: y from the running",
        "statistics (inference); forward_running: forward that also updates them (momentum 0.1).",
    ]
    running = [r for r in records if r["op"] == "forward_running" and "ratio_to_forward" in r]
    if running:
        lines.append("forward_running / forward (min times): " + ", ".join(
            f"{PEERS.get(r['impl'], r['impl'])} {shape_label(r)} {r['dtype']} thr {r['threads']} "
            f"{sig3(r['ratio_to_forward'])}x" for r in running))
    lines += ["note: " + n for n in cpp.get("notes", []) + peers.get("notes", [])]
    kernels = [r for r in records if r["op"] in BYTES_MODEL]
    l3 = machine.get("l3_bytes")
    cached = {}  # (bytes, dtype) -> shapes of kernels whose tensor fits in the L3 cache
    for r in kernels:
        if l3 and l3 / 64 < r["tensor_bytes"] <= l3:
            shapes = cached.setdefault((r["tensor_bytes"], r["dtype"]), [])
            shape = "x".join(map(str, r["shape"]))
            if shape not in shapes:
                shapes.append(shape)
    for (size, dtype), shapes in sorted(cached.items()):
        are = "are" if len(shapes) > 1 else "is"
        lines.append(f"note: {', '.join(shapes)} {dtype} ({fmt_mib(size)}) {are} within the {fmt_mib(l3)} L3 "
                     "cache: later passes partly hit the cache, so % floor can exceed 100%")
    # Page faults in a timed call mean its memory was not reused (the bench avoids them);
    # a few per call (thread stacks, small vectors) do not matter. Pages are 4 KiB.
    for r in kernels:
        if r["faults_per_call"] * 4096 > 0.01 * r["bytes"]:
            lines.append(f"note: {r['impl']} {r['op']} {'x'.join(map(str, r['shape']))} {r['dtype']} "
                         f"threads={r['threads']}: {r['faults_per_call']:.0f} page faults per timed call")
    return lines


def print_report(machine, cpp, peers, e2e, records, streams, quick, out=sys.stdout):
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"bnorm benchmark{' (--quick)' if quick else ''}, {machine['date']}")
    l3 = f", {fmt_mib(machine['l3_bytes'])} L3" if machine.get("l3_bytes") else ""
    p(f"machine  {machine['cpu']}, {machine['cores']} cores{l3}, Linux {machine['kernel']}")
    torch_v, dnnl_v = peers.get("pytorch"), cpp.get("onednn")
    p("peers    PyTorch " + (f"{torch_v}: measured" if torch_v else "not available: skipped")
      + ";  oneDNN " + (f"{dnnl_v}: measured" if dnnl_v else "not available: skipped"))
    triad_bytes = next(r["bytes"] for r in records if r["op"] == "triad")
    mib = triad_bytes // 3 >> 20
    what = {
        "read2": f"sum of b[i] + c[i] on 2 arrays of {mib} MiB, counting 16 bytes per i, writing nothing: the "
                 "read yardstick (pass A)",
        "copy": "a[i] = s*b[i] on 2 of those arrays, counting 16 bytes per i",
        "copy_nt": "the same with non-temporal stores; the faster copy is the copy yardstick (forward's pass B)",
        "triad": f"a[i] = b[i] + s*c[i] on 3 arrays of {mib} MiB, counting 24 bytes per i;"
                 " best of a run before and one after the kernels in each round",
        "triad_nt": "the same with non-temporal stores; the faster triad is backward's pass B yardstick",
    }
    for name in ("read2", "copy", "copy_nt", "triad", "triad_nt"):
        if streams[name]:
            p(f"{name:<8} " + ", ".join(f"{t} thread{'s' if t > 1 else ''} {sig3(g)} GB/s"
                                        for t, g in sorted(streams[name].items())) + f"  ({what[name]})")
    if streams["read2"]:
        p("floor    forward: x at read speed (pass A) + x, y at copy speed (pass B); backward: x, dy at read speed"
          " (pass A) + x, dy, dx at triad speed (pass B); eval_forward: x, y at copy speed")
    rounds = cpp.get("rounds", 1)
    if rounds > 1:
        p(f"rounds   {rounds}: bnorm_bench (bnorm, oneDNN) and PyTorch in turn; min: the least over the rounds, "
          "median: the median of the rounds' medians")
    before, during = machine.get("busy_cores_before", 0), machine.get("others_busy_cores", 0)
    p(f"others   other processes used {during:.2f} of {machine['cores']} cores during the run "
      f"({machine.get('seconds', 0):.0f} s), {before:.2f} just before it")
    if max(before, during) > 0.1:
        p("WARNING  other work ran beside the benchmark: timings (above all with 2 threads) are disturbed")
    p("")
    p(kernel_table(records))
    p("")
    for line in notes(machine, cpp, peers, records):
        p(line)

    if e2e:
        p("")
        p(e2e_table(e2e))
        copies = "; ".join(r["copy_command"] for r in e2e)
        p(f"Warm page cache, min of {e2e[0]['runs']} runs ({e2e[0]['timer']}). copy: {copies}.")
        if not e2e[0]["peak_rss_bytes"]:
            p("note: peak RSS not measured: it needs GNU time (/usr/bin/time, Debian package `time`)")
    csv = {r["op"]: r for r in records if r["op"].startswith("csv_")}
    if csv:
        r = csv["csv_parse"]
        p(f"CSV in memory, one thread, {'x'.join(map(str, r['shape']))} float64 ({fmt_bytes(r['bytes'])} "
          f"of text): parse {sig3(r['mb_per_s'])} MB/s (with allocating the result), "
          f"format {sig3(csv['csv_format']['mb_per_s'])} MB/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machine", required=True, help="machine.py's output")
    parser.add_argument("--during", help="machine.py --since's output at the end of the run")
    parser.add_argument("--cpp", required=True, nargs="+", help="bnorm_bench's output, one per round")
    parser.add_argument("--peers", nargs="+", default=[], help="peers.py's output, one per round")
    parser.add_argument("--e2e", help="e2e.py's output")
    parser.add_argument("--json", help="also write every record here, as a JSON list")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    machine = dict(load(args.machine, {}), **load(args.during, {}))
    machine.pop("snapshot", None)
    cpp = merge_runs([load(path, None) for path in args.cpp], None)
    peers = merge_runs([load(path, None) for path in args.peers], {"pytorch": None, "notes": [], "records": []})
    e2e = load(args.e2e, {"records": []})["records"]
    records = cpp["records"] + peers["records"] + e2e
    streams = derive(records)
    print_report(machine, cpp, peers, e2e, records, streams, args.quick)

    if args.json:
        run = {"op": "run", "impl": None, **machine, "quick": args.quick, "rounds": cpp.get("rounds", 1),
               "pytorch": peers.get("pytorch"), "onednn": cpp.get("onednn"),
               "notes": cpp.get("notes", []) + peers.get("notes", [])}
        with open(args.json, "w") as f:
            json.dump([run] + records, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
