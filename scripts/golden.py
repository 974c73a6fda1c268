#!/usr/bin/python3
"""Exact (arbitrary-precision) reference for bnorm's batch norm and its family.

This script is the project's ground truth.  It evaluates batch normalization
(and layer, rms, instance and group norm: see "The normalization family" below)
forward and backward in mpmath at EXACT_DPS decimal digits (far beyond float64),
then rounds each final result once to the nearest float64.  The stored outputs
are therefore the correctly rounded float64 values of the mathematically exact
results (barring a tie within ~1e-70 relative, which does not occur in practice).

Usage (always with Debian's Python, which has numpy and mpmath):

    /usr/bin/python3 scripts/golden.py --out tests/data/golden        # committed set, seed 0
    /usr/bin/python3 scripts/golden.py --out /tmp/g --seed 123        # same classes, new data
    /usr/bin/python3 scripts/golden.py --selfcheck                    # verify the reference itself

--out writes the batch-norm cases, DIR/modes/, DIR/family/ (the normalization family) and
DIR/half/ (float16 and bfloat16 cases, rounded once from the exact values: golden_half.py).
--selfcheck compares the family against naive float64 numpy, mpmath finite differences
and, when torch is installed, PyTorch float64 (F.layer_norm, F.group_norm,
F.instance_norm, RMSNorm in torch ops, autograd) to 1e-12.

Semantics (x has rank >= 2; `axis` is the channel axis, negative counts from the
end; statistics of channel c run over every other axis, m elements each):

    mean   = (1/m) sum x
    var    = (1/m) sum (x - mean)^2                  (biased)
    invstd = 1 / sqrt(var + eps)
    xhat   = (x - mean) * invstd
    y      = gamma * xhat + beta

Backward, gradients of f = sum(dy * y):

    dbeta  = sum dy
    dgamma = sum dy * xhat
    dxhat  = gamma * dy
    dx     = (invstd / m) * (m * dxhat - sum dxhat - xhat * sum(dxhat * xhat))

Inputs are float32 or float64 arrays; every element converts exactly to mpf.
eps is the float64 value of its decimal string (float(eps_string)), also
converted exactly, for float32 and float64 cases alike.

Output layout: one folder per case, DIR/<name>/, containing
    x.npy gamma.npy beta.npy dy.npy             inputs, in the case's dtype
    y.npy mean.npy invstd.npy                   exact forward outputs, float64
    dx.npy dgamma.npy dbeta.npy                 exact backward outputs, float64
    case.json                                   name, class, shape, axis, eps
                                                (decimal string), dtype, seed, notes
y and dx have x's shape; the other outputs have length C.

Inference mode and running statistics (issue 25), in DIR/modes/<name>/:

    eval (inference) mode, with the running statistics rm, rv (C values each):
    invstd = 1 / sqrt(rv + eps)                     (requires rv >= 0, rv + eps > 0)
    xhat   = (x - rm) * invstd
    y      = gamma * xhat + beta                    (any m >= 1: a batch of one is fine)
    dx     = gamma * dy * invstd                    (rm, rv are constants)
    dgamma = sum dy * xhat
    dbeta  = sum dy

    training mode with the running-statistics update (PyTorch's meaning of momentum M;
    correction c is 1 for PyTorch's unbiased batch variance, 0 for ONNX's population
    variance; ONNX's momentum m' is M = 1 - m'):
    new_running_mean = (1 - M) * rm + M * mean
    new_running_var  = (1 - M) * rv + M * var * m / (m - c)       (var biased, m > c)
    with y, mean, invstd as in training mode above.

M is the float64 value of its decimal string, like eps, converted exactly; 1 - M is
exact in mpmath.  A mode case folder holds
    x.npy gamma.npy beta.npy running_mean.npy running_var.npy     inputs, case dtype
    dy.npy                                                         (eval cases only)
    eval:  y.npy dx.npy dgamma.npy dbeta.npy                       exact, float64
    train: y.npy mean.npy invstd.npy new_running_mean.npy new_running_var.npy
    case.json      as above, plus "mode" ("eval" or "train"), "momentum" (decimal string,
                   or null: the CLI's default 0.1, option left out), "correction" (0, 1,
                   or null: the default 1, option left out) and "outputs" (the list of
                   output names the case holds).
The modes/ subfolder keeps these cases apart from the training-mode set, whose readers
(tests/test_golden.cpp, tests/cli/test_golden_cli.py) take every DIR/<name>/case.json.

The normalization family (issue 24): layer, rms, instance and group norm, in
DIR/family/<name>/.  Each is the batch-norm computation above over other sets of
elements, with an affine step indexed differently (ONNX LayerNormalization-17,
RMSNormalization-23, InstanceNormalization-22, GroupNormalization-21; PyTorch's
F.layer_norm, F.instance_norm, F.group_norm):

    norm      one set (m elements) per        axis a (default)      gamma, beta   mean, invstd
    layer     index of x.shape[:a], over      first normalized      x.shape[a:]   x.shape[:a]
              the axes a .. rank-1            axis (-1)                           + (1,)*(rank-a)
    rms       as layer                        as layer (-1)         gamma only    invstd only
    instance  (sample, channel), over the     channel axis (1),     (C)           (N, C)
              other axes                      never 0
    group     (sample, group): the C/G        channel axis (1),     (C), one per  (N, G)
              channels of the group and       never 0; G = groups   channel
              the other axes                  divides C

Within a set (gamma_i, beta_i: the entries of element i, which may differ within a
set for layer and group):

    layer, instance, group:                  rms:
    mean   = (1/m) sum x                     ms     = (1/m) sum x^2
    var    = (1/m) sum (x - mean)^2          invstd = 1 / sqrt(ms + eps)
    invstd = 1 / sqrt(var + eps)             xhat   = x * invstd
    xhat   = (x - mean) * invstd             y      = gamma * xhat
    y      = gamma * xhat + beta

Backward, gradients of f = sum(dy * y), per set (derived in family_set_backward):

    dxhat  = gamma * dy
    dx     = invstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))  (layer, instance,
                                                                         group)
    dx     = invstd * (dxhat - xhat * mean(dxhat * xhat))       (rms: no mean(dxhat) term)
    dgamma = sum of dy * xhat over the elements sharing a gamma entry: layer, rms over the
             leading axes x.shape[:a]; instance, group over the samples and the other axes
    dbeta  = sum of dy, likewise (not for rms)

A set of one element (m = 1), G not dividing C, channel axis 0 (instance, group) and a
gamma/beta of the wrong size are refused (ValueError); a flat gamma of the right size is
accepted for layer and rms.  A family case folder holds
    x.npy gamma.npy beta.npy dy.npy          inputs, in the case's dtype (no beta for rms)
    y.npy mean.npy invstd.npy                exact forward outputs, float64 (no mean for rms)
    dx.npy dgamma.npy dbeta.npy              exact backward outputs, float64 (no dbeta for rms)
    case.json      name, norm, class, shape, axis (as the CLI takes it), groups (null
                   unless group), eps (decimal string), dtype, gamma_shape, stat_shape
                   (of mean and invstd), m, inputs and outputs (the file names present),
                   cli_options (["--norm", N, "--axis", A, ("--groups", G,) "--eps", E]:
                   the options of bnorm forward/backward --norm), seed, notes.
y and dx have x's shape, dgamma and dbeta gamma's, mean and invstd stat_shape.
Classes, each norm, float32 and float64: baseline ((N, D), (N, L, D), NCHW, NHWC,
(N, C, L), several axes; group also with G = 1 and G = C), offset_f64 (a row, a group
or a sample's channel at 1e6 + 1e-3*normal), offset_f32 (float32 1e3 + normal),
constant (constant sets, eps > 0; for rms also an all-zero row), two (m = 2),
cauchy (standard Cauchy), eps_dominant (variance, or for rms mean(x^2), far below
eps), dy_cancel (gamma*dy = a + b*xhat per set, a = 0 for rms, plus noise: dx is
~eps/var + noise of |dy|).  The family/ subfolder keeps these apart from the
batch-norm readers, like modes/.

Random data: each case draws from its own generator, seeded from
(--seed, crc32(case name)), so a case's data depend only on the seed and its
name, never on the order of the cases.  The "seed" in case.json is --seed.
The same seed always gives byte-identical files.
"""

import argparse
import json
import os
import sys
import time
import zlib

from fractions import Fraction

import numpy as np
import mpmath
from mpmath import mp, mpf
from mpmath.libmp import to_float

EXACT_DPS = 70          # working precision of the reference (decimal digits)
DEFAULT_SEED = 0        # seed of the committed golden set


# ---------------------------------------------------------------------------
# Exact reference
# ---------------------------------------------------------------------------

def _mpf_exact(v):
    """Exact mpf of a float32/float64 value (float() widening is exact)."""
    return mpf(float(v))


def _round_f64(v):
    """Round an mpf to the nearest float64 (ties to even), independent of context."""
    f = to_float(v._mpf_, rnd='n')
    # Double rounding could occur for subnormal results; they never arise here.
    assert f == 0.0 or abs(f) >= sys.float_info.min, "subnormal result"
    return f


def _channel_axis(ndim, axis):
    if ndim < 2:
        raise ValueError("x must have rank >= 2")
    if not -ndim <= axis < ndim:
        raise ValueError("axis %d out of range for rank %d" % (axis, ndim))
    return axis % ndim


def _split_channels(a, axis):
    """List of per-channel lists of exact mpf values (channel axis `axis`)."""
    cols = np.moveaxis(np.asarray(a), axis, -1).reshape(-1, a.shape[axis])
    return [[_mpf_exact(v) for v in cols[:, c]] for c in range(cols.shape[1])]


def _join_channels(channels, shape, axis):
    """Inverse of _split_channels: rounds every mpf to float64."""
    moved = list(shape)
    moved.append(moved.pop(axis))           # shape with the channel axis last
    out = np.array([[_round_f64(v) for v in ch] for ch in channels],
                   dtype=np.float64).T       # (m, C)
    return np.ascontiguousarray(np.moveaxis(out.reshape(moved), -1, axis))


def channel_forward(xs, g, b, eps):
    """Forward pass of one channel, all in mpf at the current precision.

    xs: list of mpf, g, b, eps: mpf.  Returns (mean, var, invstd, xhat, y)."""
    m = len(xs)
    mean = mp.fsum(xs) / m
    d = [v - mean for v in xs]
    var = mp.fdot(d, d) / m
    invstd = 1 / mp.sqrt(var + eps)
    xhat = [di * invstd for di in d]
    y = [g * xh + b for xh in xhat]
    return mean, var, invstd, xhat, y


def _fraction(v):
    """The exact rational value of an mpf (a binary float: sign, mantissa, exponent)."""
    sign, man, exp, _ = mpf(v)._mpf_
    q = Fraction(-man if sign else man)
    return q * 2 ** exp if exp >= 0 else q / 2 ** -exp


def _rational_backward(xs, dxhats, eps, rms):
    """t_j = dx_j / invstd, exactly, as Fractions, and s = sum dxhat*(x - mean).

    t_j = dxhat_j - mean(dxhat) - xhat_j mean(dxhat xhat) (rms: no mean(dxhat) term)
    is rational in the data, because xhat_j xhat_i = d_j d_i / (var + eps) with
    d = x - mean (rms: d = x, var = mean(x^2)).  The mpf formula rounds the mean and
    invstd first, so a t that cancels exactly (dy a constant: t = 0) would come out as
    ~2^-prec of its terms instead of 0."""
    m = len(xs)
    x = [_fraction(v) for v in xs]
    a = [_fraction(v) for v in dxhats]
    mean = Fraction(0) if rms else sum(x) / m
    d = [v - mean for v in x]
    s2 = sum(v * v for v in d) / m + _fraction(eps)
    if s2 == 0:
        raise ValueError("var + eps = 0 in a set")
    mean_a = Fraction(0) if rms else sum(a) / m
    slope = sum(ai * di for ai, di in zip(a, d)) / m / s2
    return [ai - mean_a - di * slope for ai, di in zip(a, d)], d


def _mpf_of(q):
    return mpf(q.numerator) / q.denominator


def channel_backward(xs, g, dys, eps):
    """Backward pass of one channel.  Returns (dx, dgamma, dbeta).

    dx = invstd * (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dxhat = g dy, the
    bracket exact in rationals (_rational_backward), times invstd in mpf;
    dgamma = sum dy xhat = invstd * sum dy (x - mean), the sum exact."""
    _, _, invstd, _, _ = channel_forward(xs, g, mpf(0), eps)
    dbeta = mp.fsum(dys)
    t, d = _rational_backward(xs, [g * v for v in dys], eps, False)
    dgamma = invstd * _mpf_of(sum(_fraction(v) * di for v, di in zip(dys, d)))
    dx = [invstd * _mpf_of(tj) for tj in t]
    return dx, dgamma, dbeta


def exact_forward(x, gamma, beta, eps, axis):
    """Exact batch-norm forward, rounded to float64.

    x: float32/float64 array of rank >= 2; gamma, beta: length C; eps: float
    or decimal string (taken as float64).  Returns (y, mean, invstd)."""
    x = np.asarray(x)
    axis = _channel_axis(x.ndim, axis)
    eps_m = _mpf_exact(float(eps))
    with mp.workdps(EXACT_DPS):
        ys, means, invstds = [], [], []
        for xs, g, b in zip(_split_channels(x, axis), gamma, beta):
            mean, _, invstd, _, y = channel_forward(
                xs, _mpf_exact(g), _mpf_exact(b), eps_m)
            ys.append(y)
            means.append(_round_f64(mean))
            invstds.append(_round_f64(invstd))
        y = _join_channels(ys, x.shape, axis)
    return y, np.array(means, np.float64), np.array(invstds, np.float64)


def exact_backward(x, gamma, dy, eps, axis):
    """Exact batch-norm backward (gradients of sum(dy * y)), rounded to float64.

    Returns (dx, dgamma, dbeta)."""
    x = np.asarray(x)
    axis = _channel_axis(x.ndim, axis)
    assert np.shape(dy) == x.shape
    eps_m = _mpf_exact(float(eps))
    with mp.workdps(EXACT_DPS):
        dxs, dgammas, dbetas = [], [], []
        for xs, g, dys in zip(_split_channels(x, axis), gamma,
                              _split_channels(np.asarray(dy), axis)):
            dx, dgamma, dbeta = channel_backward(xs, _mpf_exact(g), dys, eps_m)
            dxs.append(dx)
            dgammas.append(_round_f64(dgamma))
            dbetas.append(_round_f64(dbeta))
        dx = _join_channels(dxs, x.shape, axis)
    return dx, np.array(dgammas, np.float64), np.array(dbetas, np.float64)


