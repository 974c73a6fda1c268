#!/usr/bin/python3
"""End-to-end tests of bnorm's command-line contract.

Usage (Debian's Python, which has numpy):

    /usr/bin/python3 tests/cli/test_cli.py BNORM [NAME-SUBSTRING ...]

Every test_* function below is one test; the runner calls them in order (or only those
whose name contains one of the given substrings), prints `PASS name` or
`FAIL name: reason`, then `N passed, M failed`, and exits with 1 if any test failed.
Each test works in its own tempfile.TemporaryDirectory and runs bnorm with that folder
as the working directory, so that the paths on the command line are exactly the ones
the error messages must name.

The error contract checked by expect_error() for every failing run:
  * exit code 2;
  * exactly one line on stderr, starting with "bnorm: error: ";
  * the offending file named by its path as given on the command line (when a file is
    at fault), and for CSV content errors "file:line:col" (1-based, physical lines);
  * the folder is unchanged: no output file created, no temporary file
    (.<name>.tmp-XXXXXX) left behind, existing outputs keep their old bytes, inputs
    unchanged (a byte-for-byte snapshot of the whole folder before and after).
"""

import io
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from runner import check, check_error, Fail, note, run_tests, snapshot, snapshot_diff

BNORM = None  # set by run_tests()

F32, F64 = np.float32, np.float64
TOL_F64 = 1e-12            # normwise relative, float64, well-conditioned data
TOL_F32 = 4 * np.finfo(np.float32).eps




# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def run(args, cwd, preexec_fn=None):
    p = subprocess.run([BNORM] + [str(a) for a in args], cwd=cwd, capture_output=True,
                       preexec_fn=preexec_fn)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def ok(cwd, args):
    """Runs bnorm and requires exit 0 and silence (bnorm prints nothing on success)."""
    rc, out, err = run(args, cwd)
    cmd = "bnorm " + " ".join(map(str, args))
    check(rc == 0, "%s: exit %d, stderr %r" % (cmd, rc, err))
    check(out == "" and err == "", "%s: success is not silent: stdout %r, stderr %r"
          % (cmd, out, err))
    return out, err



def expect_error(cwd, args, names=(), contains=(), preexec_fn=None):
    """Runs bnorm, which must fail with the full error contract. Returns the message."""
    before = snapshot(cwd)
    rc, out, err = run(args, cwd, preexec_fn)
    after = snapshot(cwd)
    cmd = "bnorm " + " ".join(map(str, args))
    message = check_error(cmd, rc, err, before, after, contains)
    check(len(err.splitlines()) == 1 and not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", err[:-1]),
          "%s: the message holds control characters (CR, ESC...), so it is not one clean "
          "line: %r" % (cmd, err))
    for n in names:
        check(n in err, "%s: message does not name the file %r: %r" % (cmd, n, err))
    return message


def save(folder, name, a):
    np.save(os.path.join(folder, name), a)
    return name


def load(folder, name):
    return np.load(os.path.join(folder, name))


def write_text(folder, name, text):
    with open(os.path.join(folder, name), "w", newline="") as f:
        f.write(text)
    return name


def read_bytes(folder, name):
    with open(os.path.join(folder, name), "rb") as f:
        return f.read()


def fmt_num(v):
    if isinstance(v, np.float32):
        return np.format_float_scientific(v, unique=True)
    return repr(float(v))


def csv_text_2d(a):
    rows = a.reshape(a.shape[0], -1)
    return "".join(",".join(fmt_num(v) for v in r) + "\n" for r in rows)


def csv_text_col(a):
    return "".join(fmt_num(v) + "\n" for v in a)


def read_csv(folder, name, shape, dtype=F64):
    a = np.loadtxt(os.path.join(folder, name), delimiter=",", dtype=np.float64, ndmin=2)
    check(a.size == int(np.prod(shape)),
          "%s has %d values, expected shape %s" % (name, a.size, shape))
    return a.reshape(shape).astype(dtype)


def random_problem(rng, shape, axis, dtype, offset=0.0):
    C = shape[axis]
    x = (offset + rng.standard_normal(shape)).astype(dtype)
    gamma = rng.standard_normal(C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, dy


def write_problem(folder, x, gamma, beta, dy):
    save(folder, "x.npy", x)
    save(folder, "gamma.npy", gamma)
    save(folder, "beta.npy", beta)
    save(folder, "dy.npy", dy)


def reference(x, gamma, beta, dy, eps, axis):
    """Naive batch norm in np.longdouble with the textbook formulas."""
    ld = np.longdouble
    x = x.astype(ld)
    dy = dy.astype(ld)
    axis = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != axis)
    bshape = [1] * x.ndim
    bshape[axis] = -1
    m = x.size // x.shape[axis]
    g = (np.ones(x.shape[axis]) if gamma is None else gamma).astype(ld).reshape(bshape)
    b = (np.zeros(x.shape[axis]) if beta is None else beta).astype(ld).reshape(bshape)
    mean = x.sum(axis=red, keepdims=True) / m
    d = x - mean
    var = (d * d).sum(axis=red, keepdims=True) / m
    invstd = 1 / np.sqrt(var + ld(float(eps)))
    xhat = d * invstd
    y = g * xhat + b
    dbeta = dy.sum(axis=red, keepdims=True)
    dgamma = (dy * xhat).sum(axis=red, keepdims=True)
    dx = g * invstd * (dy - (dbeta + xhat * dgamma) / m)
    return dict(y=y, mean=mean.ravel(), invstd=invstd.ravel(), dx=dx,
                dgamma=dgamma.ravel(), dbeta=dbeta.ravel())


def normwise(got, ref):
    got = np.asarray(got, dtype=np.longdouble)
    ref = np.asarray(ref, dtype=np.longdouble)
    scale = np.max(np.abs(ref))
    if scale == 0:
        scale = 1
    return float(np.max(np.abs(got - ref)) / scale)


FWD_NPY = ["forward", "--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy",
           "--y", "y.npy", "--mean", "mean.npy", "--invstd", "invstd.npy"]
BWD_NPY = ["backward", "--x", "x.npy", "--gamma", "gamma.npy", "--dy", "dy.npy",
           "--dx", "dx.npy", "--dgamma", "dgamma.npy", "--dbeta", "dbeta.npy"]


def basic_folder(tmp, shape=(4, 3), dtype=F64, seed=0):
    rng = np.random.default_rng(seed)
    write_problem(tmp, *random_problem(rng, shape, 1, dtype))


# ---------------------------------------------------------------------------
# a) accuracy on random data against a naive long-double implementation
# ---------------------------------------------------------------------------

CASES_A = [((16, 5), 1), ((4, 3, 7), 1), ((3, 4, 5, 6), 1), ((3, 5, 6, 4), -1),
           ((4, 30), 0), ((2, 3, 4, 5), -3)]


def test_random_data_vs_reference():
    rng = np.random.default_rng(1)
    for dtype in (F64, F32):
        tol = TOL_F64 if dtype == F64 else TOL_F32
        for shape, axis in CASES_A:
            with tempfile.TemporaryDirectory() as tmp:
                x, gamma, beta, dy = random_problem(rng, shape, axis, dtype, offset=0.5)
                write_problem(tmp, x, gamma, beta, dy)
                common = ["--eps", "1e-5", "--axis", axis]
                ok(tmp, FWD_NPY + common)
                ok(tmp, BWD_NPY + common)
                ref = reference(x, gamma, beta, dy, "1e-5", axis)
                C = shape[axis]
                for k in ("y", "mean", "invstd", "dx", "dgamma", "dbeta"):
                    got = load(tmp, k + ".npy")
                    want_shape = shape if k in ("y", "dx") else (C,)
                    check(got.dtype == dtype and got.shape == want_shape,
                          "%s %s axis %d: %s is %s %s, expected %s %s"
                          % (np.dtype(dtype).name, shape, axis, k, got.dtype, got.shape,
                             np.dtype(dtype).name, want_shape))
                    e = normwise(got, ref[k])
                    check(e <= tol, "%s %s axis %d: %s normwise error %.3g > %.3g"
                          % (np.dtype(dtype).name, shape, axis, k, e, tol))


def test_eps_is_used():
    """Large eps and eps = 0 (non-constant data) both follow the reference."""
    rng = np.random.default_rng(2)
    x, gamma, beta, dy = random_problem(rng, (8, 3), 1, F64)
    x[:, 2] *= 1e-2  # var ~ 1e-4: eps 1e-3 matters a lot
    for eps in ("0", "1e-3", "0.5"):
        with tempfile.TemporaryDirectory() as tmp:
            write_problem(tmp, x, gamma, beta, dy)
            ok(tmp, FWD_NPY + ["--eps", eps])
            ok(tmp, BWD_NPY + ["--eps", eps])
            ref = reference(x, gamma, beta, dy, eps, 1)
            for k in ref:
                e = normwise(load(tmp, k + ".npy"), ref[k])
                check(e <= TOL_F64, "eps %s: %s normwise error %.3g" % (eps, k, e))


# ---------------------------------------------------------------------------
# b) defaults
# ---------------------------------------------------------------------------

