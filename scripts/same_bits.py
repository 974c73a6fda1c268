#!/usr/bin/env python3
"""Checks that two builds of bnorm write bitwise identical outputs.

Usage: same_bits.py BNORM_A BNORM_B

The Release build targets the host's best instruction set (x86-64-v4 or v3) and the
sanitizer build the baseline x86-64, with the portable fallbacks of lib/src/simd.hpp:
the README promises the same bits from both, since every operation is an IEEE one. This
runs forward and backward of each build on data that takes every kernel path (channels-
last tiles with their chunk and one-channel tails, NCHW runs, float32 channels the
certificates send to the error-free sums, float64 channels summed again centred on their
mean, float64 data outside the fast range, several blocks), at 1 and 2 threads, and compares the files byte for byte. Exit 1 on a difference.
The normalization family (--norm layer, rms, instance, group) runs the same way on rows
short and long, NCHW and channels-last sets, offset and heavy-tailed data; inference mode
(--mode eval) on data where β cancels the rest of y.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np


def cases(rng):
    """(name, x, dy, axis) covering the kernels' paths."""
    shapes = [((3000, 23), 1), ((700, 256), 1), ((300, 512), 1), ((4, 6, 33, 35), 1), ((3, 5, 31, 37), 1),
              ((8, 9, 9, 37), -1), ((64, 16), 1)]
    for dtype in (np.float32, np.float64):
        for shape, axis in shapes:
            z = rng.standard_normal(shape)
            yield f"{np.dtype(dtype).name}_{len(shape)}d{shape[axis]}_normal", 3 * z, rng.standard_normal(shape), axis, dtype
            x = 1e8 + 1e-2 * z if dtype == np.float64 else 1e4 + z
            yield f"{np.dtype(dtype).name}_{len(shape)}d{shape[axis]}_offset", x, 0.5 + 2 * x, axis, dtype
            if dtype == np.float64:
                # |mean| 5e4 times the spread: summed again centred on the mean (biased sums)
                x = 5e4 + rng.standard_normal(shape)
                yield f"float64_{len(shape)}d{shape[axis]}_centred", x, rng.standard_normal(shape), axis, dtype
            c = rng.standard_cauchy(shape)
            # dy nearly linear in heavy-tailed x: float32 channels fail their certificates
            yield (f"{np.dtype(dtype).name}_{len(shape)}d{shape[axis]}_cauchy", c,
                   0.5 + 2 * c + 1e-9 * rng.standard_normal(shape), axis, dtype)
    # float32, dy linear in x (summed again with the biased sums), with zeros and values
    # 2^-30 times smaller in some tiles: their Σx needs the error terms, the others' not
    for shape, axis in ((3000, 23), 1), ((4, 6, 33, 35), 1), ((8, 9, 9, 37), -1):
        x = rng.standard_normal(shape)
        x[rng.random(shape) < 0.05] = 0
        x[rng.random(shape) < 0.01] *= 2.0**-30
        yield f"float32_{len(shape)}d{shape[axis]}_linear_mixed", x, 0.5 + 2 * x, axis, np.float32
    yield "float64_tiny_magnitudes", 1e-200 * rng.standard_normal((300, 7)), rng.standard_normal((300, 7)), 1, np.float64


def family_cases(rng):
    """(name, x, dy, options, γ's shape) for the family's kernels: rows of layer and rms
    norm (short, long, several chunks), instance and group sets NCHW and channels last."""
    shapes = [(["--norm", "layer"], (300, 37), (37,)), (["--norm", "layer", "--axis", "1"], (6, 40, 70), (40, 70)),
              (["--norm", "rms"], (64, 1030), (1030,)), (["--norm", "instance"], (4, 6, 33, 35), (6,)),
              (["--norm", "instance", "--axis", "-1"], (4, 9, 9, 37), (37,)),
              (["--norm", "group", "--groups", "3"], (4, 6, 33, 35), (6,)),
              (["--norm", "group", "--groups", "4", "--axis", "-1"], (4, 9, 9, 36), (36,))]
    for dtype in (np.float32, np.float64):
        for opts, shape, gshape in shapes:
            tag = f"{np.dtype(dtype).name}_{opts[1]}_{'x'.join(map(str, shape))}"
            z = rng.standard_normal(shape)
            yield tag + "_normal", 3 * z, rng.standard_normal(shape), opts, gshape, dtype
            x = 1e6 + 1e-3 * z if dtype == np.float64 else 1e3 + z
            yield tag + "_offset", x, 0.5 + 2 * x, opts, gshape, dtype
            c = rng.standard_cauchy(shape)
            yield tag + "_cauchy", c, 0.5 + 2 * c + 1e-9 * rng.standard_normal(shape), opts, gshape, dtype