# ---------------------------------------------------------------------------
# Exact reference: inference mode and the running-statistics update
# ---------------------------------------------------------------------------

def _running_channels(rmean, rvar):
    """Exact mpf running statistics; checks rv >= 0 (the definition's domain)."""
    rm = [_mpf_exact(v) for v in np.asarray(rmean).ravel()]
    rv = [_mpf_exact(v) for v in np.asarray(rvar).ravel()]
    for c, v in enumerate(rv):
        if not v >= 0:
            raise ValueError("running_var[%d] = %s is not >= 0" % (c, v))
    return rm, rv


def channel_forward_eval(xs, g, b, rm, rv, eps):
    """Inference-mode forward of one channel in mpf: (invstd, xhat, y)."""
    if not rv + eps > 0:
        raise ValueError("running_var + eps = 0")
    invstd = 1 / mp.sqrt(rv + eps)
    xhat = [(v - rm) * invstd for v in xs]
    y = [g * xh + b for xh in xhat]
    return invstd, xhat, y


def channel_backward_eval(xs, g, dys, rm, rv, eps):
    """Inference-mode backward of one channel in mpf: (dx, dgamma, dbeta), the running
    statistics being constants."""
    invstd, xhat, _ = channel_forward_eval(xs, g, mpf(0), rm, rv, eps)
    dx = [g * d * invstd for d in dys]
    return dx, mp.fdot(dys, xhat), mp.fsum(dys)


def exact_forward_eval(x, gamma, beta, rmean, rvar, eps, axis):
    """Exact inference-mode forward y = gamma*(x - rm)/sqrt(rv + eps) + beta, rounded to
    float64.  Any m >= 1."""
    x = np.asarray(x)
    axis = _channel_axis(x.ndim, axis)
    eps_m = _mpf_exact(float(eps))
    with mp.workdps(EXACT_DPS):
        rm, rv = _running_channels(rmean, rvar)
        ys = [channel_forward_eval(xs, _mpf_exact(g), _mpf_exact(b), r, v, eps_m)[2]
              for xs, g, b, r, v in zip(_split_channels(x, axis), gamma, beta, rm, rv)]
        return _join_channels(ys, x.shape, axis)


def exact_backward_eval(x, gamma, dy, rmean, rvar, eps, axis):
    """Exact inference-mode backward (gradients of sum(dy * y) with rm, rv constant),
    rounded to float64.  Returns (dx, dgamma, dbeta)."""
    x = np.asarray(x)
    axis = _channel_axis(x.ndim, axis)
    assert np.shape(dy) == x.shape
    eps_m = _mpf_exact(float(eps))
    with mp.workdps(EXACT_DPS):
        rm, rv = _running_channels(rmean, rvar)
        dxs, dgammas, dbetas = [], [], []
        for xs, g, dys, r, v in zip(_split_channels(x, axis), gamma,
                                    _split_channels(np.asarray(dy), axis), rm, rv):
            dx, dgamma, dbeta = channel_backward_eval(xs, _mpf_exact(g), dys, r, v, eps_m)
            dxs.append(dx)
            dgammas.append(_round_f64(dgamma))
            dbetas.append(_round_f64(dbeta))
        dx = _join_channels(dxs, x.shape, axis)
    return dx, np.array(dgammas, np.float64), np.array(dbetas, np.float64)


def exact_running_update(x, rmean, rvar, momentum, correction, axis):
    """Exact running-statistics update with PyTorch's meaning of momentum M, rounded to
    float64:
        new_mean = (1 - M)*rm + M*mean
        new_var  = (1 - M)*rv + M*var*m/(m - correction)
    mean and var (biased, sum (x - mean)^2 / m) are the batch statistics of each channel.
    momentum is a float or decimal string (taken as float64), 0 <= M <= 1; correction
    is 0 or 1 and m > correction.  Returns (new_mean, new_var)."""
    x = np.asarray(x)
    axis = _channel_axis(x.ndim, axis)
    M_f = float(momentum)
    if not 0.0 <= M_f <= 1.0:
        raise ValueError("momentum %r outside [0, 1]" % momentum)
    if correction not in (0, 1):
        raise ValueError("correction must be 0 or 1")
    with mp.workdps(EXACT_DPS):
        M = _mpf_exact(M_f)
        rm, rv = _running_channels(rmean, rvar)
        new_mean, new_var = [], []
        for xs, r, v in zip(_split_channels(x, axis), rm, rv):
            m = len(xs)
            if m <= correction:
                raise ValueError("m = %d <= correction %d" % (m, correction))
            mean = mp.fsum(xs) / m
            d = [t - mean for t in xs]
            var = mp.fdot(d, d) / m                     # biased (population) variance
            new_mean.append(_round_f64((1 - M) * r + M * mean))
            new_var.append(_round_f64((1 - M) * v + M * var * m / (m - correction)))
    return np.array(new_mean, np.float64), np.array(new_var, np.float64)


# ---------------------------------------------------------------------------
# Exact reference: the normalization family (issue 24)
# ---------------------------------------------------------------------------
#
# Every norm of the family is batch norm over other sets of elements: the statistics
# of a set, then an affine step whose gamma/beta index is not the set.  family_layout
# gives, for each element of x, the set it belongs to and its gamma/beta entry; the
# exact per-set forward and backward below are shared by the four norms.

NORMS = ("layer", "rms", "instance", "group")


def family_default_axis(norm):
    return -1 if norm in ("layer", "rms") else 1


def family_layout(norm, shape, axis=None, groups=None):
    """Sets and affine indexing of `norm` on an array of shape `shape`.

    Returns a dict with
        set_id, param_id   int arrays of x's shape: the set of each element (flat index
                           into stat_shape) and its gamma/beta entry (flat index into
                           param_shape);
        n_sets, m          number of sets and elements per set;
        stat_shape         shape of mean and invstd;
        param_shape        shape of gamma, beta, dgamma, dbeta;
        axis               the axis normalized to 0 .. rank-1.
    layer, rms: axis a (default -1); one set per index of shape[:a], over shape[a:];
        gamma of shape shape[a:]; statistics of shape shape[:a] + (1,)*(rank - a).
    instance: channel axis a (default 1, never 0); one set per (sample, channel);
        gamma (C,); statistics (N, C).
    group: channel axis a (default 1, never 0), G = groups dividing C; one set per
        (sample, group), group g holding channels g*C/G .. (g+1)*C/G - 1; gamma (C,);
        statistics (N, G).
    Refuses (ValueError) sets of one element, G not dividing C, channel axis 0."""
    if norm not in NORMS:
        raise ValueError("norm %r is not one of %s" % (norm, ", ".join(NORMS)))
    shape = tuple(int(n) for n in shape)
    nd = len(shape)
    if axis is None:
        axis = family_default_axis(norm)
    if nd < (1 if norm in ("layer", "rms") else 2):
        raise ValueError("%s norm: x of rank %d is too small" % (norm, nd))
    if not -nd <= axis < nd:
        raise ValueError("axis %d out of range for rank %d" % (axis, nd))
    a = axis % nd
    idx = np.indices(shape)
    if norm in ("layer", "rms"):
        if groups is not None:
            raise ValueError("%s norm takes no groups" % norm)
        lead, tail = shape[:a], shape[a:]
        set_id = (np.ravel_multi_index(tuple(idx[:a]), lead) if a > 0
                  else np.zeros(shape, np.int64))
        param_id = np.ravel_multi_index(tuple(idx[a:]), tail)
        n_sets = int(np.prod(lead, dtype=np.int64))
        stat_shape = lead + (1,) * (nd - a)
        param_shape = tail
    else:
        if a == 0:
            raise ValueError("%s norm: the channel axis cannot be 0 (the sample axis)"
                             % norm)
        N, C = shape[0], shape[a]
        if norm == "instance":
            if groups is not None:
                raise ValueError("instance norm takes no groups")
            G = C
        else:
            if groups is None or groups < 1 or C % groups != 0:
                raise ValueError("group norm: groups %r does not divide C = %d"
                                 % (groups, C))
            G = groups
        set_id = idx[0] * G + idx[a] // (C // G)
        param_id = idx[a]
        n_sets = N * G
        stat_shape = (N, G)
        param_shape = (C,)
    size = int(np.prod(shape, dtype=np.int64))
    if n_sets == 0 or size == 0:
        raise ValueError("%s norm: empty x" % norm)
    m = size // n_sets
    if m < 2:
        raise ValueError("%s norm with axis %d: sets of m = %d element (at least 2 needed)"
                         % (norm, axis, m))
    return dict(set_id=np.asarray(set_id, np.int64), param_id=np.asarray(param_id, np.int64),
                n_sets=n_sets, m=m, stat_shape=stat_shape, param_shape=param_shape, axis=a)


def _family_sets(lay):
    """Flat indices (C order) of the elements of each set: an (n_sets, m) int array."""
    order = np.argsort(lay["set_id"].ravel(), kind="stable")
    return order.reshape(lay["n_sets"], lay["m"])


def family_set_forward(xs, gs, bs, eps, rms):
    """Forward pass of one set, in mpf at the current precision.

    xs: the set's elements; gs, bs: each element's gamma and beta (bs unused for rms).
    layer, instance, group:                      rms:
        mean   = (1/m) sum x                        ms     = (1/m) sum x^2
        var    = (1/m) sum (x - mean)^2             invstd = 1 / sqrt(ms + eps)
        invstd = 1 / sqrt(var + eps)                xhat   = x * invstd
        xhat   = (x - mean) * invstd                y      = gamma * xhat
        y      = gamma * xhat + beta
    Returns (mean, invstd, xhat, y); mean is None for rms."""
    m = len(xs)
    if rms:
        mean = None
        d = list(xs)
    else:
        mean = mp.fsum(xs) / m
        d = [v - mean for v in xs]
    s = mp.fdot(d, d) / m + eps                  # var + eps, or ms + eps
    if not s > 0:
        raise ValueError("%s + eps = 0 in a set" % ("mean(x^2)" if rms else "var"))
    invstd = 1 / mp.sqrt(s)
    xhat = [v * invstd for v in d]
    if rms:
        y = [g * xh for g, xh in zip(gs, xhat)]
    else:
        y = [g * xh + b for g, xh, b in zip(gs, xhat, bs)]
    return mean, invstd, xhat, y


def family_set_backward(xs, gs, dys, eps, rms):
    """Backward pass of one set (gradients of f = sum dy * y).  Returns (dx, xhat, d,
    invstd), d the exact deviations x - mean (rms: x) as Fractions.

    Derivation (m elements, r = invstd, dxhat_i = gamma_i * dy_i, gamma_i the entry of
    element i, which may differ within a set):
      layer, instance, group: xhat_i = (x_i - mean) r with r = (var + eps)^(-1/2).
        d mean/d x_j = 1/m;  d var/d x_j = (2/m)(x_j - mean) (the sum of x - mean is 0),
        so d r/d x_j = -r^3 (x_j - mean)/m = -r^2 xhat_j/m and
        d xhat_i/d x_j = r (delta_ij - 1/m) + (x_i - mean) d r/d x_j
                       = r (delta_ij - 1/m - xhat_i xhat_j / m).
        dx_j = sum_i dxhat_i d xhat_i/d x_j
             = r (dxhat_j - mean(dxhat) - xhat_j mean(dxhat xhat)).
      rms: xhat_i = x_i r with r = (ms + eps)^(-1/2), ms = (1/m) sum x^2.
        d r/d x_j = -r^3 x_j/m, so d xhat_i/d x_j = r delta_ij - x_i r^3 x_j/m
                  = r (delta_ij - xhat_i xhat_j / m), and
        dx_j = r (dxhat_j - xhat_j mean(dxhat xhat))      (no mean(dxhat) term: no mean
                                                           is subtracted in the forward).
    dgamma and dbeta are sums over the elements sharing an entry (family_backward_mp)."""
    _, invstd, xhat, _ = family_set_forward(xs, gs, gs, eps, rms)
    # the bracket exact in rationals (_rational_backward), then times invstd
    t, d = _rational_backward(xs, [g * d for g, d in zip(gs, dys)], eps, rms)
    dx = [invstd * _mpf_of(tj) for tj in t]
    return dx, xhat, d, invstd


def family_forward_mp(xf, gf, bf, sets, param_flat, eps, rms):
    """Forward over all sets in mpf.  xf: flat list of x; gf, bf: flat lists of gamma,
    beta (bf None for rms); sets: (n_sets, m) flat indices; param_flat: each element's
    gamma entry.  Returns (y flat list, means, invstds) (means None for rms)."""
    y = [None] * len(xf)
    means, invstds = [], []
    for idx in sets:
        gs = [gf[param_flat[i]] for i in idx]
        bs = None if rms else [bf[param_flat[i]] for i in idx]
        mean, invstd, _, ys = family_set_forward([xf[i] for i in idx], gs, bs, eps, rms)
        for i, v in zip(idx, ys):
            y[i] = v
        means.append(mean)
        invstds.append(invstd)
    return y, (None if rms else means), invstds


def family_backward_mp(xf, gf, dyf, sets, param_flat, n_params, eps, rms):
    """Backward over all sets in mpf.  Returns (dx flat list, dgamma, dbeta) with
        dgamma_p = sum over the elements i with entry p of dy_i * xhat_i
        dbeta_p  = sum over the elements i with entry p of dy_i        (None for rms)
    (layer, rms: p runs over x.shape[axis:] and the sum over the leading axes;
    instance, group: p is the channel and the sum runs over samples and spatial axes)."""
    dx = [None] * len(xf)
    gparts = [[] for _ in range(n_params)]
    bparts = [[] for _ in range(n_params)]
    for idx in sets:
        gs = [gf[param_flat[i]] for i in idx]
        dys = [dyf[i] for i in idx]
        dxs, _, dev, invstd = family_set_backward([xf[i] for i in idx], gs, dys, eps, rms)
        # the set's share of dgamma_p, invstd * sum dy (x - mean), the sum exact
        share = {}
        for i, v, dv, d in zip(idx, dxs, dev, dys):
            dx[i] = v
            p = param_flat[i]
            share[p] = share.get(p, Fraction(0)) + _fraction(d) * dv
            bparts[p].append(d)
        for p, q in share.items():
            gparts[p].append(invstd * _mpf_of(q))
    dgamma = [mp.fsum(t) for t in gparts]
    dbeta = None if rms else [mp.fsum(t) for t in bparts]
    return dx, dgamma, dbeta


def _family_param(v, lay, what):
    v = np.asarray(v)
    n = int(np.prod(lay["param_shape"], dtype=np.int64))
    if v.size != n or (v.ndim > 1 and v.shape != tuple(lay["param_shape"])):
        raise ValueError("%s of shape %s, expected %s (or a flat vector of %d)"
                         % (what, v.shape, lay["param_shape"], n))
    return [_mpf_exact(t) for t in v.ravel()]


