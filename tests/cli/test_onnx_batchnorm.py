#!/usr/bin/python3
"""ONNX's BatchNormalization node tests, written from the spec, run through bnorm.

Usage (Debian's Python, which has numpy and mpmath; no onnx package is needed):

    /usr/bin/python3 tests/cli/test_onnx_batchnorm.py BNORM [NAME-SUBSTRING ...]

The four BatchNormalization cases of ONNX's backend node-test suite, rebuilt here from
the operator's specification (BatchNormalization-15, https://onnx.ai/onnx/operators/
onnx__BatchNormalization.html) with the same shapes and attributes as the suite:

  test_batchnorm_example                 inference, x (2, 3, 4, 5), epsilon 1e-5
  test_batchnorm_epsilon                 inference, x (2, 3, 4, 5), epsilon 1e-2
  test_batchnorm_example_training_mode   training_mode = 1, momentum 0.9, epsilon 1e-5
  test_batchnorm_epsilon_training_mode   training_mode = 1, momentum 0.9, epsilon 1e-2

Inputs as the suite draws them: X = randn(2, 3, 4, 5), scale, B, input_mean = randn(3),
input_var = rand(3) (positive), all float32, from a fixed numpy seed per case.

The spec's formulas (BatchNormalization-15), evaluated exactly in mpmath (70 digits) and
rounded once to float64 -- "the spec's float64 values":

  training_mode = 0 (inference):
      Y = (X - input_mean) / sqrt(input_var + epsilon) * scale + B
  training_mode = 1:
      current_mean = ReduceMean(X, axis=all_except_channel_index)
      current_var  = ReduceVar(X, axis=all_except_channel_index)
          ("Notice that ReduceVar refers to the population variance, and it equals to
            sum(sqrd(x_i - x_avg)) / N where N is the population size (this formula does
            not use sample size N - 1)")
      running_mean = input_mean * momentum + current_mean * (1 - momentum)
      running_var  = input_var * momentum + current_var * (1 - momentum)
      Y = (X - current_mean) / sqrt(current_var + epsilon) * scale + B
  with momentum = 0.9 (the float64 value of 0.9, as the suite's numpy reference uses).

bnorm runs: inference cases with `forward --mode eval --running-mean input_mean
--running-var input_var`; training cases with `forward --running-mean input_mean
--running-var input_var --momentum 0.1 --running-var-correction 0 --new-running-mean
--new-running-var` (ONNX's momentum m is bnorm's 1 - m; correction 0: the population
variance).  Every case runs twice: with the suite's float32 data (outputs judged at
4 eps(float32)) and with the same values widened to float64 (4 eps(float64)).

Criterion, per output: err = max|got - spec| / max|spec| / eps(dtype) <= 4 (normwise).
bnorm's momentum is float64(0.1), so 1 - M differs from float64(0.9) by 2.8e-17 (0.125
eps(float64)); the gap this makes in the running statistics is printed (it is far below
the tolerance).  As a check of this script's own mpmath code, the same formulas in plain
float64 numpy must agree with it to 8 eps(float64).

Prints `PASS name` / `FAIL name: reason` per test and `N passed, M failed`; exit 1 on a
failure.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
from mpmath import mp, mpf
from mpmath.libmp import to_float

from runner import check, note, run_tests

BNORM = None  # set by run_tests()
TOL = 4.0
EXACT_DPS = 70
SHAPE = (2, 3, 4, 5)
ONNX_MOMENTUM = 0.9


# ---------------------------------------------------------------------------
# The spec's formulas, exactly (mpmath), and in plain float64 numpy
# ---------------------------------------------------------------------------

def _f64(v):
    return to_float(v._mpf_, rnd="n")


def _channels(x):
    """x (N, C, H, W) -> per-channel lists of exact mpf values."""
    cols = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    return [[mpf(float(v)) for v in cols[:, c]] for c in range(cols.shape[1])]


def _unchannels(chans, shape):
    moved = (shape[0], shape[2], shape[3], shape[1])
    a = np.array([[_f64(v) for v in ch] for ch in chans], np.float64).T.reshape(moved)
    return np.ascontiguousarray(np.moveaxis(a, -1, 1))


def spec_exact(x, scale, bias, mean, var, epsilon, training, momentum=ONNX_MOMENTUM,
               bnorm_momentum=None):
    """BatchNormalization-15 outputs in mpmath, rounded to float64:
    {"Y"} for inference, {"Y", "running_mean", "running_var"} for training.
    bnorm_momentum M (a float) replaces the spec's momentum by 1 - M, exactly."""
    with mp.workdps(EXACT_DPS):
        eps = mpf(float(epsilon))
        mom = mpf(float(momentum)) if bnorm_momentum is None else 1 - mpf(bnorm_momentum)
        ys, rms, rvs = [], [], []
        for c, xs in enumerate(_channels(x)):
            s, b = mpf(float(scale[c])), mpf(float(bias[c]))
            im, iv = mpf(float(mean[c])), mpf(float(var[c]))
            if training:
                n = len(xs)
                cm = mp.fsum(xs) / n                          # ReduceMean
                cv = mp.fsum([(v - cm) ** 2 for v in xs]) / n  # ReduceVar (population)
                rms.append(_f64(im * mom + cm * (1 - mom)))
                rvs.append(_f64(iv * mom + cv * (1 - mom)))
                m_use, v_use = cm, cv
            else:
                m_use, v_use = im, iv
            d = mp.sqrt(v_use + eps)
            ys.append([(v - m_use) / d * s + b for v in xs])
        out = {"Y": _unchannels(ys, x.shape)}
        if training:
            out["running_mean"] = np.array(rms)
            out["running_var"] = np.array(rvs)
    return out


