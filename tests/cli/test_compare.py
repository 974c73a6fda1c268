#!/usr/bin/python3
"""bnorm compare: the judge, against outputs it did not compute.

Usage (Debian's Python, which has numpy; torch where installed):

    /usr/bin/python3 tests/cli/test_compare.py BNORM [NAME-SUBSTRING ...]

  * PyTorch 1.13's own CPU outputs pass with the default criterion: F.batch_norm's
    training forward y and its autograd dx, dgamma, dbeta, and native_batch_norm's saved
    mean and invstd and updated running statistics (momentum 0.1), on 106 random ordinary problems
    (N(0, 2) data, (N, C), NCHW and NHWC with --axis -1, float32 and float64, 4 to 4096
    values per channel, and an NCHW (32, 4, 32, 32) of each dtype, seeded); the worst ratio to the tolerance is printed (the margin).
    Without torch these tests pass with a note that they were skipped.
  * Classic wrong kernels, written here in numpy, fail: y with the unbiased variance, eps
    outside the square root (eps 1e-3, Keras's default), the mean over the wrong axis,
    a dx shifted by one element; the smallest ratio to the tolerance is printed.
  * PyTorch's float32 outputs on data offset by 1e4 fail, and the report says by how much.
  * PyTorch's inference mode (F.batch_norm(training=False), autograd) passes.
  * A naive two-pass numpy implementation in float64 passes; so do the float64 running
    update and inference-mode outputs written from their formulas here.
  * The committed golden cases' mpmath outputs pass: compare's exact values are exact.
  * --rtol/--atol and --tol-eps judge a perturbation of known size on both sides of it.
  * Usage and input errors: exit 2, one line (a candidate of another shape names both
    shapes); the report's fields; --report writes what stdout shows; exit codes 0/1.

Prints `PASS name` / `FAIL name: reason` per test and `N passed, M failed`; exit 1 on a
failure.
"""

import json
import os
import sys
import tempfile

import numpy as np

from runner import check, import_torch, json_command, note, run_tests, save_arrays

torch, F = import_torch()

BNORM = None  # set by run_tests()
TENSORS = ("y", "mean", "invstd", "dx", "dgamma", "dbeta", "new_running_mean", "new_running_var")
HIST = ("0", "1", "2-4", "5-16", "17-256", ">256")
WORST = ("index", "got", "exact", "ulp_error", "allowed", "ratio_to_tolerance")


def compare(tmp, args, expect=None):
    """Runs bnorm compare in tmp; returns (exit code, report or None, stderr)."""
    rc, report, err = json_command(BNORM, "compare", tmp, args)
    if expect is not None:
        check(rc == expect, "compare %s: exit %d (expected %d), stderr %r"
              % (" ".join(args), rc, expect, err[-800:]))
    return rc, report, err