def exact_family_forward(norm, x, gamma, beta, eps, axis=None, groups=None):
    """Exact forward of `norm` (layer, rms, instance, group), rounded to float64.

    gamma, beta: of the norm's parameter shape (a flat vector of the same size is
    accepted); beta is ignored for rms (pass None).  Returns a dict with y (x's shape),
    invstd and, except for rms, mean (of the statistics shape, see family_layout)."""
    x = np.asarray(x)
    lay = family_layout(norm, x.shape, axis, groups)
    rms = norm == "rms"
    sets, pflat = _family_sets(lay), lay["param_id"].ravel()
    with mp.workdps(EXACT_DPS):
        eps_m = _mpf_exact(float(eps))
        xf = [_mpf_exact(v) for v in x.ravel()]
        gf = _family_param(gamma, lay, "gamma")
        bf = None if rms else _family_param(beta, lay, "beta")
        y, means, invstds = family_forward_mp(xf, gf, bf, sets, pflat, eps_m, rms)
        out = dict(y=np.array([_round_f64(v) for v in y], np.float64).reshape(x.shape))
        if not rms:
            out["mean"] = np.array([_round_f64(v) for v in means],
                                   np.float64).reshape(lay["stat_shape"])
        out["invstd"] = np.array([_round_f64(v) for v in invstds],
                                 np.float64).reshape(lay["stat_shape"])
    return out


def exact_family_backward(norm, x, gamma, dy, eps, axis=None, groups=None):
    """Exact backward of `norm` (gradients of sum(dy * y)), rounded to float64.

    Returns a dict with dx (x's shape), dgamma and, except for rms, dbeta (of the
    parameter shape)."""
    x = np.asarray(x)
    assert np.shape(dy) == x.shape
    lay = family_layout(norm, x.shape, axis, groups)
    rms = norm == "rms"
    sets, pflat = _family_sets(lay), lay["param_id"].ravel()
    n_params = int(np.prod(lay["param_shape"], dtype=np.int64))
    with mp.workdps(EXACT_DPS):
        eps_m = _mpf_exact(float(eps))
        xf = [_mpf_exact(v) for v in x.ravel()]
        dyf = [_mpf_exact(v) for v in np.asarray(dy).ravel()]
        gf = _family_param(gamma, lay, "gamma")
        dx, dgamma, dbeta = family_backward_mp(xf, gf, dyf, sets, pflat, n_params,
                                               eps_m, rms)
        pshape = lay["param_shape"]
        out = dict(dx=np.array([_round_f64(v) for v in dx], np.float64).reshape(x.shape),
                   dgamma=np.array([_round_f64(v) for v in dgamma],
                                   np.float64).reshape(pshape))
        if not rms:
            out["dbeta"] = np.array([_round_f64(v) for v in dbeta],
                                    np.float64).reshape(pshape)
    return out


# ---------------------------------------------------------------------------
# Case generation
# ---------------------------------------------------------------------------

DTYPES = {"f32": np.float32, "f64": np.float64}

# Layout letters: n = batch, c = channel, l/h/w = spatial.  The channel axis
# of a case is the position of 'c' (given explicitly as `axis`, which may be
# negative, so the name records the axis exactly as the tool receives it).


class Case:
    def __init__(self, cls, layout, dims, axis, dtype, eps="1e-05",
                 tags=(), notes="", **params):
        assert len(layout) == len(dims)
        self.cls, self.layout, self.dims = cls, layout, tuple(dims)
        self.axis, self.dtype, self.eps = axis, dtype, eps
        self.tags, self.notes, self.params = tuple(tags), notes, params
        assert layout[axis] == "c", "axis must point at the 'c' dimension"
        dim_str = "".join("%s%d" % (k, n) for k, n in zip(layout, dims))
        eps_str = ("eps0" if float(eps) == 0.0
                   else "eps" + ("%.0e" % float(eps)).replace("e-0", "e-"))
        self.name = "_".join([dim_str, "axis%d" % axis, eps_str, dtype]
                             + list(self.tags))

    @property
    def shape(self):
        return self.dims

    @property
    def C(self):
        return self.dims[self.axis]


def case_list():
    """The committed set of cases (names do not depend on the seed)."""
    C = Case
    cases = [
        # 1. Well-conditioned random normal data, several layouts.
        C("baseline", "nc", (32, 4), 1, "f64", notes="random normal data, (N, C)"),
        C("baseline", "nc", (32, 4), 1, "f32", notes="random normal data, (N, C)"),
        C("baseline", "ncl", (8, 3, 16), 1, "f64", gamma="zero_neg",
          notes="(N, C, L); gamma has a zero and a negative entry"),
        C("baseline", "nchw", (4, 3, 5, 5), 1, "f32", notes="NCHW"),
        C("baseline", "nhwc", (4, 5, 5, 3), -1, "f64", notes="NHWC, axis -1"),
        C("baseline", "nhwc", (2, 6, 6, 8), -1, "f32", gamma="zero_neg",
          notes="NHWC, axis -1; gamma has a zero and a negative entry"),
        C("baseline", "cn", (5, 40), 0, "f64", notes="2-D array with channel axis 0"),
        C("baseline", "nlc", (8, 10, 4), -1, "f32",
          notes="3-D array with channel axis -1 (last)"),
        C("baseline", "nchw", (2, 3, 4, 5), -3, "f64",
          notes="NCHW addressed with negative axis -3"),
        C("baseline", "nchw", (8, 4, 9, 9), 1, "f32",
          notes="larger NCHW, m = 648 per channel"),
        # 7. eps sweep on otherwise well-conditioned data.
        C("baseline", "nc", (64, 3), 1, "f64", eps="1e-08",
          notes="random normal data, small eps"),
        C("baseline", "nchw", (4, 3, 6, 6), 1, "f32", eps="1e-03",
          notes="random normal data, large eps"),
        # 2. float64 channel with mean 1e8 and spread 1e-2, next to normal ones.
        C("offset_f64", "nc", (64, 3), 1, "f64", tags=["offset1e8"],
          offset=1e8, spread=1e-2, offset_channels=[1],
          notes="channel 1 is 1e8 + 1e-2*normal; others normal"),
        C("offset_f64", "nchw", (4, 3, 8, 8), 1, "f64", eps="1e-08",
          tags=["offset1e8"], offset=1e8, spread=1e-2, offset_channels=[0, 2],
          notes="channels 0 and 2 are 1e8 + 1e-2*normal; eps 1e-8"),
        C("offset_f64", "nhwc", (4, 6, 6, 4), -1, "f64", tags=["offset1e8"],
          offset=1e8, spread=1e-2, offset_channels=[3], gamma="zero_neg",
          notes="NHWC; channel 3 is 1e8 + 1e-2*normal"),
        # 3. float32 data offset by 1e4.
        C("offset_f32", "nc", (64, 4), 1, "f32", tags=["offset1e4"],
          offset=1e4, spread=1.0, offset_channels="all",
          notes="all channels 1e4 + normal, rounded to float32"),
        C("offset_f32", "nchw", (4, 3, 8, 8), 1, "f32", tags=["offset1e4"],
          offset=1e4, spread=1.0, offset_channels="all",
          notes="NCHW, all channels 1e4 + normal"),
        C("offset_f32", "nhwc", (4, 8, 8, 3), -1, "f32", eps="1e-03",
          tags=["offset1e4"], offset=1e4, spread=1.0, offset_channels="all",
          notes="NHWC, all channels 1e4 + normal, eps 1e-3"),
        C("offset_f32", "nhwc", (8, 9, 9, 4), -1, "f32", tags=["offset1e4"],
          offset=1e4, spread=1.0, offset_channels="all",
          notes="larger NHWC (m = 648), all channels 1e4 + normal"),
        # 4. Batch of two (m = 2).
        C("batch2", "nc", (2, 8), 1, "f64", notes="m = 2"),
        C("batch2", "nc", (2, 8), 1, "f32", eps="1e-08", notes="m = 2, eps 1e-8"),
        C("batch2", "nchw", (2, 4, 1, 1), 1, "f64", notes="NCHW with H = W = 1, m = 2"),
        C("batch2", "nchw", (2, 4, 1, 1), 1, "f32", eps="1e-03",
          notes="NCHW with H = W = 1, m = 2, eps 1e-3"),
        # 5. A constant channel (var = 0) next to normal channels.
        C("constant_channel", "nc", (16, 4), 1, "f64", tags=["const"],
          constant_channels=[2], notes="channel 2 constant (var = 0)"),
        C("constant_channel", "nc", (16, 4), 1, "f32", eps="1e-08", tags=["const"],
          constant_channels=[0], notes="channel 0 constant (var = 0), eps 1e-8"),
        C("constant_channel", "nchw", (2, 3, 4, 4), 1, "f64", eps="1e-08",
          tags=["const"], constant_channels=[1],
          notes="NCHW, channel 1 constant (var = 0), eps 1e-8"),
        C("constant_channel", "nhwc", (2, 4, 4, 3), -1, "f32", tags=["const"],
          constant_channels=[2], notes="NHWC, channel 2 constant (var = 0)"),
        # 6. Heavy-tailed Cauchy data.
        C("cauchy", "nc", (256, 4), 1, "f64", tags=["cauchy"], scale=1.0,
          notes="standard Cauchy data"),
        C("cauchy", "nc", (1000, 3), 1, "f32", tags=["cauchy"], scale=1.0,
          notes="standard Cauchy data, m = 1000"),
        C("cauchy", "nchw", (4, 3, 10, 10), 1, "f32", tags=["cauchy100"], scale=100.0,
          notes="100 * standard Cauchy data"),
        C("cauchy", "nhwc", (2, 8, 8, 4), -1, "f64", eps="1e-08", tags=["cauchy"],
          scale=1.0, notes="NHWC, standard Cauchy data, eps 1e-8"),
        # 8. Variance far below eps: eps dominates.
        C("eps_dominant", "nc", (64, 4), 1, "f64", eps="1e-03", tags=["spread1e-4"],
          spread=1e-4, notes="normal data with spread 1e-4 (var 1e-8 << eps)"),
        C("eps_dominant", "nchw", (4, 3, 6, 6), 1, "f32", eps="1e-03",
          tags=["spread1e-4"], spread=1e-4, offset=1.0, offset_channels="all",
          notes="1 + 1e-4*normal in float32 (var 1e-8 << eps)"),
        # 9. dy that nearly cancels in dx.  For dy = a + b*xhat the exact dx is
        #    gamma*invstd*b*xhat*eps/(var+eps) (eps keeps mean(xhat^2) below 1),
        #    so var >> eps is needed for the cancellation to be deep; what is
        #    left is that term, the rounding of dy to dtype, and the noise.
        C("dy_cancel", "nc", (64, 4), 1, "f64", eps="1e-08",
          tags=["scale1e3", "cancel1e-12"], scale=1e3, noise=1e-12,
          notes="x = 1e3*normal; dy = a + b*xhat (rounded) + 1e-12*normal; "
                "|dx| ~ 1e-12 |dy| relative to invstd"),
        C("dy_cancel", "nchw", (4, 3, 6, 6), 1, "f64", eps="1e-08",
          tags=["scale10", "cancel1e-10"], scale=10.0, noise=1e-10,
          notes="NCHW, x = 10*normal; dy = a + b*xhat (rounded) + 1e-10*normal"),
        C("dy_cancel", "nc", (64, 4), 1, "f64", tags=["cancel1e-10"], noise=1e-10,
          notes="dy = a + b*xhat (rounded) + 1e-10*normal; eps/var = 1e-5 "
                "limits the cancellation"),
        C("dy_cancel", "nc", (64, 4), 1, "f32", eps="1e-08",
          tags=["scale10", "cancel1e-6"], scale=10.0, noise=1e-6,
          notes="x = 10*normal; dy = a + b*xhat (rounded to f32) + 1e-6*normal"),
        C("dy_cancel", "nhwc", (4, 6, 6, 3), -1, "f32", eps="1e-08",
          tags=["cancel1e-5"], noise=1e-5,
          notes="NHWC, dy = a + b*xhat (rounded to f32) + 1e-5*normal, eps 1e-8"),
        # 10. dy that cancels exactly: a constant dy (the gradient of a sum) leaves
        #     dx = 0 and dgamma = 0 exactly; and two values per channel with eps far
        #     below var, where dx is eps/var of its terms.
        C("dy_exact", "nchw", (4, 3, 6, 6), 1, "f64", tags=["dyconst"],
          notes="NCHW, dy one constant (a sum loss): exact dx and dgamma are 0"),
        C("dy_exact", "nc", (16, 4), 1, "f32", tags=["dyconst"],
          notes="float32, dy one constant (a sum loss): exact dx and dgamma are 0"),
        C("dy_exact", "nc", (2, 8), 1, "f64", eps="1e-30", tags=["two"],
          notes="N = 2 (m = 2), eps 1e-30: dx is ~1e-30 of its terms"),
        C("dy_exact", "nc", (2, 4), 1, "f64", eps="1e-300", tags=["two", "scale1e10", "dy1e300"],
          scale=1e10, dyscale=1e300,
          notes="N = 2, x ~ 1e10, dy ~ 1e300 (beyond the fast range), eps 1e-300: dx ~ 1e-30, "
                "1e-320 of its terms"),
        # 11. Values that cancel in the mean: each channel holds +B and -B and normal
        #     values, so the mean is ~1/B of the values (beyond double-double's sums).
        C("mean_cancel", "nc", (8, 3), 1, "f64", tags=["pm1e40"], big=1e40,
          notes="each channel: +1e40, -1e40 and 6 normal values"),
        C("mean_cancel", "nchw", (2, 3, 2, 2), 1, "f32", tags=["pm1e30"], big=1e30,
          notes="float32 NCHW, each channel: +1e30, -1e30 and 6 normal values"),
        C("mean_cancel", "nc", (8, 3), 1, "f64", tags=["pm1e200"], big=1e200, big2=1e100,
          notes="each channel: +1e200, +1e100, -1e200, -1e100 (beyond the fast path's "
                "range) and 4 normal values"),
    ]
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "case names must be unique"
    for c in cases:
        assert 4 <= int(np.prod(c.shape)) <= 3000, c.name
    return cases


def _channels_of(spec, C):
    if spec == "all":
        return list(range(C))
    return list(spec or [])


