#!/usr/bin/python3
"""Half-precision golden cases (float16, bfloat16) for scripts/golden.py: DIR/half/<name>/.

The inputs (x, gamma, beta, dy) are float16 or bfloat16 values, exact in mpmath.  The
exact outputs of golden.py's reference (family_forward_mp / family_backward_mp, batch norm
as the family with one set per channel) are rounded ONCE from mpf: y and dx to the case's
half type, mean, invstd, dgamma and dbeta to float32 (PyTorch's and ONNX's stash_type = 1),
each by _round_once below (never through float64 or float32, which would round twice).

A case folder holds x.npy, gamma.npy, beta.npy (not for rms), dy.npy, the outputs y.npy,
mean.npy (not for rms), invstd.npy, dx.npy, dgamma.npy, dbeta.npy (not for rms), and
case.json (name, norm, class, dtype, shape, axis, groups, eps, cli_options, notes, bits).
float16 arrays are saved as numpy float16 ('<f2'); bfloat16 ones, which numpy lacks, as
their bit patterns (the top 16 bits of a float32) viewed as 2-byte void ('|V2'), which
np.load reads and .view(ml_dtypes.bfloat16) turns back; bits_to_float below decodes them
without ml_dtypes.  "bits": true marks the cases whose y must match bit for bit (values
placed 2^-30 (relative) off the half type's half-way points, where rounding through
float32 would give the wrong neighbour).
"""
import json
import os

import numpy as np
from mpmath import mp, mpf, floor as mpfloor

import golden as g

HALF_SUBDIR = "half"
# (fraction bits, least normal exponent, largest exponent)
FORMATS = {"float16": (10, -14, 15), "bfloat16": (7, -126, 127), "float32": (23, -126, 127)}
EPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": 2.0 ** -23}


def _round_once(v, dtype):
    """The nearest value of dtype to the mpf v, ties to even, as a Python float (exact)."""
    frac, emin, emax = FORMATS[dtype]
    if v == 0:
        return 0.0
    a = abs(v)
    e = max(int(mp.floor(mp.log(a, 2))), emin)
    # mp.log may be off by one at exact powers of two: fix the binade exactly
    while a >= mpf(2) ** (e + 1):
        e += 1
    while e > emin and a < mpf(2) ** e:
        e -= 1
    q = mpf(2) ** (e - frac)
    n = a / q
    r = mpfloor(n)
    rest = n - r
    if rest > 0.5 or (rest == 0.5 and int(r) % 2 == 1):
        r += 1
    out = float(r * q)  # exact: r has at most frac + 2 bits
    top = (2.0 - 2.0 ** -frac) * 2.0 ** emax
    if out > top:
        out = float("inf")
    return out if v > 0 else -out


def to_bits(values, dtype):
    """float16 / bfloat16 values (exact floats) as uint16 bit patterns."""
    v = np.asarray(values, np.float64)
    if dtype == "float16":
        return v.astype(np.float16).view(np.uint16)  # exact: the values are float16's
    f = v.astype(np.float32)  # exact: bfloat16 values are float32 values
    assert np.all((f.view(np.uint32) & 0xFFFF) == 0) or not np.all(np.isfinite(f))
    return (f.view(np.uint32) >> 16).astype(np.uint16)


