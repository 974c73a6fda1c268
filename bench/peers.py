#!/usr/bin/python3
"""The PyTorch peer of the benchmark: times torch's CPU batch norm on the cases of
bench/cases.json and writes JSON records like bnorm_bench's (scripts/bench.sh runs it).

  forward          torch.nn.functional.batch_norm(x, None, None, weight, bias, training=True, eps=1e-5)
  forward_running  the same with running_mean and running_var, which it updates in place
                   (momentum 0.1, the unbiased batch variance)
  backward         torch.ops.aten.native_batch_norm_backward from the statistics saved by one
                   native_batch_norm call; only the backward is timed, as for oneDNN
  eval_forward     F.batch_norm(x, running_mean, running_var, weight, bias, training=False, eps=1e-5)

Cases with a "norm" other than batch (bnorm/family.hpp) time the family's torch functions:
  layer     F.layer_norm; backward torch.ops.aten.native_layer_norm_backward from the saved
            statistics of one native_layer_norm call
  group     F.group_norm; backward torch.ops.aten.native_group_norm_backward, likewise
  instance  F.instance_norm (use_input_stats); backward through autograd (torch has no
            separate kernel: it runs batch norm on the (1, N*C, ...) view)
  rms       torch 1.13 has no RMSNorm: the composite x*rsqrt(mean(x^2) + eps)*weight, and
            its backward through autograd; there is no fused kernel to compare with

nhwc cases use torch.channels_last: the NCHW tensor whose memory is the stored
(N, H, W, C) array. If torch cannot be imported, the output says so and has no records.

Usage: peers.py [--quick] [--cases bench/cases.json] [--out FILE]
"""
import argparse
import ctypes
import json
import math
import os
import resource
import statistics
import sys
import time

from jsonout import write_json

HERE = os.path.dirname(os.path.abspath(__file__))
EPS = 1e-5
OPS = ("forward", "forward_running", "backward", "eval_forward")  # bench/bench.hpp's order


def keep_freed_memory():
    """Makes glibc keep freed memory for reuse instead of returning it to the kernel.

    torch allocates a new output on every call. By default glibc serves blocks above
    32 MiB with a fresh mmap, so every timed call would page-fault its whole output
    (about half of the time of a 64 MiB forward), while bnorm and oneDNN write into
    buffers touched beforehand. With mmap off and no trimming, most calls reuse memory
    touched before. Some still fault (torch's aligned allocations can leave a freed
    block a few bytes too small for the next one); faults_per_call shows how many, and
    ms_min comes from a call without them.
    """
    libc = ctypes.CDLL(None)
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 2**31 - 1)  # an int: 2 GiB


def page_faults():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_minflt + u.ru_majflt


def measure(call, policy):
    """Same procedure as bench/harness.cpp: a warm-up call, then samples of one or more
    calls until the policy of bench/cases.json says stop. Times are per call."""
    start = time.perf_counter()
    call()
    warmup_ms = 1e3 * (time.perf_counter() - start)
    calls = 1
    if warmup_ms < policy["min_sample_ms"]:
        calls = math.ceil(policy["min_sample_ms"] / max(warmup_ms, 1e-6))
    per_call_ms = []
    faults_before = page_faults()
    begin = time.perf_counter()
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        per_call_ms.append(1e3 * (time.perf_counter() - start) / calls)
        n, elapsed = len(per_call_ms), time.perf_counter() - begin
        if (n >= policy["max_samples"]
                or (n >= policy["min_samples"] and elapsed >= policy["min_seconds"])
                or (n >= policy["floor_samples"] and elapsed >= policy["max_seconds"])):
            break
    return {
        "ms_min": min(per_call_ms),
        "ms_median": statistics.median(per_call_ms),
        "samples": len(per_call_ms),
        "calls_per_sample": calls,
        "faults_per_call": (page_faults() - faults_before) / (len(per_call_ms) * calls),
    }


def make_tensors(torch, case):
    """x and dy as bnorm sees them (the stored shape), viewed the way torch wants them:
    an nhwc case becomes the NCHW tensor in channels_last memory format."""
    dtype = {"float32": torch.float32, "float64": torch.float64}[case["dtype"]]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(case["shape"], dtype=dtype, generator=gen)
    dy = torch.randn(case["shape"], dtype=dtype, generator=gen)
    data = case.get("data", "normal")  # as bench/kernels.cpp
    if data == "offset":
        x = x + 5e4
    elif data == "linear":
        dy = 0.5 + 2 * x
    elif data not in ("normal", "ahead16"):
        raise ValueError(f"cases.json: unknown data {data!r}")
    if case["layout"] == "nhwc":
        x, dy = (t.permute(0, 3, 1, 2) for t in (x, dy))
        assert x.is_contiguous(memory_format=torch.channels_last)
    channels = x.shape[1]
    weight = torch.randn(channels, dtype=dtype, generator=gen)
    bias = torch.randn(channels, dtype=dtype, generator=gen)
    # near the batch statistics of normal x, as bench/kernels.cpp
    running_mean = 0.1 * torch.randn(channels, dtype=dtype, generator=gen)
    running_var = 1 + 0.1 * torch.randn(channels, dtype=dtype, generator=gen).abs()
    return x, dy, weight, bias, running_mean, running_var