def make_inputs(case, seed):
    """Deterministic inputs (x, gamma, beta, dy) of a case for a given seed."""
    rng = np.random.default_rng([seed, zlib.crc32(case.name.encode())])
    dt = DTYPES[case.dtype]
    p = case.params
    C, ax = case.C, case.axis % len(case.shape)
    # Generate with the channel axis last, then move it into place.
    moved = list(case.shape)
    moved.append(moved.pop(ax))
    m = int(np.prod(moved[:-1]))

    if case.cls == "cauchy":
        x = p["scale"] * rng.standard_cauchy((m, C))
    else:
        x = p.get("scale", 1.0) * rng.standard_normal((m, C))
        for c in _channels_of(p.get("offset_channels"), C):
            x[:, c] = p["offset"] + p["spread"] * x[:, c]
        if case.cls == "eps_dominant" and not p.get("offset_channels"):
            x *= p["spread"]
        for c in _channels_of(p.get("constant_channels"), C):
            x[:, c] = rng.standard_normal()
        if "big" in p:  # +A, (+B,) -A, (-B): the mean is ~1/A of the values
            x[0] = p["big"] * np.sign(rng.standard_normal(C))
            x[1] = -x[0]
            if "big2" in p:
                x[1] = p["big2"] * np.sign(rng.standard_normal(C))
                x[2], x[3] = -x[0], -x[1]
    x = x.astype(dt)

    gamma = rng.standard_normal(C)
    if p.get("gamma") == "zero_neg":
        gamma[0] = 0.0
        gamma[-1] = -abs(gamma[-1])
    gamma = gamma.astype(dt)
    beta = rng.standard_normal(C).astype(dt)

    if case.cls == "dy_exact" and "dyconst" in case.tags:
        dy = np.full((m, C), rng.standard_normal()).astype(dt)
    elif case.cls == "dy_cancel":
        # dy = a + b * xhat per channel.  The constant a is annihilated by the
        # backward pass and b * xhat only leaves b * xhat * eps / (var + eps),
        # so dx is tiny next to dy: the rounding of dy to dtype, the noise and
        # that eps term are all that survive the cancellation.
        xf = x.astype(np.float64)
        xhat = (xf - xf.mean(0)) / np.sqrt(xf.var(0) + float(case.eps))
        a, b = rng.standard_normal(C), rng.standard_normal(C)
        dy = (a + b * xhat).astype(dt).astype(np.float64)
        dy = (dy + p["noise"] * rng.standard_normal((m, C))).astype(dt)
    else:
        dy = (p.get("dyscale", 1.0) * rng.standard_normal((m, C))).astype(dt)

    x = np.ascontiguousarray(np.moveaxis(x.reshape(moved), -1, ax))
    dy = np.ascontiguousarray(np.moveaxis(dy.reshape(moved), -1, ax))
    return x, gamma, beta, dy


# ---------------------------------------------------------------------------
# Mode cases: inference mode and the running-statistics update (DIR/modes/)
# ---------------------------------------------------------------------------

MODES_SUBDIR = "modes"


class ModeCase(Case):
    """A case of inference mode ("eval") or of training mode with the running-statistics
    update ("train").  momentum: decimal string or None (the CLI default 0.1, option left
    out); correction: 0, 1 or None (the default 1, option left out).

    Data parameters: offset, spread (x = offset + spread*normal, the running mean
    offset + spread*normal/2), rvar (running variance scale, default spread^2, times
    U(0.5, 2)), rvar_zero (channels whose running variance is exactly 0), gamma
    ("zero_neg": a zero and a negative entry)."""

    def __init__(self, cls, mode, layout, dims, axis, dtype, eps="1e-05", momentum=None,
                 correction=None, tags=(), notes="", **params):
        assert mode in ("eval", "train")
        tags = list(tags)
        if mode == "train":
            tags.append("mom" + ("default" if momentum is None
                                 else momentum.replace(".", "p")[:6]))
            tags.append("corr" + ("default" if correction is None else str(correction)))
        super().__init__(cls, layout, dims, axis, dtype, eps, tags, notes, **params)
        self.mode, self.momentum, self.correction = mode, momentum, correction
        self.name = mode + "_" + self.name

    @property
    def momentum_value(self):
        return "0.1" if self.momentum is None else self.momentum

    @property
    def correction_value(self):
        return 1 if self.correction is None else self.correction


def mode_case_list():
    """The committed mode cases (names do not depend on the seed)."""
    E = lambda *a, **k: ModeCase(a[0], "eval", *a[1:], **k)     # noqa: E731
    T = lambda *a, **k: ModeCase(a[0], "train", *a[1:], **k)    # noqa: E731
    cases = [
        # Inference mode, well-conditioned data, several layouts.
        E("eval_baseline", "nc", (32, 4), 1, "f64", notes="random normal data, (N, C)"),
        E("eval_baseline", "nc", (32, 4), 1, "f32", notes="random normal data, (N, C)"),
        E("eval_baseline", "nchw", (2, 3, 4, 5), 1, "f32", gamma="zero_neg",
          notes="NCHW as ONNX's node tests; gamma has a zero and a negative entry"),
        E("eval_baseline", "nhwc", (2, 4, 4, 3), -1, "f64", notes="NHWC, axis -1"),
        E("eval_baseline", "cn", (5, 20), 0, "f32", notes="2-D with channel axis 0"),
        E("eval_baseline", "nc", (16, 3), 1, "f64", eps="0",
          notes="eps = 0 with a positive running variance (allowed)"),
        # Running mean far from 0 against the spread.
        E("eval_offset", "nc", (16, 4), 1, "f64", eps="1e-08", tags=["offset1e6"],
          offset=1e6, spread=1e-3,
          notes="x and running_mean 1e6 + 1e-3*normal, running_var ~1e-6 >> eps"),
        E("eval_offset", "nchw", (2, 3, 4, 4), 1, "f64", tags=["offset1e6"],
          offset=1e6, spread=1e-3,
          notes="NCHW, x and running_mean 1e6 + 1e-3*normal, running_var ~1e-6 < eps"),
        E("eval_offset", "nc", (16, 4), 1, "f32", tags=["offset1e3", "spread1e-3"],
          offset=1e3, spread=1e-3,
          notes="float32 x and running_mean 1e3 + 1e-3*normal (ratio 1e6; 1e6 + 1e-3 "
                "is not representable in float32), running_var ~1e-6"),
        E("eval_offset", "nhwc", (2, 3, 3, 4), -1, "f32", tags=["offset1e6", "spread1"],
          offset=1e6, spread=1.0,
          notes="float32 NHWC, x and running_mean 1e6 + normal (ulp 1/16)"),
        # Tiny running variance, eps dominating (one channel exactly 0).
        E("eval_tiny_var", "nc", (16, 4), 1, "f64", eps="1e-03", tags=["rvar1e-10"],
          rvar=1e-10, rvar_zero=[2], notes="running_var ~1e-10 << eps, channel 2 exactly 0"),
        E("eval_tiny_var", "nchw", (2, 3, 3, 3), 1, "f32", tags=["rvar1e-12"],
          rvar=1e-12, rvar_zero=[0], notes="float32, running_var ~1e-12 << eps, channel 0 = 0"),
        # A batch of one (m = 1).
        E("eval_batch1", "nc", (1, 4), 1, "f64", notes="x of shape (1, C): m = 1"),
        E("eval_batch1", "nc", (1, 4), 1, "f32", notes="x of shape (1, C): m = 1"),
        E("eval_batch1", "nchw", (1, 3, 1, 1), 1, "f64", gamma="zero_neg",
          notes="NCHW with N = H = W = 1: m = 1"),
        E("eval_batch1", "nchw", (1, 3, 1, 1), 1, "f32", eps="1e-03", tags=["offset1e6"],
          offset=1e6, spread=1.0, notes="float32 NCHW m = 1, x and running_mean 1e6 + normal"),
        # x far from the running mean against its spread, beta cancelling gamma*xhat,
        # sum dy ~ 0: y, dgamma and dbeta are far below the terms that make them.
        E("eval_cancel", "nc", (32, 4), 1, "f64", tags=["cancel"], offset=1.0, spread=1e-3,
          rmean=0.0, rvar=1.0, beta_cancel=True, dy_zero_mean=True,
          notes="x = 1 + 1e-3*normal, running_mean ~0, running_var ~1, beta = "
                "-gamma*mean(xhat), dy zero-mean: y ~1e-3 of gamma*xhat"),
        E("eval_cancel", "nchw", (2, 3, 4, 4), 1, "f32", tags=["cancel"], offset=1.0,
          spread=1e-2, rmean=0.0, rvar=1.0, beta_cancel=True, dy_zero_mean=True,
          notes="float32, x = 1 + 1e-2*normal, beta = -gamma*mean(xhat), dy zero-mean"),
        # Training mode with the running-statistics update.
        T("train_running", "nc", (32, 4), 1, "f64",
          notes="defaults: momentum 0.1, correction 1 (options left out)"),
        T("train_running", "nchw", (4, 3, 4, 4), 1, "f32",
          notes="defaults: momentum 0.1, correction 1 (options left out)"),
        T("train_running", "nchw", (2, 3, 4, 5), 1, "f64", momentum="0.1", correction=0,
          notes="ONNX's momentum 0.9 as --momentum 0.1 --running-var-correction 0"),
        T("train_running", "nhwc", (2, 4, 5, 3), -1, "f32", momentum="0.1", correction=0,
          notes="float32 NHWC, ONNX's rule"),
        T("train_running", "nc", (24, 3), 1, "f64", momentum="0.5", correction=1,
          notes="PyTorch momentum 0.5"),
        T("train_running", "nc", (24, 3), 1, "f32", momentum="0.2", correction=1,
          notes="PyTorch cumulative average at num_batches_tracked 5: momentum 1/5"),
        T("train_running", "ncl", (4, 3, 6), 1, "f64", momentum="0.3333333333333333",
          correction=1, notes="cumulative average at num_batches_tracked 3: "
                              "momentum float64(1/3)"),
        T("train_momentum0", "nc", (16, 4), 1, "f64", momentum="0", correction=1,
          notes="momentum 0: the running statistics are kept"),
        T("train_momentum0", "nchw", (2, 3, 3, 3), 1, "f32", momentum="0", correction=0,
          notes="momentum 0, float32"),
        T("train_momentum1", "nc", (16, 4), 1, "f64", momentum="1", correction=1,
          notes="momentum 1: the batch mean and unbiased variance"),
        T("train_momentum1", "nc", (16, 4), 1, "f32", momentum="1", correction=0,
          notes="momentum 1: the batch mean and biased variance, float32"),
        T("train_momentum1", "nchw", (2, 3, 2, 2), 1, "f64", momentum="1", correction=0,
          notes="momentum 1, biased variance, NCHW"),
        T("train_batch2", "nc", (2, 4), 1, "f64", momentum="0.1", correction=1,
          notes="m = 2: the unbiased variance is twice the biased one"),
        T("train_batch2", "nc", (2, 4), 1, "f32", momentum="0.5", correction=1,
          notes="m = 2, float32"),
        T("train_offset", "nc", (32, 3), 1, "f64", eps="1e-08", momentum="0.1", correction=1,
          tags=["offset1e6"], offset=1e6, spread=1e-3,
          notes="x and running_mean 1e6 + 1e-3*normal, running_var ~1e-6"),
        T("train_offset", "nc", (32, 3), 1, "f32", momentum="0.5", correction=0,
          tags=["offset1e3", "spread1e-3"], offset=1e3, spread=1e-3,
          notes="float32 x and running_mean 1e3 + 1e-3*normal"),
        T("train_offset", "nchw", (2, 3, 4, 4), 1, "f32", momentum="1", correction=1,
          tags=["offset1e6", "spread1"], offset=1e6, spread=1.0,
          notes="float32 x and running_mean 1e6 + normal, momentum 1"),
        T("train_mean_cancel", "nc", (16, 4), 1, "f64", momentum="0.1", correction=1,
          tags=["cancel"], offset=3.0, rmean_cancel=True,
          notes="running_mean = -(M/(1-M))*batch mean*(1 + 1e-4*normal): "
                "new_running_mean ~1e-4 of its terms"),
        T("train_mean_cancel", "nchw", (2, 3, 3, 3), 1, "f32", momentum="0.5", correction=0,
          tags=["cancel"], offset=3.0, rmean_cancel=True,
          notes="float32, running_mean = -batch mean*(1 + 1e-4*normal), momentum 0.5"),
        T("train_tiny_var", "nc", (16, 4), 1, "f64", eps="1e-03", momentum="0.1",
          correction=1, tags=["spread1e-4", "rvar1e-10"], spread=1e-4, rvar=1e-10,
          rvar_zero=[1], notes="batch spread 1e-4 and running_var ~1e-10 << eps, "
                               "channel 1 running_var 0"),
        T("train_tiny_var", "nchw", (2, 3, 3, 3), 1, "f32", eps="1e-03", momentum="0.1",
          correction=0, tags=["spread1e-4", "rvar1e-12"], spread=1e-4, rvar=1e-12,
          rvar_zero=[2], notes="float32, spread 1e-4, running_var ~1e-12, channel 2 = 0"),
    ]
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "mode case names must be unique"
    for c in cases:
        assert 1 <= int(np.prod(c.shape)) <= 3000, c.name
    return cases


def make_mode_inputs(case, seed):
    """Deterministic inputs of a mode case: (x, gamma, beta, dy, running_mean,
    running_var), all in the case's dtype."""
    rng = np.random.default_rng([seed, zlib.crc32(case.name.encode())])
    dt = DTYPES[case.dtype]
    p = case.params
    C, ax = case.C, case.axis % len(case.shape)
    moved = list(case.shape)
    moved.append(moved.pop(ax))
    m = int(np.prod(moved[:-1]))
    offset, spread = p.get("offset", 0.0), p.get("spread", 1.0)
    x = (offset + spread * rng.standard_normal((m, C))).astype(dt)
    rmean = (p.get("rmean", offset) + spread * 0.5 * rng.standard_normal(C)).astype(dt)
    rvar = p.get("rvar", spread ** 2) * rng.uniform(0.5, 2.0, C)
    for c in p.get("rvar_zero", []):
        rvar[c] = 0.0
    rvar = rvar.astype(dt)
    gamma = rng.standard_normal(C)
    if p.get("gamma") == "zero_neg":
        gamma[0] = 0.0
        gamma[-1] = -abs(gamma[-1])
    gamma = gamma.astype(dt)
    beta = rng.standard_normal(C).astype(dt)
    dy = rng.standard_normal((m, C))
    xf = x.astype(np.float64)
    if p.get("beta_cancel"):
        # beta = -gamma * mean(xhat) (rounded): y = gamma*xhat + beta cancels down to
        # gamma * (xhat - mean xhat), far below the terms when x is far from the running
        # mean against its spread.
        xhat = (xf - rmean) / np.sqrt(rvar.astype(np.float64) + float(case.eps))
        beta = (-gamma.astype(np.float64) * xhat.mean(0)).astype(dt)
    if p.get("dy_zero_mean"):
        # sum dy ~ 0 (only the rounding to dtype is left): dbeta is tiny, and so is
        # dgamma = sum dy * xhat when xhat is nearly constant.
        dy = dy - dy.mean(0)
    dy = dy.astype(dt)
    if p.get("rmean_cancel"):
        # rm = -(M/(1 - M)) * batch mean * (1 + 1e-4*normal): new_running_mean =
        # (1 - M)*rm + M*mean cancels to ~1e-4 of its terms.
        M = float(case.momentum_value)
        rmean = (-(M / (1 - M)) * xf.mean(0)
                 * (1 + 1e-4 * rng.standard_normal(C))).astype(dt)
    x = np.ascontiguousarray(np.moveaxis(x.reshape(moved), -1, ax))
    dy = np.ascontiguousarray(np.moveaxis(dy.reshape(moved), -1, ax))
    return x, gamma, beta, dy, rmean, rvar


