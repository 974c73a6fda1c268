#!/usr/bin/python3
"""bnorm gen: the suites of test cases, checked against references gen did not compute.

Usage (Debian's Python, which has numpy and mpmath):

    /usr/bin/python3 tests/cli/test_gen.py BNORM [NAME-SUBSTRING ...]

  * Determinism: the same seed gives the same bytes (--threads 1 and 2, NPY and CSV,
    with the exact outputs, on a tensor above the 65536 values that start threading),
    another seed other data, and case.json's generated_by writes the same suite again.
    The random streams are recomputed here by an independent Python xoshiro256** /
    splitmix64 / Irwin-Hall: the ordinary suite's x, gamma, beta, dy and the offset and
    Cauchy classes' x are the same bits (so they are the same on any machine whose
    double arithmetic is IEEE's).
  * Every class is written for every norm (batch NCHW and NHWC, layer, rms, instance,
    group), with case.json's fields, the files it names, the shapes it states, and the
    property that makes the class hard (offset ratio, a constant set, m = 2, Cauchy data,
    variance below eps, magnitudes near overflow and underflow, dy nearly linear in x).
  * case.json's forward and backward command lines run (exit 0) in the case's folder, and
    its compare command line then passes (exit 0) on those outputs, for every class, NPY
    and CSV (batch norm; for a norm that bnorm compare does not judge yet, a probe finds
    it out and the verdict is skipped with a note, the commands still run). A naive float32 kernel in numpy (one-pass variance) passes compare on the
    ordinary suite and fails on the offset class; a float32 inference kernel folded into
    y = x*a + c passes on eval and fails on eval_offset.
  * --with-outputs: the exact outputs are within 4 eps normwise (the README's promise) of
    scripts/golden.py's mpmath reference (float64: of the mpmath value; float32: of it
    rounded to float32), every class, every norm, both dtypes; the worst is printed.
  * float16 and bfloat16: every class of every norm is written ('<f2' / '<V2' NPY, and
    CSV), its inputs are half values with the class's property (adapted to the half
    range), case.json's command lines run and compare passes; y and dx come out in the
    half type and the statistics in float32; threads 1 and 2 give the same bytes; the
    streams match the Python ones rounded once; --with-outputs is within 4 eps of
    scripts/golden_half.py's mpmath values rounded once (y, dx: of the half type; mean,
    invstd, dgamma, dbeta: of float32), eval classes against golden.py's float64 rounded
    here (numpy's float16, and a bfloat16 rounding of this test's own, itself checked).
  * Errors: exit 2, one line, nothing written (the bad-input catalog holds them too); a
    write that fails midway (RLIMIT_FSIZE) leaves neither the suite nor a temporary folder.

Prints `PASS name` / `FAIL name: reason` per test and `N passed, M failed`; exit 1 on a
failure.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile

import numpy as np

from runner import check, check_error, note, run_tests, snapshot

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import golden  # noqa: E402  (the mpmath reference)
import golden_half  # noqa: E402  (its half-precision rounding, once from mpmath)

BNORM = None  # set by run_tests()
HARD = ("offset", "constant", "two", "cauchy", "dy_cancel", "tiny_var", "huge", "tiny")
ORDINARY = ("normal",)


def classes(suite, norm):
    """The classes gen writes (batch norm adds an inference-mode class)."""
    names = HARD if suite == "hard" else ORDINARY
    if norm == "batch":
        names = names + (("eval_offset",) if suite == "hard" else ("eval",))
    return names
# (norm, shape, extra options): every norm, channels first and last, group with 1 and 3
# channels per group
PROBLEMS = [
    ("batch", "4,3,5", []),
    ("batch", "2,3,3,4", ["--axis", "-1"]),
    ("layer", "3,4,6", []),
    ("rms", "3,4,6", []),
    ("instance", "2,3,5", []),
    ("group", "2,4,3", ["--groups", "4"]),
    ("group", "2,6,2", ["--groups", "2"]),
]
DT = {"float32": np.float32, "float64": np.float64, "float16": np.float16}
HALF = ("float16", "bfloat16")
# the offset of the offset classes, the largest finite value and the least normal one
OFFSET = {"float64": 1e8, "float32": 1e4, "float16": 1e3, "bfloat16": 1e2}
MAXF = {"float64": np.finfo(np.float64).max, "float32": float(np.finfo(np.float32).max), "float16": 65504.0,
        "bfloat16": (2 - 2.0 ** -7) * 2.0 ** 127}
TINY = {"float64": np.finfo(np.float64).tiny, "float32": 2.0 ** -126, "float16": 2.0 ** -14, "bfloat16": 2.0 ** -126}


def round_bf16(v):
    """float64 values rounded once to bfloat16 (8 significant bits, ties to even, subnormals
    spaced 2^-133), as float64: written for this test, not through float32."""
    v = np.asarray(v, np.float64)
    m, e = np.frexp(v)  # v = m * 2^e, |m| in [0.5, 1)
    q = np.maximum(e - 8, -133).astype(np.float64)  # the spacing's exponent
    out = np.rint(np.ldexp(v, (-q).astype(np.int64))) * np.exp2(q)  # rint: ties to even
    return np.where(np.abs(out) > MAXF["bfloat16"], np.copysign(np.inf, v), out)


def round_half(v, dtype):
    """float64 values rounded once to a half type, as float64 (numpy's float64 -> float16
    conversion rounds the double directly)."""
    if dtype == "float16":
        return np.asarray(v, np.float64).astype(np.float16).astype(np.float64)
    return round_bf16(v)


def spacing(w, dtype):
    """The spacing of dtype's values at |w| (w values of dtype; float32, float16, bfloat16)."""
    w = np.abs(np.asarray(w, np.float64))
    if dtype == "float32":
        return np.spacing(w.astype(np.float32)).astype(np.float64)
    digits, least = (11, -24) if dtype == "float16" else (8, -133)  # significant bits, least spacing
    _, e = np.frexp(w)  # w = m * 2^e, m in [0.5, 1)
    return np.exp2(np.maximum(e - digits, least).astype(np.float64))