def spec_numpy(x, scale, bias, mean, var, epsilon, training, momentum=ONNX_MOMENTUM):
    """The same formulas in plain float64 numpy (as the suite's reference writes them)."""
    x = x.astype(np.float64)
    r = lambda a: np.asarray(a, np.float64).reshape(-1, 1, 1)   # noqa: E731
    if training:
        cm = x.mean(axis=(0, 2, 3))
        cv = x.var(axis=(0, 2, 3))
        return {"Y": r(scale) * (x - r(cm)) / np.sqrt(r(cv) + epsilon) + r(bias),
                "running_mean": np.asarray(mean, np.float64) * momentum + cm * (1 - momentum),
                "running_var": np.asarray(var, np.float64) * momentum + cv * (1 - momentum)}
    return {"Y": r(scale) * (x - r(mean)) / np.sqrt(r(var) + epsilon) + r(bias)}


def normwise(got, ref, dtype):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return float("inf")
    scale = float(np.max(np.abs(ref))) or 1.0
    d = np.abs(got - ref)
    if np.any(np.isnan(d)):
        return float("inf")
    return float(np.max(d)) / scale / float(np.finfo(dtype).eps)


# ---------------------------------------------------------------------------
# The cases
# ---------------------------------------------------------------------------

def inputs(seed):
    """X, scale, B, input_mean, input_var as the node tests draw them (float32)."""
    rs = np.random.RandomState(seed)
    x = rs.randn(*SHAPE).astype(np.float32)
    s = rs.randn(3).astype(np.float32)
    bias = rs.randn(3).astype(np.float32)
    mean = rs.randn(3).astype(np.float32)
    var = rs.rand(3).astype(np.float32)
    return x, s, bias, mean, var


def run_case(seed, epsilon, training):
    x32, s32, b32, m32, v32 = inputs(seed)
    for dtype in (np.float32, np.float64):
        x, s, b, m, v = (a.astype(dtype) for a in (x32, s32, b32, m32, v32))
        spec = spec_exact(x, s, b, m, v, epsilon, training)
        # This script's mpmath code against the same formulas in float64 numpy.
        nv = spec_numpy(x, s, b, m, v, float(epsilon), training)
        for k in spec:
            e = normwise(nv[k], spec[k], np.float64)
            check(e <= 8.0, "self-check: numpy float64 %s differs from the mpmath spec value "
                  "by %.2f eps(float64)" % (k, e))
        with tempfile.TemporaryDirectory(prefix="bnorm-onnx-") as tmp:
            for name, a in (("X", x), ("scale", s), ("B", b), ("input_mean", m),
                            ("input_var", v)):
                np.save(os.path.join(tmp, name + ".npy"), a)
            args = ["forward", "--x", "X.npy", "--gamma", "scale.npy", "--beta", "B.npy",
                    "--running-mean", "input_mean.npy", "--running-var", "input_var.npy",
                    "--eps", epsilon, "--axis", "1", "--y", "Y.npy"]
            outs = {"Y": "Y.npy"}
            if training:
                args += ["--momentum", "0.1", "--running-var-correction", "0",
                         "--new-running-mean", "running_mean.npy",
                         "--new-running-var", "running_var.npy"]
                outs.update(running_mean="running_mean.npy", running_var="running_var.npy")
            else:
                args += ["--mode", "eval"]
            p = subprocess.run([BNORM] + args, cwd=tmp, capture_output=True, text=True)
            check(p.returncode == 0, "bnorm %s: exit %d, stderr %r"
                  % (" ".join(args), p.returncode, p.stderr.strip()))
            errs = []
            for k, path in outs.items():
                got = np.load(os.path.join(tmp, path))
                check(got.dtype == dtype and got.shape == spec[k].shape,
                      "%s: dtype %s shape %s, expected %s %s"
                      % (k, got.dtype, got.shape, np.dtype(dtype), spec[k].shape))
                e = normwise(got, spec[k], dtype)
                errs.append("%s %.2f" % (k, e))
                check(e <= TOL, "%s (%s): %.3g eps from the spec's value > %g eps"
                      % (k, np.dtype(dtype).name, e, TOL))
        line = "%s: %s eps" % (np.dtype(dtype).name, ", ".join(errs))
        if training and dtype == np.float64:
            # What bnorm's momentum float64(0.1) changes against the spec's float64(0.9).
            own = spec_exact(x, s, b, m, v, epsilon, True, bnorm_momentum=0.1)
            gap = max(normwise(own[k], spec[k], np.float64)
                      for k in ("running_mean", "running_var"))
            line += " (momentum 1 - float64(0.1) vs float64(0.9): %.2f eps)" % gap
        note(line)


def test_batchnorm_example():
    run_case(seed=20250, epsilon="1e-5", training=False)


def test_batchnorm_epsilon():
    run_case(seed=20251, epsilon="1e-2", training=False)


def test_batchnorm_example_training_mode():
    run_case(seed=20252, epsilon="1e-5", training=True)


def test_batchnorm_epsilon_training_mode():
    run_case(seed=20253, epsilon="1e-2", training=True)


if __name__ == "__main__":
    sys.exit(run_tests(globals(), __doc__))