def family_call(torch, case, op, x, dy):
    """The call that times `op` of a family norm (the module docstring lists them)."""
    import torch.nn.functional as F

    norm, dtype, gen = case["norm"], x.dtype, torch.Generator().manual_seed(1)
    axis = case["axis"] % x.dim()
    params = x.shape[axis:] if norm in ("layer", "rms") else (x.shape[1],)
    weight = torch.randn(params, dtype=dtype, generator=gen)
    bias = torch.randn(params, dtype=dtype, generator=gen)
    if norm == "layer":
        shape = list(x.shape[axis:])
        if op == "forward":
            return lambda: F.layer_norm(x, shape, weight, bias, EPS)
        _, mean, rstd = torch.ops.aten.native_layer_norm(x, shape, weight, bias, EPS)
        return lambda: torch.ops.aten.native_layer_norm_backward(dy, x, shape, mean, rstd, weight, bias,
                                                                 [True, True, True])
    if norm == "group":
        groups = case["groups"]
        if op == "forward":
            return lambda: F.group_norm(x, groups, weight, bias, EPS)
        n, c = x.shape[0], x.shape[1]
        hw = x.numel() // (n * c)
        _, mean, rstd = torch.ops.aten.native_group_norm(x, weight, bias, n, c, hw, groups, EPS)
        return lambda: torch.ops.aten.native_group_norm_backward(dy, x, mean, rstd, weight, n, c, hw, groups,
                                                                 [True, True, True])
    if norm == "instance":
        def forward(t):
            return F.instance_norm(t, weight=weight, bias=bias, use_input_stats=True, eps=EPS)
    elif norm == "rms":
        dims = tuple(range(axis, x.dim()))

        def forward(t):
            return t * torch.rsqrt(t.pow(2).mean(dims, keepdim=True) + EPS) * weight
    else:
        raise ValueError(f"cases.json: unknown norm {norm!r}")
    if op == "forward":
        return lambda: forward(x)
    xg = x.clone().requires_grad_(True)
    weight.requires_grad_(True)
    if norm == "instance":
        bias.requires_grad_(True)
    with torch.enable_grad():
        y = forward(xg)

    def backward():
        xg.grad = weight.grad = bias.grad = None
        y.backward(dy, retain_graph=True)
    return backward


def bench_case(torch, case, op, threads, policy):
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    x, dy, weight, bias, running_mean, running_var = make_tensors(torch, case)
    if case.get("norm", "batch") != "batch":
        call = family_call(torch, case, op, x, dy)
    elif op == "forward":
        def call():
            F.batch_norm(x, None, None, weight, bias, training=True, eps=EPS)
    elif op == "forward_running":
        def call():
            F.batch_norm(x, running_mean, running_var, weight, bias, training=True, momentum=0.1, eps=EPS)
    elif op == "eval_forward":
        def call():
            F.batch_norm(x, running_mean, running_var, weight, bias, training=False, eps=EPS)
    elif op == "backward":
        _, save_mean, save_invstd = torch.ops.aten.native_batch_norm(
            x, weight, bias, None, None, True, 0.1, EPS)

        def call():
            torch.ops.aten.native_batch_norm_backward(
                dy, x, weight, None, None, save_mean, save_invstd, True, EPS, [True, True, True])
    else:
        raise ValueError(f"cases.json: unknown op {op!r}")
    with torch.no_grad():  # (autograd's backward calls run regardless)
        timing = measure(call, policy)
    record = {"op": op, "impl": "pytorch", "shape": case["shape"], "axis": case["axis"],
              "dtype": case["dtype"], "layout": case["layout"], "data": case.get("data", "normal"),
              "threads": threads,
              "tensor_bytes": x.numel() * x.element_size()}
    if case.get("norm", "batch") != "batch":
        record["norm"], record["groups"] = case["norm"], case.get("groups", 0)
    record.update(timing)
    return record


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the cases marked quick, fewer repetitions")
    parser.add_argument("--cases", default=os.path.join(HERE, "cases.json"))
    parser.add_argument("--out", default="-", help="JSON output ('-': stdout)")
    args = parser.parse_args()

    with open(args.cases) as f:
        plan = json.load(f)
    policy = plan["repetitions"]["quick" if args.quick else "full"]
    cases = [c for c in plan["cases"] if c["quick"] or not args.quick]

    result = {"pytorch": None, "notes": [], "records": []}
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install
        result["notes"].append(f"PyTorch skipped: cannot import torch with {sys.executable} ({e}); "
                               "install python3-torch")
    else:
        keep_freed_memory()
        result["pytorch"] = torch.__version__
        for case in cases:
            if case.get("data") == "ahead16":  # a placement of outputs, which torch allocates itself
                note = "PyTorch skipped on ahead16 (outputs placed 16 bytes ahead of x): torch allocates its outputs"
                if note not in result["notes"]:
                    result["notes"].append(note)
                continue
            names = plan["ops"] + case.get("more_ops", [])
            for op in [op for op in OPS if op in names] + [op for op in names if op not in OPS]:
                for threads in plan["threads"]:
                    r = bench_case(torch, case, op, threads, policy)
                    shape = "x".join(map(str, case["shape"]))
                    norm = "" if case.get("norm", "batch") == "batch" else case["norm"] + " "
                    print(f"  {op} {norm}{shape} {case['dtype']} {case['layout']} threads={threads} pytorch"
                          f"{r['ms_min']:>14.3f} ms", file=sys.stderr)
                    result["records"].append(r)

    write_json(result, args.out)


if __name__ == "__main__":
    main()