def loadf(folder, name, dtype):
    """A saved tensor as float64 values (bfloat16: '<V2' bit patterns decoded here)."""
    return golden_half.load_half(os.path.join(folder, name + ".npy"), dtype)


def gen(out, suite, norm, shape, dtype, seed, extra=(), threads=None, fmt=None, outputs=False, preexec=None):
    cmd = [BNORM, "gen", "--suite", suite, "--norm", norm, "--shape", shape, "--dtype", dtype,
           "--seed", str(seed), "--out", out] + list(extra)
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if fmt:
        cmd += ["--format", fmt]
    if outputs:
        cmd.append("--with-outputs")
    p = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=preexec)
    check(p.returncode == 0, "%s: exit %d: %s" % (" ".join(cmd[1:]), p.returncode, p.stderr))
    check(p.stdout == "" and p.stderr == "", "gen printed something: %r %r" % (p.stdout, p.stderr))
    return out


def case(folder):
    with open(os.path.join(folder, "case.json")) as f:
        return json.load(f)


def load(folder, name):
    return np.load(os.path.join(folder, name + ".npy"))


# --- an independent implementation of gen's random streams ---------------------------

M64 = (1 << 64) - 1


class PyRandom:
    """xoshiro256** seeded by splitmix64 from seed ^ FNV-1a(stream), as docs/gen.md says."""

    def __init__(self, seed, stream):
        h = 0xcbf29ce484222325
        for b in stream.encode():
            h = ((h ^ b) * 0x100000001b3) & M64
        state = seed ^ h
        self.s = []
        for _ in range(4):
            state = (state + 0x9e3779b97f4a7c15) & M64
            z = state
            z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M64
            z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M64
            self.s.append(z ^ (z >> 31))

    def next(self):
        s = self.s
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M64  # noqa: E731
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return float(self.next() >> 11) * 2.0 ** -53

    def cauchy(self):
        while True:
            u, v = 2 * self.uniform() - 1, 2 * self.uniform() - 1
            if u != 0 and u * u + v * v < 1:
                return v / u

    def normal(self):
        total = 0.0
        for _ in range(12):
            total += self.uniform()
        return total - 6


def test_streams_match_an_independent_implementation():
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float64", "float32"):
            for seed in (0, 12345678901234567890):
                out = gen(os.path.join(tmp, "o%s%d" % (dtype, seed % 7)), "ordinary", "layer", "3,5", dtype, seed)
                d = os.path.join(out, "normal")
                for name, n in (("x", 15), ("gamma", 5), ("beta", 5), ("dy", 15)):
                    r = PyRandom(seed, "normal/" + name)
                    want = np.array([r.normal() for _ in range(n)]).astype(DT[dtype])
                    got = load(d, name).ravel()
                    check(got.dtype == want.dtype and got.tobytes() == want.tobytes(),
                          "%s %s seed %d: differs from the Python streams" % (dtype, name, seed))
                hard = gen(os.path.join(tmp, "h%s%d" % (dtype, seed % 7)), "hard", "layer", "3,5", dtype, seed)
                r = PyRandom(seed, "offset/x")
                offset = 1e4 if dtype == "float32" else 1e8
                want = np.array([offset + r.normal() for _ in range(15)]).astype(DT[dtype])
                check(load(os.path.join(hard, "offset"), "x").ravel().tobytes() == want.tobytes(),
                      "offset x differs from the Python stream")


def test_determinism():
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("npy", "csv"):
            # 64 x 1100 = 70400 values: above the 65536 that start the library's threads
            a = gen(os.path.join(tmp, "a" + fmt), "hard", "layer", "64,1100", "float32", 5, threads=1, fmt=fmt, outputs=True)
            b = gen(os.path.join(tmp, "b" + fmt), "hard", "layer", "64,1100", "float32", 5, threads=2, fmt=fmt, outputs=True)
            check(snapshot(a) == snapshot(b), "%s: --threads 1 and 2 differ" % fmt)
        a = gen(os.path.join(tmp, "c"), "hard", "group", "4,6,100", "float64", 9, ["--groups", "3"], outputs=True)
        b = gen(os.path.join(tmp, "d"), "hard", "group", "4,6,100", "float64", 9, ["--groups", "3"], outputs=True)
        check(snapshot(a) == snapshot(b), "the same seed gave other bytes")
        # an empty folder is taken, and a trailing slash names the folder
        os.mkdir(os.path.join(tmp, "empty"))
        e = gen(os.path.join(tmp, "empty") + "/", "hard", "group", "4,6,100", "float64", 9, ["--groups", "3"])
        f = gen(os.path.join(tmp, "new") + "/", "hard", "group", "4,6,100", "float64", 9, ["--groups", "3"])
        check(snapshot(e) == snapshot(f), "an empty or a new folder given with a slash")
        se, sb = snapshot(e), snapshot(b)
        check(all(se[k] == sb[k] for k in se if k.endswith(".npy")), "the inputs depend on --with-outputs")
        check(sorted(n for n in os.listdir(tmp) if n.startswith(".")) == [], "a temporary folder was left")
        # case.json's generated_by writes the same suite again
        again = os.path.join(tmp, "again")
        p = subprocess.run([BNORM] + case(os.path.join(a, "two"))["generated_by"][1:] + ["--out", again],
                           capture_output=True, text=True)
        check(p.returncode == 0 and snapshot(again) == snapshot(a), "generated_by: %s" % p.stderr)
        c = gen(os.path.join(tmp, "e"), "hard", "group", "4,6,100", "float64", 10, ["--groups", "3"])
        for cls in classes("hard", "group"):
            check(not np.array_equal(load(os.path.join(a, cls), "x"), load(os.path.join(c, cls), "x")),
                  "%s: seeds 9 and 10 gave the same x" % cls)