def eval_cases(rng):
    """(name, x, running mean, running var, γ, β, axis) for inference mode (--mode eval),
    float32 and float64, NCHW runs and channels-last rows: half the values near the root
    of y = γ·(x − rm)/sqrt(rv + eps) + β, where β cancels the rest and float32 takes the
    double-double form for some lanes of a vector and the plain one for the others."""
    for dtype in (np.float32, np.float64):
        for shape, axis in ((16, 24, 9, 40), 1), ((16, 9, 7, 24), -1), ((2000, 48), 1), ((301, 80), 1):
            C = shape[axis]
            rm, rv = rng.standard_normal(C), rng.uniform(0.5, 3, C)
            gamma, beta = rng.uniform(0.5, 2, C), rng.uniform(-2, 2, C)
            bshape = [1] * len(shape)
            bshape[axis] = C
            root = (rm - beta * np.sqrt(rv + 1e-5) / gamma).reshape(bshape)
            near = root * (1 + np.ldexp(rng.uniform(-4, 4, shape), -20))
            x = np.where(rng.random(shape) < 0.5, near, rng.standard_normal(shape))
            yield (f"eval_{np.dtype(dtype).name}_{'x'.join(map(str, shape))}", x.astype(dtype), rm.astype(dtype),
                   rv.astype(dtype), gamma.astype(dtype), beta.astype(dtype), axis)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(20261125)
    compared = 0
    with tempfile.TemporaryDirectory() as tmp:
        def path(*parts):
            return os.path.join(tmp, "_".join(parts) + ".npy")

        def require_same(fa, fb):
            """Exits 1 unless the files of builds a and b hold the same bytes."""
            with open(fa, "rb") as f1, open(fb, "rb") as f2:
                if f1.read() != f2.read():
                    print(f"same_bits: {os.path.basename(fa)} differs between {a} and {b}", file=sys.stderr)
                    sys.exit(1)

        batch = ((name, x, dy, ["--axis", str(axis)], (x.shape[axis],), dtype)
                 for name, x, dy, axis, dtype in cases(rng))
        for name, x, dy, options, gshape, dtype in [*batch, *family_cases(rng)]:
            rms = "rms" in options
            np.save(path(name, "x"), x.astype(dtype))
            np.save(path(name, "dy"), dy.astype(dtype))
            np.save(path(name, "gamma"), rng.standard_normal(gshape).astype(dtype))
            np.save(path(name, "beta"), rng.standard_normal(gshape).astype(dtype))
            for threads in ("1", "2"):
                outputs = {}
                for tag, exe in (("a", a), ("b", b)):
                    fwd = [path(name, t, tag, threads) for t in ("y", "invstd", "mean")]
                    bwd = [path(name, t, tag, threads) for t in ("dx", "dgamma", "dbeta")]
                    if rms:  # no β, no mean, no dβ
                        fwd, bwd = fwd[:2], bwd[:2]
                    common = ["--x", path(name, "x"), "--gamma", path(name, "gamma"), *options,
                              "--threads", threads]
                    subprocess.run([exe, "forward", *common, "--y", fwd[0], "--invstd", fwd[1]]
                                   + ([] if rms else ["--beta", path(name, "beta"), "--mean", fwd[2]]), check=True)
                    subprocess.run([exe, "backward", *common, "--dy", path(name, "dy"), "--dx", bwd[0],
                                    "--dgamma", bwd[1]] + ([] if rms else ["--dbeta", bwd[2]]), check=True)
                    outputs[tag] = fwd + bwd
                for fa, fb in zip(outputs["a"], outputs["b"]):
                    require_same(fa, fb)
                    compared += 1
        for name, x, rm, rv, gamma, beta, axis in eval_cases(rng):
            for tag, v in (("x", x), ("rm", rm), ("rv", rv), ("gamma", gamma), ("beta", beta)):
                np.save(path(name, tag), v)
            for threads in ("1", "2"):
                ys = []
                for tag, exe in (("a", a), ("b", b)):
                    ys.append(path(name, "y", tag, threads))
                    subprocess.run([exe, "forward", "--mode", "eval", "--axis", str(axis), "--threads", threads,
                                    *(f"--{o}={path(name, t)}" for o, t in (("x", "x"), ("gamma", "gamma"),
                                                                          ("beta", "beta"), ("running-mean", "rm"),
                                                                          ("running-var", "rv"))),
                                    "--y", ys[-1]], check=True)
                require_same(*ys)
                compared += 1
    print(f"same_bits: {compared} output files bitwise identical between {a} and {b}")


if __name__ == "__main__":
    main()