def test_default_gamma_beta():
    rng = np.random.default_rng(3)
    for dtype in (F64, F32):
        with tempfile.TemporaryDirectory() as tmp:
            x, _, _, dy = random_problem(rng, (5, 3, 4), 1, dtype)
            save(tmp, "x.npy", x)
            save(tmp, "dy.npy", dy)
            save(tmp, "ones.npy", np.ones(3, dtype))
            save(tmp, "zeros.npy", np.zeros(3, dtype))
            ok(tmp, ["forward", "--x", "x.npy", "--y", "y1.npy", "--mean", "m1.npy",
                     "--invstd", "s1.npy"])
            ok(tmp, ["forward", "--x", "x.npy", "--gamma", "ones.npy", "--beta", "zeros.npy",
                     "--y", "y2.npy", "--mean", "m2.npy", "--invstd", "s2.npy"])
            # only one of the two given
            ok(tmp, ["forward", "--x", "x.npy", "--gamma", "ones.npy", "--y", "y3.npy"])
            ok(tmp, ["forward", "--x", "x.npy", "--beta", "zeros.npy", "--y", "y4.npy"])
            for a, b in (("y1", "y2"), ("m1", "m2"), ("s1", "s2"), ("y1", "y3"), ("y1", "y4")):
                check(read_bytes(tmp, a + ".npy") == read_bytes(tmp, b + ".npy"),
                      "%s: default gamma/beta: %s.npy differs from %s.npy"
                      % (np.dtype(dtype).name, a, b))
            ok(tmp, ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "dx1.npy",
                     "--dgamma", "dg1.npy", "--dbeta", "db1.npy"])
            ok(tmp, ["backward", "--x", "x.npy", "--gamma", "ones.npy", "--dy", "dy.npy",
                     "--dx", "dx2.npy", "--dgamma", "dg2.npy", "--dbeta", "db2.npy"])
            for a, b in (("dx1", "dx2"), ("dg1", "dg2"), ("db1", "db2")):
                check(read_bytes(tmp, a + ".npy") == read_bytes(tmp, b + ".npy"),
                      "%s: default gamma in backward: %s.npy differs from %s.npy"
                      % (np.dtype(dtype).name, a, b))
            ref = reference(x, None, None, dy, "1e-5", 1)
            tol = TOL_F64 if dtype == F64 else TOL_F32
            for k, f in (("y", "y1"), ("mean", "m1"), ("invstd", "s1"), ("dx", "dx1"),
                         ("dgamma", "dg1"), ("dbeta", "db1")):
                e = normwise(load(tmp, f + ".npy"), ref[k])
                check(e <= tol, "defaults: %s error %.3g" % (k, e))


def test_default_eps_and_axis():
    rng = np.random.default_rng(4)
    with tempfile.TemporaryDirectory() as tmp:
        write_problem(tmp, *random_problem(rng, (6, 3, 2, 2), 1, F64))
        ok(tmp, FWD_NPY)
        ok(tmp, ["forward", "--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy",
                 "--y", "y2.npy", "--mean", "mean2.npy", "--invstd", "invstd2.npy",
                 "--eps", "1e-5", "--axis", "1"])
        for k in ("y", "mean", "invstd"):
            check(read_bytes(tmp, k + ".npy") == read_bytes(tmp, k + "2.npy"),
                  "no --eps/--axis differs from --eps 1e-5 --axis 1 (%s)" % k)


def test_negative_axis_counts_from_end():
    rng = np.random.default_rng(5)
    for shape, neg, pos in (((3, 4, 5, 6), -1, 3), ((3, 4, 5, 6), -3, 1), ((7, 4), -2, 0)):
        with tempfile.TemporaryDirectory() as tmp:
            write_problem(tmp, *random_problem(rng, shape, pos, F64))
            ok(tmp, FWD_NPY + ["--axis", neg])
            ok(tmp, ["forward", "--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy",
                     "--y", "y2.npy", "--mean", "mean2.npy", "--invstd", "invstd2.npy",
                     "--axis", pos])
            for k in ("y", "mean", "invstd"):
                check(read_bytes(tmp, k + ".npy") == read_bytes(tmp, k + "2.npy"),
                      "shape %s: --axis %d differs from --axis %d (%s)" % (shape, neg, pos, k))


# ---------------------------------------------------------------------------
# c) NPY output bytes are exactly np.save's
# ---------------------------------------------------------------------------

def test_npy_bytes_identical_to_np_save():
    rng = np.random.default_rng(6)
    for dtype in (F64, F32):
        for shape, axis in (((6, 3), 1), ((5, 1), 1), ((4, 3, 5), 1), ((2, 3, 4, 5), 1),
                            ((2, 4, 5, 3), -1), ((1200, 2), 1), ((4, 12), 0)):
            with tempfile.TemporaryDirectory() as tmp:
                write_problem(tmp, *random_problem(rng, shape, axis, dtype))
                ok(tmp, FWD_NPY + ["--axis", axis])
                ok(tmp, BWD_NPY + ["--axis", axis])
                for k in ("y", "mean", "invstd", "dx", "dgamma", "dbeta"):
                    got = read_bytes(tmp, k + ".npy")
                    buf = io.BytesIO()
                    np.save(buf, np.load(io.BytesIO(got)))
                    check(got == buf.getvalue(),
                          "%s %s: %s.npy is not byte-identical to np.save: header %r vs %r"
                          % (np.dtype(dtype).name, shape, k, got[:128],
                             buf.getvalue()[:128]))


# ---------------------------------------------------------------------------
# d) CSV output
# ---------------------------------------------------------------------------

def sig_digits(tok):
    """Significant decimal digits of a number token ('-1.250e-05' -> 3)."""
    mant = re.split("[eE]", tok.lstrip("+-"))[0].replace(".", "")
    mant = mant.lstrip("0").rstrip("0")
    return max(len(mant), 1)


def test_csv_outputs_match_npy_outputs():
    rng = np.random.default_rng(7)
    for dtype, shape, axis in ((F64, (5, 4), 1), (F32, (5, 4), 1), (F64, (3, 4, 2, 2), 1),
                               (F32, (3, 2, 2, 4), -1), (F64, (4, 9), 0)):
        name = "%s %s" % (np.dtype(dtype).name, shape)
        with tempfile.TemporaryDirectory() as tmp:
            x, gamma, beta, dy = random_problem(rng, shape, axis, dtype)
            x[0, 0] = dtype(0.1)        # a value whose shortest text is short
            x.flat[-1] = dtype(-1e-7)   # and one needing an exponent
            write_problem(tmp, x, gamma, beta, dy)
            common = ["--axis", axis]
            ok(tmp, FWD_NPY + common)
            ok(tmp, BWD_NPY + common)
            ok(tmp, [a.replace(".npy", ".csv") if a in ("y.npy", "mean.npy", "invstd.npy") else a
                     for a in FWD_NPY] + common)
            ok(tmp, [a.replace(".npy", ".csv") if a in ("dx.npy", "dgamma.npy", "dbeta.npy")
                     else a for a in BWD_NPY] + common)
            C = shape[axis]
            bits = np.uint64 if dtype == F64 else np.uint32
            for k in ("y", "mean", "invstd", "dx", "dgamma", "dbeta"):
                npy = load(tmp, k + ".npy")
                with open(os.path.join(tmp, k + ".csv")) as f:
                    text = f.read()
                lines = text.split("\n")
                check(lines[-1] == "", "%s: %s.csv does not end with a newline" % (name, k))
                lines = lines[:-1]
                if k in ("y", "dx"):
                    ncols = int(np.prod(shape[1:]))
                    check(len(lines) == shape[0] and
                          all(len(l.split(",")) == ncols for l in lines),
                          "%s: %s.csv is not %d rows of %d values" % (name, k, shape[0], ncols))
                else:
                    check(len(lines) == C and all("," not in l for l in lines),
                          "%s: %s.csv is not %d lines of one value" % (name, k, C))
                got = read_csv(tmp, k + ".csv", npy.shape, dtype)
                check(np.array_equal(got.view(bits), npy.view(bits)),
                      "%s: %s.csv does not parse back to the bits of %s.npy (max diff %.3g)"
                      % (name, k, k, float(np.max(np.abs(got.astype(F64) - npy)))))
                # shortest round-trip text for every number
                for tok, v in zip(",".join(lines).split(","), npy.ravel()):
                    if dtype == F64:
                        r = repr(float(v))
                        good = (float(tok) == v and sig_digits(tok) == sig_digits(r)
                                and len(tok) <= len(r))
                    else:
                        r = np.format_float_scientific(v, unique=True)
                        good = np.float32(tok) == v and sig_digits(tok) == sig_digits(r)
                    check(good, "%s: %s.csv token %r for %r is not the shortest round-trip "
                                "text (%r)" % (name, k, tok, v, r))


def test_csv_inputs_match_npy_inputs():
    """Exact CSV inputs (x, dy one row per first index; gamma as a column, beta as a row)
    give the very same outputs as NPY inputs; --dtype float32 reads CSV as float32."""
    rng = np.random.default_rng(8)
    for dtype, shape, axis in ((F64, (6, 3), 1), (F32, (6, 3), 1), (F64, (3, 4, 2, 5), 1),
                               (F32, (2, 3, 3, 4), -1), (F64, (3, 10), 0)):
        name = "%s %s" % (np.dtype(dtype).name, shape)
        with tempfile.TemporaryDirectory() as tmp:
            x, gamma, beta, dy = random_problem(rng, shape, axis, dtype)
            write_problem(tmp, x, gamma, beta, dy)
            write_text(tmp, "x.csv", csv_text_2d(x))
            write_text(tmp, "dy.csv", csv_text_2d(dy))
            write_text(tmp, "gamma.csv", csv_text_col(gamma))                  # one column
            write_text(tmp, "beta.csv", ",".join(fmt_num(v) for v in beta) + "\n")  # one row
            common = ["--axis", axis]
            ok(tmp, FWD_NPY + common)
            ok(tmp, BWD_NPY + common)
            extra = common[:]
            if len(shape) > 2:
                extra += ["--shape", ",".join(map(str, shape))]
            if dtype == F32:
                extra += ["--dtype", "float32"]
            ok(tmp, ["forward", "--x", "x.csv", "--gamma", "gamma.csv", "--beta", "beta.csv",
                     "--y", "cy.npy", "--mean", "cmean.npy", "--invstd", "cinvstd.npy"] + extra)
            ok(tmp, ["backward", "--x", "x.csv", "--gamma", "gamma.csv", "--dy", "dy.csv",
                     "--dx", "cdx.npy", "--dgamma", "cdgamma.npy", "--dbeta", "cdbeta.npy"]
               + extra)
            for k in ("y", "mean", "invstd", "dx", "dgamma", "dbeta"):
                check(read_bytes(tmp, k + ".npy") == read_bytes(tmp, "c" + k + ".npy"),
                      "%s: CSV inputs give a different %s.npy than NPY inputs" % (name, k))