def set_values(norm, x, axis, groups):
    """x's elements grouped by set: a list of 1-d arrays (an independent indexing)."""
    lay = golden.family_layout(norm, x.shape, axis, groups) if norm != "batch" else None
    if norm == "batch":
        moved = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])
        return [moved[:, c] for c in range(moved.shape[1])]
    sets = golden._family_sets(lay)
    return [x.ravel()[idx] for idx in sets]


def check_hard_property(cls, c, d):
    dt = c["dtype"]
    x = loadf(d, "x", dt)
    dy = loadf(d, "dy", dt)
    low = OFFSET[dt] / 10  # the least mean/spread ratio of the offset classes
    sets = set_values(c["norm"], x, c["axis"], c["groups"])
    rms = c["norm"] == "rms"
    what = "%s %s" % (c["norm"], cls)
    if cls == "eval_offset":
        rm = loadf(d, "running_mean", dt)
        rv = loadf(d, "running_var", dt)
        check(np.all(np.abs(rm) > low) and np.all((rv >= 0.5) & (rv <= 2)),
              "%s: running statistics %s %s" % (what, rm, rv))
        with np.errstate(divide="ignore"):  # a half set of m = 3 may round to one value: ratio inf
            ratio = min(abs(s.mean()) / s.std() for s in sets)
        check(ratio > low, "%s: mean/spread %g" % (what, ratio))
    elif cls == "offset":
        with np.errstate(divide="ignore"):  # a half set of m = 3 may round to one value: ratio inf
            ratio = min(abs(s.mean()) / s.std() for s in sets)
        check(ratio > low, "%s: mean/spread %g" % (what, ratio))
    elif cls == "constant":
        check(np.all(sets[0] == sets[0][0]), "%s: set 0 not constant" % what)
        if rms and len(sets) > 1:
            check(np.all(sets[1] == 0), "%s: set 1 not zero" % what)
    elif cls == "two":
        check(c["m"] == 2 and all(len(s) == 2 for s in sets), "%s: sets of %s" % (what, [len(s) for s in sets]))
    elif cls == "cauchy":
        # standard Cauchy variates, drawn as the Python stream draws them
        # (half types: clamped to the largest finite value, which float16's tail can pass)
        r = PyRandom(c["seed"], "cauchy/x")
        raw = np.array([r.cauchy() for _ in range(x.size)])
        if dt in HALF:
            want = round_half(np.clip(raw, -MAXF[dt], MAXF[dt]), dt)
            check(np.array_equal(x.ravel(), want), "%s: not the Cauchy stream" % what)
        else:
            want = raw.astype(DT[dt])
            check(load(d, "x").ravel().tobytes() == want.tobytes(), "%s: not the Cauchy stream" % what)
    elif cls == "tiny_var":
        check(float(c["eps"]) == 1e-3 and max((s * s).mean() if rms else s.var() for s in sets) < 1e-5,
              "%s: variance not far below eps" % what)
    elif cls == "huge":
        big = MAXF[dt]
        check(big / 64 < np.abs(x).max() < big, "%s: max |x| %g" % (what, np.abs(x).max()))
    elif cls == "tiny":
        tiny = TINY[dt]
        check(float(c["eps"]) == 0 and np.abs(x).max() < tiny * 2 ** 15, "%s: max |x| %g" % (what, np.abs(x).max()))
        if dt == "float16":  # all subnormal, and dy at x's scale (dx would overflow float16 else)
            check(np.abs(x).max() < tiny and np.abs(dy).max() < tiny, "%s: not subnormal" % what)
    elif cls == "dy_cancel":
        # gamma*dy is b*xhat (+ a) per set: its residue after a least-squares fit is tiny
        g = loadf(d, "gamma", dt)
        gdy = dy * np.broadcast_to(g.reshape(c["gamma_shape"] if not c["norm"] in ("batch", "instance", "group")
                                             else [-1 if i == c["axis"] else 1 for i in range(x.ndim)]), x.shape)
        gsets = set_values(c["norm"], gdy, c["axis"], c["groups"])
        worst = 0
        for xs, gs in zip(sets, gsets):
            A = np.stack([np.ones_like(xs), xs], 1)
            coef = np.linalg.lstsq(A, gs, rcond=None)[0]
            worst = max(worst, np.abs(gs - A @ coef).max() / np.abs(gs).max())
        limit = {"float64": 3e-7, "float32": 3e-3, "float16": 3e-2, "bfloat16": 1e-1}[dt]
        check(worst < limit, "%s: gamma*dy is %g off linear" % (what, worst))
        return worst