def ordinary_problems(seed, count):
    """Shapes and axes of ordinary problems: (N, C), NCHW (axis 1), NHWC (axis -1), at
    least 4 values per channel (a random pair is often a mean >> spread problem)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        kind = len(out) % 3
        if kind == 0:
            shape, axis = (int(rng.choice([4, 8, 16, 64, 256, 1024, 4096])), int(rng.choice([1, 3, 4, 16, 64]))), 1
        else:
            shape = tuple(int(v) for v in (rng.integers(1, 9), rng.integers(1, 8), rng.integers(1, 9), rng.integers(2, 9)))
            axis = 1 if kind == 1 else -1
        C = shape[axis]
        if np.prod(shape) // C >= 4:
            out.append((shape, axis))
    return out


def torch_outputs(x, g, b, dy, eps, axis, dtype):
    """F.batch_norm's training forward and autograd backward in `dtype`, in x's layout."""
    ax = axis % x.ndim
    tx = torch.tensor(x.astype(dtype)).movedim(ax, 1).contiguous().requires_grad_(True)
    tg = torch.tensor(g.astype(dtype)).requires_grad_(True)
    tb = torch.tensor(b.astype(dtype)).requires_grad_(True)
    y = F.batch_norm(tx, None, None, tg, tb, training=True, eps=eps)
    y.backward(torch.tensor(dy.astype(dtype)).movedim(ax, 1).contiguous())
    back = lambda t: np.ascontiguousarray(t.detach().movedim(1, ax).numpy())
    out = dict(y=back(y), dx=back(tx.grad), dgamma=tg.grad.numpy(), dbeta=tb.grad.numpy())
    # the saved statistics and the running update (momentum 0.1, in place), as nn.BatchNorm runs it
    rm = torch.tensor(np.linspace(-1, 1, g.size).astype(dtype))
    rv = torch.tensor(np.linspace(0.5, 2, g.size).astype(dtype))
    out.update(rm=rm.numpy().copy(), rv=rv.numpy().copy())
    with torch.no_grad():
        _, mean, invstd = torch.native_batch_norm(tx.detach(), tg.detach(), tb.detach(), rm, rv, True, 0.1, eps)
    out.update(mean=mean.numpy(), invstd=invstd.numpy(), nrm=rm.numpy(), nrv=rv.numpy())
    return out


def problem(rng, shape, axis, dtype, offset=0.0):
    C = shape[axis]
    x = (offset + rng.normal(0, 2, shape)).astype(dtype)
    g = rng.normal(1, 0.5, C).astype(dtype)
    b = rng.normal(0, 1, C).astype(dtype)
    dy = rng.normal(0, 1, shape).astype(dtype)
    return x, g, b, dy


ARGS = ["--x", "x.npy", "--gamma", "g.npy", "--beta", "b.npy", "--dy", "dy.npy"]


def test_pytorch_ordinary_passes():
    if torch is None:
        note("skipped: torch not installed")
        return
    worst = {}
    n = 0
    k = None
    with tempfile.TemporaryDirectory() as tmp:
        for dtype, seed in ((np.float32, 1), (np.float64, 2)):
            rng = np.random.default_rng(100 + seed)
            # and one NCHW tensor of the size of a vision model's layer: 32768 values per channel
            for shape, axis in ordinary_problems(seed, 52) + [((32, 4, 32, 32), 1)]:
                x, g, b, dy = problem(rng, shape, axis, dtype)
                out = torch_outputs(x, g, b, dy, 1e-5, axis, dtype)
                save_arrays(tmp, x=x, g=g, b=b, dy=dy, **out)
                rc, rep, err = compare(tmp, ARGS + ["--axis", str(axis), "--y", "y.npy", "--dx", "dx.npy",
                                                    "--dgamma", "dgamma.npy", "--dbeta", "dbeta.npy",
                                                    "--mean", "mean.npy", "--invstd", "invstd.npy",
                                                    "--running-mean", "rm.npy", "--running-var", "rv.npy",
                                                    "--new-running-mean", "nrm.npy", "--new-running-var", "nrv.npy"])
                check(rc == 0, "PyTorch %s %s axis %d flagged: %s" % (np.dtype(dtype).name, shape, axis, err[-600:]))
                k = rep["criterion"]["k"]
                for t, v in rep["tensors"].items():
                    key = (np.dtype(dtype).name, t)
                    if v["max_ratio_to_tolerance"] > worst.get(key, (0,))[0]:
                        worst[key] = (v["max_ratio_to_tolerance"], shape, axis)
                n += 1
    check(n >= 100, "only %d problems" % n)
    for t in sorted(worst):
        note("%s %-6s worst %.3f of the tolerance (k*eps: %.1f*eps*scale), at %s axis %d"
             % (t[0], t[1], worst[t][0], k * worst[t][0], worst[t][1], worst[t][2]))


def test_pytorch_float32_backward_of_the_issue_passes():
    """The 12 problems on which gradcheck's float32 default flagged PyTorch's own backward
    (issue 26: N(0, 2) data, shapes (256, 16), (64, 64), (4096, 4)): compare passes them."""
    if torch is None:
        note("skipped: torch not installed")
        return
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(4):
            rng = np.random.default_rng(300 + seed)
            for shape in ((256, 16), (64, 64), (4096, 4)):
                x, g, b, dy = problem(rng, shape, 1, np.float32)
                out = torch_outputs(x, g, b, dy, 1e-5, 1, np.float32)
                save_arrays(tmp, x=x, g=g, b=b, dy=dy, **out)
                rc, rep, err = compare(tmp, ARGS + ["--dx", "dx.npy", "--dgamma", "dgamma.npy", "--dbeta", "dbeta.npy"])
                check(rc == 0, "%s seed %d: %s" % (shape, seed, err[-500:]))
                worst = max([worst] + [v["max_ratio_to_tolerance"] for v in rep["tensors"].values()])
    note("12 problems: worst %.3f of the tolerance" % worst)


def test_pytorch_eval_passes():
    """F.batch_norm(training=False) and its autograd backward, float32 and float64, pass;
    its float32 y with a running mean 1e4 times the running spread fails."""
    if torch is None:
        note("skipped: torch not installed")
        return
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(21)
        for dtype in (np.float32, np.float64):
            for shape in ((64, 8), (4, 6, 5, 5), (1, 16), (256, 3)):
                x, g, b, dy = problem(rng, shape, 1, dtype)
                rm = rng.normal(0, 1, shape[1]).astype(dtype)
                rv = rng.uniform(0.5, 4, shape[1]).astype(dtype)
                tx = torch.tensor(x).requires_grad_(True)
                tg, tb = torch.tensor(g).requires_grad_(True), torch.tensor(b).requires_grad_(True)
                y = F.batch_norm(tx, torch.tensor(rm), torch.tensor(rv), tg, tb, training=False, eps=1e-5)
                y.backward(torch.tensor(dy))
                save_arrays(tmp, x=x, g=g, b=b, dy=dy, rm=rm, rv=rv, y=y.detach().numpy(), dx=tx.grad.numpy(),
                            dgamma=tg.grad.numpy(), dbeta=tb.grad.numpy())
                ev = ARGS + ["--mode", "eval", "--running-mean", "rm.npy", "--running-var", "rv.npy"]
                rc, rep, err = compare(tmp, ev + ["--y", "y.npy", "--dx", "dx.npy", "--dgamma", "dgamma.npy",
                                                  "--dbeta", "dbeta.npy"])
                check(rc == 0, "eval %s %s flagged: %s" % (np.dtype(dtype).name, shape, err[-600:]))
                worst = max([worst] + [v["max_ratio_to_tolerance"] for v in rep["tensors"].values()])
        note("PyTorch eval: worst %.3f of the tolerance" % worst)
        # the running mean 1e4 times the running standard deviation: float32 loses digits
        x, g, b, dy = problem(rng, (64, 8), 1, np.float32, offset=1e4)
        rm = (1e4 + rng.normal(0, 1, 8)).astype(np.float32)
        rv = np.ones(8, np.float32)
        y = F.batch_norm(torch.tensor(x), torch.tensor(rm), torch.tensor(rv), torch.tensor(g), torch.tensor(b),
                         training=False, eps=1e-5)
        save_arrays(tmp, x=x, g=g, b=b, rm=rm, rv=rv, y=y.numpy())
        rc, rep, err = compare(tmp, ["--x", "x.npy", "--gamma", "g.npy", "--beta", "b.npy", "--mode", "eval",
                                     "--running-mean", "rm.npy", "--running-var", "rv.npy", "--y", "y.npy"])
        check(rc == 1, "float32 eval with a running mean 1e4 passed: %s" % err)
        note("PyTorch float32 eval, running mean 1e4 (spread 1): fails by %.3g times the tolerance"
             % rep["tensors"]["y"]["max_ratio_to_tolerance"])


def naive_forward(x, g, b, eps, axis, ddof=0, eps_outside=False, wrong_axis=False):
    """A deliberately plain two-pass batch norm in float64 (ddof=1: the unbiased variance;
    eps_outside: 1/(sqrt(var) + eps); wrong_axis: the mean over the channel axis instead of the others)."""
    xd = x.astype(np.float64)
    ax = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != ax)
    mean = xd.mean(axis=(ax,) if wrong_axis else red, keepdims=True)
    var = ((xd - mean) ** 2).sum(axis=red, keepdims=True) / (np.prod([x.shape[i] for i in red]) - ddof)
    inv = 1 / (np.sqrt(var) + eps) if eps_outside else 1 / np.sqrt(var + eps)
    sh = [1] * x.ndim
    sh[ax] = x.shape[ax]
    return (xd - mean) * inv * g.astype(np.float64).reshape(sh) + b.astype(np.float64).reshape(sh)


def naive_backward(x, g, dy, eps, axis, mutant=None):
    """A plain float64 backward; `mutant` is one of GRADCHECK_MUTANTS (tests/test_gradcheck.cpp's)."""
    xd, dyd = x.astype(np.float64), dy.astype(np.float64)
    ax = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != ax)
    m = x.size // x.shape[ax]
    sh = [1] * x.ndim
    sh[ax] = x.shape[ax]
    eps = {"eps_omitted": 0.0, "eps_tenth": eps / 10}.get(mutant, eps)
    mean = xd.mean(axis=red, keepdims=True)
    var = ((xd - mean) ** 2).sum(axis=red, keepdims=True) / (m - (mutant == "unbiased_variance"))
    if mutant == "mean_shifted":
        mean = mean + 1e-7 * np.sqrt(var)
    inv = 1 / np.sqrt(var + eps)
    xh = (xd - mean) * inv
    gm = np.ones(sh) if mutant == "no_gamma_in_dx" else g.astype(np.float64).reshape(sh)
    dyt = dyd.copy()
    if mutant == "last_channel_tail":  # the last channel's sums miss its last element
        dyt = np.moveaxis(dyt, ax, -1).reshape(-1, x.shape[ax])
        dyt[-1, -1] = 0
        dyt = np.moveaxis(dyt.reshape([x.shape[i] for i in red] + [x.shape[ax]]), -1, ax)
    db = dyt.sum(axis=red, keepdims=True)
    dg = (dyt * xh).sum(axis=red, keepdims=True)
    t2 = 0 * db if mutant == "no_sum_dxhat" else db
    t3 = xh * dg * {"no_xhat_term": 0, "xhat_term_sign": -1}.get(mutant, 1)
    dx = gm * inv * (dyd - (t2 + t3) / m)
    if mutant == "one_element":
        dx.reshape(-1)[dx.size // 2] *= 1 + 1e-6
    if mutant == "dgamma_with_x":
        dg = (dyd * xd).sum(axis=red, keepdims=True)
    if mutant == "dbeta_over_m":
        db = db / m
    return dx, dg.reshape(-1), db.reshape(-1)


GRADCHECK_MUTANTS = ("eps_omitted", "eps_tenth", "unbiased_variance", "no_sum_dxhat", "no_xhat_term",
                     "xhat_term_sign", "dgamma_with_x", "dbeta_over_m", "no_gamma_in_dx", "last_channel_tail",
                     "one_element", "mean_shifted")


def test_gradcheck_mutants_fail_in_float64():
    """gradcheck's twelve wrong backward passes, as float64 candidates, on four problems."""
    least = {}
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(12)
        for shape, axis in MUTANT_CASES:
            x, g, b, dy = problem(rng, shape, axis, np.float64)
            a = ARGS + ["--axis", str(axis), "--eps", "1e-3", "--dx", "dx.npy", "--dgamma", "dg.npy", "--dbeta", "db.npy"]
            for mu in (None,) + GRADCHECK_MUTANTS:
                dx, dg, db = naive_backward(x, g, dy, 1e-3, axis, mu)
                save_arrays(tmp, x=x, g=g, b=b, dy=dy, dx=dx, dg=dg, db=db)
                if mu is None:
                    compare(tmp, a, expect=0)
                else:
                    mutant_fails(tmp, mu, a, least)
    for k in sorted(least, key=least.get):
        note("%-18s fails by at least %.3g times the tolerance" % (k, least[k]))


MUTANT_CASES = [((256, 16), 1), ((8, 3, 5, 7), 1), ((4, 6, 5, 3), -1), ((4096, 4), 1)]


def test_naive_float64_passes():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(7)
        for shape, axis in MUTANT_CASES:
            x, g, b, dy = problem(rng, shape, axis, np.float64)
            y = naive_forward(x, g, b, 1e-5, axis)
            dx, dg, db = naive_backward(x, g, dy, 1e-5, axis)
            save_arrays(tmp, x=x, g=g, b=b, dy=dy, y=y, dx=dx, dgamma=dg, dbeta=db)
            compare(tmp, ARGS + ["--axis", str(axis), "--y", "y.npy", "--dx", "dx.npy", "--dgamma", "dgamma.npy",
                                 "--dbeta", "dbeta.npy"], expect=0)


def mutant_fails(tmp, what, args, least, case=""):
    rc, rep, err = compare(tmp, args)
    check(rc == 1, "%s (%s) passed: %s" % (what, case, err[-600:]))
    t = [v for v in rep["tensors"].values() if not v["passed"]][0]
    least[what] = min(least.get(what, float("inf")), t["max_ratio_to_tolerance"])
    check(t["over_tolerance"] >= 1 and t["worst"]["ratio_to_tolerance"] > 1, "%s: report %r" % (what, t))


def test_mutants_fail():
    least = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in (np.float32, np.float64):
            rng = np.random.default_rng(11)
            for shape, axis in MUTANT_CASES:
                x, g, b, dy = problem(rng, shape, axis, dtype)
                a = ARGS + ["--axis", str(axis)]
                case = "%s %s axis %d" % (np.dtype(dtype).name, shape, axis)
                save_arrays(tmp, x=x, g=g, b=b, dy=dy)
                save_arrays(tmp, y=naive_forward(x, g, b, 1e-5, axis, ddof=1).astype(dtype))
                mutant_fails(tmp, "unbiased variance", a + ["--y", "y.npy"], least, case)
                save_arrays(tmp, y=naive_forward(x, g, b, 1e-3, axis, eps_outside=True).astype(dtype))
                mutant_fails(tmp, "eps outside the sqrt", a + ["--eps", "1e-3", "--y", "y.npy"], least, case)
                save_arrays(tmp, y=naive_forward(x, g, b, 1e-5, axis, wrong_axis=True).astype(dtype))
                mutant_fails(tmp, "mean of the wrong axis", a + ["--y", "y.npy"], least, case)
                dx = naive_backward(x, g, dy, 1e-5, axis)[0]
                save_arrays(tmp, dx=np.roll(dx.reshape(-1), 1).reshape(dx.shape).astype(dtype))
                mutant_fails(tmp, "dx one element off", a + ["--dx", "dx.npy"], least, case)
                # the unmutated ones pass, so that the failures above are the mutations'
                save_arrays(tmp, y=naive_forward(x, g, b, 1e-3, axis).astype(dtype), dx=dx.astype(dtype))
                compare(tmp, a + ["--eps", "1e-3", "--y", "y.npy"], expect=0)
                compare(tmp, a + ["--dx", "dx.npy"], expect=0)
    for k in sorted(least):
        note("%-24s fails by at least %.3g times the tolerance" % (k, least[k]))


def test_pytorch_float32_offset_fails():
    if torch is None:
        note("skipped: torch not installed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(5)
        for shape in ((256, 16), (8, 4, 6, 6)):
            x, g, b, dy = problem(rng, shape, 1, np.float32, offset=1e4)
            out = torch_outputs(x, g, b, dy, 1e-5, 1, np.float32)
            save_arrays(tmp, x=x, g=g, b=b, dy=dy, **out)
            rc, rep, err = compare(tmp, ARGS + ["--y", "y.npy", "--dx", "dx.npy"])
            check(rc == 1, "offset data passed: %s" % err)
            for t in ("y", "dx"):
                v = rep["tensors"][t]
                check(not v["passed"] and v["max_ratio_to_tolerance"] > 1 and v["max_ulp"] > 32,
                      "%s: %r" % (t, v))
                note("%s %s: %d of %d elements over, worst %.3g times the tolerance, %.3g ulp, normwise %.3g eps"
                     % (shape, t, v["over_tolerance"], v["count"], v["max_ratio_to_tolerance"], v["max_ulp"],
                        v["normwise_err_eps"]))
            check("FAILED" in err and "times the tolerance" in err, "stderr %r" % err)


def test_running_and_eval_from_formulas():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(3)
        x, g, b, dy = problem(rng, (6, 4, 3, 5), 1, np.float64)
        rm, rv = rng.normal(0, 1, 4), rng.uniform(0.5, 2, 4)
        m = x.size // 4
        bm = x.mean(axis=(0, 2, 3))
        bv = ((x - bm.reshape(1, 4, 1, 1)) ** 2).sum(axis=(0, 2, 3))
        M = 0.25
        save_arrays(tmp, x=x, g=g, b=b, dy=dy, rm=rm, rv=rv, nm=(1 - M) * rm + M * bm, nv=(1 - M) * rv + M * bv / (m - 1))
        run = ["--x", "x.npy", "--running-mean", "rm.npy", "--running-var", "rv.npy", "--momentum", "0.25"]
        compare(tmp, run + ["--new-running-mean", "nm.npy", "--new-running-var", "nv.npy"], expect=0)
        # ONNX's convention given to PyTorch's (biased variance): flagged
        save_arrays(tmp, nv=(1 - M) * rv + M * bv / m)
        compare(tmp, run + ["--new-running-var", "nv.npy"], expect=1)
        compare(tmp, run + ["--new-running-var", "nv.npy", "--running-var-correction", "0"], expect=0)
        # inference: y and dx from the running statistics
        inv = 1 / np.sqrt(rv + 1e-5)
        sh = (1, 4, 1, 1)
        y = (x - rm.reshape(sh)) * (inv * g).reshape(sh) + b.reshape(sh)
        save_arrays(tmp, y=y, dx=dy * (g * inv).reshape(sh), y32=y.astype(np.float32))
        ev = ["--mode", "eval", "--x", "x.npy", "--gamma", "g.npy", "--beta", "b.npy", "--running-mean", "rm.npy",
              "--running-var", "rv.npy"]
        compare(tmp, ev + ["--y", "y.npy", "--dy", "dy.npy", "--dx", "dx.npy"], expect=0)
        # a float32 candidate for a float64 problem: judged in float32, and the report says so
        rc, rep, _ = compare(tmp, ev + ["--y", "y32.npy"], expect=0)
        v = rep["tensors"]["y"]
        check(v["judged_in"] == "float32" and "float64" in v.get("dtype_note", ""), "report %r" % v)
        check(v["max_ulp"] <= 0.5 + 1e-6, "float32 rounding of the exact y: %r ulp" % v["max_ulp"])


GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "golden")


def test_golden_exact_values_pass():
    """compare's exact outputs against the committed mpmath ones (scripts/golden.py): the
    golden values as float64 candidates are within bnorm's promise, and rounded to float32
    (the float32 problems) within half an ulp plus double rounding."""
    cases = sorted(d for d in os.listdir(GOLDEN) if os.path.isfile(os.path.join(GOLDEN, d, "case.json")))
    check(len(cases) >= 30, "only %d golden cases" % len(cases))
    worst64 = worst32 = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in cases:
            d = os.path.join(GOLDEN, name)
            with open(os.path.join(d, "case.json")) as f:
                case = json.load(f)
            outs = ("y", "mean", "invstd", "dx", "dgamma", "dbeta")
            for o in outs:
                a = np.load(os.path.join(d, o + ".npy"))
                save_arrays(tmp, **{o: a, o + "32": a.astype(np.float32)})
            base = ["--x", os.path.join(d, "x.npy"), "--gamma", os.path.join(d, "gamma.npy"), "--beta",
                    os.path.join(d, "beta.npy"), "--dy", os.path.join(d, "dy.npy"), "--axis", str(case["axis"]),
                    "--eps", case["eps"]]
            rc, rep, err = compare(tmp, base + sum([["--" + o, o + ".npy"] for o in outs], []))
            check(rc == 0, "%s: %s" % (name, err[-500:]))
            for o, v in rep["tensors"].items():
                check(v["normwise_err_eps"] <= 1.0, "%s %s: %.3g eps normwise" % (name, o, v["normwise_err_eps"]))
                worst64 = max(worst64, v["normwise_err_eps"])
            if case["dtype"] == "float32":
                rc, rep, err = compare(tmp, base + sum([["--" + o, o + "32.npy"] for o in outs], []))
                check(rc == 0, "%s float32: %s" % (name, err[-500:]))
                for o, v in rep["tensors"].items():
                    check(v["max_ulp"] <= 0.5 + 2.0 ** -28, "%s %s: %.6g ulp" % (name, o, v["max_ulp"]))
                    worst32 = max(worst32, v["max_ulp"])
    note("%d golden cases: float64 candidates within %.3g eps normwise, float32 within %.6g ulp"
         % (len(cases), worst64, worst32))


def test_rtol_atol_and_tol_eps():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(4)
        x, g, b, dy = problem(rng, (64, 3), 1, np.float64)
        y = naive_forward(x, g, b, 1e-5, 1)
        i = int(np.argmax(np.abs(y)))
        big = float(np.abs(y).reshape(-1)[i])
        for rel, ok in ((0.9e-6, 0), (1.1e-6, 1)):  # rtol 1e-6 on the largest element
            yp = y.copy().reshape(-1)
            yp[i] += rel * big
            save_arrays(tmp, x=x, g=g, b=b, y=yp.reshape(y.shape))
            a = ["--x", "x.npy", "--gamma", "g.npy", "--beta", "b.npy", "--y", "y.npy"]
            rc, rep, _ = compare(tmp, a + ["--rtol", "1e-6", "--atol", "0"], expect=ok)
            check(rep["criterion"]["name"] == "elementwise" and rep["criterion"]["rtol"] == 1e-6, "%r" % rep["criterion"])
            # normwise: rel*big/max|y| = rel, in eps
            n_eps = 1e-6 / 2.0 ** -52
            rc, rep, _ = compare(tmp, a + ["--tol-eps", repr(n_eps)], expect=ok)
            check(rep["criterion"]["name"] == "normwise", "%r" % rep["criterion"])
            check(abs(rep["tensors"]["y"]["normwise_err_eps"] - rel / 2.0 ** -52) < 1e-3 * rel / 2.0 ** -52,
                  "normwise %r" % rep["tensors"]["y"]["normwise_err_eps"])


def test_report_fields_and_file():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(6)
        x, g, b, dy = problem(rng, (32, 2, 3), 1, np.float64)
        y = naive_forward(x, g, b, 1e-5, 1)
        y.reshape(-1)[7] += 1e-3  # element (1, 0, 1)
        save_arrays(tmp, x=x, g=g, b=b, dy=dy, y=y)
        rc, rep, err = compare(tmp, ["--x", "x.npy", "--gamma", "g.npy", "--beta", "b.npy", "--y", "y.npy",
                                     "--report", "r.json"], expect=1)
        with open(os.path.join(tmp, "r.json")) as f:
            check(json.load(f) == rep, "--report differs from stdout")
        check(rep["passed"] is False and "rule" in rep["criterion"] and rep["criterion"]["k"] > 0, "%r" % rep)
        for k in ("shape", "axis", "eps", "dtype", "mode", "norm"):
            check(k in rep["problem"], "problem lacks %s" % k)
        v = rep["tensors"]["y"]
        for k in ("passed", "max_abs_err", "normwise_err_eps", "max_ulp", "ulp_histogram", "over_tolerance",
                  "over_fraction", "max_ratio_to_tolerance", "worst", "count", "judged_in"):
            check(k in v, "y lacks %s" % k)
        check(tuple(v["ulp_histogram"]) == HIST and sum(v["ulp_histogram"].values()) == v["count"] == 192,
              "histogram %r" % v["ulp_histogram"])
        check(tuple(v["worst"]) == WORST and v["worst"]["index"] == [1, 0, 1], "worst %r" % v["worst"])
        check(v["over_tolerance"] == 1 and abs(v["over_fraction"] - 1 / 192) < 1e-12, "over %r" % v)
        check(abs(v["max_abs_err"] - 1e-3) < 1e-12, "max_abs_err %r" % v["max_abs_err"])
        check(err.count("\n") == 2 and "compare: y" in err and "FAILED" in err, "stderr %r" % err)


def test_usage_and_input_errors():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(8)
        x, g, b, dy = problem(rng, (16, 3), 1, np.float64)
        save_arrays(tmp, x=x, dy=dy, y=x, yt=x.T.copy(), c4=np.zeros(4))
        cases = [
            (["--x", "x.npy"], "at least one candidate"),
            (["--x", "x.npy", "--dx", "y.npy"], "--dy"),
            (["--x", "x.npy", "--y", "yt.npy"], "(3, 16)"),
            (["--x", "x.npy", "--mean", "c4.npy"], "(4,)"),
            (["--x", "x.npy", "--y", "y.npy", "--tol-eps", "4", "--rtol", "1e-6"], "--tol-eps"),
            (["--x", "x.npy", "--y", "y.npy", "--rtol", "-1"], "--rtol"),
            (["--x", "x.npy", "--y", "missing.npy"], "missing.npy"),
        ]
        for args, want in cases:
            rc, _, err = compare(tmp, args)
            check(rc == 2 and err.startswith("bnorm: error: ") and err.count("\n") == 1 and want in err,
                  "%s: exit %d, %r (wanted %r)" % (args, rc, err, want))
        rc, _, err = compare(tmp, ["--x", "x.npy", "--y", "yt.npy"])
        check("(16, 3)" in err, "both shapes: %r" % err)


def main():
    if torch is not None:
        torch.manual_seed(0)
        note("torch %s" % torch.__version__)
    return run_tests(globals(), __doc__)


if __name__ == "__main__":
    sys.exit(main())
