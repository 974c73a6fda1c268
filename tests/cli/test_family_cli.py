#!/usr/bin/python3
"""The rules every norm of the family keeps on the command line (issue 24), beyond the
golden accuracy (test_golden_cli.py), the refusals (test_bad_inputs.py) and PyTorch
(test_family_peers.py).

Usage (Debian's Python, which has numpy):

    /usr/bin/python3 tests/cli/test_family_cli.py BNORM [NAME-SUBSTRING ...]

  * threads: for each of layer, rms, instance and group, on tensors of more than 65,536
    values (float32 and float64, one case offset by 1e4 so that the sets are
    ill-conditioned), every output of forward and backward has the same bytes for
    --threads 1, 2 and 3;
  * the default --axis is 1 for instance and group and -1 for layer and rms: the same
    bytes as the axis given explicitly;
  * shapes: mean and invstd of (N, C) for instance, (N, G) for group, x.shape[:axis]
    followed by ones for layer and rms; dgamma and dbeta of gamma's shape; for layer and
    rms, gamma given as a flat vector of x.shape[axis:]'s size, or as a CSV table of one
    row per index of its first axis, gives the same bytes as gamma of that shape;
  * CSV: x and dy as CSV with --shape (and --dtype float32) give the same values as NPY;
  * --allow-nonfinite: a NaN in one set of x propagates to that set's outputs only,
    and an output left from an earlier run keeps its bytes when a run is refused;
  * batch norm is unchanged by --norm batch: the same bytes as no --norm;
  * gradcheck --norm: bnorm's own backward passes (exit 0) with problem.norm and
    problem.groups in the report, bnorm's backward outputs given as --dx/--dgamma pass,
    and wrong gradients fail (exit 1): RMS's dx with a Σdx̂ term, layer's dγ summed over
    the wrong axis, group's dx with statistics per channel (instance norm's), instance's
    dx with statistics per channel over the whole batch (batch norm's).

Prints `PASS name` / `FAIL name: reason` per test and `N passed, M failed`; exit 1 on a
failure.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from runner import check, run_tests

BNORM = None  # set by run_tests()

# (norm options, shape, axis) of tensors with more than 65536 values
BIG = [(["--norm", "layer"], (40, 1800), -1),
       (["--norm", "rms"], (36, 2000), -1),
       (["--norm", "layer", "--axis", "1"], (3, 40, 600), 1),
       (["--norm", "instance"], (4, 8, 48, 48), 1),
       (["--norm", "instance", "--axis", "-1"], (4, 48, 48, 8), -1),
       (["--norm", "group", "--groups", "4"], (4, 8, 48, 48), 1),
       (["--norm", "group", "--groups", "2", "--axis", "-1"], (2, 70, 70, 8), -1)]


def bnorm(tmp, args, expect_rc=0):
    p = subprocess.run([BNORM] + args, cwd=tmp, capture_output=True, text=True)
    check(p.returncode == expect_rc, "bnorm %s: exit %d (expected %d), stderr %r"
          % (" ".join(args), p.returncode, expect_rc, p.stderr.strip()))
    return p.stderr


def read_bytes(tmp, name):
    with open(os.path.join(tmp, name), "rb") as f:
        return f.read()


def norm_of(opts):
    return opts[opts.index("--norm") + 1]


def param_shape(norm, shape, axis):
    a = axis % len(shape)
    return tuple(shape[a:]) if norm in ("layer", "rms") else (shape[a],)


def write_inputs(tmp, rng, shape, pshape, dtype, offset=0.0):
    x = (offset + rng.standard_normal(shape)).astype(dtype)
    np.save(os.path.join(tmp, "x.npy"), x)
    np.save(os.path.join(tmp, "dy.npy"), rng.standard_normal(shape).astype(dtype))
    np.save(os.path.join(tmp, "gamma.npy"), (1 + 0.5 * rng.standard_normal(pshape)).astype(dtype))
    np.save(os.path.join(tmp, "beta.npy"), rng.standard_normal(pshape).astype(dtype))
    return x


def run_both(tmp, opts, suffix, more=(), gamma="gamma.npy", ext=".npy", x="x.npy", dy="dy.npy"):
    """forward and backward writing every output as <name><suffix><ext>; returns names."""
    rms = norm_of(opts) == "rms" if "--norm" in opts else False
    out = lambda k: k + suffix + ext
    fwd = ["forward", "--x", x, "--gamma", gamma, "--y", out("y"), "--invstd", out("invstd")]
    bwd = ["backward", "--x", x, "--gamma", gamma, "--dy", dy, "--dx", out("dx"),
           "--dgamma", out("dgamma")]
    names = ["y", "invstd", "dx", "dgamma"]
    if not rms:
        fwd += ["--beta", "beta" + ext, "--mean", out("mean")]
        bwd += ["--dbeta", out("dbeta")]
        names += ["mean", "dbeta"]
    bnorm(tmp, fwd + list(opts) + list(more))
    bnorm(tmp, bwd + list(opts) + list(more))
    return [out(k) for k in names]


def test_same_bits_for_any_thread_count():
    rng = np.random.default_rng(24)
    for opts, shape, axis in BIG:
        for dtype, offset in ((np.float32, 0.0), (np.float64, 0.0), (np.float64, 1e4)):
            what = "%s %s %s offset %g" % (" ".join(opts), shape, np.dtype(dtype).name, offset)
            check(int(np.prod(shape)) > 65536, "%s: too small" % what)
            with tempfile.TemporaryDirectory() as tmp:
                write_inputs(tmp, rng, shape, param_shape(norm_of(opts), shape, axis), dtype, offset)
                outs = {t: run_both(tmp, opts, "_t%d" % t, ["--threads", str(t)]) for t in (1, 2, 3)}
                for i, name in enumerate(outs[1]):
                    one = read_bytes(tmp, name)
                    for t in (2, 3):
                        check(read_bytes(tmp, outs[t][i]) == one,
                              "%s: %s differs between --threads 1 and --threads %d"
                              % (what, name.replace("_t1", ""), t))
            print("  same bits: %s" % what)


def test_default_axis_and_output_shapes():
    rng = np.random.default_rng(25)
    cases = [(["--norm", "layer"], (3, 4, 10), -1, {"mean": (3, 4, 1), "dgamma": (10,)}),
             (["--norm", "rms"], (3, 4, 10), -1, {"invstd": (3, 4, 1), "dgamma": (10,)}),
             (["--norm", "instance"], (3, 4, 5, 6), 1, {"mean": (3, 4), "dgamma": (4,)}),
             (["--norm", "group", "--groups", "2"], (3, 4, 5, 6), 1,
              {"mean": (3, 2), "invstd": (3, 2), "dgamma": (4,), "dbeta": (4,)})]
    for opts, shape, axis, shapes in cases:
        with tempfile.TemporaryDirectory() as tmp:
            write_inputs(tmp, rng, shape, param_shape(norm_of(opts), shape, axis), np.float64)
            default = run_both(tmp, opts, "_default")
            given = run_both(tmp, opts, "_given", ["--axis", str(axis)])
            for a, b in zip(default, given):
                check(read_bytes(tmp, a) == read_bytes(tmp, b),
                      "%s: %s without --axis differs from --axis %d" % (" ".join(opts), a, axis))
            for k, s in shapes.items():
                got = np.load(os.path.join(tmp, k + "_default.npy")).shape
                check(got == s, "%s %s: %s has shape %s, expected %s"
                      % (" ".join(opts), shape, k, got, s))
            check(np.load(os.path.join(tmp, "dx_default.npy")).shape == shape,
                  "%s: dx is not of x's shape" % " ".join(opts))


def write_csv_table(path, a):
    rows = a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(1, -1)
    with open(path, "w") as f:
        for r in rows:
            f.write(",".join(repr(float(v)) for v in r) + "\n")


def test_gamma_flat_or_csv_table_same_bits():
    rng = np.random.default_rng(26)
    for norm in ("layer", "rms"):
        shape, axis = (3, 4, 5, 6), 1
        opts = ["--norm", norm, "--axis", str(axis)]
        with tempfile.TemporaryDirectory() as tmp:
            write_inputs(tmp, rng, shape, (4, 5, 6), np.float64)
            g = np.load(os.path.join(tmp, "gamma.npy"))
            np.save(os.path.join(tmp, "gamma_flat.npy"), g.ravel())
            np.save(os.path.join(tmp, "gamma_row.npy"), g.reshape(1, -1))
            write_csv_table(os.path.join(tmp, "gamma_table.csv"), g)
            ref = run_both(tmp, opts, "_shaped")
            for gamma in ("gamma_flat.npy", "gamma_row.npy", "gamma_table.csv"):
                outs = run_both(tmp, opts, "_" + gamma.replace(".", "_"), gamma=gamma)
                for a, b in zip(ref, outs):
                    check(read_bytes(tmp, a) == read_bytes(tmp, b),
                          "%s: %s with --gamma %s differs from gamma of shape (4, 5, 6)"
                          % (norm, a, gamma))
            check(np.load(os.path.join(tmp, "dgamma_shaped.npy")).shape == (4, 5, 6),
                  "%s: dgamma is not of gamma's shape" % norm)


def test_csv_inputs_same_values_as_npy():
    rng = np.random.default_rng(27)
    for opts, shape, axis, dtype in [(["--norm", "layer"], (6, 10), -1, np.float64),
                                     (["--norm", "group", "--groups", "3"], (2, 6, 4, 5), 1, np.float32),
                                     (["--norm", "instance", "--axis", "-1"], (2, 4, 5, 3), -1, np.float64),
                                     (["--norm", "rms", "--axis", "-2"], (3, 4, 5), -2, np.float32)]:
        with tempfile.TemporaryDirectory() as tmp:
            x = write_inputs(tmp, rng, shape, param_shape(norm_of(opts), shape, axis), dtype)
            for k in ("x", "dy", "gamma", "beta"):
                a = np.load(os.path.join(tmp, k + ".npy"))
                with open(os.path.join(tmp, k + ".csv"), "w") as f:
                    rows = a.reshape(a.shape[0], -1) if k in ("x", "dy") else a.reshape(-1, 1)
                    fmt = (lambda v: np.format_float_scientific(v, unique=True)) \
                        if dtype == np.float32 else (lambda v: repr(float(v)))
                    for r in rows:
                        f.write(",".join(fmt(v) for v in r) + "\n")
            npy = run_both(tmp, opts, "_npy")
            more = ["--shape", ",".join(map(str, shape))]
            if dtype == np.float32:
                more += ["--dtype", "float32"]
            csv = run_both(tmp, opts, "_csv", more, gamma="gamma.csv", ext=".csv", x="x.csv",
                           dy="dy.csv")
            for a, b in zip(npy, csv):
                want = np.load(os.path.join(tmp, a))
                got = np.loadtxt(os.path.join(tmp, b), delimiter=",", ndmin=2).astype(dtype)
                check(got.size == want.size and np.array_equal(got.ravel(), want.ravel()),
                      "%s: %s (CSV) differs from %s (NPY)" % (" ".join(opts), b, a))
            check(x.dtype == dtype, "input dtype")


def test_allow_nonfinite_propagates_per_set():
    rng = np.random.default_rng(28)
    for opts, shape, bad, same_set in [
            (["--norm", "layer"], (4, 8), (2, 3), lambda i: i[0] == 2),
            (["--norm", "instance"], (2, 3, 4), (1, 2, 0), lambda i: i[0] == 1 and i[1] == 2),
            (["--norm", "group", "--groups", "2"], (2, 4, 3), (0, 1, 2),
             lambda i: i[0] == 0 and i[1] < 2)]:
        with tempfile.TemporaryDirectory() as tmp:
            x = rng.standard_normal(shape)
            x[bad] = np.nan
            np.save(os.path.join(tmp, "x.npy"), x)
            np.save(os.path.join(tmp, "y.npy"), np.zeros(3))  # an output of an earlier run
            before = read_bytes(tmp, "y.npy")
            err = bnorm(tmp, ["forward", "--x", "x.npy", "--y", "y.npy"] + opts, expect_rc=2)
            check("nan" in err and "x.npy" in err, "%s: the refusal %r" % (opts, err))
            check(read_bytes(tmp, "y.npy") == before, "%s: a refused run changed y.npy" % opts)
            bnorm(tmp, ["forward", "--x", "x.npy", "--y", "y.npy", "--allow-nonfinite"] + opts)
            y = np.load(os.path.join(tmp, "y.npy"))
            for i in np.ndindex(*shape):
                check(np.isnan(y[i]) == same_set(i),
                      "%s: y%s is %r (NaN in x%s)" % (" ".join(opts), i, y[i], bad))


def test_norm_batch_is_the_default():
    rng = np.random.default_rng(29)
    with tempfile.TemporaryDirectory() as tmp:
        write_inputs(tmp, rng, (5, 3, 7), (3,), np.float32)
        a = run_both(tmp, [], "_default")
        b = run_both(tmp, ["--norm", "batch"], "_batch")
        for p, q in zip(a, b):
            check(read_bytes(tmp, p) == read_bytes(tmp, q), "--norm batch: %s differs" % q)


def gradcheck(tmp, args, expect_rc):
    p = subprocess.run([BNORM, "gradcheck"] + args, cwd=tmp, capture_output=True, text=True)
    check(p.returncode == expect_rc, "bnorm gradcheck %s: exit %d (expected %d), stderr %r"
          % (" ".join(args), p.returncode, expect_rc, p.stderr.strip()[-400:]))
    return json.loads(p.stdout)


def test_gradcheck_each_norm():
    rng = np.random.default_rng(30)
    for opts, shape, groups in [(["--norm", "layer"], (6, 6), None),
                                (["--norm", "rms", "--axis", "1"], (3, 4, 5), None),
                                (["--norm", "instance"], (3, 4, 5), None),
                                (["--norm", "group", "--groups", "2"], (3, 4, 5), 2)]:
        norm = norm_of(opts)
        what = " ".join(opts)
        with tempfile.TemporaryDirectory() as tmp:
            pshape = (shape[-1],) if norm == "layer" else \
                tuple(shape[1:]) if norm == "rms" else (shape[1],)
            write_inputs(tmp, rng, shape, pshape, np.float64)
            rep = gradcheck(tmp, ["--x", "x.npy", "--gamma", "gamma.npy"] + opts, 0)
            check(rep["problem"]["norm"] == norm and rep["problem"]["groups"] == groups,
                  "%s: report problem %r" % (what, rep["problem"]))
            check(rep["problem"]["channels"] == (None if norm in ("layer", "rms") else shape[1]),
                  "%s: problem.channels %r" % (what, rep["problem"]["channels"]))
            run_both(tmp, opts, "")  # bnorm's dx.npy, dgamma.npy (and invstd.npy)
            given = ["--x", "x.npy", "--gamma", "gamma.npy", "--dy", "dy.npy", "--dx", "dx.npy",
                     "--dgamma", "dgamma.npy"] + opts
            gradcheck(tmp, given, 0)
            x, dy, g = (np.load(os.path.join(tmp, k + ".npy")) for k in ("x", "dy", "gamma"))
            if norm == "rms":  # a Σdx̂ term that RMS norm does not have
                invstd = np.load(os.path.join(tmp, "invstd.npy"))
                dxhat = g * dy
                wrong = np.load(os.path.join(tmp, "dx.npy")) \
                    - invstd * dxhat.mean(axis=(1, 2), keepdims=True)
                np.save(os.path.join(tmp, "wrong_dx.npy"), wrong)
                args = ["--dx", "wrong_dx.npy"]
            elif norm == "layer":  # dγ summed over the normalized axis instead of the rows
                mean = x.mean(axis=1, keepdims=True)
                xhat = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=1, keepdims=True) + 1e-5)
                np.save(os.path.join(tmp, "wrong_dgamma.npy"), (dy * xhat).sum(axis=1))
                args = ["--dgamma", "wrong_dgamma.npy"]
            else:  # the dx of the norm whose sets are per channel only
                other = ["--norm", "instance"] if norm == "group" else []
                bnorm(tmp, ["backward", "--x", "x.npy", "--gamma", "gamma.npy", "--dy", "dy.npy",
                            "--dx", "wrong_dx.npy"] + other)
                args = ["--dx", "wrong_dx.npy"]
            rep = gradcheck(tmp, ["--x", "x.npy", "--gamma", "gamma.npy", "--dy", "dy.npy"]
                            + args + opts, 1)
            check(rep["passed"] is False, "%s: a wrong gradient passed" % what)


if __name__ == "__main__":
    sys.exit(run_tests(globals(), __doc__))