def write_mode_case(case, seed, out_dir):
    x, gamma, beta, dy, rmean, rvar = make_mode_inputs(case, seed)
    arrays = dict(x=x, gamma=gamma, beta=beta, running_mean=rmean, running_var=rvar)
    if case.mode == "eval":
        arrays["dy"] = dy
        arrays["y"] = exact_forward_eval(x, gamma, beta, rmean, rvar, case.eps, case.axis)
        arrays["dx"], arrays["dgamma"], arrays["dbeta"] = exact_backward_eval(
            x, gamma, dy, rmean, rvar, case.eps, case.axis)
        outputs = ["y", "dx", "dgamma", "dbeta"]
    else:
        arrays["y"], arrays["mean"], arrays["invstd"] = exact_forward(
            x, gamma, beta, case.eps, case.axis)
        arrays["new_running_mean"], arrays["new_running_var"] = exact_running_update(
            x, rmean, rvar, case.momentum_value, case.correction_value, case.axis)
        outputs = ["y", "mean", "invstd", "new_running_mean", "new_running_var"]
    d = os.path.join(out_dir, case.name)
    os.makedirs(d, exist_ok=True)
    for k, a in arrays.items():
        np.save(os.path.join(d, k + ".npy"), np.ascontiguousarray(a))
    meta = {"name": case.name, "class": case.cls, "mode": case.mode,
            "shape": list(case.shape), "axis": case.axis, "eps": case.eps,
            "dtype": {"f32": "float32", "f64": "float64"}[case.dtype],
            "momentum": case.momentum, "correction": case.correction,
            "outputs": outputs, "seed": seed, "notes": case.notes}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


def write_case(case, seed, out_dir):
    x, gamma, beta, dy = make_inputs(case, seed)
    y, mean, invstd = exact_forward(x, gamma, beta, case.eps, case.axis)
    dx, dgamma, dbeta = exact_backward(x, gamma, dy, case.eps, case.axis)
    d = os.path.join(out_dir, case.name)
    os.makedirs(d, exist_ok=True)
    arrays = dict(x=x, gamma=gamma, beta=beta, dy=dy, y=y, mean=mean,
                  invstd=invstd, dx=dx, dgamma=dgamma, dbeta=dbeta)
    for k, a in arrays.items():
        np.save(os.path.join(d, k + ".npy"), np.ascontiguousarray(a))
    meta = {"name": case.name, "class": case.cls, "shape": list(case.shape),
            "axis": case.axis, "eps": case.eps,
            "dtype": {"f32": "float32", "f64": "float64"}[case.dtype],
            "seed": seed, "notes": case.notes}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------------------
# Family cases: layer, rms, instance and group norm (DIR/family/)
# ---------------------------------------------------------------------------

FAMILY_SUBDIR = "family"


class FamilyCase:
    """A case of one norm of the family.  Layout letters name the axes (n sample,
    c channel, l/h/w spatial, d feature); axis and groups are as the CLI takes them.

    Data parameters: scale (x = scale * normal, or scale * Cauchy for class "cauchy"),
    offset, spread, offset_sets ("all" or a list of sets: x = offset + spread*normal
    there), constant_sets (sets set to one random value), zero_sets (sets set to 0),
    tiny (x multiplied by it), gamma ("zero_neg": a zero and a negative entry; "away0":
    |gamma| in [0.5, 1.5], random signs; "const": one random value), noise (dy_cancel: dy = (a + b*xhat)/gamma per
    set, rounded, plus noise*normal; a = 0 for rms)."""

    def __init__(self, norm, cls, layout, dims, axis, dtype, eps="1e-05", groups=None,
                 tags=(), notes="", **params):
        assert norm in NORMS and len(layout) == len(dims)
        self.norm, self.cls, self.layout, self.dims = norm, cls, layout, tuple(dims)
        self.axis, self.groups, self.dtype, self.eps = axis, groups, dtype, eps
        self.tags, self.notes, self.params = tuple(tags), notes, params
        dim_str = "".join("%s%d" % (k, n) for k, n in zip(layout, dims))
        eps_str = ("eps0" if float(eps) == 0.0
                   else "eps" + ("%.0e" % float(eps)).replace("e-0", "e-"))
        parts = [norm, dim_str, "axis%d" % axis]
        if groups is not None:
            parts.append("g%d" % groups)
        self.name = "_".join(parts + [eps_str, dtype] + list(self.tags))

    @property
    def shape(self):
        return self.dims

    def layout_info(self):
        return family_layout(self.norm, self.dims, self.axis, self.groups)

    def cli_options(self):
        opts = ["--norm", self.norm, "--axis", str(self.axis)]
        if self.groups is not None:
            opts += ["--groups", str(self.groups)]
        return opts + ["--eps", self.eps]


def family_case_list():
    """The committed family cases (names do not depend on the seed)."""
    cases = []
    for norm in NORMS:
        F = lambda *a, **k: FamilyCase(norm, *a, **k)             # noqa: E731
        rms = norm == "rms"
        if norm in ("layer", "rms"):
            cases += [
                # Ordinary data: (N, D), (N, L, D), NCHW; several axes.
                F("baseline", "nd", (8, 16), -1, "f64", notes="(N, D), random normal"),
                F("baseline", "nd", (8, 16), -1, "f32", notes="(N, D), random normal"),
                F("baseline", "nld", (2, 5, 8), -1, "f32", gamma="zero_neg",
                  notes="(N, L, D) over D; gamma has a zero and a negative entry"),
                F("baseline", "nld", (2, 5, 8), -2, "f64",
                  notes="(N, L, D) over (L, D): gamma of shape (L, D)"),
                F("baseline", "nld", (3, 4, 6), 1, "f32", eps="1e-03",
                  notes="(N, L, D) with positive axis 1, eps 1e-3"),
                F("baseline", "nchw", (2, 3, 4, 4), 1, "f64", eps="1e-08",
                  notes="NCHW over (C, H, W): gamma (C, H, W), eps 1e-8"),
                F("baseline", "nchw", (2, 3, 4, 4), -1, "f32",
                  notes="NCHW over W: statistics of shape (N, C, H, 1)"),
                # One row far from 0 against its spread, float64.
                F("offset_f64", "nd", (6, 16), -1, "f64", eps="1e-08", tags=["offset1e6"],
                  offset=1e6, spread=1e-3, offset_sets=[2],
                  notes="row 2 is 1e6 + 1e-3*normal" + ("" if rms else " (var 1e-6 >> eps 1e-8)")
                        + ", eps 1e-8"),
                F("offset_f64", "nld", (2, 3, 8), -1, "f64", tags=["offset1e6"],
                  offset=1e6, spread=1e-3, offset_sets=[0, 4],
                  notes="rows (0, 0) and (1, 1) are 1e6 + 1e-3*normal"
                        + ("" if rms else " (var 1e-6 < eps)")),
                # float32 data offset by 1e3.
                F("offset_f32", "nd", (8, 16), -1, "f32", tags=["offset1e3"],
                  offset=1e3, spread=1.0, offset_sets="all",
                  notes="all rows 1e3 + normal, float32"),
                F("offset_f32", "nld", (2, 4, 8), -2, "f32", eps="1e-08", tags=["offset1e3"],
                  offset=1e3, spread=1.0, offset_sets="all",
                  notes="(N, L, D) over (L, D), 1e3 + normal, float32, eps 1e-8"),
                # A constant row (and for rms, a zero row).
                F("constant", "nd", (6, 8), -1, "f64", tags=["const"],
                  constant_sets=[1], zero_sets=[4] if rms else [],
                  notes="row 1 constant" + ("; row 4 all zero (invstd = 1/sqrt(eps))"
                                            if rms else " (var = 0)")),
                F("constant", "nld", (2, 3, 4), -1, "f32", eps="1e-08", tags=["const"],
                  constant_sets=[0, 5], zero_sets=[3] if rms else [],
                  notes="rows 0 and 5 constant" + ("; row 3 zero" if rms else "")
                        + ", eps 1e-8"),
                # +1e40 and -1e40 in every row: the mean is ~1e-40 of the values.
                F("mean_cancel", "nd", (4, 8), -1, "f64", tags=["pm1e40"], big=1e40,
                  notes="every row: +1e40, -1e40 and 6 normal values"),
                F("mean_cancel", "nd", (4, 8), -1, "f64", tags=["pm1e200"], big=1e200,
                  big2=1e100, notes="every row: +1e200, +1e100, -1e200, -1e100 (beyond the "
                                    "fast path's range) and 4 normal values"),

                # Two elements per set.
                F("two", "nd", (8, 2), -1, "f64", notes="m = 2 per row"),
            ] + ([] if rms else [
                F("two", "nd", (8, 2), -1, "f64", eps="1e-30",
                  notes="m = 2, eps 1e-30: dx is ~1e-30 of its terms"),
                F("two", "nd", (4, 2), -1, "f64", eps="1e-300", tags=["scale1e10", "dy1e300"],
                  scale=1e10, dyscale=1e300,
                  notes="m = 2, x ~ 1e10, dy ~ 1e300 (beyond the fast range), eps 1e-300: "
                        "dx ~ 1e-30, 1e-320 of its terms"),
            ]) + [
                # dy that cancels exactly, gamma one constant: layer's dy a constant (a
                # sum loss), RMS's dy = x with eps = 0; the exact dx is 0.
                F("dy_exact", "nd", (8, 16), -1, "f64", eps="0" if rms else "1e-05",
                  tags=["dyx" if rms else "dyconst"], gamma="const",
                  notes="gamma constant, " + ("dy = x, eps 0" if rms else "dy constant")
                        + ": the exact dx is 0"),
                F("dy_exact", "nld", (2, 4, 8), -1, "f32", eps="0" if rms else "1e-05",
                  tags=["dyx" if rms else "dyconst"], gamma="const",
                  notes="float32, gamma constant, " + ("dy = x, eps 0" if rms else "dy constant")
                        + ": the exact dx is 0"),
                F("two", "nchw", (2, 3, 1, 2), -1, "f32", eps="1e-03",
                  notes="NCHW over W = 2: m = 2, eps 1e-3"),
                # Heavy tails.
                F("cauchy", "nd", (8, 32), -1, "f64", tags=["cauchy"], notes="standard Cauchy"),
                F("cauchy", "nld", (2, 4, 16), -1, "f32", tags=["cauchy"],
                  notes="standard Cauchy, float32"),
                # dy nearly linear in xhat within each row: dx cancels.
                F("dy_cancel", "nd", (8, 16), -1, "f64", eps="1e-08",
                  tags=["scale10", "cancel1e-10"], scale=10.0, noise=1e-10, gamma="away0",
                  notes="x = 10*normal; dy = (%sb*xhat)/gamma per row (rounded) + "
                        "1e-10*normal" % ("" if rms else "a + ")),
                F("dy_cancel", "nld", (2, 4, 8), -1, "f32", eps="1e-08",
                  tags=["scale10", "cancel1e-5"], scale=10.0, noise=1e-5, gamma="away0",
                  notes="float32; dy = (%sb*xhat)/gamma per row (rounded) + 1e-5*normal"
                        % ("" if rms else "a + ")),
            ]
            if rms:
                cases += [
                    # Values so small that eps dominates mean(x^2).
                    F("eps_dominant", "nd", (8, 16), -1, "f64", tags=["tiny1e-4"], tiny=1e-4,
                      notes="x = 1e-4*normal: mean(x^2) ~1e-8 << eps 1e-5"),
                    F("eps_dominant", "nld", (2, 4, 8), -1, "f32", eps="1e-03",
                      tags=["tiny1e-4"], tiny=1e-4,
                      notes="float32 x = 1e-4*normal: mean(x^2) ~1e-8 << eps 1e-3"),
                    F("eps_dominant", "nd", (4, 16), -1, "f32", eps="1e-06",
                      tags=["tiny1e-6"], tiny=1e-6,
                      notes="float32 x = 1e-6*normal: mean(x^2) ~1e-12 << eps 1e-6"),
                ]
            else:
                cases += [
                    F("eps_dominant", "nd", (8, 16), -1, "f64", eps="1e-03",
                      tags=["spread1e-4"], offset=0.0, spread=1e-4, offset_sets="all",
                      notes="1e-4*normal: var ~1e-8 << eps 1e-3"),
                    F("eps_dominant", "nld", (2, 4, 8), -1, "f32", eps="1e-03",
                      tags=["spread1e-4"], offset=1.0, spread=1e-4, offset_sets="all",
                      notes="float32 1 + 1e-4*normal: var ~1e-8 << eps 1e-3"),
                ]
        else:
            g = {"groups": 3} if norm == "group" else {}
            g2 = {"groups": 2} if norm == "group" else {}
            what = "group" if norm == "group" else "sample-channel"
            C_ = "nchw"
            cases += [
                F("baseline", C_, (2, 6, 3, 3), 1, "f64", notes="NCHW", **g),
                F("baseline", C_, (2, 6, 3, 3), 1, "f32", gamma="zero_neg",
                  notes="NCHW; gamma has a zero and a negative entry", **g2),
                F("baseline", "ncl", (3, 4, 8), 1, "f32", notes="(N, C, L)", **g2),
                F("baseline", "ncl", (2, 6, 5), -2, "f64", eps="1e-08",
                  notes="(N, C, L) with axis -2, eps 1e-8", **g),
                F("baseline", "nhwc", (2, 3, 3, 4), -1, "f64",
                  notes="NHWC, channel axis -1", **g2),
                F("baseline", "nchw", (2, 4, 3, 3), 1, "f32", eps="1e-03",
                  notes="NCHW, eps 1e-3", **g2),
                # One set far from 0 against its spread, float64.
                F("offset_f64", C_, (2, 6, 3, 3), 1, "f64", eps="1e-08", tags=["offset1e6"],
                  offset=1e6, spread=1e-3, offset_sets=[4],
                  notes="%s set 4 is 1e6 + 1e-3*normal (var 1e-6 >> eps 1e-8)" % what, **g),
                F("offset_f64", "ncl", (2, 4, 8), 1, "f64", tags=["offset1e6"],
                  offset=1e6, spread=1e-3, offset_sets=[1],
                  notes="%s set 1 is 1e6 + 1e-3*normal (var 1e-6 < eps)" % what, **g2),
                # float32 data offset by 1e3.
                F("offset_f32", C_, (2, 4, 4, 4), 1, "f32", tags=["offset1e3"],
                  offset=1e3, spread=1.0, offset_sets="all",
                  notes="all 1e3 + normal, float32", **g2),
                F("offset_f32", "nhwc", (2, 3, 3, 6), -1, "f32", eps="1e-08",
                  tags=["offset1e3"], offset=1e3, spread=1.0, offset_sets="all",
                  notes="NHWC, all 1e3 + normal, float32, eps 1e-8", **g),
                # A constant set.
                F("constant", C_, (2, 4, 3, 3), 1, "f64", tags=["const"], constant_sets=[1],
                  notes="%s set 1 constant (var = 0)" % what, **g2),
                F("constant", "ncl", (2, 6, 4), 1, "f32", eps="1e-08", tags=["const"],
                  constant_sets=[0, 4], notes="%s sets 0 and 4 constant, eps 1e-8" % what, **g),
                # Two elements per set.
                # +1e40 and -1e40 in every set: the mean is ~1e-40 of the values.
                F("mean_cancel", C_, (2, 4, 2, 2), 1, "f64", tags=["pm1e40"], big=1e40,
                  notes="every set: +1e40, -1e40 and normal values", **g2),
                F("mean_cancel", C_, (2, 4, 2, 2), 1, "f64", tags=["pm1e200"], big=1e200,
                  big2=1e100, notes="every set: +1e200, +1e100, -1e200, -1e100 (beyond the "
                                    "fast path's range) and normal values", **g2),
                F("mean_cancel", C_, (2, 4, 3, 3), 1, "f64", tags=["pm1e300", "g0"], big=1e300,
                  gamma="zero_neg", notes="every set: +1e300, -1e300 (beyond the fast path's "
                  "range) and normal values; gamma has a zero (dgamma does not depend on it)",
                  **g2),
                # dy that cancels exactly (a sum loss): dx = 0, and (instance) dgamma = 0.
                F("dy_exact", C_, (2, 6, 3, 3), 1, "f64", tags=["dyconst"],
                  notes="dy one constant: the exact dx is 0", **g),
                F("dy_exact", "ncl", (3, 4, 8), 1, "f32", tags=["dyconst"],
                  notes="float32, dy one constant: the exact dx is 0", **g2),
            ] + ([
                F("two", "ncl", (4, 3, 2), 1, "f64", notes="(N, C, L = 2): m = 2"),
                F("two", "ncl", (4, 3, 2), 1, "f64", eps="1e-30",
                  notes="m = 2, eps 1e-30: dx is ~1e-30 of its terms"),
                F("two", "nchw", (2, 4, 1, 2), 1, "f32", eps="1e-03",
                  notes="NCHW with H*W = 2: m = 2, eps 1e-3"),
            ] if norm == "instance" else [
                F("two", "nc", (6, 8), 1, "f64", groups=4,
                  notes="(N, C) with C/G = 2: m = 2"),
                F("two", "nc", (6, 8), 1, "f64", groups=4, eps="1e-30",
                  notes="C/G = 2, eps 1e-30: dx is ~1e-30 of its terms"),
                F("two", "nchw", (2, 4, 1, 1), 1, "f32", eps="1e-03", groups=2,
                  notes="NCHW with H = W = 1, C/G = 2: m = 2, eps 1e-3"),
            ]) + [
                # Heavy tails.
                F("cauchy", C_, (2, 4, 5, 5), 1, "f64", tags=["cauchy"],
                  notes="standard Cauchy", **g2),
                F("cauchy", "ncl", (2, 6, 12), 1, "f32", tags=["cauchy"],
                  notes="standard Cauchy, float32", **g),
                # Variance far below eps.
                F("eps_dominant", C_, (2, 4, 3, 3), 1, "f64", eps="1e-03",
                  tags=["spread1e-4"], offset=0.0, spread=1e-4, offset_sets="all",
                  notes="1e-4*normal: var ~1e-8 << eps 1e-3", **g2),
                F("eps_dominant", "ncl", (2, 6, 6), 1, "f32", eps="1e-03",
                  tags=["spread1e-4"], offset=1.0, spread=1e-4, offset_sets="all",
                  notes="float32 1 + 1e-4*normal: var ~1e-8 << eps 1e-3", **g),
                # dy nearly linear in xhat within each set: dx cancels.
                F("dy_cancel", C_, (2, 6, 3, 3), 1, "f64", eps="1e-08",
                  tags=["scale10", "cancel1e-10"], scale=10.0, noise=1e-10, gamma="away0",
                  notes="x = 10*normal; dy = (a + b*xhat)/gamma per set (rounded) + "
                        "1e-10*normal", **g),
                F("dy_cancel", "nhwc", (2, 3, 3, 4), -1, "f32", eps="1e-08",
                  tags=["scale10", "cancel1e-5"], scale=10.0, noise=1e-5, gamma="away0",
                  notes="float32 NHWC; dy = (a + b*xhat)/gamma per set (rounded) + "
                        "1e-5*normal", **g2),
            ]
            if norm == "group":
                cases += [
                    F("baseline", "nchw", (2, 4, 3, 3), 1, "f64", groups=1,
                      notes="G = 1: one set per sample (layer norm over C, H, W with "
                            "per-channel gamma)"),
                    F("baseline", "nchw", (2, 4, 3, 3), 1, "f64", groups=4, tags=["gC"],
                      notes="G = C: instance norm"),
                ]
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "family case names must be unique"
    for c in cases:
        assert 4 <= int(np.prod(c.shape)) <= 400, c.name
    return cases