def test_csv_default_dtype_is_float64():
    rng = np.random.default_rng(9)
    with tempfile.TemporaryDirectory() as tmp:
        x = rng.standard_normal((5, 3)).astype(F32)
        write_text(tmp, "x.csv", csv_text_2d(x))
        ok(tmp, ["forward", "--x", "x.csv", "--y", "y64.npy", "--mean", "m64.npy"])
        ok(tmp, ["forward", "--x", "x.csv", "--y", "y32.npy", "--mean", "m32.npy",
                 "--dtype", "float32"])
        for f, dt in (("y64", F64), ("m64", F64), ("y32", F32), ("m32", F32)):
            got = load(tmp, f + ".npy").dtype
            check(got == dt, "%s.npy has dtype %s, expected %s" % (f, got, np.dtype(dt).name))


def test_npy_variants_read():
    """Fortran-order and big-endian NPY inputs give the same outputs as C-order
    little-endian ones (outputs are little-endian C order)."""
    rng = np.random.default_rng(17)
    for dtype in (F64, F32):
        with tempfile.TemporaryDirectory() as tmp:
            x, gamma, beta, dy = random_problem(rng, (5, 3, 4), 1, dtype)
            write_problem(tmp, x, gamma, beta, dy)
            ok(tmp, FWD_NPY)
            ok(tmp, BWD_NPY)
            save(tmp, "xf.npy", np.asfortranarray(x))
            save(tmp, "xb.npy", x.astype(np.dtype(dtype).newbyteorder(">")))
            save(tmp, "dyf.npy", np.asfortranarray(dy))
            save(tmp, "gb.npy", gamma.astype(np.dtype(dtype).newbyteorder(">")))
            for xv, dyv, gv, tag in (("xf.npy", "dyf.npy", "gamma.npy", "f"),
                                     ("xb.npy", "dy.npy", "gb.npy", "b")):
                ok(tmp, ["forward", "--x", xv, "--gamma", gv, "--beta", "beta.npy",
                         "--y", "y_%s.npy" % tag, "--mean", "mean_%s.npy" % tag])
                ok(tmp, ["backward", "--x", xv, "--gamma", gv, "--dy", dyv,
                         "--dx", "dx_%s.npy" % tag, "--dgamma", "dgamma_%s.npy" % tag])
                for k in ("y", "mean", "dx", "dgamma"):
                    check(read_bytes(tmp, k + ".npy") == read_bytes(tmp, "%s_%s.npy" % (k, tag)),
                          "%s: %s from %s differs from the C-order little-endian run"
                          % (np.dtype(dtype).name, k, xv))


# ---------------------------------------------------------------------------
# help and version
# ---------------------------------------------------------------------------

def test_help_and_version():
    with tempfile.TemporaryDirectory() as tmp:
        for args in (["--help"], ["forward", "--help"], ["backward", "--help"], ["--version"]):
            rc, out, err = run(args, tmp)
            check(rc == 0, "bnorm %s: exit %d" % (" ".join(args), rc))
            check(out.strip() != "", "bnorm %s printed nothing on stdout" % " ".join(args))
            check(err == "", "bnorm %s wrote to stderr: %r" % (" ".join(args), err))
        _, out, _ = run(["--version"], tmp)
        check(re.search(r"\d+\.\d+", out), "--version shows no version number: %r" % out)
        for sub in ("forward", "backward"):
            _, out, _ = run([sub, "--help"], tmp)
            check(re.search(r"bnorm %s --x \S+" % sub, out),
                  "bnorm %s --help has no example command line" % sub)
            for opt in ("--x", "--eps", "--axis", "--shape", "--dtype", "--allow-nonfinite"):
                check(opt in out, "bnorm %s --help does not mention %s" % (sub, opt))
        check(os.listdir(tmp) == [], "--help/--version created files: %s" % os.listdir(tmp))


def test_help_toplevel_has_example():
    """The contract: '--help ... (help includes an example)'; this includes bnorm --help."""
    with tempfile.TemporaryDirectory() as tmp:
        _, out, _ = run(["--help"], tmp)
        check(re.search(r"bnorm (forward|backward) --x \S+", out),
              "bnorm --help has no example command line (only a pointer to the subcommands' "
              "help): %r" % out[-200:])


# ---------------------------------------------------------------------------
# e) error paths
# ---------------------------------------------------------------------------