def test_every_class_every_norm():
    with tempfile.TemporaryDirectory() as tmp:
        k = 0
        for norm, shape, extra in PROBLEMS:
            for dtype in ("float64", "float32"):
                for suite in ("hard", "ordinary"):
                    k += 1
                    out = gen(os.path.join(tmp, str(k)), suite, norm, shape, dtype, k, extra)
                    names = classes(suite, norm)
                    check(sorted(os.listdir(out)) == sorted(names), "%s: folders %s" % (norm, os.listdir(out)))
                    for cls in names:
                        d = os.path.join(out, cls)
                        c = case(d)
                        for key in ("class", "suite", "hard_because", "norm", "groups", "axis", "shape",
                                    "requested_shape", "dtype", "seed", "eps", "m", "sets", "gamma_shape",
                                    "stat_shape", "format", "inputs", "outputs", "cli_options", "forward",
                                    "backward", "compare", "generated_by"):
                            check(key in c, "%s %s: case.json lacks %s" % (norm, cls, key))
                        check(c["class"] == cls and c["norm"] == norm and c["dtype"] == dtype and c["seed"] == k
                              and c["suite"] == suite, "%s %s: case.json %s" % (norm, cls, c))
                        check(c["hard_because"].count(".") <= 1 and len(c["hard_because"]) > 20,
                              "%s: hard_because %r" % (cls, c["hard_because"]))
                        want_inputs = ["x", "gamma", "dy"] + ([] if norm == "rms" else ["beta"]) \
                            + (["running_mean", "running_var"] if cls.startswith("eval") else [])
                        check(sorted(c["inputs"]) == sorted(want_inputs), "inputs %s" % c["inputs"])
                        check(sorted(os.listdir(d)) == sorted([v for v in c["inputs"].values()] + ["case.json"]),
                              "%s %s: files %s" % (norm, cls, os.listdir(d)))
                        x = load(d, "x")
                        check(x.dtype == DT[dtype] and list(x.shape) == c["shape"], "x %s %s" % (x.dtype, x.shape))
                        check(np.isfinite(x).all(), "%s %s: non-finite x" % (norm, cls))
                        check(list(load(d, "gamma").shape) == c["gamma_shape"], "gamma's shape")
                        check(load(d, "dy").shape == x.shape, "dy's shape")
                        if cls != "two":
                            check(c["shape"] == c["requested_shape"], "%s changed the shape" % cls)
                        check_hard_property(cls, c, d)


