#!/usr/bin/python3
"""End-to-end tests of `bnorm gradcheck`.

Usage (Debian's Python, which has numpy):

    /usr/bin/python3 tests/cli/test_gradcheck_cli.py BNORM [NAME-SUBSTRING ...]

Every test_* function below is one test; the runner calls them in order (or only those
whose name contains one of the given substrings), prints `PASS name` or
`FAIL name: reason`, then `N passed, M failed`, and exits with 1 if any test failed.
Each test works in its own tempfile.TemporaryDirectory and runs bnorm with that folder
as the working directory.  Some tests print informational lines (`  note: ...`,
timings) before their PASS/FAIL line.

The contract checked here:
  * gradcheck judges analytic gradients of f = sum(dy * y) with respect to x, gamma and
    beta (bnorm's own backward, or the --dx/--dgamma/--dbeta given, which need --dy)
    against complex-step derivatives of the forward pass;
  * a JSON report (ordered keys, see REPORT_KEYS) on stdout, the same bytes in --report
    FILE; exit 0 when every check passes, 1 when one fails, 2 on bad usage or input
    (one line `bnorm: error: ...` on stderr, nothing on stdout, no file written);
  * the default criterion (tolerances.name "scaled", as bnorm compare's):
    |analytic - numerical| <= 64 * eps(dtype) * scale_i + floor, scale_i the magnitude
    of the terms a correct kernel sums (numpy here computes them independently), floor
    = max(64 * eps * 2^-40 * max scale, the smallest subnormal) (atol_used);
  * --rtol/--atol: the elementwise criterion (tolerances.name "elementwise"), rtol then
    defaulting to 1e-11 (float64) / 1e-5 (float32), atol to 1e-3 * rtol * max|numerical|;
  * tensors of <= 10000 elements are checked element by element, larger ones in
    randomized mode (directional derivatives per channel plus sampled elements, among
    them the first and last of each channel); --full forces elementwise;
  * without --dy, 3 random upstream gradients drawn from --seed; the report does not
    depend on --threads.

The golden cases (tests/data/golden, written by scripts/golden.py) provide exact
gradients: given those (cast to the case's dtype) gradcheck must pass on every case,
including the ill-conditioned ones; a single perturbed element must fail and be named.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from runner import check, check_error, Fail, note, run_tests, snapshot, snapshot_diff

BNORM = None  # set by run_tests()

F32, F64 = np.float32, np.float64
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.normpath(os.path.join(HERE, "..", "data", "golden"))
# The contract under test, in one place:
ELEMENTWISE_LIMIT = 10000   # x with <= this many elements: elementwise mode, whatever its shape
RANDOM_DY_DRAWS = 3         # upstream gradients drawn without --dy, in either mode
# The report's keys are those of REPORT_KEYS, PROBLEM_KEYS, METHOD_KEYS... below.




# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def run(args, cwd):
    p = subprocess.run([BNORM] + [str(a) for a in args], cwd=cwd, capture_output=True)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def cmdline(args):
    return "bnorm " + " ".join(map(str, args))


def gradcheck(cwd, args, expect_rc=None):
    """Runs `bnorm gradcheck ARGS`; for exit 0/1 parses the report. Returns
    (rc, report or None, stdout, stderr, seconds)."""
    args = ["gradcheck"] + [str(a) for a in args]
    t0 = time.perf_counter()
    rc, out, err = run(args, cwd)
    dt = time.perf_counter() - t0
    rep = None
    if rc in (0, 1):
        try:
            rep = json.loads(out)
        except ValueError as e:
            raise Fail("%s: exit %d but stdout is not JSON (%s): %r; stderr %r"
                       % (cmdline(args), rc, e, out[:500], err[-500:]))
    if expect_rc is not None:
        check(rc == expect_rc, "%s: exit %d (expected %d); stderr %r; report summary %s"
              % (cmdline(args), rc, expect_rc, err[-1500:], summary(rep)))
    return rc, rep, out, err, dt


def summary(rep):
    """A short description of a report for failure messages."""
    if not isinstance(rep, dict):
        return repr(rep)
    parts = ["passed=%s" % rep.get("passed")]
    for k in ("x", "gamma", "beta"):
        v = rep.get(k)
        if isinstance(v, dict):
            parts.append("%s:{judged=%s passed=%s max_rel_err=%s worst=%s checked=%s/%s%s}"
                         % (k, v.get("judged"), v.get("passed"), v.get("max_rel_err"),
                            json.dumps(v.get("worst")), v.get("checked"), v.get("total"),
                            (" directional=" + json.dumps(v["directional"]))
                            if "directional" in v else ""))
    m = rep.get("method")
    if isinstance(m, dict):
        parts.append("mode=%s est_err=%s" % (m.get("mode"), m.get("estimated_error")))
    return " ".join(parts)



def expect_error(cwd, args, contains=()):
    """`bnorm gradcheck ARGS` must exit 2 with one line `bnorm: error: ...` on stderr,
    nothing on stdout, and leave the folder unchanged. Returns the message."""
    args = ["gradcheck"] + [str(a) for a in args]
    before = snapshot(cwd)
    rc, out, err = run(args, cwd)
    after = snapshot(cwd)
    cmd = cmdline(args)
    check(out == "", "%s: a failed run printed on stdout: %r" % (cmd, out[:300]))
    return check_error(cmd, rc, err, before, after, contains)


def save(folder, name, a):
    np.save(os.path.join(folder, name), a)
    return name


def read_text(folder, name):
    with open(os.path.join(folder, name), "r") as f:
        return f.read()


def ref_backward(x, gamma, dy, eps, axis):
    """Batch-norm backward in numpy float64 (two-pass mean, textbook formulas).
    Returns dx (x's shape), dgamma, dbeta (C), all float64."""
    x = np.moveaxis(np.asarray(x, F64), axis, -1)
    dyv = np.moveaxis(np.asarray(dy, F64), axis, -1)
    shape = x.shape
    C = shape[-1]
    x2 = x.reshape(-1, C)
    dy2 = dyv.reshape(-1, C)
    g = np.ones(C) if gamma is None else np.asarray(gamma, F64)
    mean = x2.mean(axis=0)
    mean = mean + (x2 - mean).mean(axis=0)
    d = x2 - mean
    var = (d * d).mean(axis=0)
    invstd = 1.0 / np.sqrt(var + float(eps))
    xhat = d * invstd
    dbeta = dy2.sum(axis=0)
    dgamma = (dy2 * xhat).sum(axis=0)
    dx = g * invstd * (dy2 - dy2.mean(axis=0) - xhat * (dy2 * xhat).mean(axis=0))
    dx = np.moveaxis(dx.reshape(shape), -1, axis)
    return dx, dgamma, dbeta


def ref_scales(x, gamma, dy, eps, axis):
    """The default criterion's scales of dx, dgamma, dbeta (bnorm/judge.hpp), from their
    formulas in numpy float64: |g|*invstd*(|dy| + mean|dy| + |xhat|*mean|dy*xhat|),
    sum|dy|*(|xhat| + sigma*invstd), sum|dy| per channel."""
    x = np.moveaxis(np.asarray(x, F64), axis, -1)
    dyv = np.moveaxis(np.asarray(dy, F64), axis, -1)
    shape = x.shape
    C = shape[-1]
    x2, dy2 = x.reshape(-1, C), dyv.reshape(-1, C)
    g = np.ones(C) if gamma is None else np.asarray(gamma, F64)
    mean = x2.mean(axis=0)
    var = ((x2 - mean) ** 2).mean(axis=0)
    invstd = 1.0 / np.sqrt(var + float(eps))
    xh = np.abs((x2 - mean) * invstd)
    a = np.abs(g * dy2)
    sdx = invstd * (a + a.mean(axis=0) + xh * (a * xh).mean(axis=0))
    return np.moveaxis(sdx.reshape(shape), -1, axis), (np.abs(dy2) * (xh + np.sqrt(var) * invstd)).sum(axis=0), \
        np.abs(dy2).sum(axis=0)


def random_problem(rng, shape, axis, dtype):
    C = shape[axis]
    x = (0.3 + rng.standard_normal(shape)).astype(dtype)
    gamma = rng.standard_normal(C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, dy


def write_problem(folder, x, gamma=None, beta=None, dy=None):
    save(folder, "x.npy", x)
    if gamma is not None:
        save(folder, "gamma.npy", gamma)
    if beta is not None:
        save(folder, "beta.npy", beta)
    if dy is not None:
        save(folder, "dy.npy", dy)


def golden_cases():
    names = sorted(n for n in os.listdir(GOLDEN)
                   if os.path.isfile(os.path.join(GOLDEN, n, "case.json")))
    check(names, "no golden cases under %s" % GOLDEN)
    return names


def load_golden(name):
    d = os.path.join(GOLDEN, name)
    with open(os.path.join(d, "case.json")) as f:
        case = json.load(f)
    arrays = {k: np.load(os.path.join(d, k + ".npy"))
              for k in ("x", "gamma", "beta", "dy", "dx", "dgamma", "dbeta")}
    return case, arrays


def write_golden(tmp, case, a, dx=None, dgamma=None, dbeta=None):
    """Writes a golden case's inputs and its exact gradients cast to the case dtype
    (or the given replacements). Returns the common gradcheck arguments."""
    dtype = np.dtype(case["dtype"])
    for k in ("x", "gamma", "beta", "dy"):
        check(a[k].dtype == dtype, "golden %s: %s is %s, case says %s"
              % (case["name"], k, a[k].dtype, dtype))
        save(tmp, k + ".npy", a[k])
    save(tmp, "dx.npy", (a["dx"] if dx is None else dx).astype(dtype))
    save(tmp, "dgamma.npy", (a["dgamma"] if dgamma is None else dgamma).astype(dtype))
    save(tmp, "dbeta.npy", (a["dbeta"] if dbeta is None else dbeta).astype(dtype))
    return ["--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy", "--dy", "dy.npy",
            "--eps", case["eps"], "--axis", case["axis"]]


GIVEN_ALL = ["--dx", "dx.npy", "--dgamma", "dgamma.npy", "--dbeta", "dbeta.npy"]


# --- report schema ----------------------------------------------------------

def is_bool(v):
    return isinstance(v, bool)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_str(v):
    return isinstance(v, str)


def is_null(v):
    return v is None


def is_int_list(v):
    return isinstance(v, list) and all(is_int(e) for e in v)


def any_of(*preds):
    return lambda v: any(p(v) for p in preds)


PROBLEM_KEYS = [("norm", lambda v: v in ("batch", "layer", "rms", "instance", "group")),
                ("groups", lambda v: v is None or is_int(v)), ("shape", is_int_list), ("axis", is_int), ("eps", is_num),
                ("dtype", lambda v: v in ("float32", "float64")), ("channels", is_int),
                ("per_channel", is_int), ("gradients", lambda v: v in ("bnorm", "given")),
                ("judged", lambda v: isinstance(v, list) and all(e in ("dx", "dgamma", "dbeta")
                                                                 for e in v)),
                ("dy", lambda v: v in ("given", "random")), ("dy_draws", is_int),
                ("seed", is_int), ("mode", lambda v: v in ("train", "eval"))]
METHOD_KEYS = [("name", lambda v: v == "complex-step"), ("arithmetic", is_str),
               ("step_relative_to_std", is_num), ("estimated_error", is_num),
               ("error_estimate", is_str), ("crosscheck_elements", is_int),
               ("lanes_per_pass", is_int),
               ("mode", lambda v: v in ("elementwise", "randomized")),
               ("directions_per_draw", is_int), ("samples_per_draw", is_int)]
TOL_KEYS = [("name", lambda v: v in ("scaled", "elementwise")), ("rtol", any_of(is_num, is_null)),
            ("atol", any_of(is_num, is_null)), ("k", any_of(is_num, is_null)), ("eps", is_num),
            ("criterion", is_str), ("atol_default", is_str)]
WORST_KEYS = [("index", is_int_list), ("analytic", is_num), ("numerical", is_num),
              ("ratio_to_tolerance", is_num), ("dy_draw", is_int)]
VERDICT_KEYS = [("judged", is_bool), ("passed", is_bool), ("max_abs_err", is_num),
                ("max_rel_err", is_num), ("worst", None), ("checked", is_int),
                ("total", is_int), ("atol_used", is_num)]
DIRECTIONAL_KEYS = [("checks", is_int), ("passed", is_bool), ("max_rel_err", is_num),
                    ("ratio_to_tolerance", is_num), ("worst_channel", is_int)]
REPORT_KEYS = ["passed", "problem", "method", "tolerances", "x", "gamma", "beta",
               "forward_evaluations", "forward_element_evaluations", "elapsed_seconds"]


def check_keys(obj, names, where, strict, errors):
    """strict: exactly these keys in this order. Otherwise: these keys present and in
    this relative order, others tolerated."""
    keys = list(obj.keys())
    if strict:
        if keys != names:
            errors.append("%s has keys %s, expected exactly (in this order) %s"
                          % (where, keys, names))
        return
    missing = [k for k in names if k not in obj]
    if missing:
        errors.append("%s lacks %s (has %s)" % (where, missing, keys))
    elif [k for k in keys if k in names] != names:
        errors.append("%s has keys in the order %s, expected %s" % (where, keys, names))


def check_object(obj, spec, where, errors, strict):
    if not isinstance(obj, dict):
        errors.append("%s is %r, not an object" % (where, obj))
        return
    check_keys(obj, [k for k, _ in spec], where, strict, errors)
    for k, pred in spec:
        if k in obj and pred is not None and not pred(obj[k]):
            errors.append("%s.%s = %r has the wrong type/value" % (where, k, obj[k]))


def schema_errors(rep, strict=False):
    """Deviations of a report from the documented schema (keys in order, JSON types).
    strict: no other keys either."""
    errors = []
    if not isinstance(rep, dict):
        return ["the report is not an object"]
    check_keys(rep, REPORT_KEYS, "the report", strict, errors)
    if not is_bool(rep.get("passed")):
        errors.append("passed = %r is not a bool" % (rep.get("passed"),))
    check_object(rep.get("problem"), PROBLEM_KEYS, "problem", errors, strict)
    check_object(rep.get("method"), METHOD_KEYS, "method", errors, strict)
    check_object(rep.get("tolerances"), TOL_KEYS, "tolerances", errors, strict)
    randomized = isinstance(rep.get("method"), dict) and rep["method"].get("mode") == "randomized"
    for k in ("x", "gamma", "beta"):
        v = rep.get(k)
        spec = list(VERDICT_KEYS)
        if k == "x" and randomized:
            spec.append(("directional", None))
        check_object(v, spec, k, errors, strict)
        if isinstance(v, dict):
            if v.get("worst") is not None:
                check_object(v["worst"], WORST_KEYS, k + ".worst", errors, strict)
            if "directional" in v:
                if k != "x" or not randomized:
                    errors.append("%s has 'directional' (only x has it, in randomized mode)" % k)
                check_object(v["directional"], DIRECTIONAL_KEYS, k + ".directional", errors,
                             strict)
    for k in ("forward_evaluations", "forward_element_evaluations"):
        if not is_int(rep.get(k)):
            errors.append("%s = %r is not an int" % (k, rep.get(k)))
    if not is_num(rep.get("elapsed_seconds")):
        errors.append("elapsed_seconds = %r is not a number" % (rep.get("elapsed_seconds"),))
    return errors


def check_schema(rep, what, strict=False):
    errs = schema_errors(rep, strict)
    check(not errs, "%s: report schema%s: %s" % (what, " (strict)" if strict else "",
                                                 "; ".join(errs)))


def without_elapsed(rep):
    rep = json.loads(json.dumps(rep))
    rep.pop("elapsed_seconds", None)
    return rep


# ---------------------------------------------------------------------------
# 1. schema
# ---------------------------------------------------------------------------

def test_report_schema_and_report_file():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(101)
        shape, axis = (5, 3, 4), 1
        x, gamma, beta, dy = random_problem(rng, shape, axis, F64)
        write_problem(tmp, x, gamma, beta, dy)
        args = ["--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy",
                "--report", "report.json"]
        rc, rep, out, err, _ = gradcheck(tmp, args, expect_rc=0)
        what = cmdline(["gradcheck"] + args)
        first = (rep, what)
        check_schema(rep, what)
        check(os.path.isfile(os.path.join(tmp, "report.json")), "%s: no report.json" % what)
        text = read_text(tmp, "report.json")
        check(text == out, "%s: report.json differs from stdout:\n%r\nvs\n%r"
              % (what, text[:400], out[:400]))
        check(json.loads(text) == rep, "%s: report.json does not parse to the same report" % what)
        check(err.strip() != "", "%s: no human notes on stderr" % what)
        check(rep["passed"] is True, "%s: passed is %r" % (what, rep["passed"]))

        p = rep["problem"]
        want = {"shape": list(shape), "axis": axis, "eps": 1e-5, "dtype": "float64",
                "channels": 3, "per_channel": 20, "gradients": "bnorm",
                "judged": ["dx", "dgamma", "dbeta"], "dy": "random", "dy_draws": RANDOM_DY_DRAWS,
                "seed": 0, "mode": "train"}
        for k, v in want.items():
            check(p[k] == v, "%s: problem.%s = %r, expected %r" % (what, k, p[k], v))
        m = rep["method"]
        check(m["mode"] == "elementwise", "%s: mode %r" % (what, m["mode"]))
        check(0 <= m["estimated_error"] < 1e-15,
              "%s: estimated_error %r is not small" % (what, m["estimated_error"]))
        check(m["step_relative_to_std"] > 0 and m["crosscheck_elements"] > 0,
              "%s: method %s" % (what, m))
        t = rep["tolerances"]
        check(t["name"] == "scaled" and t["rtol"] is None and t["atol"] is None and t["k"] == 64
              and t["eps"] == 2.0 ** -52,
              "%s: tolerances %r (expected the scaled criterion, k 64, eps 2^-52)" % (what, t))
        for k, total in (("x", x.size), ("gamma", 3), ("beta", 3)):
            v = rep[k]
            check(v["judged"] is True and v["passed"] is True,
                  "%s: %s judged %r passed %r" % (what, k, v["judged"], v["passed"]))
            check(v["checked"] == v["total"] == total,
                  "%s: %s checked %r total %r (expected both %d)"
                  % (what, k, v["checked"], v["total"], total))
            check("directional" not in v, "%s: %s has 'directional' in elementwise mode" % (what, k))
            check(v["atol_used"] > 0, "%s: %s.atol_used %r" % (what, k, v["atol_used"]))
            check(v["worst"] is None or (0 <= v["worst"]["ratio_to_tolerance"] <= 1
                                         and 0 <= v["worst"]["dy_draw"] < RANDOM_DY_DRAWS),
                  "%s: %s.worst %r" % (what, k, v["worst"]))
        check(rep["forward_evaluations"] > 0
              and rep["forward_element_evaluations"] >= rep["forward_evaluations"],
              "%s: forward evaluation counts %r %r" % (what, rep["forward_evaluations"],
                                                      rep["forward_element_evaluations"]))

        # With a given dy: one draw; the default criterion's floor is 64 * eps * 2^-40 of
        # the largest scale of each tensor (the scales computed here from their formulas).
        os.remove(os.path.join(tmp, "report.json"))
        args = ["--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy", "--dy", "dy.npy"]
        rc, rep, out, err, _ = gradcheck(tmp, args, expect_rc=0)
        for k, sc in zip(("x", "gamma", "beta"), ref_scales(x, gamma, dy, 1e-5, axis)):
            want = 64 * 2.0 ** -52 * 2.0 ** -40 * np.max(sc)
            got = rep[k]["atol_used"]
            check(abs(got - want) <= 1e-6 * want,
                  "%s: %s.atol_used %r, expected 64*eps*2^-40*max scale = %r" % (what, k, got, want))
        # With --rtol: the elementwise criterion, whose default atol is 1e-3 * rtol * max|numerical|.
        args = args + ["--rtol", "1e-11"]
        rc, rep, out, err, _ = gradcheck(tmp, args, expect_rc=0)
        check(rep["tolerances"]["name"] == "elementwise" and rep["tolerances"]["rtol"] == 1e-11,
              "%s: tolerances %r" % (cmdline(["gradcheck"] + args), rep["tolerances"]))
        what = cmdline(["gradcheck"] + args)
        check_schema(rep, what)
        check(rep["problem"]["dy"] == "given" and rep["problem"]["dy_draws"] == 1
              and rep["problem"]["gradients"] == "bnorm",
              "%s: problem %s" % (what, rep["problem"]))
        dx, dg, db = ref_backward(x, gamma, dy, 1e-5, axis)
        for k, g in (("x", dx), ("gamma", dg), ("beta", db)):
            want_atol = 1e-3 * 1e-11 * np.max(np.abs(g))
            got = rep[k]["atol_used"]
            check(abs(got - want_atol) <= 1e-6 * want_atol,
                  "%s: %s.atol_used %r, expected 1e-3*rtol*max|grad| = %r"
                  % (what, k, got, want_atol))
        check(not os.path.exists(os.path.join(tmp, "report.json")),
              "%s: wrote report.json without --report" % what)
        # Last, as it is the most likely to be broken by an extension of the report:
        # exactly the documented keys, nothing else.
        check_schema(rep, what, strict=True)
        check_schema(*first, strict=True)


def test_report_schema_randomized():
    """A randomized-mode report: the documented keys and types, "directional" in x only."""
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(102)
        shape = (4200, 4)                      # 16800 elements > 10000
        x, gamma, beta, dy = random_problem(rng, shape, 1, F64)
        write_problem(tmp, x, gamma, beta, dy)
        args = ["--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy", "--dy", "dy.npy"]
        rc, rep, _, _, _ = gradcheck(tmp, args, expect_rc=0)
        what = cmdline(["gradcheck"] + args)
        check_schema(rep, what)
        m = rep["method"]
        check(m["mode"] == "randomized", "%s: mode %r" % (what, m["mode"]))
        check(m["directions_per_draw"] > 0 and m["samples_per_draw"] > 0,
              "%s: directions_per_draw %r samples_per_draw %r"
              % (what, m["directions_per_draw"], m["samples_per_draw"]))
        d = rep["x"].get("directional")
        check(isinstance(d, dict) and d["passed"] is True
              and d["checks"] == m["directions_per_draw"] * shape[1] * rep["problem"]["dy_draws"]
              and 0 <= d["worst_channel"] < shape[1],
              "%s: x.directional %s (expected directions_per_draw * C * dy_draws checks)"
              % (what, d))
        xv = rep["x"]
        check(xv["total"] == x.size and 2 * shape[1] <= xv["checked"] < x.size,
              "%s: x checked %r total %r" % (what, xv["checked"], xv["total"]))
        check(rep["gamma"]["checked"] == rep["gamma"]["total"] == shape[1],
              "%s: gamma checked %r total %r" % (what, rep["gamma"]["checked"],
                                                rep["gamma"]["total"]))
        check_schema(rep, what, strict=True)


# ---------------------------------------------------------------------------
# 2. exit codes
# ---------------------------------------------------------------------------

def test_own_backward_passes():
    rng = np.random.default_rng(202)
    cases = [((12, 5), 1), ((3, 4, 5, 6), 1), ((3, 5, 6, 4), -1), ((4, 30), 0)]
    for dtype in (F64, F32):
        for shape, axis in cases:
            with tempfile.TemporaryDirectory() as tmp:
                x, gamma, beta, dy = random_problem(rng, shape, axis, dtype)
                write_problem(tmp, x, gamma, beta, dy)
                for args in (["--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy",
                              "--axis", axis],
                             ["--x", "x.npy", "--dy", "dy.npy", "--axis", axis, "--eps", "1e-3"]):
                    rc, rep, _, _, _ = gradcheck(tmp, args, expect_rc=0)
                    what = cmdline(["gradcheck"] + args)
                    check_schema(rep, what)
                    check(rep["passed"] is True, "%s: passed %r" % (what, rep["passed"]))
                    check(rep["problem"]["dtype"] == np.dtype(dtype).name,
                          "%s: dtype %r" % (what, rep["problem"]["dtype"]))
                    check(rep["problem"]["channels"] == shape[axis],
                          "%s: channels %r, expected %d" % (what, rep["problem"]["channels"],
                                                            shape[axis]))
                    t = rep["tolerances"]
                    check(t["name"] == "scaled" and t["eps"] == float(np.finfo(dtype).eps) and t["k"] == 64,
                          "%s: tolerances %r, expected the scaled criterion with eps of %s"
                          % (what, t, np.dtype(dtype).name))


def test_usage_errors():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(303)
        x, gamma, beta, dy = random_problem(rng, (6, 4), 1, F64)
        write_problem(tmp, x, gamma, beta, dy)
        save(tmp, "dx.npy", dy)
        base = ["--x", "x.npy", "--report", "report.json"]
        expect_error(tmp, base + ["--dx", "dx.npy"], contains=["--dy"])
        expect_error(tmp, base + ["--dgamma", "gamma.npy"], contains=["--dy"])
        expect_error(tmp, base + ["--rtol", "1e-9x"], contains=["--rtol", "1e-9x"])
        expect_error(tmp, base + ["--rtol", "-1"], contains=["--rtol"])
        expect_error(tmp, base + ["--atol", "-1"], contains=["--atol"])
        expect_error(tmp, base + ["--seed", "abc"], contains=["--seed", "abc"])
        expect_error(tmp, ["--x", "x.npy", "--report", "missing/report.json"],
                     contains=["missing"])
        check(not os.path.exists(os.path.join(tmp, "missing")),
              "the missing folder was created")
        rc, out, err = run(["gradcheck", "--help"], tmp)
        check(rc == 0, "bnorm gradcheck --help: exit %d, stderr %r" % (rc, err))
        check("--dx" in out and "--report" in out,
              "bnorm gradcheck --help does not describe the options: %r" % out[:300])


# ---------------------------------------------------------------------------
# 3. exact gradients pass on every golden case
# ---------------------------------------------------------------------------

def test_golden_exact_gradients_pass():
    failures = []
    names = golden_cases()
    for name in names:
        case, a = load_golden(name)
        with tempfile.TemporaryDirectory() as tmp:
            args = write_golden(tmp, case, a) + GIVEN_ALL
            rc, rep, out, err, _ = gradcheck(tmp, args)
            what = "%s: %s" % (name, cmdline(["gradcheck"] + args))
            if rc != 0 or rep is None or rep.get("passed") is not True:
                failures.append("%s: exit %d, %s; stderr %r" % (what, rc, summary(rep),
                                                                err[-300:]))
                continue
            errs = schema_errors(rep)
            p = rep["problem"]
            if errs:
                failures.append("%s: schema: %s" % (what, "; ".join(errs)))
            elif (p["gradients"] != "given" or p["judged"] != ["dx", "dgamma", "dbeta"]
                  or p["dy"] != "given" or p["dy_draws"] != 1
                  or p["dtype"] != case["dtype"] or p["shape"] != case["shape"]):
                failures.append("%s: problem %s" % (what, p))
            elif any(rep[k]["checked"] != rep[k]["total"] for k in ("x", "gamma", "beta")):
                failures.append("%s: not every element checked: %s" % (what, summary(rep)))
    check(not failures, "%d of %d golden cases:\n    %s"
          % (len(failures), len(names), "\n    ".join(failures)))


def test_golden_judge_only_dx():
    name = "n4c3h8w8_axis1_eps1e-8_f64_offset1e8"
    case, a = load_golden(name)
    with tempfile.TemporaryDirectory() as tmp:
        args = write_golden(tmp, case, a) + ["--dx", "dx.npy"]
        rc, rep, _, _, _ = gradcheck(tmp, args, expect_rc=0)
        what = "%s: %s" % (name, cmdline(["gradcheck"] + args))
        check_schema(rep, what)
        check(rep["passed"] is True, "%s: passed %r" % (what, rep["passed"]))
        check(rep["problem"]["judged"] == ["dx"] and rep["problem"]["gradients"] == "given",
              "%s: judged %r gradients %r" % (what, rep["problem"]["judged"],
                                              rep["problem"]["gradients"]))
        check(rep["x"]["judged"] is True and rep["x"]["checked"] == rep["x"]["total"] == a["x"].size,
              "%s: x %s" % (what, summary(rep)))
        for k in ("gamma", "beta"):
            check(rep[k]["judged"] is False, "%s: %s.judged %r" % (what, k, rep[k]["judged"]))
            check(rep[k]["passed"] is True, "%s: %s.passed %r (not judged)" % (what, k,
                                                                              rep[k]["passed"]))
        # Judging only dgamma of the same case.
        args = write_golden(tmp, case, a) + ["--dgamma", "dgamma.npy"]
        rc, rep, _, _, _ = gradcheck(tmp, args, expect_rc=0)
        what = "%s: %s" % (name, cmdline(["gradcheck"] + args))
        check(rep["problem"]["judged"] == ["dgamma"] and rep["x"]["judged"] is False
              and rep["gamma"]["judged"] is True and rep["beta"]["judged"] is False,
              "%s: judged %r, %s" % (what, rep["problem"]["judged"], summary(rep)))


# ---------------------------------------------------------------------------
# 4. wrong gradients fail and are located
# ---------------------------------------------------------------------------

def test_golden_perturbed_element_is_found():
    name = "n2c3h4w5_axis-3_eps1e-5_f64"
    case, a = load_golden(name)
    dx = a["dx"].copy()
    big = np.abs(dx) >= 0.2 * np.max(np.abs(dx))
    flat = np.flatnonzero(big.ravel())
    check(len(flat) >= 3, "setup: too few large dx elements")
    f = int(flat[len(flat) // 2])   # a large element in the middle, neither first nor argmax
    if f == int(np.argmax(np.abs(dx))):
        f = int(flat[len(flat) // 2 + 1])
    idx = [int(i) for i in np.unravel_index(f, dx.shape)]
    dx.flat[f] *= 1 + 1e-6
    with tempfile.TemporaryDirectory() as tmp:
        args = write_golden(tmp, case, a, dx=dx) + GIVEN_ALL + ["--report", "report.json"]
        rc, rep, out, _, _ = gradcheck(tmp, args, expect_rc=1)
        what = "%s: dx%s *= 1+1e-6: %s" % (name, idx, cmdline(["gradcheck"] + args))
        check_schema(rep, what)
        check(rep["passed"] is False and rep["x"]["passed"] is False,
              "%s: %s" % (what, summary(rep)))
        check(rep["gamma"]["passed"] is True and rep["beta"]["passed"] is True,
              "%s: gamma/beta should pass: %s" % (what, summary(rep)))
        w = rep["x"]["worst"]
        check(w is not None and w["index"] == idx,
              "%s: x.worst %s, expected index %s" % (what, json.dumps(w), idx))
        check(w["analytic"] == float(dx.flat[f]),
              "%s: worst.analytic %r, expected the perturbed value %r"
              % (what, w["analytic"], float(dx.flat[f])))
        exact = float(a["dx"].flat[f])
        check(abs(w["numerical"] - exact) <= 1e-13 * abs(exact),
              "%s: worst.numerical %r, exact %r" % (what, w["numerical"], exact))
        check(w["ratio_to_tolerance"] > 1, "%s: ratio_to_tolerance %r" % (what,
                                                                        w["ratio_to_tolerance"]))
        check(8e-7 < rep["x"]["max_rel_err"] < 1.2e-6,
              "%s: x.max_rel_err %r, expected about 1e-6" % (what, rep["x"]["max_rel_err"]))
        check(read_text(tmp, "report.json") == out,
              "%s: report.json differs from stdout on a failed check" % what)

    dg = a["dgamma"].copy()
    check(abs(dg[1]) > 1e-3 * np.max(np.abs(dg)), "setup: dgamma[1] is tiny")
    dg[1] *= 1 + 1e-6
    with tempfile.TemporaryDirectory() as tmp:
        args = write_golden(tmp, case, a, dgamma=dg) + GIVEN_ALL
        rc, rep, _, _, _ = gradcheck(tmp, args, expect_rc=1)
        what = "%s: dgamma[1] *= 1+1e-6: %s" % (name, cmdline(["gradcheck"] + args))
        check(rep["passed"] is False and rep["gamma"]["passed"] is False,
              "%s: %s" % (what, summary(rep)))
        check(rep["x"]["passed"] is True and rep["beta"]["passed"] is True,
              "%s: x/beta should pass: %s" % (what, summary(rep)))
        w = rep["gamma"]["worst"]
        check(w is not None and w["index"] == [1],
              "%s: gamma.worst %s, expected index [1]" % (what, json.dumps(w)))


def test_float32_perturbation_above_rtol_fails():
    """float32: exact gradients rounded to float32 pass (rtol 1e-5); one element off by
    1e-4 relative fails and is named."""
    name = "n4c3h5w5_axis1_eps1e-5_f32"
    case, a = load_golden(name)
    dx = a["dx"].astype(F32)
    f = int(np.argmax(np.abs(dx)))
    idx = [int(i) for i in np.unravel_index(f, dx.shape)]
    dx.flat[f] = F32(dx.flat[f] * (1 + 1e-4))
    with tempfile.TemporaryDirectory() as tmp:
        args = write_golden(tmp, case, a, dx=dx) + ["--dx", "dx.npy"]
        rc, rep, _, _, _ = gradcheck(tmp, args, expect_rc=1)
        what = "%s: %s" % (name, cmdline(["gradcheck"] + args))
        check(rep["x"]["passed"] is False and rep["x"]["worst"]["index"] == idx,
              "%s: expected x to fail at %s: %s" % (what, idx, summary(rep)))


# ---------------------------------------------------------------------------
# 5. randomized mode
# ---------------------------------------------------------------------------

def test_randomized_mode_finds_wrong_channel():
    rng = np.random.default_rng(505)
    shape, C = (40000, 8), 8
    x = rng.standard_normal(shape)
    gamma = rng.standard_normal(C)
    beta = rng.standard_normal(C)
    dy = rng.standard_normal(shape)
    dx, dg, db = ref_backward(x, gamma, dy, 1e-5, 1)
    with tempfile.TemporaryDirectory() as tmp:
        write_problem(tmp, x, gamma, beta, dy)
        save(tmp, "dgamma.npy", dg)
        save(tmp, "dbeta.npy", db)
        save(tmp, "dx.npy", dx)
        # The numpy float64 gradients are accurate to a few ulps of the largest element
        # of each channel: on tiny elements their relative error reaches ~2e-11 (above
        # rtol alone), but the default atol floor 1e-3 * rtol * max|dx| covers that.
        # Measured against bnorm's correctly rounded backward over all 320000 elements:
        # at most 0.004 of the default tolerance, so the default rtol (1e-11) is used.
        args = ["--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy", "--dy", "dy.npy"] \
            + GIVEN_ALL
        rc, rep, _, _, dt_good = gradcheck(tmp, args, expect_rc=0)
        print("  timing: randomized (40000, 8) float64, correct gradients: %.2f s "
              "(bnorm elapsed_seconds %.2f)" % (dt_good, rep["elapsed_seconds"]))
        what = cmdline(["gradcheck"] + args)
        check_schema(rep, what)
        m = rep["method"]
        check(m["mode"] == "randomized", "%s: mode %r" % (what, m["mode"]))
        check(m["directions_per_draw"] > 0 and m["samples_per_draw"] > 0,
              "%s: method %s" % (what, m))
        xv = rep["x"]
        check(xv["total"] == x.size and 2 * C <= xv["checked"] < x.size,
              "%s: x checked %r total %r" % (what, xv["checked"], xv["total"]))
        d = xv.get("directional")
        check(isinstance(d, dict) and d["passed"] is True
              and d["checks"] == m["directions_per_draw"] * C * rep["problem"]["dy_draws"],
              "%s: x.directional %s" % (what, d))
        check(rep["gamma"]["checked"] == C and "directional" not in rep["gamma"],
              "%s: gamma %s" % (what, rep["gamma"]))

        bad = dx.copy()
        bad[:, 5] *= 1 + 1e-7
        save(tmp, "dx.npy", bad)
        rc, rep, _, _, dt_bad = gradcheck(tmp, args, expect_rc=1)
        print("  timing: randomized (40000, 8) float64, channel 5 of dx off by 1e-7: %.2f s "
              "(bnorm elapsed_seconds %.2f)" % (dt_bad, rep["elapsed_seconds"]))
        what = cmdline(["gradcheck"] + args) + " (dx[:, 5] *= 1 + 1e-7)"
        check_schema(rep, what)
        xv = rep["x"]
        check(rep["passed"] is False and xv["passed"] is False, "%s: %s" % (what, summary(rep)))
        check(rep["gamma"]["passed"] is True and rep["beta"]["passed"] is True,
              "%s: gamma/beta should pass: %s" % (what, summary(rep)))
        d = xv["directional"]
        found_dir = d["passed"] is False and d["worst_channel"] == 5
        found_elem = xv["worst"] is not None and xv["worst"]["index"][1] == 5
        check(found_dir or found_elem,
              "%s: the report does not point at channel 5: %s" % (what, summary(rep)))
        note("channel 5 located by: %s" % ", ".join(
            s for s, f in (("directional derivatives", found_dir),
                           ("sampled elements", found_elem)) if f))


def test_full_forces_elementwise():
    rng = np.random.default_rng(606)
    shape = (250, 80)          # 20000 elements > 10000
    x, gamma, beta, dy = random_problem(rng, shape, 1, F64)
    with tempfile.TemporaryDirectory() as tmp:
        write_problem(tmp, x, gamma, beta, dy)
        base = ["--x", "x.npy", "--gamma", "gamma.npy", "--dy", "dy.npy"]
        rc, rep, _, _, dt = gradcheck(tmp, base, expect_rc=0)
        what = cmdline(["gradcheck"] + base)
        check(rep["method"]["mode"] == "randomized" and rep["x"]["checked"] < x.size,
              "%s: without --full: mode %r, checked %r" % (what, rep["method"]["mode"],
                                                           rep["x"]["checked"]))
        args = base + ["--full"]
        rc, rep, _, _, dt = gradcheck(tmp, args, expect_rc=0)
        print("  timing: --full on (250, 80) float64: %.2f s" % dt)
        what = cmdline(["gradcheck"] + args)
        check_schema(rep, what)
        check(rep["method"]["mode"] == "elementwise", "%s: mode %r" % (what, rep["method"]["mode"]))
        check(rep["x"]["checked"] == rep["x"]["total"] == x.size,
              "%s: x checked %r total %r" % (what, rep["x"]["checked"], rep["x"]["total"]))
        check("directional" not in rep["x"], "%s: directional present in elementwise mode" % what)


def test_elementwise_limit_is_10000_elements():
    """<= 10000 elements: elementwise, whatever the shape; 10001 and more: randomized.
    (8200, 1) is the expensive one: 8200 elements in a single channel (about 1 s)."""
    check(ELEMENTWISE_LIMIT == 2500 * 4, "the shapes below assume a limit of 10000")
    rng = np.random.default_rng(616)
    for shape, mode in (((2500, 4), "elementwise"), ((2501, 4), "randomized"),
                        ((10001, 1), "randomized"), ((8200, 1), "elementwise")):
        with tempfile.TemporaryDirectory() as tmp:
            x, gamma, beta, dy = random_problem(rng, shape, 1, F64)
            write_problem(tmp, x, gamma, beta, dy)
            args = ["--x", "x.npy", "--dy", "dy.npy"]
            rc, rep, _, _, dt = gradcheck(tmp, args, expect_rc=0)
            what = "%s with x of shape %s (%d elements)" % (cmdline(["gradcheck"] + args),
                                                            shape, x.size)
            if shape == (8200, 1):
                print("  timing: (8200, 1) float64 with --dy: %.2f s, mode %s"
                      % (dt, rep["method"]["mode"]))
            check(rep["method"]["mode"] == mode, "%s: mode %r, expected %r"
                  % (what, rep["method"]["mode"], mode))
            if mode == "elementwise":
                check(rep["x"]["checked"] == rep["x"]["total"] == x.size,
                      "%s: x checked %r of %r" % (what, rep["x"]["checked"], rep["x"]["total"]))


def test_random_dy_draws_is_three():
    """Without --dy, 3 upstream gradients are drawn, in both modes; the worst element's
    dy_draw lies among them."""
    rng = np.random.default_rng(626)
    for shape, mode in (((7, 3), "elementwise"), ((4200, 4), "randomized")):
        with tempfile.TemporaryDirectory() as tmp:
            x, gamma, beta, dy = random_problem(rng, shape, 1, F64)
            write_problem(tmp, x, gamma, beta)
            args = ["--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy"]
            rc, rep, _, _, _ = gradcheck(tmp, args, expect_rc=0)
            check(rep["method"]["mode"] == mode, "setup: shape %s gives mode %r, expected %r"
                  % (shape, rep["method"]["mode"], mode))
            what = "%s with x of shape %s (%s mode)" % (cmdline(["gradcheck"] + args), shape,
                                                        rep["method"]["mode"])
            check(rep["problem"]["dy"] == "random" and rep["problem"]["dy_draws"] == RANDOM_DY_DRAWS,
                  "%s: problem.dy %r, dy_draws %r (expected \"random\", %d)"
                  % (what, rep["problem"]["dy"], rep["problem"]["dy_draws"], RANDOM_DY_DRAWS))
            for k in ("x", "gamma", "beta"):
                w = rep[k]["worst"]
                check(w is None or 0 <= w["dy_draw"] < rep["problem"]["dy_draws"],
                      "%s: %s.worst.dy_draw %r" % (what, k, w))


# ---------------------------------------------------------------------------
# 6. determinism
# ---------------------------------------------------------------------------

def test_deterministic_across_threads_and_runs():
    rng = np.random.default_rng(707)
    for shape, axis in (((2100, 8), 1), ((6, 5, 7), 1)):   # randomized, elementwise
        with tempfile.TemporaryDirectory() as tmp:
            x = (rng.standard_normal(shape) + 0.5).astype(F64)
            gamma = rng.standard_normal(shape[axis])
            write_problem(tmp, x, gamma)
            base = ["--x", "x.npy", "--gamma", "gamma.npy", "--axis", axis]
            reps = {}
            for label, extra in (("t1", ["--threads", "1"]), ("t2", ["--threads", "2"]),
                                 ("t2again", ["--threads", "2"]), ("t0", []),
                                 ("seed0", ["--seed", "0", "--threads", "1"]),
                                 ("seed7", ["--seed", "7"]), ("seed7again", ["--seed", "7",
                                                                              "--threads", "1"])):
                rc, rep, _, _, _ = gradcheck(tmp, base + extra, expect_rc=0)
                check_schema(rep, cmdline(["gradcheck"] + base + extra))
                check(rep["problem"]["dy"] == "random",
                      "%s: problem %s" % (cmdline(["gradcheck"] + base + extra), rep["problem"]))
                reps[label] = without_elapsed(rep)
            what = "shape %s: " % (shape,)
            for a_, b_ in (("t1", "t2"), ("t1", "t2again"), ("t1", "t0"), ("t1", "seed0"),
                           ("seed7", "seed7again")):
                check(reps[a_] == reps[b_], what + "reports of runs %s and %s differ:\n%s\n%s"
                      % (a_, b_, json.dumps(reps[a_])[:2000], json.dumps(reps[b_])[:2000]))
            check(reps["seed7"]["problem"]["seed"] == 7, what + "problem.seed %r"
                  % reps["seed7"]["problem"]["seed"])
            r0, r7 = dict(reps["t1"]), dict(reps["seed7"])
            r0.pop("problem")
            r7.pop("problem")
            check(r0 != r7, what + "--seed 7 gives the same numbers as --seed 0")
            numbers0 = [r0[k]["worst"]["analytic"] for k in ("x", "gamma", "beta")]
            numbers7 = [r7[k]["worst"]["analytic"] for k in ("x", "gamma", "beta")]
            check(numbers0 != numbers7, what + "worst.analytic identical for seeds 0 and 7: %s"
                  % numbers0)


# ---------------------------------------------------------------------------
# 7. non-finite given gradients
# ---------------------------------------------------------------------------

def test_nonfinite_given_dx():
    name = "n32c4_axis1_eps1e-5_f64"
    case, a = load_golden(name)
    dx = a["dx"].copy()
    idx = [7, 2]
    dx[tuple(idx)] = np.nan
    with tempfile.TemporaryDirectory() as tmp:
        args = write_golden(tmp, case, a, dx=dx) + GIVEN_ALL + ["--report", "report.json"]
        # With --allow-nonfinite the NaN is judged: it fails the check, and is named.
        args_allow = args + ["--allow-nonfinite"]
        rc, rep, out, err, _ = gradcheck(tmp, args_allow, expect_rc=1)
        what = cmdline(["gradcheck"] + args_allow)
        check(rep["passed"] is False and rep["x"]["passed"] is False,
              "%s: %s" % (what, summary(rep)))
        check(rep["gamma"]["passed"] is True and rep["beta"]["passed"] is True,
              "%s: gamma/beta should pass: %s" % (what, summary(rep)))
        w = rep["x"]["worst"]
        check(w is not None and w["index"] == idx,
              "%s: x.worst %s, expected index %s" % (what, json.dumps(w), idx))
        check(w["analytic"] is None or (isinstance(w["analytic"], float) and w["analytic"] != w["analytic"]),
              "%s: worst.analytic %r for a NaN" % (what, w["analytic"]))
        os.remove(os.path.join(tmp, "report.json"))

        # Without the flag: either refused as non-finite input (exit 2, naming dx.npy), or
        # judged like above (exit 1, the NaN element named). Which one is reported.
        before = snapshot(tmp)
        rc, out, err = run(["gradcheck"] + args, tmp)
        what = cmdline(["gradcheck"] + args)
        if rc == 2:
            check(err.startswith("bnorm: error: ") and err.count("\n") == 1
                  and "dx.npy" in err,
                  "%s: exit 2 but the message is not one line naming dx.npy: %r" % (what, err))
            check(not snapshot_diff(before, snapshot(tmp)), "%s: the folder changed" % what)
            note("a NaN in a given --dx without --allow-nonfinite is refused: exit 2, %r"
                 % err.strip())
        else:
            check(rc == 1, "%s: exit %d (expected 2 = refused, or 1 = check failed); stderr %r"
                  % (what, rc, err[-500:]))
            rep = json.loads(out)
            check(rep["x"]["passed"] is False and rep["x"]["worst"]["index"] == idx,
                  "%s: exit 1 but the NaN is not the named failure: %s" % (what, summary(rep)))
            note("a NaN in a given --dx WITHOUT --allow-nonfinite is not refused: exit 1, "
                 "judged as a failed element (x.max_abs_err %r, x.max_rel_err %r)"
                 % (rep["x"]["max_abs_err"], rep["x"]["max_rel_err"]))


# ---------------------------------------------------------------------------
# runner
# ---------------------------------------------------------------------------

if __name__ == "__main__":
    sys.exit(run_tests(globals(), __doc__))