def make_family_inputs(case, seed):
    """Deterministic inputs (x, gamma, beta, dy) of a family case for a given seed
    (beta is None for rms)."""
    rng = np.random.default_rng([seed, zlib.crc32(case.name.encode())])
    dt = DTYPES[case.dtype]
    p = case.params
    lay = case.layout_info()
    shape, sid = case.shape, lay["set_id"]
    rms = case.norm == "rms"

    def in_sets(spec):
        if spec == "all":
            return np.ones(shape, bool)
        return np.isin(sid, list(spec or []))

    if case.cls == "cauchy":
        x = p.get("scale", 1.0) * rng.standard_cauchy(shape)
    else:
        x = p.get("scale", 1.0) * rng.standard_normal(shape)
        sel = in_sets(p.get("offset_sets"))
        x[sel] = p.get("offset", 0.0) + p.get("spread", 1.0) * x[sel]
        for s in p.get("constant_sets", []):
            x[sid == s] = rng.standard_normal()
        for s in p.get("zero_sets", []):
            x[sid == s] = 0.0
        x *= p.get("tiny", 1.0)
        if "big" in p:  # +A, (+B,) -A, (-B) in every set: its mean is ~1/A of its values
            flat = x.reshape(-1)
            for s in range(lay["n_sets"]):
                i, j, k, l = np.flatnonzero(sid.reshape(-1) == s)[:4]
                flat[i] = p["big"] * np.sign(rng.standard_normal())
                flat[j] = -flat[i]
                if "big2" in p:
                    flat[j] = p["big2"] * np.sign(rng.standard_normal())
                    flat[k], flat[l] = -flat[i], -flat[j]
    x = x.astype(dt)

    pshape = lay["param_shape"]
    gamma = rng.standard_normal(pshape)
    if p.get("gamma") == "zero_neg":
        gamma.flat[0] = 0.0
        gamma.flat[-1] = -abs(gamma.flat[-1])
    elif p.get("gamma") == "const":
        gamma = np.full(pshape, gamma.flat[0])
    elif p.get("gamma") == "away0":
        gamma = np.sign(gamma) * rng.uniform(0.5, 1.5, pshape)
    gamma = gamma.astype(dt)
    beta = None if rms else rng.standard_normal(pshape).astype(dt)

    if case.cls == "dy_exact" and "dyconst" in case.tags:
        dy = np.full(shape, rng.standard_normal()).astype(dt)
    elif case.cls == "dy_exact" and "dyx" in case.tags:
        dy = x.copy()
    elif case.cls == "dy_cancel":
        # dxhat = gamma*dy = a + b*xhat within a set.  The backward pass annihilates a
        # (not for rms, where a = 0) and leaves only b*xhat*eps/(s + eps) of b*xhat
        # (s = var, or mean(x^2) for rms), so dx is tiny next to dy: the rounding of dy
        # to dtype, the noise and that eps term are what survive the cancellation.
        xf = x.astype(np.float64)
        n, m = lay["n_sets"], lay["m"]
        mean = np.zeros(n) if rms else np.bincount(sid.ravel(), xf.ravel(), n) / m
        d = xf - mean[sid]
        s = np.bincount(sid.ravel(), (d * d).ravel(), n) / m
        xhat = d / np.sqrt(s + float(case.eps))[sid]
        a = np.zeros(n) if rms else rng.standard_normal(n)
        b = rng.standard_normal(n)
        g = gamma.astype(np.float64).ravel()[lay["param_id"]]
        dy = ((a[sid] + b[sid] * xhat) / g).astype(dt).astype(np.float64)
        dy = (dy + p["noise"] * rng.standard_normal(shape)).astype(dt)
    else:
        dy = (p.get("dyscale", 1.0) * rng.standard_normal(shape)).astype(dt)
    return x, gamma, beta, dy


def write_family_case(case, seed, out_dir):
    x, gamma, beta, dy = make_family_inputs(case, seed)
    rms = case.norm == "rms"
    fwd = exact_family_forward(case.norm, x, gamma, beta, case.eps, case.axis, case.groups)
    bwd = exact_family_backward(case.norm, x, gamma, dy, case.eps, case.axis, case.groups)
    inputs = ["x", "gamma", "dy"] if rms else ["x", "gamma", "beta", "dy"]
    outputs = (["y", "invstd", "dx", "dgamma"] if rms
               else ["y", "mean", "invstd", "dx", "dgamma", "dbeta"])
    arrays = dict(x=x, gamma=gamma, beta=beta, dy=dy)
    arrays.update(fwd)
    arrays.update(bwd)
    d = os.path.join(out_dir, case.name)
    os.makedirs(d, exist_ok=True)
    for k in inputs + outputs:
        np.save(os.path.join(d, k + ".npy"), np.ascontiguousarray(arrays[k]))
    lay = case.layout_info()
    meta = {"name": case.name, "norm": case.norm, "class": case.cls,
            "shape": list(case.shape), "axis": case.axis, "groups": case.groups,
            "eps": case.eps, "dtype": {"f32": "float32", "f64": "float64"}[case.dtype],
            "gamma_shape": list(lay["param_shape"]), "stat_shape": list(lay["stat_shape"]),
            "m": lay["m"], "inputs": inputs, "outputs": outputs,
            "cli_options": case.cli_options(), "seed": seed, "notes": case.notes}
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


def _report_stale(out_dir, names):
    stale = sorted(n for n in os.listdir(out_dir) if n not in names
                   and os.path.exists(os.path.join(out_dir, n, "case.json")))
    for n in stale:
        print("warning: %s is not a current case (left untouched)"
              % os.path.join(out_dir, n))


def generate(out_dir, seed):
    cases = case_list()
    mode_cases = mode_case_list()
    modes_dir = os.path.join(out_dir, MODES_SUBDIR)
    t_all = time.perf_counter()
    for case in cases:
        t = time.perf_counter()
        write_case(case, seed, out_dir)
        print("%-46s %-17s %-10s %6.2fs" % (case.name, case.cls,
              "x".join(map(str, case.shape)), time.perf_counter() - t))
    for case in mode_cases:
        t = time.perf_counter()
        write_mode_case(case, seed, modes_dir)
        print("%s/%-46s %-17s %-10s %6.2fs" % (MODES_SUBDIR, case.name, case.cls,
              "x".join(map(str, case.shape)), time.perf_counter() - t))
    family_cases = family_case_list()
    family_dir = os.path.join(out_dir, FAMILY_SUBDIR)
    for case in family_cases:
        t = time.perf_counter()
        write_family_case(case, seed, family_dir)
        print("%s/%-46s %-17s %-10s %6.2fs" % (FAMILY_SUBDIR, case.name, case.cls,
              "x".join(map(str, case.shape)), time.perf_counter() - t))
    print("%d cases written to %s, %d mode cases to %s and %d family cases to %s "
          "(seed %d) in %.1fs"
          % (len(cases), out_dir, len(mode_cases), modes_dir, len(family_cases),
             family_dir, seed, time.perf_counter() - t_all))
    _report_stale(out_dir, {c.name for c in cases})
    _report_stale(modes_dir, {c.name for c in mode_cases})
    _report_stale(family_dir, {c.name for c in family_cases})
    import golden_half  # float16 and bfloat16 cases, in DIR/half/ (scripts/golden_half.py)
    half_dir, half_cases = golden_half.generate_half(out_dir, seed)
    _report_stale(half_dir, {c.name for c in half_cases})


# ---------------------------------------------------------------------------
# Self-check: the reference against independent computations
# ---------------------------------------------------------------------------

def naive_numpy(x, gamma, beta, dy, eps, axis):
    """Plain float64 batch norm with the textbook formulas (independent code)."""
    x = x.astype(np.float64)
    dy = dy.astype(np.float64)
    axis = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != axis)
    bshape = [1] * x.ndim
    bshape[axis] = -1
    m = x.size // x.shape[axis]
    g = gamma.astype(np.float64).reshape(bshape)
    b = beta.astype(np.float64).reshape(bshape)
    mean = x.mean(axis=red, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=red, keepdims=True)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * invstd
    y = g * xhat + b
    dbeta = dy.sum(axis=red)
    dgamma = (dy * xhat).sum(axis=red)
    dxhat = g * dy
    dx = (invstd / m) * (m * dxhat - dxhat.sum(axis=red, keepdims=True)
                         - xhat * (dxhat * xhat).sum(axis=red, keepdims=True))
    return dict(y=y, mean=mean.ravel(), invstd=invstd.ravel(), dx=dx,
                dgamma=dgamma, dbeta=dbeta)