def test_err_usage():
    with tempfile.TemporaryDirectory() as tmp:
        basic_folder(tmp)
        expect_error(tmp, ["forward", "--y", "y.npy"], contains=["--x"])
        expect_error(tmp, ["backward", "--dy", "dy.npy", "--dx", "dx.npy"], contains=["--x"])
        expect_error(tmp, ["forward", "--x", "x.npy"], contains=["--y"])
        expect_error(tmp, ["backward", "--x", "x.npy", "--dx", "dx.npy"], contains=["--dy"])
        expect_error(tmp, [])
        expect_error(tmp, ["sideways", "--x", "x.npy"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--bogus"],
                     contains=["--bogus"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--dtype", "float16"],
                     contains=["--dtype"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--axis", "one"],
                     contains=["--axis"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--dy", "dy.npy"],
                     contains=["--dy"])


def test_err_nonexistent_input():
    with tempfile.TemporaryDirectory() as tmp:
        basic_folder(tmp)
        expect_error(tmp, ["forward", "--x", "nope.npy", "--y", "y.npy"], names=["nope.npy"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--gamma", "missing/g.npy",
                           "--y", "y.npy"], names=["missing/g.npy"])
        expect_error(tmp, ["backward", "--x", "x.npy", "--dy", "./nody.csv", "--dx", "dx.npy"],
                     names=["./nody.csv"])


def test_err_bad_extension():
    with tempfile.TemporaryDirectory() as tmp:
        basic_folder(tmp)
        with open(os.path.join(tmp, "x.txt"), "wb") as f:
            f.write(read_bytes(tmp, "x.npy"))
        expect_error(tmp, ["forward", "--x", "x.txt", "--y", "y.npy"], names=["x.txt"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.txt"], names=["y.txt"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y"], names=["y"])


def test_err_input_not_a_valid_npy():
    with tempfile.TemporaryDirectory() as tmp:
        basic_folder(tmp)
        raw = read_bytes(tmp, "x.npy")
        with open(os.path.join(tmp, "trunc.npy"), "wb") as f:
            f.write(raw[:-5])
        with open(os.path.join(tmp, "text.npy"), "w") as f:
            f.write("1,2,3\n4,5,6\n")
        save(tmp, "int.npy", np.arange(12, dtype=np.int64).reshape(4, 3))
        os.mkdir(os.path.join(tmp, "dir.npy"))
        for bad in ("trunc.npy", "text.npy", "int.npy", "dir.npy"):
            expect_error(tmp, ["forward", "--x", bad, "--y", "y.npy"], names=[bad])


def test_err_rank1():
    with tempfile.TemporaryDirectory() as tmp:
        save(tmp, "x.npy", np.arange(5.0))
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy"], names=["x.npy"])
        save(tmp, "empty0.npy", np.zeros((0, 3)))
        save(tmp, "empty1.npy", np.zeros((3, 0)))
        expect_error(tmp, ["forward", "--x", "empty0.npy", "--y", "y.npy"], names=["empty0.npy"])
        expect_error(tmp, ["forward", "--x", "empty1.npy", "--y", "y.npy"], names=["empty1.npy"])
        write_text(tmp, "x1.csv", "1\n2\n3\n")  # one column: shape (3, 1), C = 1, m = 3: fine
        ok(tmp, ["forward", "--x", "x1.csv", "--y", "y1.npy"])


def test_err_batch_of_one():
    with tempfile.TemporaryDirectory() as tmp:
        save(tmp, "x.npy", np.array([[1.0, 2.0, 3.0]]))
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--axis", "1"],
                     names=["x.npy"])
        save(tmp, "x0.npy", np.array([[1.0], [2.0], [3.0]]))
        expect_error(tmp, ["forward", "--x", "x0.npy", "--y", "y.npy", "--axis", "0"],
                     names=["x0.npy"])
        save(tmp, "dy.npy", np.array([[1.0, 2.0, 3.0]]))
        expect_error(tmp, ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "dx.npy"],
                     names=["x.npy"])


def test_err_gamma_beta_length():
    with tempfile.TemporaryDirectory() as tmp:
        basic_folder(tmp)  # C = 3
        os.mkdir(os.path.join(tmp, "in"))
        save(tmp, "in/g4.npy", np.ones(4))
        save(tmp, "in/b2.npy", np.zeros(2))
        save(tmp, "in/g33.npy", np.ones((3, 3)))
        expect_error(tmp, ["forward", "--x", "x.npy", "--gamma", "./in/g4.npy", "--y", "y.npy"],
                     names=["./in/g4.npy"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--beta", "in/b2.npy", "--y", "y.npy"],
                     names=["in/b2.npy"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--gamma", "in/g33.npy", "--y", "y.npy"],
                     names=["in/g33.npy"])
        expect_error(tmp, ["backward", "--x", "x.npy", "--gamma", "in/g4.npy", "--dy", "dy.npy",
                           "--dx", "dx.npy"], names=["in/g4.npy"])
        write_text(tmp, "g2.csv", "1,2\n")
        expect_error(tmp, ["forward", "--x", "x.npy", "--gamma", "g2.csv", "--y", "y.npy"],
                     names=["g2.csv"])


def test_err_dy_shape_and_dtype():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(10)
        save(tmp, "x.npy", rng.standard_normal((3, 4)))
        save(tmp, "dyT.npy", rng.standard_normal((4, 3)))
        save(tmp, "dy32.npy", rng.standard_normal((3, 4)).astype(F32))
        save(tmp, "g32.npy", np.ones(4, F32))
        expect_error(tmp, ["backward", "--x", "x.npy", "--dy", "dyT.npy", "--dx", "dx.npy"],
                     names=["dyT.npy"])
        expect_error(tmp, ["backward", "--x", "x.npy", "--dy", "dy32.npy", "--dx", "dx.npy"],
                     names=["dy32.npy"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--gamma", "g32.npy", "--y", "y.npy"],
                     names=["g32.npy"])
        # CSV dy with the same element count but another layout
        write_text(tmp, "dyT.csv", csv_text_2d(rng.standard_normal((4, 3))))
        expect_error(tmp, ["backward", "--x", "x.npy", "--dy", "dyT.csv", "--dx", "dx.npy"],
                     names=["dyT.csv"])


def test_err_eps():
    with tempfile.TemporaryDirectory() as tmp:
        basic_folder(tmp)
        for eps in ("1e-5x", "-1", "nan", "inf", "abc", "-0.5"):
            expect_error(tmp, FWD_NPY + ["--eps", eps], contains=["--eps"])
            expect_error(tmp, BWD_NPY + ["--eps", eps], contains=["--eps"])


def test_err_axis_out_of_range():
    with tempfile.TemporaryDirectory() as tmp:
        basic_folder(tmp)
        for axis in ("2", "-3", "100"):
            expect_error(tmp, FWD_NPY + ["--axis", axis], contains=["--axis"])
            expect_error(tmp, BWD_NPY + ["--axis", axis], contains=["--axis"])


def test_err_output_is_input():
    with tempfile.TemporaryDirectory() as tmp:
        basic_folder(tmp)
        os.symlink("x.npy", os.path.join(tmp, "link.npy"))
        os.link(os.path.join(tmp, "x.npy"), os.path.join(tmp, "hard.npy"))
        os.mkdir(os.path.join(tmp, "sub"))
        base = ["forward", "--x", "x.npy", "--gamma", "gamma.npy", "--y"]
        for out in ("x.npy", "./x.npy", "sub/../x.npy", "link.npy", "hard.npy",
                    os.path.join(tmp, "x.npy")):
            expect_error(tmp, base + [out], names=[out])
        expect_error(tmp, ["forward", "--x", "x.npy", "--gamma", "gamma.npy", "--y", "y.npy",
                           "--mean", "gamma.npy"], names=["gamma.npy"])
        expect_error(tmp, ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "./dy.npy"],
                     names=["./dy.npy"])
        expect_error(tmp, ["backward", "--x", "link.npy", "--dy", "dy.npy", "--dx", "dx.npy",
                           "--dbeta", "x.npy"], names=["x.npy"])


def test_err_output_folder_missing_or_folder():
    with tempfile.TemporaryDirectory() as tmp:
        basic_folder(tmp)
        expect_error(tmp, FWD_NPY[:-6] + ["--y", "nodir/y.npy"], names=["nodir/y.npy"])
        expect_error(tmp, FWD_NPY[:-2] + ["--invstd", "no/such/dir/s.csv"],
                     names=["no/such/dir/s.csv"])
        os.mkdir(os.path.join(tmp, "out.npy"))
        expect_error(tmp, FWD_NPY[:-6] + ["--y", "out.npy"], names=["out.npy"])
        expect_error(tmp, BWD_NPY[:-2] + ["--dbeta", "out.npy"], names=["out.npy"])
        write_text(tmp, "file", "not a folder\n")
        expect_error(tmp, FWD_NPY[:-6] + ["--y", "file/y.npy"], names=["file/y.npy"])


def test_err_two_outputs_same_path():
    with tempfile.TemporaryDirectory() as tmp:
        basic_folder(tmp)
        x = ["forward", "--x", "x.npy"]
        expect_error(tmp, x + ["--y", "o.npy", "--mean", "o.npy"], names=["o.npy"])
        expect_error(tmp, x + ["--y", "y.npy", "--mean", "o.npy", "--invstd", "./o.npy"],
                     names=["o.npy"])
        expect_error(tmp, ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "d.csv",
                           "--dgamma", "d.csv"], names=["d.csv"])
        np.save(os.path.join(tmp, "o.npy"), np.arange(3.0))  # existing: must stay as it is
        os.link(os.path.join(tmp, "o.npy"), os.path.join(tmp, "o2.npy"))
        expect_error(tmp, x + ["--y", "o.npy", "--mean", "o.npy"], names=["o.npy"])
        expect_error(tmp, x + ["--y", "y.npy", "--mean", "o.npy", "--invstd", "o2.npy"],
                     names=["o2.npy"])


def test_err_csv_ragged_rows():
    with tempfile.TemporaryDirectory() as tmp:
        # short row on physical line 3 (line 2 is blank): "4,5" ends at column 3
        write_text(tmp, "short.csv", "1,2,3\n\n4,5\n6,7,8\n")
        msg = expect_error(tmp, ["forward", "--x", "short.csv", "--y", "y.npy"],
                           names=["short.csv"])
        m = re.search(r"short\.csv:(\d+):(\d+)", msg)
        check(m and m.group(1) == "3" and m.group(2) in ("3", "4"),
              "short row: expected short.csv:3:3 or :3:4 in %r" % msg)
        # long row on line 2: the 4th value starts at column 7 (its comma is column 6)
        write_text(tmp, "long.csv", "1,2,3\n4,5,6,7\n8,9,10\n")
        msg = expect_error(tmp, ["forward", "--x", "long.csv", "--y", "y.npy"],
                           names=["long.csv"])
        m = re.search(r"long\.csv:(\d+):(\d+)", msg)
        check(m and m.group(1) == "2" and m.group(2) in ("6", "7"),
              "long row: expected long.csv:2:6 or :2:7 in %r" % msg)
        # the same in dy, with CRLF line endings
        write_text(tmp, "x.csv", "1,2,3\r\n4,5,6\r\n")
        write_text(tmp, "dy.csv", "1,2,3\r\n4,5\r\n")
        msg = expect_error(tmp, ["backward", "--x", "x.csv", "--dy", "dy.csv", "--dx", "dx.csv"],
                           names=["dy.csv"])
        check(re.search(r"dy\.csv:2:\d+", msg), "expected dy.csv:2:<col> in %r" % msg)


def test_err_csv_bad_token():
    with tempfile.TemporaryDirectory() as tmp:
        write_text(tmp, "x.csv", "1,2,3\n4,2.5x,6\n7,8,9\n")
        msg = expect_error(tmp, ["forward", "--x", "x.csv", "--y", "y.csv"],
                           names=["x.csv"], contains=["2.5x"])
        check("x.csv:2:3" in msg, "expected x.csv:2:3 in %r" % msg)
        write_text(tmp, "good.csv", "1,2,3\n4,5,6\n7,8,9\n")
        write_text(tmp, "g.csv", "1\n2.5x\n3\n")
        msg = expect_error(tmp, ["forward", "--x", "good.csv", "--gamma", "g.csv", "--y", "y.csv"],
                           names=["g.csv"], contains=["2.5x"])
        check("g.csv:2:1" in msg, "expected g.csv:2:1 in %r" % msg)
        write_text(tmp, "big.csv", "1,2,3\n4,5,1e999\n")
        msg = expect_error(tmp, ["forward", "--x", "big.csv", "--y", "y.csv"],
                           names=["big.csv"], contains=["1e999"])
        check("big.csv:2:5" in msg, "expected big.csv:2:5 in %r" % msg)
        write_text(tmp, "big32.csv", "1,2,3\n4,5,6\n1e39,8,9\n")
        msg = expect_error(tmp, ["forward", "--x", "big32.csv", "--y", "y.csv", "--dtype",
                                 "float32"], names=["big32.csv"], contains=["1e39"])
        check("big32.csv:3:1" in msg, "expected big32.csv:3:1 in %r" % msg)
        write_text(tmp, "empty_field.csv", "1,2,3\n4,,6\n")
        msg = expect_error(tmp, ["forward", "--x", "empty_field.csv", "--y", "y.csv"],
                           names=["empty_field.csv"])
        check("empty_field.csv:2:3" in msg, "expected empty_field.csv:2:3 in %r" % msg)


def test_err_csv_empty_file():
    with tempfile.TemporaryDirectory() as tmp:
        write_text(tmp, "x.csv", "")
        expect_error(tmp, ["forward", "--x", "x.csv", "--y", "y.npy"], names=["x.csv"])
        write_text(tmp, "blank.csv", "\n  \n\n")
        expect_error(tmp, ["forward", "--x", "blank.csv", "--y", "y.npy"], names=["blank.csv"])
        write_text(tmp, "good.csv", "1,2,3\n4,5,6\n")
        write_text(tmp, "g.csv", "")
        expect_error(tmp, ["forward", "--x", "good.csv", "--gamma", "g.csv", "--y", "y.npy"],
                     names=["g.csv"])


def test_err_csv_header_row():
    with tempfile.TemporaryDirectory() as tmp:
        write_text(tmp, "x.csv", "a,b,c\n1,2,3\n4,5,6\n")
        msg = expect_error(tmp, ["forward", "--x", "x.csv", "--y", "y.npy"], names=["x.csv"])
        check("x.csv:1:1" in msg, "expected x.csv:1:1 in %r" % msg)


def test_csv_nonfinite_tokens():
    """'nan'/'inf' tokens read as numbers; refused by default (naming the file and the
    index), accepted with --allow-nonfinite."""
    with tempfile.TemporaryDirectory() as tmp:
        write_text(tmp, "x.csv", "1,2,3\n4,nan,6\n7,8,-Infinity\n")
        msg = expect_error(tmp, ["forward", "--x", "x.csv", "--y", "y.npy"], names=["x.csv"])
        check("(1, 1)" in msg, "message does not name index (1, 1): %r" % msg)
        ok(tmp, ["forward", "--x", "x.csv", "--y", "y.npy", "--allow-nonfinite"])
        y = load(tmp, "y.npy")
        check(np.all(np.isfinite(y[:, 0])) and np.all(np.isnan(y[:, 1:])),
              "--allow-nonfinite: unexpected y %r" % y)


def test_err_shape_mismatch():
    with tempfile.TemporaryDirectory() as tmp:
        write_text(tmp, "x.csv", "".join(",".join(str(float(4 * r + c + (r * c) % 3))
                                                  for c in range(6)) + "\n" for r in range(4)))
        ok(tmp, ["forward", "--x", "x.csv", "--shape", "4,3,2", "--y", "ok.npy"])
        check(load(tmp, "ok.npy").shape == (4, 3, 2), "--shape 4,3,2 not applied")
        expect_error(tmp, ["forward", "--x", "x.csv", "--shape", "4,2,2", "--y", "y.npy"],
                     names=["x.csv"])
        expect_error(tmp, ["forward", "--x", "x.csv", "--shape", "4,3,3", "--y", "y.npy"],
                     names=["x.csv"])
        expect_error(tmp, ["forward", "--x", "x.csv", "--shape", "2,3,4", "--y", "y.npy"],
                     names=["x.csv"])
        expect_error(tmp, ["forward", "--x", "x.csv", "--shape", "4,x,2", "--y", "y.npy"],
                     contains=["--shape"])


def test_err_eps_zero_constant_channel():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(11)
        x = rng.standard_normal((6, 3))
        x[:, 1] = 0.75
        save(tmp, "x.npy", x)
        save(tmp, "dy.npy", rng.standard_normal((6, 3)))
        for args in (["forward", "--x", "x.npy", "--y", "y.npy", "--mean", "m.npy"],
                     ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "dx.npy"]):
            msg = expect_error(tmp, args + ["--eps", "0"], names=["x.npy"])
            check(re.search(r"channel 1\b", msg), "message does not name channel 1: %r" % msg)
        ok(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--eps", "1e-5"])
        # NHWC: the channel index is along the last axis
        xn = rng.standard_normal((2, 3, 3, 4))
        xn[..., 2] = -3.5
        save(tmp, "xn.npy", xn)
        msg = expect_error(tmp, ["forward", "--x", "xn.npy", "--y", "yn.npy", "--axis", "-1",
                                 "--eps", "0"], names=["xn.npy"])
        check(re.search(r"channel 2\b", msg), "message does not name channel 2: %r" % msg)


def test_err_nonfinite_inputs():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(12)
        x = rng.standard_normal((5, 3))
        x[2, 1] = np.nan
        save(tmp, "x.npy", x)
        save(tmp, "good.npy", rng.standard_normal((5, 3)))
        dy = rng.standard_normal((5, 3))
        dy[4, 0] = -np.inf
        save(tmp, "dy.npy", dy)
        save(tmp, "g.npy", np.array([1.0, np.inf, 2.0]))
        x4 = rng.standard_normal((2, 3, 2, 2)).astype(F32)
        x4[1, 2, 0, 1] = np.nan
        save(tmp, "x4.npy", x4)
        msg = expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy"], names=["x.npy"])
        check("(2, 1)" in msg, "message does not name index (2, 1): %r" % msg)
        msg = expect_error(tmp, ["forward", "--x", "x4.npy", "--y", "y.npy"], names=["x4.npy"])
        check("(1, 2, 0, 1)" in msg, "message does not name index (1, 2, 0, 1): %r" % msg)
        msg = expect_error(tmp, ["backward", "--x", "good.npy", "--dy", "dy.npy", "--dx",
                                 "dx.npy"], names=["dy.npy"])
        check("(4, 0)" in msg, "message does not name index (4, 0): %r" % msg)
        msg = expect_error(tmp, ["forward", "--x", "good.npy", "--gamma", "g.npy", "--y",
                                 "y.npy"], names=["g.npy"])
        check("(1,)" in msg or re.search(r"index 1\b", msg),
              "message does not name index 1: %r" % msg)
        # The passes prove x and dy finite from their statistics instead of reading them
        # again: a NaN must still be the error reported when another channel's problem
        # (zero variance with eps = 0) stops the pass first...
        xz = rng.standard_normal((5, 3))
        xz[:, 0] = 2.0
        xz[3, 2] = np.nan
        save(tmp, "xz.npy", xz)
        msg = expect_error(tmp, ["forward", "--x", "xz.npy", "--y", "y.npy", "--eps", "0"],
                           names=["xz.npy"])
        check("non-finite" in msg and "(3, 2)" in msg, "NaN at (3, 2) not reported first: %r" % msg)
        msg = expect_error(tmp, ["backward", "--x", "xz.npy", "--dy", "good.npy", "--dx", "dx.npy",
                                 "--eps", "0"], names=["xz.npy"])
        check("non-finite" in msg and "(3, 2)" in msg, "NaN at (3, 2) not reported first: %r" % msg)
        # A NaN in x and an infinity in gamma: x is named, as the first input.
        msg = expect_error(tmp, ["forward", "--x", "xz.npy", "--gamma", "g.npy", "--y", "y.npy"],
                           names=["xz.npy"])
        check("(3, 2)" in msg, "NaN at (3, 2) of x not reported before gamma: %r" % msg)
        # float64 data too large for the fast kernels goes to the exact kernel, whose own
        # refusal (zero variance with eps = 0) still names x's file and the channel.
        xh = 1e200 * rng.standard_normal((5, 3))
        xh[:, 1] = 3e200
        save(tmp, "xh.npy", xh)
        msg = expect_error(tmp, ["forward", "--x", "xh.npy", "--y", "y.npy", "--eps", "0"],
                           names=["xh.npy"])
        check(re.search(r"channel 1\b", msg), "message does not name channel 1: %r" % msg)
        msg = expect_error(tmp, ["backward", "--x", "xh.npy", "--dy", "good.npy", "--dx", "dx.npy",
                                 "--eps", "0"], names=["xh.npy"])
        check(re.search(r"channel 1\b", msg), "message does not name channel 1: %r" % msg)
        # ... and such data (which the passes therefore cannot prove finite) is read again,
        # found finite and accepted.
        save(tmp, "huge.npy", 1e200 * rng.standard_normal((5, 3)))
        ok(tmp, ["forward", "--x", "huge.npy", "--y", "y.npy"])
        ok(tmp, ["backward", "--x", "huge.npy", "--dy", "good.npy", "--dx", "dx.npy"])


def test_allow_nonfinite_propagates():
    rng = np.random.default_rng(13)
    for dtype in (F64, F32):
        with tempfile.TemporaryDirectory() as tmp:
            x, gamma, beta, dy = random_problem(rng, (6, 3, 2), 1, dtype)
            x[2, 1, 0] = np.nan
            write_problem(tmp, x, gamma, beta, dy)
            keep = [0, 2]
            save(tmp, "xk.npy", np.ascontiguousarray(x[:, keep]))
            save(tmp, "gk.npy", gamma[keep])
            save(tmp, "bk.npy", beta[keep])
            save(tmp, "dyk.npy", np.ascontiguousarray(dy[:, keep]))
            ok(tmp, FWD_NPY + ["--allow-nonfinite"])
            ok(tmp, BWD_NPY + ["--allow-nonfinite"])
            ok(tmp, ["forward", "--x", "xk.npy", "--gamma", "gk.npy", "--beta", "bk.npy",
                     "--y", "yk.npy", "--mean", "meank.npy", "--invstd", "invstdk.npy"])
            ok(tmp, ["backward", "--x", "xk.npy", "--gamma", "gk.npy", "--dy", "dyk.npy",
                     "--dx", "dxk.npy", "--dgamma", "dgammak.npy", "--dbeta", "dbetak.npy"])
            name = np.dtype(dtype).name
            for k in ("y", "mean", "invstd", "dx", "dgamma", "dbeta"):
                got = load(tmp, k + ".npy")
                other = got[:, keep] if got.ndim > 1 else got[keep]
                want = load(tmp, k + "k.npy")
                check(np.array_equal(other, want),
                      "%s: %s of the finite channels differs from a run without the NaN "
                      "channel" % (name, k))
                nan_ch = got[:, 1] if got.ndim > 1 else got[1]
                if k == "dbeta":
                    # dbeta = sum dy does not involve x: finite is right (NaN tolerated)
                    ref = float(np.sum(dy[:, 1].astype(np.longdouble)))
                    check(np.isnan(nan_ch) or abs(float(nan_ch) - ref) <= 1e-6 * max(1, abs(ref)),
                          "%s: dbeta[1] = %r, expected sum(dy[:, 1]) = %r" % (name, nan_ch, ref))
                else:
                    check(np.all(np.isnan(nan_ch)),
                          "%s: %s of the NaN channel is not all NaN: %r" % (name, k, nan_ch))


def test_allow_nonfinite_gamma_with_constant_dy():
    """A constant dy (a sum loss) makes dx exactly 0 through x̂, but a NaN or infinite γ
    still reaches dx = γ·invstd·(...): NaN, never 0."""
    for dtype in (F64, F32):
        with tempfile.TemporaryDirectory() as tmp:
            x = np.arange(12, dtype=dtype).reshape(4, 3)
            save(tmp, "x.npy", x)
            save(tmp, "dy.npy", np.full((4, 3), 0.5, dtype))
            save(tmp, "g.npy", np.array([np.nan, np.inf, 2.0], dtype))
            ok(tmp, ["backward", "--x", "x.npy", "--gamma", "g.npy", "--dy", "dy.npy", "--dx", "dx.npy",
                     "--allow-nonfinite"])
            dx = load(tmp, "dx.npy")
            name = np.dtype(dtype).name
            check(np.all(np.isnan(dx[:, :2])), "%s: dx of the NaN and inf γ channels: %r" % (name, dx[:, :2]))
            check(np.all(dx[:, 2] == 0), "%s: dx of a finite γ with a constant dy: %r" % (name, dx[:, 2]))


def test_mean_far_below_the_values():
    """(1e300, −1e300, 1e-10, 0, 0, 0): the mean, 1e-10/6, is 1e-311 of the largest value,
    beyond the fast range and below double's range once scaled to it; correctly rounded it
    is the division 1e-10/6 (one IEEE rounding of the exact mean). Batch, layer, instance
    and group norm."""
    want = 1e-10 / 6
    v = np.array([1e300, -1e300, 1e-10, 0, 0, 0])
    for norm, x, extra in (("batch", v.reshape(6, 1), []), ("layer", v.reshape(1, 6), []),
                           ("instance", v.reshape(1, 1, 6), []),
                           ("group", v.reshape(1, 2, 3), ["--groups", "1"])):
        with tempfile.TemporaryDirectory() as tmp:
            save(tmp, "x.npy", x)
            ok(tmp, ["forward", "--norm", norm, "--x", "x.npy", "--y", "y.npy", "--mean", "m.npy"] + extra)
            got = load(tmp, "m.npy").ravel()
            check(got[0] == want, "%s: mean %r, exactly %r" % (norm, float(got[0]), want))


def test_err_csv_control_characters():
    """CSV text with CR-only line endings (classic Mac export) or an escape sequence in a
    field: if bnorm refuses it, the message must still be one clean line (the contract's
    "exactly one line"): a raw CR or ESC echoed from the file breaks or rewrites the line
    on a terminal."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        write_text(tmp, "mac.csv", "1,2,3\r4,5,6\r7,8,9\r")
        rc, _, _ = run(["forward", "--x", "mac.csv", "--y", "probe.npy"], tmp)
        try:
            if rc == 0:  # CR accepted as a line break: then it must read 3 rows of 3
                check(load(tmp, "probe.npy").shape == (3, 3), "mac.csv not read as 3 rows of 3")
                os.remove(os.path.join(tmp, "probe.npy"))
            else:
                expect_error(tmp, ["forward", "--x", "mac.csv", "--y", "y.npy"],
                             names=["mac.csv"])
        except Fail as e:
            problems.append(str(e))
        write_text(tmp, "esc.csv", "1,2,3\n4,\x1b[31mred,6\n")
        try:
            msg = expect_error(tmp, ["forward", "--x", "esc.csv", "--y", "y.npy"],
                               names=["esc.csv"])
            check("esc.csv:2:3" in msg, "expected esc.csv:2:3 in %r" % msg)
        except Fail as e:
            problems.append(str(e))
    check(not problems, "; ".join(problems))


def _golden_module():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "scripts"))
    import golden
    return golden


def test_extreme_magnitudes_float64():
    """Finite float64 inputs whose exact outputs are ordinary float64 numbers, but whose
    intermediate squares (x - mean)^2 or products dy*(x - mean) overflow or underflow
    double precision.  bnorm must either compute them (to 1e-12 normwise against the
    exact mpmath reference of scripts/golden.py) or refuse them cleanly (exit 2, one
    line, and no false claim of "zero variance"); exit 0 with NaN/inf is a silent
    wrong result."""
    golden = _golden_module()
    rng = np.random.default_rng(16)
    cases = [  # (label, x scale, dy scale, eps)
        ("x ~ 1e200", 1e200, 1.0, "1e-5"),
        ("x ~ 1e160", 1e160, 1.0, "1e-5"),
        ("x ~ 1e150, dy ~ 1e200", 1e150, 1e200, "1e-5"),
        ("x ~ 1e-155, eps 0", 1e-155, 1.0, "0"),
        ("x ~ 1e-170, eps 0", 1e-170, 1.0, "0"),
    ]
    problems = []
    for label, xs, dys, eps in cases:
        with tempfile.TemporaryDirectory() as tmp:
            x = xs * rng.standard_normal((8, 2))
            x[:, 1] = rng.standard_normal(8)        # an ordinary channel next to it
            dy = dys * rng.standard_normal((8, 2))
            gamma, beta = np.array([1.5, -0.5]), np.array([0.25, 1.0])
            write_problem(tmp, x, gamma, beta, dy)
            y, mean, invstd = golden.exact_forward(x, gamma, beta, eps, 1)
            dx, dgamma, dbeta = golden.exact_backward(x, gamma, dy, eps, 1)
            exact = dict(y=y, mean=mean, invstd=invstd, dx=dx, dgamma=dgamma, dbeta=dbeta)
            assert all(np.all(np.isfinite(v)) for v in exact.values()), label
            for args, outs in ((FWD_NPY, ("y", "mean", "invstd")),
                               (BWD_NPY, ("dx", "dgamma", "dbeta"))):
                rc, _, err = run(args + ["--eps", eps], tmp)
                if rc != 0:
                    try:
                        msg = expect_error(tmp, args + ["--eps", eps], names=["x.npy"])
                        check("zero variance" not in msg,
                              "claims zero variance for a channel whose variance is not zero")
                    except Fail as e:
                        problems.append("%s, %s: %s" % (label, args[0], e))
                    continue
                bad = []
                for k in outs:
                    got = load(tmp, k + ".npy")
                    if not normwise(got, exact[k]) <= 1e-12:
                        i = int(np.argmax(~np.isfinite(got.ravel()) |
                                          (np.abs(got.ravel() - exact[k].ravel()) > 0)))
                        bad.append("%s (e.g. %.4g, exact %.4g)"
                                   % (k, got.ravel()[i], exact[k].ravel()[i]))
                if bad:
                    problems.append("%s, %s: exit 0 with wrong %s"
                                    % (label, args[0], ", ".join(bad)))
    check(not problems, "; ".join(problems))


def test_existing_output_untouched_on_failure():
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(14)
        x = rng.standard_normal((6, 3))
        x[:, 0] = 2.0
        save(tmp, "x.npy", x)
        save(tmp, "dy.npy", rng.standard_normal((6, 3)))
        save(tmp, "g4.npy", np.ones(4))
        for name in ("y.npy", "mean.npy", "y.csv", "dx.npy"):
            write_text(tmp, name, "old content of %s\n" % name)
        # failure while loading (gamma length)
        expect_error(tmp, ["forward", "--x", "x.npy", "--gamma", "g4.npy", "--y", "y.npy",
                           "--mean", "mean.npy"], names=["g4.npy"])
        # failure in the computation, after every input was loaded (eps = 0, constant channel)
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--mean", "mean.npy",
                           "--eps", "0"], names=["x.npy"])
        expect_error(tmp, ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "dx.npy",
                           "--eps", "0"], names=["x.npy"])
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.csv", "--eps", "-1"],
                     contains=["--eps"])


def _limit_file_size(nbytes):
    def f():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return f


def test_err_write_failure_leaves_no_trace():
    """A write that fails (RLIMIT_FSIZE) after an earlier output's temporary file was
    completed: nothing is renamed into place, no temporary file is left."""
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(15)
        x = rng.standard_normal((2, 200)) * 1e-3 - 0.0123
        save(tmp, "x.npy", x)
        ok(tmp, ["forward", "--x", "x.npy", "--y", "probe_y.npy", "--mean", "probe_mean.csv"])
        ysize = os.path.getsize(os.path.join(tmp, "probe_y.npy"))
        msize = os.path.getsize(os.path.join(tmp, "probe_mean.csv"))
        os.remove(os.path.join(tmp, "probe_y.npy"))
        os.remove(os.path.join(tmp, "probe_mean.csv"))
        check(msize > ysize + 200, "setup: mean.csv (%d bytes) is not larger than y.npy (%d)"
              % (msize, ysize))
        limit = (ysize + msize) // 2
        write_text(tmp, "y.npy", "old y\n")
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--mean", "mean.csv"],
                     names=["mean.csv"], preexec_fn=_limit_file_size(limit))
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--mean", "mean.csv"],
                     names=["y.npy"], preexec_fn=_limit_file_size(ysize // 2))


def test_longest_output_names():
    """Output names of 255 bytes, the most a Linux file system takes, ASCII and 2-byte
    UTF-8: written, with no temporary file left (its name, '.<name>.tmp-XXXXXX', is cut
    to fit; once it failed with 'File name too long')."""
    with tempfile.TemporaryDirectory() as tmp:
        save(tmp, "x.npy", np.arange(12.0).reshape(4, 3))
        for name in ("a" * 251 + ".npy", "\u00e9" * 125 + "a.npy", "b" * 251 + ".csv"):
            check(len(name.encode()) == 255, "setup: %d bytes" % len(name.encode()))
            ok(tmp, ["forward", "--x", "x.npy", "--y", name])
            check(sorted(os.listdir(tmp)) == sorted(["x.npy", name]),
                  "%s...: the folder holds %r" % (name[:8], sorted(os.listdir(tmp))))
            os.remove(os.path.join(tmp, name))


def _limit_address_space(mib):
    def f():
        resource.setrlimit(resource.RLIMIT_AS, (mib << 20, mib << 20))
    return f


def test_no_thread_to_be_had():
    """Under the least address space that one thread needs, no second thread's stack
    (8 MiB) can be mapped: --threads 2 then does the work on the calling thread and writes
    what --threads 1 writes, where it once said 'internal error' (found by an adversarial
    review). Skipped where the least is beyond 1 GiB (sanitizer builds reserve far more)."""
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(16)
        save(tmp, "x.npy", rng.standard_normal((512, 256)))
        save(tmp, "dy.npy", rng.standard_normal((512, 256)))
        for cmd in (["forward", "--x", "x.npy", "--y", "%s.npy"],
                    ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "%s.npy"]):
            def runs(mib, name, threads):
                args = [a % name if "%s" in a else a for a in cmd] + ["--threads", str(threads)]
                return run(args, tmp, _limit_address_space(mib))[0] == 0
            lo, hi = 1, 1024  # the least limit at which one thread succeeds, in MiB
            if not runs(hi, "probe", 1):
                note("skipped: %s needs more than %d MiB of address space here" % (cmd[0], hi))
                return
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if runs(mid, "probe", 1) else (mid, hi)
            ok(tmp, [a % "one" if "%s" in a else a for a in cmd] + ["--threads", "1"])
            rc, _, err = run([a % "two" if "%s" in a else a for a in cmd] + ["--threads", "2"], tmp,
                             _limit_address_space(hi))
            check(rc == 0, "%s --threads 2 under %d MiB (enough for one thread): exit %d, %r"
                  % (cmd[0], hi, rc, err))
            check(read_bytes(tmp, "one.npy") == read_bytes(tmp, "two.npy"),
                  "%s: --threads 2 under %d MiB wrote other bytes than --threads 1" % (cmd[0], hi))
            note("%s: one thread runs in %d MiB" % (cmd[0], hi))


# ---------------------------------------------------------------------------
# runner
# ---------------------------------------------------------------------------

def test_interrupted_run_leaves_no_trace():
    """SIGTERM, SIGINT or SIGHUP while the output is being written: the process dies by the
    signal, the temporary file is removed (app/signals.cpp's handlers), and the old output
    keeps its bytes."""
    import signal
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(77)
        save(tmp, "x.npy", rng.normal(size=(500000, 16)))   # 8e6 values: ~150 MB of CSV text
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            write_text(tmp, "y.csv", "old\n")
            before = snapshot(tmp)
            p = subprocess.Popen([BNORM, "forward", "--x", "x.npy", "--y", "y.csv"], cwd=tmp,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            seen = False
            deadline = time.time() + 30
            while p.poll() is None and time.time() < deadline:
                if any(n.startswith(".y.csv.tmp-") for n in os.listdir(tmp)):
                    seen = True
                    time.sleep(0.05)           # let it write some of the file
                    p.send_signal(sig)
                    break
                time.sleep(0.002)
            p.wait(timeout=60)
            p.stderr.close()
            check(seen, "the run finished before its temporary file was seen; use a larger input")
            check(p.returncode == -sig, "killed by %s: exit status %r" % (sig.name, p.returncode))
            diff = snapshot_diff(before, snapshot(tmp))
            check(not diff, "after %s the folder changed: %s" % (sig.name, diff))


def test_threads_give_bitwise_identical_outputs():
    """--threads 1, 2, 3 and the default give the same bytes, forward and backward, on a
    tensor large enough to be split across threads."""
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(78)
        for dtype in (F32, F64):
            save(tmp, "x.npy", (1e4 + rng.normal(size=(300, 8, 7, 7))).astype(dtype))
            save(tmp, "dy.npy", rng.normal(size=(300, 8, 7, 7)).astype(dtype))
            outputs = {}
            for t in ("1", "2", "3", None):
                extra = ["--threads", t] if t else []
                ok(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--mean", "m.npy"] + extra)
                ok(tmp, ["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "dx.npy", "--dgamma", "dg.npy"] + extra)
                outputs[t] = tuple(read_bytes(tmp, n) for n in ("y.npy", "m.npy", "dx.npy", "dg.npy"))
            check(len(set(outputs.values())) == 1, "%s: outputs differ between thread counts" % dtype.__name__)
        expect_error(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--threads", "-1"], contains=("--threads",))


# ---------------------------------------------------------------------------
# Inference mode and running statistics (--mode, --running-*, --new-running-*)
# ---------------------------------------------------------------------------

def eval_reference(x, gamma, beta, dy, rm, rv, eps, axis):
    """Inference-mode batch norm in numpy float64: y, dx, dgamma, dbeta."""
    shape = [1] * x.ndim
    shape[axis] = -1
    inv = 1 / np.sqrt(rv.astype(F64) + eps)
    xh = (x.astype(F64) - rm.astype(F64).reshape(shape)) * inv.reshape(shape)
    y = gamma.astype(F64).reshape(shape) * xh + beta.astype(F64).reshape(shape)
    dx = (gamma.astype(F64) * inv).reshape(shape) * dy.astype(F64)
    red = tuple(d for d in range(x.ndim) if d != axis % x.ndim)
    return y, dx, (dy.astype(F64) * xh).sum(axis=red), dy.astype(F64).sum(axis=red)


def update_reference(x, rm, rv, momentum, correction, axis):
    """PyTorch's running-statistics update (correction 1), or ONNX's (correction 0)."""
    red = tuple(d for d in range(x.ndim) if d != axis % x.ndim)
    m = x.size // x.shape[axis]
    mean = x.astype(F64).mean(axis=red)
    var = x.astype(F64).var(axis=red) * m / (m - correction)
    return (1 - momentum) * rm + momentum * mean, (1 - momentum) * rv + momentum * var


def running_folder(tmp, shape, axis, dtype=F64, seed=5):
    rng = np.random.default_rng(seed)
    x, gamma, beta, dy = random_problem(rng, shape, axis, dtype, offset=3.0)
    write_problem(tmp, x, gamma, beta, dy)
    C = shape[axis]
    rm = (3 + 0.5 * rng.standard_normal(C)).astype(dtype)
    rv = (0.5 + rng.random(C)).astype(dtype)
    save(tmp, "rm.npy", rm)
    save(tmp, "rv.npy", rv)
    return x, gamma, beta, dy, rm, rv


def test_eval_forward_backward_vs_numpy():
    """--mode eval: y, dx, dgamma, dbeta against the numpy formula, (N, C), NCHW and NHWC,
    a batch of one included; --threads 1 and 2 give the same bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        for shape, axis in (((6, 4), 1), ((3, 4, 5, 6), 1), ((2, 5, 6, 4), -1), ((1, 4), 1), ((1, 3, 1, 1), 1)):
            x, gamma, beta, dy, rm, rv = running_folder(tmp, shape, axis)
            y_ref, dx_ref, dg_ref, db_ref = eval_reference(x, gamma, beta, dy, rm, rv, 1e-3, axis)
            outputs = []
            for t in ("1", "2"):
                common = ["--mode", "eval", "--x", "x.npy", "--gamma", "gamma.npy", "--running-mean", "rm.npy",
                          "--running-var", "rv.npy", "--eps", "1e-3", "--axis", axis, "--threads", t]
                ok(tmp, ["forward"] + common + ["--beta", "beta.npy", "--y", "y.npy"])
                ok(tmp, ["backward"] + common + ["--dy", "dy.npy", "--dx", "dx.npy", "--dgamma", "dg.npy",
                                                 "--dbeta", "db.npy"])
                outputs.append(tuple(read_bytes(tmp, n) for n in ("y.npy", "dx.npy", "dg.npy", "db.npy")))
            check(outputs[0] == outputs[1], "%s: eval outputs differ between --threads 1 and 2" % (shape,))
            for name, ref in (("y.npy", y_ref), ("dx.npy", dx_ref), ("dg.npy", dg_ref), ("db.npy", db_ref)):
                got = load(tmp, name)
                check(got.dtype == F64 and got.shape == ref.shape, "%s: %s has %s %s" % (shape, name, got.dtype,
                                                                                        got.shape))
                e = normwise(got, ref)
                check(e <= TOL_F64, "%s: %s normwise error %g" % (shape, name, e))


def test_eval_threads_bitwise_large():
    """--mode eval on a tensor split across threads: the same bytes for --threads 1, 2, 3."""
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in (F32, F64):
            running_folder(tmp, (40, 8, 16, 16), 1, dtype)
            outputs = set()
            for t in ("1", "2", "3"):
                common = ["--mode", "eval", "--x", "x.npy", "--running-mean", "rm.npy", "--running-var", "rv.npy",
                          "--threads", t]
                ok(tmp, ["forward"] + common + ["--y", "y.npy"])
                ok(tmp, ["backward"] + common + ["--dy", "dy.npy", "--dx", "dx.npy", "--dgamma", "dg.npy"])
                outputs.add(tuple(read_bytes(tmp, n) for n in ("y.npy", "dx.npy", "dg.npy")))
            check(len(outputs) == 1, "%s: eval outputs differ between thread counts" % dtype.__name__)


def test_running_update_vs_pytorch_formula():
    """Train-mode forward with --new-running-*: PyTorch's update (momentum default 0.1,
    0.5, 1, 0; correction 1 and 0), y unchanged by it; --threads 1 and 2 the same bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        for shape, axis in (((7, 3), 1), ((3, 4, 5, 6), 1), ((2, 5, 6, 4), -1)):
            x, gamma, beta, dy, rm, rv = running_folder(tmp, shape, axis)
            ok(tmp, ["forward", "--x", "x.npy", "--axis", axis, "--y", "y0.npy"])
            for momentum, correction in ((None, None), ("0.5", "1"), ("1", "0"), ("0", "1"), ("0.1", "0")):
                extra = (["--momentum", momentum] if momentum else []) + (
                    ["--running-var-correction", correction] if correction else [])
                got = []
                for t in ("1", "2"):
                    ok(tmp, ["forward", "--x", "x.npy", "--axis", axis, "--running-mean", "rm.npy", "--running-var",
                             "rv.npy", "--y", "y.npy", "--new-running-mean", "nm.npy", "--new-running-var", "nv.npy",
                             "--threads", t] + extra)
                    got.append(tuple(read_bytes(tmp, n) for n in ("y.npy", "nm.npy", "nv.npy")))
                check(got[0] == got[1], "%s: outputs differ between --threads 1 and 2" % (shape,))
                check(read_bytes(tmp, "y.npy") == read_bytes(tmp, "y0.npy"), "y changed with the running update")
                want_m, want_v = update_reference(x, rm, rv, float(momentum or 0.1), int(correction or 1), axis)
                for name, want in (("nm.npy", want_m), ("nv.npy", want_v)):
                    e = normwise(load(tmp, name), want)
                    check(e <= TOL_F64, "%s momentum %s correction %s: %s error %g" % (shape, momentum, correction,
                                                                                      name, e))
            if True:  # momentum 0: exactly the old values
                ok(tmp, ["forward", "--x", "x.npy", "--axis", axis, "--running-mean", "rm.npy", "--running-var",
                         "rv.npy", "--y", "y.npy", "--new-running-mean", "nm.npy", "--momentum", "0"])
                check(np.array_equal(load(tmp, "nm.npy"), rm), "momentum 0 changed the running mean")


def test_err_running_statistics_usage():
    """The refusals of the new options: exit 2, one line, nothing written."""
    with tempfile.TemporaryDirectory() as tmp:
        running_folder(tmp, (4, 3), 1)
        save(tmp, "rv_neg.npy", np.array([1.0, -0.5, 1.0]))
        save(tmp, "rv_zero.npy", np.array([1.0, 0.0, 1.0]))
        save(tmp, "rv_nan.npy", np.array([1.0, np.nan, 1.0]))
        save(tmp, "rv_4.npy", np.ones(4))
        save(tmp, "rv_f32.npy", np.ones(3, dtype=F32))
        run_ = ["--running-mean", "rm.npy", "--running-var", "rv.npy"]
        ev = ["--mode", "eval", "--x", "x.npy"]
        fw = ["forward", "--x", "x.npy", "--y", "y.npy"]
        expect_error(tmp, ["forward"] + ev + ["--running-mean", "rm.npy", "--y", "y.npy"],
                     contains=("--mode eval needs both --running-mean and --running-var",))
        expect_error(tmp, ["backward"] + ev + ["--running-var", "rv.npy", "--dy", "dy.npy", "--dx", "dx.npy"],
                     contains=("--mode eval needs both",))
        expect_error(tmp, ["forward"] + ev + run_ + ["--y", "y.npy", "--mean", "m.npy"],
                     contains=("--mean/--invstd", "--mode eval"))
        expect_error(tmp, ["forward"] + ev + run_ + ["--y", "y.npy", "--invstd", "i.npy"], contains=("--invstd",))
        expect_error(tmp, ["forward"] + ev + run_ + ["--y", "y.npy", "--new-running-mean", "nm.npy"],
                     contains=("--mode train only",))
        expect_error(tmp, fw + ["--new-running-mean", "nm.npy"], contains=("need both --running-mean",))
        expect_error(tmp, fw + ["--running-mean", "rm.npy", "--new-running-var", "nv.npy"],
                     contains=("need both",))
        expect_error(tmp, fw + run_, contains=("--mode eval",))
        expect_error(tmp, fw + ["--momentum", "0.2"], contains=("--momentum",))
        for bad in ("1.5", "-0.1", "nan", "0.1x", "inf"):
            expect_error(tmp, fw + run_ + ["--new-running-mean", "nm.npy", "--momentum", bad],
                         contains=("--momentum",))
        for bad in ("2", "-1", "0.5", "x"):
            expect_error(tmp, fw + run_ + ["--new-running-mean", "nm.npy", "--running-var-correction", bad],
                         contains=("--running-var-correction",))
        expect_error(tmp, ["forward", "--mode", "test"] + ev[2:] + ["--y", "y.npy"], contains=("--mode",))
        for cmd in (["backward", "--x", "x.npy", "--dy", "dy.npy", "--dx", "dx.npy"],
                    ["gradcheck", "--x", "x.npy"]):
            expect_error(tmp, cmd + run_, contains=("used only with --mode eval",))
            expect_error(tmp, cmd + ["--new-running-mean", "nm.npy"])
            expect_error(tmp, cmd + ["--momentum", "0.1"])
        # the data: negative variance, var + eps = 0 in eval, NaN, shape, dtype
        expect_error(tmp, ["forward"] + ev + ["--running-mean", "rm.npy", "--running-var", "rv_neg.npy",
                                              "--y", "y.npy"],
                     names=("rv_neg.npy",), contains=("channel 1", "negative running variance"))
        expect_error(tmp, fw + ["--running-mean", "rm.npy", "--running-var", "rv_neg.npy",
                                "--new-running-var", "nv.npy"], names=("rv_neg.npy",), contains=("channel 1",))
        expect_error(tmp, ["forward"] + ev + ["--running-mean", "rm.npy", "--running-var", "rv_zero.npy",
                                              "--eps", "0", "--y", "y.npy"],
                     names=("rv_zero.npy",), contains=("channel 1", "eps = 0"))
        ok(tmp, ["forward"] + ev + ["--running-mean", "rm.npy", "--running-var", "rv_zero.npy", "--y", "y.npy"])
        expect_error(tmp, ["forward"] + ev + ["--running-mean", "rm.npy", "--running-var", "rv_nan.npy",
                                              "--y", "y2.npy"],
                     names=("rv_nan.npy",), contains=("--allow-nonfinite",))
        ok(tmp, ["forward"] + ev + ["--running-mean", "rm.npy", "--running-var", "rv_nan.npy", "--y", "y2.npy",
                                    "--allow-nonfinite"])
        check(np.isnan(load(tmp, "y2.npy")[:, 1]).all(), "NaN running variance did not propagate")
        expect_error(tmp, ["forward"] + ev + ["--running-mean", "rm.npy", "--running-var", "rv_4.npy",
                                              "--y", "y3.npy"],
                     names=("rv_4.npy",), contains=("expected 3 values", "(4,)"))
        expect_error(tmp, ["forward"] + ev + ["--running-mean", "rm.npy", "--running-var", "rv_f32.npy",
                                              "--y", "y3.npy"],
                     names=("rv_f32.npy",), contains=("dtype",))
        # a batch of one stays refused in train mode
        save(tmp, "x1.npy", np.ones((1, 3)))
        expect_error(tmp, ["forward", "--x", "x1.npy", "--y", "y3.npy"], contains=("m = 1",))


def test_running_outputs_atomic():
    """A failure after the computation leaves none of the outputs: the new running
    statistics appear together with y or not at all."""
    with tempfile.TemporaryDirectory() as tmp:
        running_folder(tmp, (4, 3), 1)
        os.mkdir(os.path.join(tmp, "nv.npy"))  # an output path that cannot be written
        expect_error(tmp, ["forward", "--x", "x.npy", "--running-mean", "rm.npy", "--running-var", "rv.npy",
                           "--y", "y.npy", "--new-running-mean", "nm.npy", "--new-running-var", "nv.npy"])


def test_gradcheck_eval_mode():
    """gradcheck --mode eval judges the inference-mode gradients (the statistics are
    constants): bnorm's own pass, a batch of one included; the report says the mode;
    the training-mode gradients fail it, and the eval-mode ones fail the train check."""
    import json
    with tempfile.TemporaryDirectory() as tmp:
        for shape in ((3, 4, 2, 2), (1, 4)):
            running_folder(tmp, shape, 1)
            rc, out, err = run(["gradcheck", "--mode", "eval", "--x", "x.npy", "--gamma", "gamma.npy", "--beta",
                                "beta.npy", "--running-mean", "rm.npy", "--running-var", "rv.npy"], tmp)
            check(rc == 0, "%s: gradcheck --mode eval exit %d: %s" % (shape, rc, err))
            report = json.loads(out)
            check(report["problem"]["mode"] == "eval" and report["passed"], "%s: report %s" % (shape, out[:300]))
        running_folder(tmp, (3, 4, 2, 2), 1)
        ev = ["--mode", "eval", "--running-mean", "rm.npy", "--running-var", "rv.npy"]
        ok(tmp, ["backward", "--x", "x.npy", "--gamma", "gamma.npy", "--dy", "dy.npy", "--dx", "dx_e.npy",
                 "--dgamma", "dg_e.npy", "--dbeta", "db_e.npy"] + ev)
        ok(tmp, ["backward", "--x", "x.npy", "--gamma", "gamma.npy", "--dy", "dy.npy", "--dx", "dx_t.npy",
                 "--dgamma", "dg_t.npy", "--dbeta", "db_t.npy"])
        judge = ["gradcheck", "--x", "x.npy", "--gamma", "gamma.npy", "--dy", "dy.npy"]
        rc, out, _ = run(judge + ev + ["--dx", "dx_e.npy", "--dgamma", "dg_e.npy", "--dbeta", "db_e.npy"], tmp)
        check(rc == 0, "eval gradients fail the eval check")
        rc, out, _ = run(judge + ev + ["--dx", "dx_t.npy", "--dgamma", "dg_t.npy"], tmp)
        check(rc == 1, "train gradients pass the eval check (exit %d)" % rc)
        rc, out, _ = run(judge + ["--dx", "dx_e.npy", "--dgamma", "dg_e.npy"], tmp)
        check(rc == 1 and json.loads(out)["problem"]["mode"] == "train",
              "eval gradients pass the train check (exit %d)" % rc)


def test_eval_float32_and_csv_running_files():
    """--mode eval in float32 within 4 eps normwise of the float64 formula; running
    statistics from CSV files (read in x's dtype) give the same bytes as from NPY."""
    with tempfile.TemporaryDirectory() as tmp:
        x, gamma, beta, dy, rm, rv = running_folder(tmp, (5, 3, 4, 4), 1, F32)
        write_text(tmp, "rm.csv", csv_text_col(rm))
        write_text(tmp, "rv.csv", csv_text_col(rv))
        y_ref, dx_ref, dg_ref, db_ref = eval_reference(x, gamma, beta, dy, rm, rv, 1e-5, 1)
        common = ["--mode", "eval", "--x", "x.npy", "--gamma", "gamma.npy"]
        ok(tmp, ["forward"] + common + ["--beta", "beta.npy", "--running-mean", "rm.npy", "--running-var", "rv.npy",
                                        "--y", "y.npy"])
        ok(tmp, ["forward"] + common + ["--beta", "beta.npy", "--running-mean", "rm.csv", "--running-var", "rv.csv",
                                        "--y", "y_csv.npy"])
        check(read_bytes(tmp, "y.npy") == read_bytes(tmp, "y_csv.npy"), "CSV running files give other bytes")
        ok(tmp, ["backward"] + common + ["--dy", "dy.npy", "--running-mean", "rm.csv", "--running-var", "rv.csv",
                                         "--dx", "dx.npy", "--dgamma", "dg.npy", "--dbeta", "db.npy"])
        for name, ref in (("y.npy", y_ref), ("dx.npy", dx_ref), ("dg.npy", dg_ref), ("db.npy", db_ref)):
            got = load(tmp, name)
            check(got.dtype == F32, "%s is %s" % (name, got.dtype))
            e = normwise(got, ref)
            check(e <= TOL_F32, "%s: float32 normwise error %g" % (name, e))


if __name__ == "__main__":
    sys.exit(run_tests(globals(), __doc__))