def run_case_commands(d, c):
    """Runs case.json's forward, backward and compare in d; returns compare's exit code,
    report and stderr."""
    for key in ("forward", "backward"):
        p = subprocess.run([BNORM] + c[key][1:], cwd=d, capture_output=True, text=True)
        check(p.returncode == 0, "%s %s %s: exit %d: %s" % (c["norm"], c["class"], key, p.returncode, p.stderr))
    p = subprocess.run([BNORM] + c["compare"][1:], cwd=d, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def compare_judges(norm):
    """Whether bnorm compare judges --norm `norm` (main's compare judges batch norm only
    until the family reaches it): compare on a layer-norm problem with outputs it must
    pass."""
    if norm == "batch":
        return True
    with tempfile.TemporaryDirectory() as tmp:
        out = gen(os.path.join(tmp, "probe"), "ordinary", norm, "2,4,6", "float64", 1,
                  ["--groups", "2"] if norm == "group" else [])
        d = os.path.join(out, "normal")
        c = case(d)
        for key in ("forward", "backward"):
            subprocess.run([BNORM] + c[key][1:], cwd=d, capture_output=True)
        p = subprocess.run([BNORM] + c["compare"][1:], cwd=d, capture_output=True, text=True)
        return p.returncode == 0


def test_case_commands_run_and_compare_passes():
    with tempfile.TemporaryDirectory() as tmp:
        k = 0
        skipped = set()
        for norm, shape, extra in PROBLEMS:
            judged = compare_judges(norm)
            for dtype in ("float64", "float32"):
                for fmt in ("npy", "csv"):
                    for suite in ("hard", "ordinary"):
                        k += 1
                        out = gen(os.path.join(tmp, str(k)), suite, norm, shape, dtype, k, extra, fmt=fmt)
                        for cls in classes(suite, norm):
                            d = os.path.join(out, cls)
                            c = case(d)
                            rc, report, err = run_case_commands(d, c)
                            if not judged:
                                skipped.add(norm)
                                continue
                            check(rc == 0, "%s %s %s %s: compare exit %d: %s" % (norm, dtype, fmt, cls, rc, err))
                            r = json.loads(report)
                            check(r["passed"] if "passed" in r else True, "report %s" % report[:300])
        if skipped:
            note("compare does not judge --norm %s yet: their commands ran, compare's verdict skipped"
                 % ", ".join(sorted(skipped)))


def naive_f32_forward(x, g, b, eps, axis):
    """A float32 kernel with the one-pass variance E[x^2] - mean^2, as many are written."""
    axes = tuple(i for i in range(x.ndim) if i != axis)
    shape = [-1 if i == axis else 1 for i in range(x.ndim)]
    mean = x.mean(axes, dtype=np.float32)
    var = np.maximum((x * x).mean(axes, dtype=np.float32) - mean * mean, np.float32(0))
    return ((x - mean.reshape(shape)) / np.sqrt(var + np.float32(eps)).reshape(shape) * g.reshape(shape)
            + b.reshape(shape)).astype(np.float32)


def folded_f32_eval(x, g, b, rm, rv, eps, axis):
    """A float32 inference kernel folded into y = x*a + c, as inference engines fuse it."""
    shape = [-1 if i == axis else 1 for i in range(x.ndim)]
    a = (g / np.sqrt(rv + np.float32(eps))).astype(np.float32)
    c = (b - rm * a).astype(np.float32)
    return (x * a.reshape(shape) + c.reshape(shape)).astype(np.float32)


def test_folded_float32_eval_kernel_fails_on_eval_offset_only():
    with tempfile.TemporaryDirectory() as tmp:
        verdict = {}
        for suite, cls in (("ordinary", "eval"), ("hard", "eval_offset")):
            out = gen(os.path.join(tmp, suite), suite, "batch", "16,3,8", "float32", 4)
            d = os.path.join(out, cls)
            c = case(d)
            y = folded_f32_eval(load(d, "x"), load(d, "gamma"), load(d, "beta"), load(d, "running_mean"),
                                load(d, "running_var"), float(c["eps"]), c["axis"])
            np.save(os.path.join(d, "got_y.npy"), y)
            cmd = [BNORM, "compare", "--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy",
                   "--running-mean", "running_mean.npy", "--running-var", "running_var.npy"] \
                + c["cli_options"] + ["--y", "got_y.npy"]
            p = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
            verdict[cls] = (p.returncode, json.loads(p.stdout)["tensors"]["y"]["max_ratio_to_tolerance"]
                            if p.returncode in (0, 1) else p.stderr)
        check(verdict["eval"][0] == 0, "folded float32 on eval: %s" % (verdict["eval"],))
        check(verdict["eval_offset"][0] == 1, "folded float32 on eval_offset: %s" % (verdict["eval_offset"],))
        note("folded float32 inference y: eval %.3g, eval_offset %.3g of the tolerance"
             % (verdict["eval"][1], verdict["eval_offset"][1]))


def test_naive_float32_kernel_fails_on_offset_only():
    with tempfile.TemporaryDirectory() as tmp:
        verdict = {}
        for suite, cls in (("ordinary", "normal"), ("hard", "offset")):
            out = gen(os.path.join(tmp, suite), suite, "batch", "16,3,8", "float32", 3)
            d = os.path.join(out, cls)
            c = case(d)
            y = naive_f32_forward(load(d, "x"), load(d, "gamma"), load(d, "beta"), float(c["eps"]), c["axis"])
            np.save(os.path.join(d, "got_y.npy"), y)
            cmd = [BNORM, "compare", "--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy"] \
                + c["cli_options"] + ["--y", "got_y.npy"]
            p = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
            verdict[cls] = (p.returncode, json.loads(p.stdout)["tensors"]["y"]["max_ratio_to_tolerance"]
                            if p.returncode in (0, 1) else p.stderr)
        check(verdict["normal"][0] == 0, "naive float32 on normal data: %s" % (verdict["normal"],))
        check(verdict["offset"][0] == 1, "naive float32 on the offset class: %s" % (verdict["offset"],))
        note("naive float32 y: normal %.3g, offset %.3g of the tolerance"
             % (verdict["normal"][1], verdict["offset"][1]))


def exact_reference(c, x, g, b, dy, rs=None):
    """scripts/golden.py's mpmath outputs (float64) of the case."""
    norm, eps, axis = c["norm"], c["eps"], c["axis"]
    if c["class"].startswith("eval"):
        rm, rv = rs
        y = golden.exact_forward_eval(x, g, b, rm, rv, eps, axis)
        dx, dgamma, dbeta = golden.exact_backward_eval(x, g, dy, rm, rv, eps, axis)
        return dict(y=y, dx=dx, dgamma=dgamma, dbeta=dbeta)
    if norm == "batch":
        y, mean, invstd = golden.exact_forward(x, g, b, eps, axis)
        dx, dgamma, dbeta = golden.exact_backward(x, g, dy, eps, axis)
        return dict(y=y, mean=mean, invstd=invstd, dx=dx, dgamma=dgamma, dbeta=dbeta)
    out = golden.exact_family_forward(norm, x, g, b, eps, axis, c["groups"])
    out.update(golden.exact_family_backward(norm, x, g, dy, eps, axis, c["groups"]))
    return out


def _round_f64_any(v):
    # golden's rounding refuses subnormal results, which the classes huge and tiny may give
    from mpmath.libmp import to_float
    return to_float(v._mpf_, rnd='n')


def test_with_outputs_against_mpmath():
    golden._round_f64 = _round_f64_any
    worst = {"float64": 0.0, "float32": 0.0}
    worst_at = {"float64": (0.0, ""), "float32": (0.0, "")}
    with tempfile.TemporaryDirectory() as tmp:
        k = 0
        for norm, shape, extra in PROBLEMS:
            for dtype in ("float64", "float32"):
                k += 1
                out = gen(os.path.join(tmp, str(k)), "hard", norm, shape, dtype, 100 + k, extra, outputs=True)
                for cls in classes("hard", norm):
                    d = os.path.join(out, cls)
                    c = case(d)
                    names = ["y", "invstd", "dx", "dgamma"] + ([] if norm == "rms" else ["mean", "dbeta"])
                    rs = None
                    if cls.startswith("eval"):
                        names = ["y", "dx", "dgamma", "dbeta"]
                        rs = load(d, "running_mean"), load(d, "running_var")
                    check(sorted(c["outputs"]) == sorted(names), "outputs %s" % c["outputs"])
                    x, g, dy = load(d, "x"), load(d, "gamma"), load(d, "dy")
                    b = None if norm == "rms" else load(d, "beta")
                    ref = exact_reference(c, x, g, b, dy, rs)
                    eps = float(np.finfo(DT[dtype]).eps)
                    for n in names:
                        got = load(d, n)
                        want = ref[n].astype(DT[dtype]).astype(np.float64)
                        check(got.dtype == DT[dtype] and got.shape == np.shape(ref[n]),
                              "%s %s %s: %s %s" % (norm, cls, n, got.dtype, got.shape))
                        scale = np.abs(want).max()
                        err = np.abs(got.astype(np.float64) - want).max() / scale / eps if scale > 0 else \
                            np.abs(got).max()
                        worst[dtype] = max(worst[dtype], err)
                        if err > worst_at[dtype][0]:
                            worst_at[dtype] = (err, "%s %s %s" % (norm, cls, n))
                        check(err <= 4, "%s %s %s %s: %.3g eps from mpmath" % (norm, dtype, cls, n, err))
    note("worst normwise error against mpmath: float64 %.3g eps (%s), float32 %.3g eps (%s; of the exact "
         "value rounded to float32)" % (worst_at["float64"] + worst_at["float32"]))


# --- float16 and bfloat16 --------------------------------------------------------------

def npy_descr(path):
    """The descr in an NPY header (np.load shows '<V2' as '|V2')."""
    with open(path, "rb") as f:
        head = f.read(128).decode("latin1")
    return head.split("'descr':")[1].split(",")[0].strip()


def check_half_file(d, name, dtype, what):
    path = os.path.join(d, name + ".npy")
    want = {"float16": "'<f2'", "bfloat16": "'<V2'", "float32": "'<f4'"}[dtype]
    check(npy_descr(path) == want, "%s %s: descr %s, not %s" % (what, name, npy_descr(path), want))


def test_half_every_class_runs_and_compares():
    with tempfile.TemporaryDirectory() as tmp:
        k = 0
        skipped, cancel = set(), {}
        judged = {norm: compare_judges(norm) for norm in {p[0] for p in PROBLEMS}}
        for dtype in HALF:
            for norm, shape, extra in PROBLEMS:
                for suite in ("hard", "ordinary"):
                    # NPY, and CSV (with --dtype in the command lines) for the first two problems
                    for fmt in ("npy", "csv") if (norm, shape) in (("batch", "4,3,5"), ("layer", "3,4,6")) \
                            else ("npy",):
                        k += 1
                        out = gen(os.path.join(tmp, str(k)), suite, norm, shape, dtype, k, extra, fmt=fmt)
                        check(sorted(os.listdir(out)) == sorted(classes(suite, norm)), "folders %s" % os.listdir(out))
                        for cls in classes(suite, norm):
                            d = os.path.join(out, cls)
                            c = case(d)
                            what = "%s %s %s %s" % (dtype, norm, cls, fmt)
                            check(c["dtype"] == dtype and c["format"] == fmt, "%s: case.json %s" % (what, c))
                            if fmt == "csv":
                                check(c["cli_options"][-2:] == ["--dtype", dtype], "%s: %s" % (what, c["cli_options"]))
                            else:
                                for name in c["inputs"]:
                                    check_half_file(d, name, dtype, what)
                                x = loadf(d, "x", dtype)
                                check(list(x.shape) == c["shape"] and np.isfinite(x).all(), "%s: x" % what)
                                check(np.array_equal(x, round_half(x, dtype)), "%s: x not %s values" % (what, dtype))
                                w = check_hard_property(cls, c, d)
                                if cls == "dy_cancel":
                                    cancel[dtype] = max(cancel.get(dtype, 0), w)
                            rc, report, err = run_case_commands(d, c)
                            if fmt == "npy":
                                for name in ("got_y", "got_dx"):
                                    check_half_file(d, name, dtype, what)
                                for name in ("got_invstd", "got_dgamma"):
                                    if os.path.exists(os.path.join(d, name + ".npy")):
                                        check_half_file(d, name, "float32", what)
                            if not judged[norm]:
                                skipped.add(norm)
                                continue
                            check(rc == 0, "%s: compare exit %d: %s" % (what, rc, err))
        note("dy_cancel: gamma*dy off linear by %.3g (float16), %.3g (bfloat16) of its size"
             % (cancel["float16"], cancel["bfloat16"]))
        if skipped:
            note("compare does not judge --norm %s yet: verdict skipped" % ", ".join(sorted(skipped)))


def test_float16_tiny_has_no_constant_set():
    """float16's tiny class draws 64 subnormal steps per unit of spread: with m = 2, about
    one set in 250 would round to one value, whose invstd with eps = 0 is infinite. gen moves
    such a set's first value up a step; the Python stream shows that these seeds had some."""
    with tempfile.TemporaryDirectory() as tmp:
        had = 0
        for seed in (1, 2, 3, 4):
            r = PyRandom(seed, "tiny/x")
            raw = round_half(np.array([r.normal() * 2.0 ** -18 for _ in range(400)]), "float16").reshape(2, 200)
            had += int(np.sum(raw[0] == raw[1]))
            out = gen(os.path.join(tmp, str(seed)), "hard", "batch", "2,200", "float16", seed, outputs=True)
            d = os.path.join(out, "tiny")
            x = loadf(d, "x", "float16")
            check(np.all(x[0] != x[1]), "seed %d: a constant set" % seed)
            check(np.isfinite(loadf(d, "invstd", "float16")).all() and np.isfinite(loadf(d, "dx", "float16")).all(),
                  "seed %d: non-finite outputs" % seed)
            rc, report, err = run_case_commands(d, case(d))
            check(rc == 0, "seed %d: compare exit %d: %s" % (seed, rc, err))
        check(had > 0, "the seeds drew no constant set: the test would not test")
        note("%d constant sets in the raw draws, none written" % had)


def test_half_determinism_and_streams():
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in HALF:
            for fmt in ("npy", "csv"):
                # 64 x 1100 = 70400 values: above the 65536 that start the library's threads
                a = gen(os.path.join(tmp, "a" + dtype + fmt), "hard", "layer", "64,1100", dtype, 5, threads=1,
                        fmt=fmt, outputs=True)
                b = gen(os.path.join(tmp, "b" + dtype + fmt), "hard", "layer", "64,1100", dtype, 5, threads=2,
                        fmt=fmt, outputs=True)
                check(snapshot(a) == snapshot(b), "%s %s: --threads 1 and 2 differ" % (dtype, fmt))
            # the ordinary suite's streams, rounded once to the half type here
            out = gen(os.path.join(tmp, "o" + dtype), "ordinary", "layer", "3,5", dtype, 77)
            for name, n in (("x", 15), ("gamma", 5), ("beta", 5), ("dy", 15)):
                r = PyRandom(77, "normal/" + name)
                want = round_half(np.array([r.normal() for _ in range(n)]), dtype)
                check(np.array_equal(loadf(os.path.join(out, "normal"), name, dtype).ravel(), want),
                      "%s %s: differs from the Python streams" % (dtype, name))
            r = PyRandom(77, "offset/x")
            hard = gen(os.path.join(tmp, "h" + dtype), "hard", "layer", "3,5", dtype, 77)
            want = round_half(np.array([OFFSET[dtype] + r.normal() for _ in range(15)]), dtype)
            check(np.array_equal(loadf(os.path.join(hard, "offset"), "x", dtype).ravel(), want),
                  "%s: offset x differs from the Python stream" % dtype)


def test_half_with_outputs_against_mpmath():
    """y and dx against golden_half's mpmath values rounded once to the half type, the
    statistics and gamma/beta gradients against them rounded once to float32."""
    import types
    golden._round_f64 = _round_f64_any
    worst, exact, total = {}, 0, 0
    with tempfile.TemporaryDirectory() as tmp:
        k = 0
        for dtype in HALF:
            for norm, shape, extra in PROBLEMS:
                k += 1
                out = gen(os.path.join(tmp, str(k)), "hard", norm, shape, dtype, 300 + k, extra, outputs=True)
                for cls in classes("hard", norm):
                    d = os.path.join(out, cls)
                    c = case(d)
                    x, g, dy = (loadf(d, n, dtype) for n in ("x", "gamma", "dy"))
                    b = None if norm == "rms" else loadf(d, "beta", dtype)
                    if cls.startswith("eval"):
                        rs = loadf(d, "running_mean", dtype), loadf(d, "running_var", dtype)
                        ref = exact_reference(c, x, g, b, dy, rs)  # float64, rounded once more below
                        want = {n: (round_half(v, dtype) if n in ("y", "dx") else v.astype(np.float32))
                                for n, v in ref.items()}
                    else:
                        ns = types.SimpleNamespace(norm=norm, shape=tuple(c["shape"]), axis=c["axis"],
                                                   groups=c["groups"], eps=c["eps"], dtype=dtype)
                        want, _ = golden_half.exact_half_outputs(ns, x, g, b, dy)
                    check(sorted(c["outputs"]) == sorted(want), "%s: outputs %s" % (cls, c["outputs"]))
                    for n, w in want.items():
                        half = n in ("y", "dx")
                        check_half_file(d, n, dtype if half else "float32", "%s %s" % (norm, cls))
                        got = loadf(d, n, dtype)
                        w = np.asarray(w, np.float64)
                        check(got.shape == w.shape and np.isfinite(got).all(), "%s %s %s: shape/finite" % (norm, cls, n))
                        eps = golden_half.EPS[dtype if half else "float32"]
                        scale = np.abs(w).max()
                        err = np.abs(got - w).max() / scale / eps if scale > 0 else np.abs(got).max()
                        exact += int(np.sum(got == w))
                        total += got.size
                        key = dtype if half else dtype + " float32 outputs"
                        if err >= worst.get(key, (0.0, ""))[0]:
                            worst[key] = (err, "%s %s %s" % (norm, cls, n))
                        check(err <= 4, "%s %s %s %s: %.3g eps from mpmath" % (dtype, norm, cls, n, err))
                        # elementwise: the float64 engine's result rounded once is at most 1 ulp off
                        off = np.abs(got - w) / spacing(w, dtype if half else "float32")
                        check(np.all(off <= 1), "%s %s %s %s: %.3g ulps off" % (dtype, norm, cls, n, off.max()))
    note("worst normwise error against mpmath rounded once: %s; %d of %d elements bit-identical"
         % ("; ".join("%s %.3g eps (%s)" % (k, v[0], v[1]) for k, v in sorted(worst.items())), exact, total))


def test_bfloat16_rounding_of_the_test():
    """The test's own bfloat16 rounding: ties to even at a half-way point, and agreement with
    golden_half's mpmath rounding on random values."""
    check(round_bf16(1 + 2.0 ** -8) == 1.0 and round_bf16(1 + 3 * 2.0 ** -8) == 1 + 2.0 ** -6,
          "ties to even")
    check(round_bf16(1 + 2.0 ** -8 + 2.0 ** -40) == 1 + 2.0 ** -7, "above the half-way point")
    rng = np.random.default_rng(3)
    v = rng.standard_normal(200) * np.exp2(rng.integers(-135, 127, 200))
    from mpmath import mpf
    want = np.array([golden_half._round_once(mpf(float(a)), "bfloat16") for a in v])
    check(np.array_equal(round_bf16(v), want), "round_bf16 differs from golden_half's rounding")


def test_errors_write_nothing():
    with tempfile.TemporaryDirectory() as tmp:
        full = os.path.join(tmp, "full")
        os.mkdir(full)
        open(os.path.join(full, "keep"), "w").close()
        open(os.path.join(tmp, "file"), "w").close()
        os.mkdir(os.path.join(tmp, "empty"))
        os.symlink("empty", os.path.join(tmp, "link"))
        os.symlink("nowhere", os.path.join(tmp, "dangling"))
        base = ["--suite", "hard", "--shape", "4,3", "--dtype", "float64", "--seed", "1"]
        cases = [
            (["--suite", "odd", "--shape", "4,3", "--dtype", "float64", "--seed", "1", "--out", "o"], ["--suite", "odd"]),
            (base + ["--out", "o", "--norm", "Layer"], ["--norm", "Layer"]),
            (base + ["--out", "o", "--norm", "group"], ["--groups"]),
            (base + ["--out", "o", "--groups", "3"], ["--groups"]),
            (["--suite", "hard", "--shape", "4,3", "--dtype", "float8", "--seed", "1", "--out", "o"], ["--dtype"]),
            (["--suite", "hard", "--shape", "4,3", "--dtype", "int8", "--seed", "1", "--out", "o"], ["--dtype"]),
            (["--suite", "hard", "--shape", "4,3", "--dtype", "float64", "--seed", "-1", "--out", "o"], ["--seed"]),
            (["--suite", "hard", "--shape", "4,3", "--dtype", "float64", "--seed", "1.5", "--out", "o"], ["--seed"]),
            (["--suite", "hard", "--shape", "4,3", "--dtype", "float64", "--seed", "18446744073709551616",
              "--out", "o"], ["--seed"]),
            (base + ["--out", "full"], ["--out", "not empty"]),
            (base + ["--out", "file"], ["--out", "not a folder"]),
            (base + ["--out", "missing/o"], ["--out", "does not exist"]),
            # rename(2) can replace neither the current folder nor a parent, and would
            # replace a link rather than the folder it points to: refused before any work
            (base + ["--out", "."], ["--out", "current folder"]),
            (base + ["--out", "empty/.."], ["--out", "current folder or a parent"]),
            (base + ["--out", "link"], ["--out link", "symbolic link"]),
            (base + ["--out", "dangling"], ["--out dangling", "symbolic link"]),
            (["--suite", "hard", "--shape", "1,3", "--dtype", "float64", "--seed", "1", "--out", "o"], ["m = 1"]),
            (["--suite", "hard", "--shape", "4,0", "--dtype", "float64", "--seed", "1", "--out", "o"], ["no elements"]),
            (["--suite", "hard", "--shape", "4,x", "--dtype", "float64", "--seed", "1", "--out", "o"], ["--shape"]),
            (base + ["--out", "o", "--axis", "2"], ["axis"]),
            (base + ["--out", "o", "--format", "txt"], ["--format", "txt"]),
            (base + ["--out", "o", "--threads", "-1"], ["--threads"]),
            (["--suite", "hard", "--dtype", "float64", "--seed", "1", "--out", "o"], ["--shape"]),
        ]
        for args, contains in cases:
            before = snapshot(tmp)
            p = subprocess.run([BNORM, "gen"] + args, cwd=tmp, capture_output=True, text=True)
            check_error("gen " + " ".join(args), p.returncode, p.stderr, before, snapshot(tmp), contains)

        # a write that fails midway (the file size limit) leaves no suite and no temporary folder
        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
        before = snapshot(tmp)
        p = subprocess.run([BNORM, "gen", "--suite", "hard", "--shape", "64,100", "--dtype", "float64", "--seed", "1",
                            "--out", "big"], cwd=tmp, capture_output=True, text=True, preexec_fn=limit)
        message = check_error("gen past RLIMIT_FSIZE", p.returncode, p.stderr, before, snapshot(tmp), ["big/"])
        check(".tmp-" not in message, "the message names the temporary folder: %r" % message)
        # --out . in an empty folder (it once failed only at the end, renaming the suite)
        empty = os.path.join(tmp, "empty")
        before = snapshot(empty)
        p = subprocess.run([BNORM, "gen"] + base + ["--out", "."], cwd=empty, capture_output=True, text=True)
        check_error("gen --out . (empty)", p.returncode, p.stderr, before, snapshot(empty), ["current folder"])


if __name__ == "__main__":
    sys.exit(run_tests(globals(), __doc__))