def naive_numpy_eval(x, gamma, beta, dy, rmean, rvar, eps, axis):
    """Plain float64 inference-mode batch norm (independent code)."""
    x = x.astype(np.float64)
    dy = dy.astype(np.float64)
    axis = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != axis)
    bshape = [1] * x.ndim
    bshape[axis] = -1
    g = gamma.astype(np.float64).reshape(bshape)
    b = beta.astype(np.float64).reshape(bshape)
    rm = rmean.astype(np.float64).reshape(bshape)
    rv = rvar.astype(np.float64).reshape(bshape)
    xhat = (x - rm) / np.sqrt(rv + eps)
    return dict(y=g * xhat + b, dx=g * dy / np.sqrt(rv + eps),
                dgamma=(dy * xhat).sum(axis=red), dbeta=dy.sum(axis=red))


def naive_numpy_running(x, rmean, rvar, momentum, correction, axis):
    """Plain float64 running-statistics update (independent code): numpy's var with
    ddof = correction is the batch variance the update takes."""
    x = x.astype(np.float64)
    axis = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != axis)
    return ((1 - momentum) * rmean + momentum * x.mean(axis=red),
            (1 - momentum) * rvar + momentum * x.var(axis=red, ddof=correction))


def _normwise(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    scale = float(np.max(np.abs(ref))) or 1.0
    return float(np.max(np.abs(got - ref))) / scale


def _check(results, label, ok, detail):
    results.append(ok)
    print("  [%s] %s: %s" % ("ok" if ok else "FAIL", label, detail))


def naive_numpy_family(norm, x, gamma, beta, dy, eps, axis=None, groups=None):
    """Plain float64 layer/rms/instance/group norm with reshapes and the textbook
    formulas (independent code, written only for the self-check)."""
    x = x.astype(np.float64)
    dy = dy.astype(np.float64)
    nd = x.ndim
    a = (family_default_axis(norm) if axis is None else axis) % nd
    if norm in ("layer", "rms"):
        lead = x.shape[:a]
        X, DY = x.reshape(int(np.prod(lead)), -1), dy.reshape(int(np.prod(lead)), -1)
        g = gamma.astype(np.float64).reshape(1, -1)
        b = None if norm == "rms" else beta.astype(np.float64).reshape(1, -1)
        stat_shape = lead + (1,) * (nd - a)
    else:
        N, C = x.shape[0], x.shape[a]
        G = C if norm == "instance" else groups
        xm, dym = np.moveaxis(x, a, 1), np.moveaxis(dy, a, 1)    # (N, C, ...)
        moved_shape = xm.shape
        X, DY = xm.reshape(N * G, -1), dym.reshape(N * G, -1)     # rows: (n, g)
        per = int(np.prod(moved_shape[2:]))                       # spatial size
        g = np.tile(np.repeat(gamma.astype(np.float64).reshape(G, C // G), per, axis=1),
                    (N, 1))                                       # gamma of each element
        b = np.tile(np.repeat(beta.astype(np.float64).reshape(G, C // G), per, axis=1),
                    (N, 1))
        stat_shape = (N, G)
    m = X.shape[1]
    if norm == "rms":
        mean = np.zeros((X.shape[0], 1))
    else:
        mean = X.mean(axis=1, keepdims=True)
    s = ((X - mean) ** 2).mean(axis=1, keepdims=True)
    invstd = 1.0 / np.sqrt(s + eps)
    xhat = (X - mean) * invstd
    Y = g * xhat if norm == "rms" else g * xhat + b
    dxhat = g * DY
    corr = 0.0 if norm == "rms" else dxhat.sum(axis=1, keepdims=True) / m
    DX = invstd * (dxhat - corr - xhat * (dxhat * xhat).sum(axis=1, keepdims=True) / m)
    if norm in ("layer", "rms"):
        y, dx = Y.reshape(x.shape), DX.reshape(x.shape)
        dgamma = (DY * xhat).sum(axis=0).reshape(gamma.shape)
        dbeta = DY.sum(axis=0).reshape(gamma.shape)
    else:
        y = np.moveaxis(Y.reshape(moved_shape), 1, a)
        dx = np.moveaxis(DX.reshape(moved_shape), 1, a)
        red = (0,) + tuple(range(2, nd))
        dgamma = (DY * xhat).reshape(moved_shape).sum(axis=red)
        dbeta = DY.reshape(moved_shape).sum(axis=red)
    out = dict(y=y, invstd=invstd.reshape(stat_shape), dx=dx, dgamma=dgamma)
    if norm != "rms":
        out.update(mean=mean.reshape(stat_shape), dbeta=dbeta)
    return out


def torch_family(torch, norm, x, gamma, beta, dy, eps, axis=None, groups=None):
    """PyTorch float64 forward (F.layer_norm, F.group_norm, F.instance_norm; RMSNorm in
    torch ops, not in torch 1.13) and autograd backward of sum(dy * y); statistics from
    torch.native_layer_norm, torch.native_group_norm, torch.var_mean."""
    F = torch.nn.functional
    nd = x.ndim
    a = (family_default_axis(norm) if axis is None else axis) % nd
    X = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    W = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    B = None if norm == "rms" else torch.tensor(beta, dtype=torch.float64,
                                                requires_grad=True)
    DY = torch.tensor(dy, dtype=torch.float64)
    out = {}
    if norm == "layer":
        Y = F.layer_norm(X, x.shape[a:], W, B, eps)
        _, mean, rstd = torch.native_layer_norm(X.detach(), x.shape[a:], W.detach(),
                                                B.detach(), eps)
        out.update(mean=mean, invstd=rstd)
    elif norm == "rms":
        dims = tuple(range(a, nd))
        rstd = torch.rsqrt((X * X).mean(dim=dims, keepdim=True) + eps)
        Y = W * X * rstd
        out.update(invstd=rstd.detach())
    else:
        Xm = X.movedim(a, 1)
        N, C = Xm.shape[0], Xm.shape[1]
        if norm == "instance":
            Ym = F.instance_norm(Xm, weight=W, bias=B, use_input_stats=True, eps=eps)
            var, mean = torch.var_mean(Xm.detach().reshape(N, C, -1), dim=-1,
                                       unbiased=False)
            out.update(mean=mean, invstd=1.0 / torch.sqrt(var + eps))
        else:
            Ym = F.group_norm(Xm, groups, W, B, eps)
            _, mean, rstd = torch.native_group_norm(
                Xm.detach().contiguous(), W.detach(), B.detach(), N, C,
                int(np.prod(Xm.shape[2:])), groups, eps)
            out.update(mean=mean, invstd=rstd)
        Y = Ym.movedim(1, a)
    (Y * DY).sum().backward()
    out.update(y=Y.detach(), dx=X.grad, dgamma=W.grad)
    if B is not None:
        out["dbeta"] = B.grad
    return {k: v.numpy() for k, v in out.items()}


FAMILY_CHECK_SHAPES = [
    ("layer", (8, 16), -1, None), ("layer", (2, 5, 8), -2, None),
    ("layer", (2, 3, 4, 4), 1, None), ("layer", (3, 4, 6), -1, None),
    ("rms", (8, 16), -1, None), ("rms", (2, 5, 8), -2, None),
    ("rms", (2, 3, 4, 4), 1, None), ("rms", (4, 2), -1, None),
    ("instance", (2, 6, 3, 3), 1, None), ("instance", (3, 4, 8), 1, None),
    ("instance", (2, 3, 3, 4), -1, None), ("instance", (2, 6, 5), -2, None),
    ("group", (2, 6, 3, 3), 1, 3), ("group", (3, 4, 8), 1, 2),
    ("group", (2, 3, 3, 4), -1, 2), ("group", (6, 12), 1, 3), ("group", (2, 4, 3, 3), 1, 1),
    ("group", (2, 4, 3, 3), 1, 4),
]
# Well-conditioned shapes only, m >= 4 except rms (4, 2): with m = 2 the mean-subtracting
# norms' dx = invstd*(dxhat_1 - dxhat_2)/2 * eps/(var + eps) (per set, +-) is a
# cancellation of the order eps/var, which float64 code (numpy, torch) resolves only to
# ~1e-16 * var/eps relative; the m = 2 sets are checked in (i) in mpmath instead.


def _family_random(rng, norm, shape, axis, groups):
    lay = family_layout(norm, shape, axis, groups)
    x = rng.standard_normal(shape)
    gamma = rng.standard_normal(lay["param_shape"])
    beta = None if norm == "rms" else rng.standard_normal(lay["param_shape"])
    dy = rng.standard_normal(shape)
    return x, gamma, beta, dy


def _family_exact(norm, x, gamma, beta, dy, eps, axis, groups):
    ref = exact_family_forward(norm, x, gamma, beta, eps, axis, groups)
    ref.update(exact_family_backward(norm, x, gamma, dy, eps, axis, groups))
    return ref


def selfcheck_family(results, rng):
    """Checks of the family reference (issue 24): (h) vs naive float64 numpy, (i) vs
    mpmath finite differences, (j) vs PyTorch float64 (skipped without torch), (k)
    identities between the norms and with batch norm, bit for bit, (l) refusals."""
    print("(h) family vs naive float64 numpy (max|diff| / max|ref| per output)")
    for norm, shape, axis, groups in FAMILY_CHECK_SHAPES:
        x, gamma, beta, dy = _family_random(rng, norm, shape, axis, groups)
        ref = _family_exact(norm, x, gamma, beta, dy, "1e-05", axis, groups)
        nv = naive_numpy_family(norm, x, gamma, beta, dy, 1e-5, axis, groups)
        ok = set(nv) == set(ref) and all(nv[k].shape == ref[k].shape for k in ref)
        worst = max(_normwise(nv[k], ref[k]) for k in ref)
        _check(results, "%s %s axis %d%s" % (norm, shape, axis,
               "" if groups is None else " G %d" % groups), ok and worst < 1e-12,
               "worst %.2e (tol 1e-12), outputs %s" % (worst, " ".join(sorted(ref))))

    print("(i) family gradients vs mpmath central differences of sum(dy * y) "
          "(dps 100, h = 1e-20; max|fd - ref| / max|fd| per output)")
    def const_row(x):                      # row 1 constant (var = 0, eps > 0)
        x[1] = 0.375
        return x

    def offset_row(x):                     # row 2 = 1e6 + 1e-3*normal
        x[2] = 1e6 + 1e-3 * x[2]
        return x

    def zero_set(x):                       # sample 0's first group all zero
        x[0, :2] = 0.0
        return x

    for norm, shape, axis, groups, tweak, label in [
            ("layer", (3, 2, 3), -2, None, None, ""),
            ("layer", (4, 3), -1, None, None, ""),
            ("layer", (3, 2), -1, None, None, ", m = 2"),
            ("layer", (3, 4), -1, None, const_row, ", constant row"),
            ("layer", (3, 4), -1, None, offset_row, ", row offset 1e6"),
            ("rms", (3, 4), -1, None, None, ""),
            ("rms", (2, 2, 3), 1, None, None, ""),
            ("rms", (3, 4), -1, None, const_row, ", constant row"),
            ("rms", (3, 4), -1, None, offset_row, ", row offset 1e6"),
            ("instance", (2, 2, 3), 1, None, None, ""),
            ("instance", (2, 3, 2), -1, None, None, ""),
            ("group", (2, 4, 2), 1, 2, None, ""),
            ("group", (3, 4), 1, 2, None, ", m = 2"),
            ("group", (2, 2, 6), -1, 3, None, ""),
            ("group", (2, 4, 2), 1, 2, zero_set, ", a zero set")]:
        x, gamma, beta, dy = _family_random(rng, norm, shape, axis, groups)
        if tweak is not None:
            x = tweak(x)
        rms = norm == "rms"
        lay = family_layout(norm, shape, axis, groups)
        sets, pflat = _family_sets(lay), lay["param_id"].ravel()
        n_params = int(np.prod(lay["param_shape"]))
        with mp.workdps(100):
            eps = _mpf_exact(1e-5)
            h = mpf("1e-20")
            xf = [_mpf_exact(v) for v in x.ravel()]
            gf = [_mpf_exact(v) for v in gamma.ravel()]
            bf = None if rms else [_mpf_exact(v) for v in beta.ravel()]
            dyf = [_mpf_exact(v) for v in dy.ravel()]

            def f(xf_, gf_, bf_):
                return mp.fdot(dyf, family_forward_mp(xf_, gf_, bf_, sets, pflat, eps,
                                                      rms)[0])

            def fd(lst, i, call):
                p, q = list(lst), list(lst)
                p[i] += h
                q[i] -= h
                return (call(p) - call(q)) / (2 * h)

            with mp.workdps(EXACT_DPS):          # the reference as used
                dx, dgamma, dbeta = family_backward_mp(xf, gf, dyf, sets, pflat,
                                                       n_params, eps, rms)
            pairs = {"dx": ([fd(xf, i, lambda v: f(v, gf, bf)) for i in range(len(xf))],
                            dx),
                     "dgamma": ([fd(gf, i, lambda v: f(xf, v, bf)) for i in range(len(gf))],
                                dgamma)}
            if not rms:
                pairs["dbeta"] = ([fd(bf, i, lambda v: f(xf, gf, v))
                                   for i in range(len(bf))], dbeta)
            parts = []
            ok = True
            for k, (num, ana) in pairs.items():
                err = (max(abs(u - v) for u, v in zip(num, ana))
                       / max(abs(u) for u in num))
                ok = ok and err < mpf("1e-30")
                parts.append("%s %s" % (k, mpmath.nstr(err, 3)))
        _check(results, "%s %s axis %d%s%s" % (norm, shape, axis,
               "" if groups is None else " G %d" % groups, label), ok,
               ", ".join(parts) + " (tol 1e-30)")

    print("(j) family vs PyTorch float64 (F.layer_norm, F.group_norm, F.instance_norm, "
          "RMSNorm in torch ops; autograd)")
    try:
        import torch
    except ImportError:
        torch = None
        print("  skipped: torch not installed")
    if torch is not None:
        print("  torch %s" % torch.__version__)
        for norm, shape, axis, groups in FAMILY_CHECK_SHAPES:
            x, gamma, beta, dy = _family_random(rng, norm, shape, axis, groups)
            ref = _family_exact(norm, x, gamma, beta, dy, "1e-05", axis, groups)
            tv = torch_family(torch, norm, x, gamma, beta, dy, 1e-5, axis, groups)
            ok = set(tv) == set(ref) and all(tv[k].shape == ref[k].shape for k in ref)
            worst = max(_normwise(tv[k], ref[k]) for k in ref)
            _check(results, "%s %s axis %d%s" % (norm, shape, axis,
                   "" if groups is None else " G %d" % groups), ok and worst < 1e-12,
                   "worst %.2e (tol 1e-12), shapes %s" % (worst, "match" if ok else
                   {k: (tv[k].shape, ref[k].shape) for k in ref if k in tv}))

    print("(k) identities, bit for bit: group G = C is instance; group G = 1 is layer over "
          "(C, H, W); layer on (N, D) has batch norm's statistics and dx on x.T; rms of "
          "zero-mean rows is layer")
    x, gamma, beta, dy = _family_random(rng, "group", (2, 4, 3, 3), 1, 4)
    a = _family_exact("group", x, gamma, beta, dy, "1e-05", 1, 4)
    b = _family_exact("instance", x, gamma, beta, dy, "1e-05", 1, None)
    _check(results, "group G = C == instance", all(np.array_equal(a[k], b[k]) for k in a),
           "y, mean, invstd, dx, dgamma, dbeta")
    a = _family_exact("group", x, gamma, beta, dy, "1e-05", 1, 1)
    gb = np.broadcast_to(gamma[:, None, None], (4, 3, 3))
    bb = np.broadcast_to(beta[:, None, None], (4, 3, 3))
    b = _family_exact("layer", x, gb, bb, dy, "1e-05", 1, None)
    _check(results, "group G = 1 == layer axis 1 (gamma broadcast)",
           all(np.array_equal(a[k].ravel(), b[k].ravel())
               for k in ("y", "mean", "invstd", "dx")), "y, mean, invstd, dx")
    x, dy = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    g0 = 0.75
    a = _family_exact("layer", x, np.full(7, g0), np.zeros(7), dy, "1e-05", -1, None)
    _, mean, invstd = exact_forward(x.T, np.full(5, g0), np.zeros(5), "1e-05", 1)
    dx, _, _ = exact_backward(x.T, np.full(5, g0), dy.T, "1e-05", 1)
    _check(results, "layer (N, D) == batch norm on x.T (constant gamma)",
           np.array_equal(a["mean"].ravel(), mean) and np.array_equal(a["invstd"].ravel(),
           invstd) and np.array_equal(a["dx"], dx.T), "mean, invstd, dx")
    h = rng.standard_normal((3, 2))
    x = np.concatenate([h, -h], axis=1)                # rows of exact mean 0
    gamma = rng.standard_normal(4)
    a = exact_family_forward("rms", x, gamma, None, "1e-05")
    b = exact_family_forward("layer", x, gamma, np.zeros(4), "1e-05")
    _check(results, "rms == layer on zero-mean rows (beta = 0)",
           np.array_equal(a["y"], b["y"]) and np.array_equal(a["invstd"], b["invstd"])
           and not b["mean"].any(), "y, invstd")

    print("(l) refusals")
    for norm, shape, axis, groups, why in [
            ("layer", (4, 1), -1, None, "m = 1"), ("rms", (3, 5, 1), -1, None, "m = 1"),
            ("instance", (4, 3), 1, None, "m = 1"), ("group", (2, 6, 2), 1, 4, "G !| C"),
            ("group", (2, 6, 2), 0, 2, "axis 0"), ("instance", (2, 6, 2), 0, None, "axis 0"),
            ("group", (2, 6, 2), 1, None, "no groups")]:
        try:
            family_layout(norm, shape, axis, groups)
            ok, msg = False, "accepted"
        except ValueError as e:
            ok, msg = True, str(e)
        _check(results, "%s %s axis %d (%s)" % (norm, shape, axis, why), ok, msg)
    try:
        exact_family_forward("layer", np.ones((2, 3)), np.ones(2), np.ones(2), "1e-05")
        ok, msg = False, "accepted"
    except ValueError as e:
        ok, msg = True, str(e)
    _check(results, "layer gamma of the wrong shape", ok, msg)


def _worst_fd_error(f, xs, g, b, h, dx, dgamma, dbeta, worst):
    """Raises worst["dx"], worst["dgamma"], worst["dbeta"] to the relative differences
    between one channel's gradients and the central differences of f(xs, g, b) with step
    h."""
    for i in range(len(xs)):
        xp, xm = list(xs), list(xs)
        xp[i] += h
        xm[i] -= h
        fd = (f(xp, g, b) - f(xm, g, b)) / (2 * h)
        worst["dx"] = max(worst["dx"], abs(fd - dx[i]) / abs(fd))
    fd = (f(xs, g + h, b) - f(xs, g - h, b)) / (2 * h)
    worst["dgamma"] = max(worst["dgamma"], abs(fd - dgamma) / abs(fd))
    fd = (f(xs, g, b + h) - f(xs, g, b - h)) / (2 * h)
    worst["dbeta"] = max(worst["dbeta"], abs(fd - dbeta) / abs(fd))


def selfcheck():
    results = []
    rng = np.random.default_rng(20240601)

    # (a) agreement with a naive float64 numpy implementation.
    print("(a) mpmath reference vs naive float64 numpy (max|diff| / max|ref|)")
    for shape, axis in [((32, 4), 1), ((4, 3, 5, 5), 1), ((3, 4, 4, 5), -1),
                        ((6, 20), 0), ((5, 3, 7), -2)]:
        x = rng.standard_normal(shape)
        C = shape[axis]
        gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
        dy = rng.standard_normal(shape)
        y, mean, invstd = exact_forward(x, gamma, beta, "1e-05", axis)
        dx, dgamma, dbeta = exact_backward(x, gamma, dy, "1e-05", axis)
        ref = dict(y=y, mean=mean, invstd=invstd, dx=dx, dgamma=dgamma, dbeta=dbeta)
        nv = naive_numpy(x, gamma, beta, dy, 1e-5, axis)
        worst = max(np.max(np.abs(nv[k] - ref[k])) / np.max(np.abs(ref[k]))
                    for k in ref)
        _check(results, "shape %s axis %d" % (shape, axis), worst < 1e-12,
               "worst %.2e (tol 1e-12)" % worst)

    # (b) gradients vs central finite differences of f = sum(dy * y), in mpmath.
    print("(b) exact gradients vs mpmath central differences (dps 100, h = 1e-20)")
    x = rng.standard_normal((5, 3))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    dy = rng.standard_normal((5, 3))
    eps_s = "1e-05"
    with mp.workdps(100):
        eps = _mpf_exact(float(eps_s))
        h = mpf("1e-20")
        worst = {"dx": mpf(0), "dgamma": mpf(0), "dbeta": mpf(0)}
        for c in range(3):
            xs = [_mpf_exact(v) for v in x[:, c]]
            dys = [_mpf_exact(v) for v in dy[:, c]]
            g, b = _mpf_exact(gamma[c]), _mpf_exact(beta[c])

            def f(xs_, g_, b_):
                return mp.fdot(dys, channel_forward(xs_, g_, b_, eps)[4])

            with mp.workdps(EXACT_DPS):         # the reference as used
                dx, dgamma, dbeta = channel_backward(xs, g, dys, eps)
            _worst_fd_error(f, xs, g, b, h, dx, dgamma, dbeta, worst)
        for k, v in worst.items():
            _check(results, k, v < mpf("1e-30"),
                   "worst relative diff %s (tol 1e-30)" % mpmath.nstr(v, 3))

    # (c) invariants of xhat per channel.
    print("(c) invariants: sum xhat = 0, mean(xhat^2) = var/(var+eps)")
    cases = [("normal f64", rng.standard_normal((50, 4)), "1e-05"),
             ("offset 1e8 f64", 1e8 + 1e-2 * rng.standard_normal((40, 3)), "1e-05"),
             ("offset 1e4 f32", (1e4 + rng.standard_normal((40, 3))).astype(np.float32),
              "1e-08"),
             ("cauchy f64", rng.standard_cauchy((60, 3)), "1e-03")]
    for label, x, eps_s in cases:
        worst_sum = worst_sq = mpf(0)
        with mp.workdps(EXACT_DPS):
            eps = _mpf_exact(float(eps_s))
            for xs in _split_channels(x, 1):
                m = len(xs)
                _, var, _, xhat, _ = channel_forward(xs, mpf(1), mpf(0), eps)
                worst_sum = max(worst_sum, abs(mp.fsum(xhat)) / m)
                worst_sq = max(worst_sq,
                               abs(mp.fdot(xhat, xhat) / m - var / (var + eps)))
        ok = worst_sum < mpf("1e-55") and worst_sq < mpf("1e-55")
        _check(results, label, ok, "|sum xhat|/m %s, |mean xhat^2 - ratio| %s (tol 1e-55)"
               % (mpmath.nstr(worst_sum, 3), mpmath.nstr(worst_sq, 3)))

    # Rounding to float64 is correct to nearest (not truncation).
    print("(d) mpf -> float64 rounds to nearest")
    with mp.workdps(EXACT_DPS):
        third = mpf(1) / 3
        ok = (_round_f64(third) == 1.0 / 3 and _round_f64(-third) == -1.0 / 3
              and _round_f64(mpf(2) / 3) == 2.0 / 3)
    _check(results, "1/3, -1/3, 2/3", ok, "match IEEE division")

    # (e) inference mode and the running update vs naive float64 numpy formulas.
    print("(e) inference mode and running update vs naive float64 numpy "
          "(max|diff| / max|ref|)")
    for shape, axis in [((32, 4), 1), ((4, 3, 5, 5), 1), ((3, 4, 4, 5), -1),
                        ((6, 20), 0), ((1, 5), 1), ((1, 3, 1, 1), 1)]:
        x = rng.standard_normal(shape)
        C = shape[axis]
        gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
        rmean, rvar = 0.5 * rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
        dy = rng.standard_normal(shape)
        y = exact_forward_eval(x, gamma, beta, rmean, rvar, "1e-05", axis)
        dx, dgamma, dbeta = exact_backward_eval(x, gamma, dy, rmean, rvar, "1e-05", axis)
        nv = naive_numpy_eval(x, gamma, beta, dy, rmean, rvar, 1e-5, axis)
        ref = dict(y=y, dx=dx, dgamma=dgamma, dbeta=dbeta)
        worst = max(_normwise(nv[k], ref[k]) for k in ref)
        _check(results, "eval shape %s axis %d" % (shape, axis), worst < 1e-12,
               "worst %.2e (tol 1e-12)" % worst)
    for shape, axis in [((32, 4), 1), ((4, 3, 5, 5), 1), ((2, 6), 1), ((5, 3, 7), -2)]:
        x = rng.standard_normal(shape)
        C = shape[axis]
        rmean, rvar = 0.5 * rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
        worst = 0.0
        for momentum in ("0", "0.1", "0.5", "0.3333333333333333", "1"):
            for corr in (0, 1):
                nm, nvar = exact_running_update(x, rmean, rvar, momentum, corr, axis)
                a, b = naive_numpy_running(x, rmean, rvar, float(momentum), corr, axis)
                worst = max(worst, _normwise(a, nm), _normwise(b, nvar))
        _check(results, "running update shape %s axis %d, 5 momenta x 2 corrections"
               % (shape, axis), worst < 1e-13, "worst %.2e (tol 1e-13)" % worst)

    # (f) inference-mode gradients vs central finite differences of f = sum(dy * y).
    print("(f) inference-mode gradients vs mpmath central differences (dps 100, h = 1e-20)")
    x = rng.standard_normal((4, 3))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    rmean, rvar = 0.5 * rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    dy = rng.standard_normal((4, 3))
    with mp.workdps(100):
        eps = _mpf_exact(1e-5)
        h = mpf("1e-20")
        worst = {"dx": mpf(0), "dgamma": mpf(0), "dbeta": mpf(0)}
        for c in range(3):
            xs = [_mpf_exact(v) for v in x[:, c]]
            dys = [_mpf_exact(v) for v in dy[:, c]]
            g, b = _mpf_exact(gamma[c]), _mpf_exact(beta[c])
            rm, rv = _mpf_exact(rmean[c]), _mpf_exact(rvar[c])

            def f(xs_, g_, b_):
                return mp.fdot(dys, channel_forward_eval(xs_, g_, b_, rm, rv, eps)[2])

            with mp.workdps(EXACT_DPS):
                dx, dgamma, dbeta = channel_backward_eval(xs, g, dys, rm, rv, eps)
            _worst_fd_error(f, xs, g, b, h, dx, dgamma, dbeta, worst)
        for k, v in worst.items():
            _check(results, "eval " + k, v < mpf("1e-30"),
                   "worst relative diff %s (tol 1e-30)" % mpmath.nstr(v, 3))

    # (g) identities between the references, bit for bit.
    print("(g) identities: eval with the batch statistics = training mode; momentum 0 "
          "keeps, momentum 1 takes the batch statistics")
    # m = 2 channels {a - d, a + d}: mean a and biased var d^2 are exact floats.
    a = np.array([0.75, -3.5, 1e6, 2.0 ** -20])
    d = np.array([0.5, 2.0 ** -10, 2.0 ** -8, 3.0])
    x = np.stack([a - d, a + d])
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    y_train, mean, _ = exact_forward(x, gamma, beta, "1e-05", 1)
    y_eval = exact_forward_eval(x, gamma, beta, a, d * d, "1e-05", 1)
    _check(results, "eval(rm = mean, rv = var) == train y", np.array_equal(y_train, y_eval)
           and np.array_equal(mean, a), "m = 2, exact statistics")
    x = rng.standard_normal((7, 3))
    rmean, rvar = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    nm0, nv0 = exact_running_update(x, rmean, rvar, "0", 1, 1)
    nm1, nv1 = exact_running_update(x, rmean, rvar, "1", 0, 1)
    _, mean, invstd = exact_forward(x, np.ones(3), np.zeros(3), "0", 1)
    _, nv1u = exact_running_update(x, rmean, rvar, "1", 1, 1)
    with mp.workdps(EXACT_DPS):
        var_exact = [mp.fdot(*(2 * [[_mpf_exact(v) - mp.fsum(map(_mpf_exact, col)) / 7
                                     for v in col]])) / 7 for col in x.T]
        ok_var = all(_round_f64(v) == nv1[c] and _round_f64(v * 7 / 6) == nv1u[c]
                     for c, v in enumerate(var_exact))
    _check(results, "momentum 0", np.array_equal(nm0, rmean) and np.array_equal(nv0, rvar),
           "new = old exactly")
    _check(results, "momentum 1", np.array_equal(nm1, mean) and ok_var,
           "new mean = batch mean, new var = biased / unbiased batch variance")

    # (h) .. (l): the normalization family.
    selfcheck_family(results, np.random.default_rng(20240624))

    n_fail = results.count(False)
    print("selfcheck: %d checks, %d failed" % (len(results), n_fail))
    return n_fail == 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", help="output directory for the golden cases")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help="random seed (default %d: the committed set)" % DEFAULT_SEED)
    ap.add_argument("--selfcheck", action="store_true",
                    help="verify the reference against independent computations")
    args = ap.parse_args(argv)
    if not args.selfcheck and not args.out:
        ap.error("give --out DIR and/or --selfcheck")
    if args.seed < 0:
        ap.error("--seed must be non-negative")
    if args.selfcheck:
        import golden_half
        if not selfcheck() or not golden_half.selfcheck_half():
            return 1
    if args.out:
        generate(args.out, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