def bits_to_float(bits, dtype):
    """uint16 bit patterns of float16 / bfloat16 as float64 values (exact)."""
    b = np.asarray(bits).view(np.uint16)
    if dtype == "float16":
        return b.view(np.float16).astype(np.float64)
    return (b.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def load_half(path, dtype):
    """A saved array of dtype (float16 '<f2', bfloat16 '|V2'/'<V2'/'<u2') as float64 values."""
    a = np.load(path)
    if a.dtype == np.float16 or a.dtype == np.float32 or a.dtype == np.float64:
        return a.astype(np.float64)
    return bits_to_float(a.view(np.uint16), dtype)


def save_half(path, values, dtype):
    if dtype == "float16":
        np.save(path, np.asarray(values, np.float64).astype(np.float16))
    else:
        np.save(path, to_bits(values, dtype).view("V2"))


def _quantize(a, dtype):
    """Round float64 data to dtype (data generation only: any rounding will do)."""
    return np.array([_round_once(mpf(float(v)), dtype) for v in np.ravel(a)]).reshape(np.shape(a))


class HalfCase:
    def __init__(self, name, norm, cls, dtype, shape, axis, eps, notes, groups=None, bits=False, **p):
        self.name, self.norm, self.cls, self.dtype = name, norm, cls, dtype
        self.shape, self.axis, self.eps, self.notes = tuple(shape), axis, eps, notes
        self.groups, self.bits, self.p = groups, bits, p


def half_case_list():
    H = HalfCase
    cases = []
    for dt, tag in (("float16", "f16"), ("bfloat16", "bf16")):
        cases += [
            H("batch_n32c4_%s" % tag, "batch", "baseline", dt, (32, 4), 1, "1e-05", "random normal data"),
            H("batch_n4c3h4w4_%s_offset" % tag, "batch", "offset", dt, (4, 3, 4, 4), 1, "1e-05",
              "mean 300 (float16 spacing 0.25 there), spread 2", offset=300.0, spread=2.0),
            H("layer_n4l16_%s" % tag, "layer", "baseline", dt, (4, 16), -1, "1e-05", "random normal data"),
            H("rms_n4l16_%s" % tag, "rms", "baseline", dt, (4, 16), -1, "1e-05", "random normal data"),
            H("instance_n2c3h3w3_%s" % tag, "instance", "baseline", dt, (2, 3, 3, 3), 1, "1e-05",
              "random normal data"),
            H("group_n2c4h3w3_g2_%s" % tag, "group", "baseline", dt, (2, 4, 3, 3), 1, "1e-05",
              "random normal data", groups=2),
            H("layer_n4l16_%s_nearmax" % tag, "layer", "near_overflow", dt, (4, 16), -1, "1e-05",
              "x near the largest finite value, gamma scaled so that max|y| is about 0.9 of it",
              big=True),
            H("batch_n16c2_%s_subnormal" % tag, "batch", "subnormal", dt, (16, 2), 1, "0",
              "x, gamma, y and dx in the subnormal range of the type", tiny=True),
            H("batch_n2c2_%s_halfway" % tag, "batch", "rounding", dt, (2, 2), 1, repr(2.0 ** -29),
              "y[1,0] = a half-way point + ~2^-30, y[0,1] = another - ~2^-30: rounding through "
              "float32 gives the wrong neighbour", bits=True),
        ]
    return cases


def _limits(dtype):
    frac, emin, emax = FORMATS[dtype]
    return (2.0 - 2.0 ** -frac) * 2.0 ** emax, 2.0 ** (emin - frac)


def make_half_inputs(case, seed):
    rng = np.random.default_rng([seed, g.zlib.crc32(case.name.encode())])
    dt, shape = case.dtype, case.shape
    lay = _layout(case)
    pshape = lay["param_shape"]
    top, tiny = _limits(dt)
    if case.cls == "rounding":
        frac = FORMATS[dt][0]
        x = np.array([[1.0, 1.0], [-1.0, -1.0]])
        gamma = np.array([1 - 2.0 ** -(frac + 1), 1.0])
        beta = np.array([2.0, 3 * 2.0 ** -(frac + 1)])
        dy = np.array([[1.0, -1.0], [0.5, 2.0]])
        return x, gamma, beta, dy
    x = rng.standard_normal(shape)
    gamma = rng.uniform(0.5, 1.5, pshape) * np.sign(rng.standard_normal(pshape))
    beta = rng.standard_normal(pshape)
    dy = rng.standard_normal(shape)
    if case.p.get("offset"):
        x = case.p["offset"] + case.p["spread"] * x
    if case.p.get("big"):
        x = top * (0.6 + 0.3 * np.tanh(x))  # within (0.3, 0.9) of the largest value
        gamma = gamma / np.abs(gamma) * top * 0.9 / 4.0  # |x̂| <= sqrt(15) < 4 for sets of 16
        beta = np.zeros(pshape)
    if case.p.get("tiny"):
        least_normal = 2.0 ** FORMATS[dt][1]
        x = 0.99 * least_normal * np.tanh(x)  # subnormal, invstd still finite in float32
        gamma = gamma * tiny * 32              # y = gamma * x̂ subnormal
        beta = np.round(beta * 8) * tiny
        dy = dy * tiny * 2 ** 20               # dx = gamma * invstd * (...) normal
    q = lambda a: _quantize(a, dt)
    return q(x), q(gamma), (None if case.norm == "rms" else q(beta)), q(dy)


def _layout(case):
    """golden.py's family layout; batch norm: one set per channel, gamma per channel."""
    if case.norm != "batch":
        return g.family_layout(case.norm, case.shape, case.axis, case.groups)
    nd = len(case.shape)
    a = case.axis % nd
    idx = np.indices(case.shape)
    C = case.shape[a]
    return dict(set_id=idx[a].astype(np.int64), param_id=idx[a].astype(np.int64), n_sets=C,
                m=int(np.prod(case.shape)) // C, stat_shape=(C,), param_shape=(C,), axis=a)


def exact_half_outputs(case, x, gamma, beta, dy):
    """Every output, rounded once from the exact mpf value (see the module docstring)."""
    lay = _layout(case)
    rms = case.norm == "rms"
    sets = g._family_sets(lay)
    pflat = lay["param_id"].ravel()
    n_params = int(np.prod(lay["param_shape"]))
    dt = case.dtype
    with mp.workdps(g.EXACT_DPS):
        eps = g._mpf_exact(float(case.eps))
        xf = [g._mpf_exact(v) for v in x.ravel()]
        gf = [g._mpf_exact(v) for v in gamma.ravel()]
        bf = None if rms else [g._mpf_exact(v) for v in beta.ravel()]
        dyf = [g._mpf_exact(v) for v in dy.ravel()]
        y, means, invstds = g.family_forward_mp(xf, gf, bf, sets, pflat, eps, rms)
        dx, dgamma, dbeta = g.family_backward_mp(xf, gf, dyf, sets, pflat, n_params, eps, rms)
        r = lambda vs, t, shape: np.array([_round_once(v, t) for v in vs]).reshape(shape)
        out = dict(y=r(y, dt, x.shape), invstd=r(invstds, "float32", lay["stat_shape"]),
                   dx=r(dx, dt, x.shape), dgamma=r(dgamma, "float32", lay["param_shape"]))
        if not rms:
            out["mean"] = r(means, "float32", lay["stat_shape"])
            out["dbeta"] = r(dbeta, "float32", lay["param_shape"])
    return out, lay


def write_half_case(case, seed, out_dir):
    x, gamma, beta, dy = make_half_inputs(case, seed)
    out, lay = exact_half_outputs(case, x, gamma, beta, dy)
    for k in ("y", "dx"):
        assert np.all(np.isfinite(out[k])), "%s: %s overflows" % (case.name, k)
    d = os.path.join(out_dir, case.name)
    os.makedirs(d, exist_ok=True)
    arrays = dict(x=x, gamma=gamma, beta=beta, dy=dy, y=out["y"], dx=out["dx"])
    for k, v in arrays.items():
        if v is not None:
            save_half(os.path.join(d, k + ".npy"), v, case.dtype)
    for k in ("mean", "invstd", "dgamma", "dbeta"):
        if k in out:
            np.save(os.path.join(d, k + ".npy"), out[k].astype(np.float32))
    opts = ["--norm", case.norm, "--axis", str(case.axis), "--eps", case.eps]
    if case.groups:
        opts += ["--groups", str(case.groups)]
    meta = {"name": case.name, "norm": case.norm, "class": case.cls, "dtype": case.dtype,
            "shape": list(case.shape), "axis": case.axis, "groups": case.groups, "eps": case.eps,
            "gamma_shape": list(lay["param_shape"]), "stat_shape": list(lay["stat_shape"]),
            "cli_options": opts, "bits": case.bits, "notes": case.notes,
            "outputs": {"y": case.dtype, "dx": case.dtype, "mean": "float32", "invstd": "float32",
                        "dgamma": "float32", "dbeta": "float32"}}
    if case.norm == "rms":
        for k in ("mean", "dbeta"):
            meta["outputs"].pop(k)
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(meta, f, indent=1)


def generate_half(out_dir, seed):
    d = os.path.join(out_dir, HALF_SUBDIR)
    cases = half_case_list()
    for c in cases:
        write_half_case(c, seed, d)
        print("%s/%s" % (HALF_SUBDIR, c.name))
    return d, cases


def selfcheck_half():
    """_round_once against numpy's float16 conversion (correctly rounded from float64) on
    values exact in float64, and against the known neighbours at half-way points ± 2^-30."""
    ok = True
    rng = np.random.default_rng(7)
    with mp.workdps(g.EXACT_DPS):
        for v in np.concatenate([rng.standard_normal(2000) * 10.0 ** rng.integers(-8, 5, 2000),
                                 [65504.0, 65519.0, 65520.0, 2.0 ** -25, 3 * 2.0 ** -25]]):
            with np.errstate(over="ignore"):
                want = float(np.float64(v).astype(np.float16))
            if _round_once(mpf(float(v)), "float16") != want:
                print("selfcheck half: float16(%r) gives %r, numpy %r"
                      % (v, _round_once(mpf(float(v)), "float16"), want))
                ok = False
        for v in rng.standard_normal(2000) * 10.0 ** rng.integers(-30, 30, 2000):
            want = float(np.float32(v))
            if _round_once(mpf(float(v)), "float32") != want:
                print("selfcheck half: float32(%r) differs from numpy" % v)
                ok = False
        d = mpf(2) ** -30
        for t, frac in (("float16", 10), ("bfloat16", 7)):
            u = mpf(2) ** -frac
            checks = [(1 + u / 2 + d, 1 + float(u)), (1 + u / 2 - d, 1.0),
                      (1 + 3 * u / 2 - d, 1 + float(u)), (1 + 3 * u / 2, 1 + 2 * float(u))]
            for v, want in checks:
                if _round_once(v, t) != want:
                    print("selfcheck half: %s rounding of %s gives %r, want %r" % (t, v, _round_once(v, t), want))
                    ok = False
    print("selfcheck half: %s" % ("ok" if ok else "FAILED"))
    return ok
