#!/usr/bin/python3
"""Writes the small example inputs in data/ (seeded, so the files are reproducible).

  x.csv, dy.csv            (16, 3) float64, (N, C); gamma.csv and beta.csv: one row of 3
  x_nchw.npy, dy_nchw.npy  (4, 3, 5, 5) float32, NCHW; gamma.npy, beta.npy: (3,) float32
  x_nchw.csv               the same x as CSV, 4 rows of 75 (read with --shape 4,3,5,5 --dtype float32)
  x_nhwc.npy, dy_nhwc.npy  (4, 5, 5, 3) float64, channels last (--axis -1)
  x_tokens.npy, dy_tokens.npy  (2, 6, 8) float32 (batch, tokens, features) offset by 1e3,
                           for --norm layer / rms; gamma_tokens.npy, beta_tokens.npy: (8,)
  x_groups.npy, dy_groups.npy  (2, 6, 4, 4) float32 NCHW, for --norm group --groups 2 or 3
                           and --norm instance; gamma6.npy, beta6.npy: (6,)

Usage: /usr/bin/python3 scripts/make_examples.py [OUT_DIR]   (default data/)
"""
import os
import sys

import numpy as np


def f32_text(v):
    return np.format_float_positional(np.float32(v), unique=True, trim="-")


def write_csv(path, rows, fmt):
    with open(path, "w") as f:
        for row in rows:
            f.write(",".join(fmt(v) for v in np.ravel(row)) + "\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(2026)
    f64 = lambda v: repr(float(v))

    x = rng.normal(5.0, 2.0, size=(16, 3))
    dy = rng.normal(size=(16, 3))
    write_csv(os.path.join(out, "x.csv"), x, f64)
    write_csv(os.path.join(out, "dy.csv"), dy, f64)
    write_csv(os.path.join(out, "gamma.csv"), [[1.0, 0.5, 2.0]], f64)
    write_csv(os.path.join(out, "beta.csv"), [[0.0, -1.0, 0.25]], f64)

    x4 = rng.normal(1e4, 1.0, size=(4, 3, 5, 5)).astype(np.float32)  # offset data
    np.save(os.path.join(out, "x_nchw.npy"), x4)
    np.save(os.path.join(out, "dy_nchw.npy"), rng.normal(size=x4.shape).astype(np.float32))
    np.save(os.path.join(out, "gamma.npy"), np.array([1.0, 0.5, 2.0], dtype=np.float32))
    np.save(os.path.join(out, "beta.npy"), np.array([0.0, -1.0, 0.25], dtype=np.float32))
    write_csv(os.path.join(out, "x_nchw.csv"), x4.reshape(4, -1), f32_text)

    x_nhwc = rng.standard_cauchy(size=(4, 5, 5, 3))
    np.save(os.path.join(out, "x_nhwc.npy"), x_nhwc)
    np.save(os.path.join(out, "dy_nhwc.npy"), rng.normal(size=x_nhwc.shape))
    # The family's examples (issue 24), from their own generator so that the files above
    # keep their bytes.
    fam = np.random.default_rng(2024)
    xt = fam.normal(1e3, 1.0, size=(2, 6, 8)).astype(np.float32)
    np.save(os.path.join(out, "x_tokens.npy"), xt)
    np.save(os.path.join(out, "dy_tokens.npy"), fam.normal(size=xt.shape).astype(np.float32))
    np.save(os.path.join(out, "gamma_tokens.npy"), (1 + 0.25 * fam.normal(size=8)).astype(np.float32))
    np.save(os.path.join(out, "beta_tokens.npy"), fam.normal(size=8).astype(np.float32))
    xg = fam.normal(0.5, 2.0, size=(2, 6, 4, 4)).astype(np.float32)
    np.save(os.path.join(out, "x_groups.npy"), xg)
    np.save(os.path.join(out, "dy_groups.npy"), fam.normal(size=xg.shape).astype(np.float32))
    np.save(os.path.join(out, "gamma6.npy"), np.array([1.0, 0.5, 2.0, 1.5, 0.75, 1.25], dtype=np.float32))
    np.save(os.path.join(out, "beta6.npy"), np.array([0.0, -1.0, 0.25, 0.5, 1.0, -0.5], dtype=np.float32))
    print(f"wrote example inputs to {out}")


if __name__ == "__main__":
    main()
