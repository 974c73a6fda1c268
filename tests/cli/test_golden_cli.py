#!/usr/bin/python3
"""bnorm's accuracy promise, checked through the CLI against the exact mpmath reference.

Usage (with Debian's Python, which has numpy; golden.py also needs mpmath):

    /usr/bin/python3 tests/cli/test_golden_cli.py BNORM                  # committed cases
    /usr/bin/python3 tests/cli/test_golden_cli.py BNORM --fresh          # new random data
    /usr/bin/python3 tests/cli/test_golden_cli.py BNORM --fresh --seed S # reproduce a run

Without --fresh the committed golden set tests/data/golden (../data/golden from this
script) is used.  With --fresh, scripts/golden.py writes the same classes of cases with
new data into a temporary folder; the seed (random from os.urandom unless --seed is
given) is printed first so that a failure can be reproduced.  --seed implies --fresh.

For every case, in a temporary folder holding copies of the case's inputs:
  * bnorm forward / backward with NPY inputs and NPY outputs;
  * the same with CSV inputs and CSV outputs (x and dy: one row per index of the first
    axis, the other axes flattened into columns, --shape when the rank is > 2; gamma
    and beta one value per line; --dtype float32 for float32 cases).  Every number is
    written exactly: repr(float(v)) for float64, the shortest round-trip scientific
    text of the float32 value for float32.

Checks (each counted in the final "N passed, M failed"):
  * every bnorm run exits with 0;
  * every NPY output has x's dtype and the expected shape;
  * every output (NPY and CSV) is within TOL = 4 units of eps(dtype) of the exact
    result, normwise:  err = max|got - exact| / max|exact| / eps(dtype),
    eps(dtype) = np.finfo(dtype).eps, got widened to float64.
    If the exact output is all zeros (max|exact| = 0: dx and dgamma of the "dy_exact"
    cases, whose dy is one constant), only zeros pass: err = 0, else infinite.

Mode cases (issue 25: inference mode and running statistics), in the subfolder modes/
of the golden set (scripts/golden.py writes them there; their case.json has "mode"):
  * "eval": bnorm forward --mode eval --running-mean running_mean --running-var
    running_var (y) and bnorm backward --mode eval with the same files (dx, dgamma,
    dbeta), NPY and CSV (the running statistics written like gamma);
  * "train": bnorm forward with --running-mean/--running-var and --new-running-mean/
    --new-running-var (y, mean, invstd, new_running_mean, new_running_var), with
    --momentum M and --running-var-correction C when case.json gives them (null: the
    option is left out, and the default 0.1 / 1 is what the reference used), NPY and CSV;
    and, NPY only, a second run asking for --new-running-var alone (the issue's "and/or")
    with no --mean/--invstd.
The same checks and the same 4-eps criterion apply.  The worst error is printed per
output kind: training-mode outputs by name, mode outputs as "eval:y", "eval:dx", ...,
"train:y", ..., "train:new_running_mean", "train:new_running_var".

Family cases (issue 24: layer, rms, instance and group norm), in the subfolder family/
(their case.json has "norm", "cli_options", "gamma_shape", "stat_shape", "inputs" and
"outputs"; rms has no beta, mean or dbeta): bnorm forward and backward with the case's
cli_options (--norm, --axis, --groups, --eps), NPY and CSV (gamma and beta of rank 1 one
value per line, of rank 2 or more one row per index of their first axis, as x), every
output of the case judged as above.  Each NPY output must have x's dtype and exactly the
shape of the expected file (y, dx: x's; mean, invstd: stat_shape; dgamma, dbeta:
gamma_shape), which must also be what case.json says.  The worst error is printed per
norm and output, as "layer:y", "rms:invstd", ...

Exit code 0 iff no check failed.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

TOL = 4.0  # in units of eps(dtype)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
COMMITTED = os.path.join(HERE, "..", "data", "golden")
GOLDEN_PY = os.path.join("scripts", "golden.py")
PYTHON = "/usr/bin/python3"

FWD_OUT = ("y", "mean", "invstd")
BWD_OUT = ("dx", "dgamma", "dbeta")
OUTPUTS = FWD_OUT + BWD_OUT
MODES_SUBDIR = "modes"
RUNNING_OUT = ("new_running_mean", "new_running_var")
MODE_KINDS = (tuple("eval:" + k for k in ("y",) + BWD_OUT)
              + tuple("train:" + k for k in FWD_OUT + RUNNING_OUT))


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("  FAIL %s" % what)
        return ok


# ---------------------------------------------------------------------------
# CSV writing / reading
# ---------------------------------------------------------------------------

def fmt_number(v, dtype):
    if dtype == np.float32:
        return np.format_float_scientific(np.float32(v), unique=True)
    return repr(float(v))


def write_csv_2d(path, a):
    """One row per index of the first axis, the other axes flattened into columns."""
    rows = a.reshape(a.shape[0], -1)
    with open(path, "w") as f:
        for r in rows:
            f.write(",".join(fmt_number(v, a.dtype) for v in r))
            f.write("\n")


def write_csv_vector(path, a):
    with open(path, "w") as f:
        for v in a:
            f.write(fmt_number(v, a.dtype) + "\n")


def read_csv(path, shape, dtype):
    a = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    if a.size != int(np.prod(shape)):
        raise ValueError("%s has %d values, expected shape %s" % (path, a.size, shape))
    return a.reshape(shape).astype(dtype)


# ---------------------------------------------------------------------------
# Running bnorm
# ---------------------------------------------------------------------------

def run(bnorm, args, cwd):
    p = subprocess.run([bnorm] + args, cwd=cwd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def normwise_err(got, exact, dtype):
    got = np.asarray(got, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    scale = float(np.max(np.abs(exact))) if exact.size else 0.0
    diff = np.abs(got - exact)
    if scale == 0.0:  # all-zero exact output (dy = constant): nothing but 0 is right
        return 0.0 if np.all(diff == 0) else float("inf")
    if np.any(np.isnan(diff)):
        return float("inf")
    return float(np.max(diff)) / scale / float(np.finfo(dtype).eps)


def write_csv_inputs(tmp, inputs, shape, dtype):
    """The inputs as CSV files in tmp (rank 1: one value per line; else one row per index
    of the first axis); returns the options bnorm then needs (--shape, --dtype)."""
    for k, a in inputs.items():
        (write_csv_vector if a.ndim == 1 else write_csv_2d)(os.path.join(tmp, k + ".csv"), a)
    extra = []
    if len(shape) > 2:
        extra += ["--shape", ",".join(map(str, shape))]
    if dtype == np.float32:
        extra += ["--dtype", "float32"]
    return extra


def copy_inputs(case_dir, names, tmp):
    for k in names:
        shutil.copyfile(os.path.join(case_dir, k + ".npy"), os.path.join(tmp, k + ".npy"))


class CaseRun:
    """One case's bnorm runs: each run's outputs read back and judged against the exact
    ones (TOL eps, normwise), the worst errors kept, and the errors shown on one line."""

    def __init__(self, bnorm, name, dtype, exact, expect_shape, tally, worst):
        self.bnorm, self.name, self.dtype = bnorm, name, dtype
        self.exact, self.expect_shape = exact, expect_shape
        self.tally, self.worst = tally, worst
        self.errs = {}  # label -> {output: error in eps, or None where unread}

    def judge(self, label, fmt, tmp, cmd, outs, kind=lambda k: k):
        """Runs bnorm cmd in tmp and judges outs ({output: file}); the worst errors are
        kept under "all" and kind(output)."""
        errs = self.errs.setdefault(label, {})
        rc, _, err = run(self.bnorm, cmd, tmp)
        if not self.tally.check(rc == 0, "%s [%s] bnorm %s: exit %d, stderr %r"
                                % (self.name, label, " ".join(cmd), rc, err.strip())):
            for k in outs:
                errs[k] = None
            return
        for k, file in outs.items():
            try:
                got = self.read(os.path.join(tmp, file), fmt, k, label)
            except Exception as e:  # unreadable or misshapen output
                self.tally.check(False, "%s [%s] %s: cannot read: %s" % (self.name, label, k, e))
                errs[k] = None
                continue
            e = normwise_err(got, self.exact[k], self.dtype)
            errs[k] = e
            self.tally.check(e <= TOL, "%s [%s] %s: error %.3g eps > %g eps"
                             % (self.name, label, k, e, TOL))
            for key in ("all", kind(k)):
                if e > self.worst[key][0]:
                    self.worst[key] = (e, self.name, kind(k), label)

    def read(self, path, fmt, k, label):
        """Output k from path: an NPY file must have x's dtype and the expected shape."""
        shape = self.expect_shape[k]
        if fmt == "npy":
            got = np.load(path)
            self.tally.check(got.dtype == self.dtype and got.shape == shape,
                             "%s [%s] %s: dtype %s shape %s, expected %s %s"
                             % (self.name, label, k, got.dtype, got.shape, np.dtype(self.dtype), shape))
        else:
            got = read_csv(path, shape, self.dtype)
        if got.shape != shape:
            raise ValueError("shape %s, expected %s" % (got.shape, shape))
        return got

    def show(self, prefix=""):
        parts = ["%s: %s" % (label, " ".join("%s %s" % (k, "--" if e is None else "%.2f" % e)
                                              for k, e in d.items()))
                 for label, d in self.errs.items()]
        print("%s%-46s %s" % (prefix, self.name, " | ".join(parts)))


def run_case(bnorm, case_dir, tally, worst, do_csv):
    with open(os.path.join(case_dir, "case.json")) as f:
        meta = json.load(f)
    name, axis, eps = meta["name"], int(meta["axis"]), meta["eps"]
    dtype = np.dtype(meta["dtype"]).type
    shape = tuple(meta["shape"])
    C = shape[axis]
    in_names = ("x", "gamma", "beta", "dy")
    exact = {k: np.load(os.path.join(case_dir, k + ".npy")) for k in OUTPUTS}
    inputs = {k: np.load(os.path.join(case_dir, k + ".npy")) for k in in_names}
    expect_shape = {"y": shape, "dx": shape, "mean": (C,), "invstd": (C,),
                    "dgamma": (C,), "dbeta": (C,)}
    common = ["--eps", eps, "--axis", str(axis)]
    case = CaseRun(bnorm, name, dtype, exact, expect_shape, tally, worst)

    with tempfile.TemporaryDirectory(prefix="bnorm-golden-") as tmp:
        copy_inputs(case_dir, in_names, tmp)
        for fmt in (["npy", "csv"] if do_csv else ["npy"]):
            ext = "." + fmt
            extra = write_csv_inputs(tmp, inputs, shape, dtype) if fmt == "csv" else []
            fwd = ["forward", "--x", "x" + ext, "--gamma", "gamma" + ext, "--beta", "beta" + ext]
            bwd = ["backward", "--x", "x" + ext, "--gamma", "gamma" + ext, "--dy", "dy" + ext]
            for args, outs in ((fwd, FWD_OUT), (bwd, BWD_OUT)):
                files = {k: k + ext for k in outs}
                cmd = args + sum((["--" + k, f] for k, f in files.items()), []) + common + extra
                case.judge(fmt, fmt, tmp, cmd, files)
    case.show()


def run_mode_case(bnorm, case_dir, tally, worst, do_csv):
    """One mode case (eval, or train with the running-statistics update); see the
    module docstring."""
    with open(os.path.join(case_dir, "case.json")) as f:
        meta = json.load(f)
    name, axis, eps, mode = meta["name"], int(meta["axis"]), meta["eps"], meta["mode"]
    dtype = np.dtype(meta["dtype"]).type
    shape = tuple(meta["shape"])
    C = shape[axis]
    outputs = list(meta["outputs"])
    exact = {k: np.load(os.path.join(case_dir, k + ".npy")) for k in outputs}
    in_names = ["x", "gamma", "beta", "running_mean", "running_var"]
    if mode == "eval":
        in_names.append("dy")
    inputs = {k: np.load(os.path.join(case_dir, k + ".npy")) for k in in_names}
    per_channel = {"mean", "invstd", "dgamma", "dbeta"} | set(RUNNING_OUT)
    expect_shape = {k: ((C,) if k in per_channel else shape) for k in outputs}
    common = ["--eps", eps, "--axis", str(axis)]
    case = CaseRun(bnorm, name, dtype, exact, expect_shape, tally, worst)

    def kind(k):
        return mode + ":" + k

    with tempfile.TemporaryDirectory(prefix="bnorm-golden-modes-") as tmp:
        copy_inputs(case_dir, in_names, tmp)
        for fmt in (["npy", "csv"] if do_csv else ["npy"]):
            ext = "." + fmt
            extra = write_csv_inputs(tmp, inputs, shape, dtype) if fmt == "csv" else []
            running = ["--running-mean", "running_mean" + ext, "--running-var", "running_var" + ext]
            if mode == "eval":
                fwd = (["forward", "--mode", "eval", "--x", "x" + ext, "--gamma", "gamma" + ext,
                        "--beta", "beta" + ext] + running + ["--y", "y" + ext])
                case.judge(fmt, fmt, tmp, fwd + common + extra, {"y": "y" + ext}, kind)
                bwd = (["backward", "--mode", "eval", "--x", "x" + ext, "--gamma", "gamma" + ext,
                        "--dy", "dy" + ext] + running
                       + ["--dx", "dx" + ext, "--dgamma", "dgamma" + ext, "--dbeta", "dbeta" + ext])
                case.judge(fmt, fmt, tmp, bwd + common + extra, {k: k + ext for k in BWD_OUT}, kind)
            else:
                update = []
                if meta["momentum"] is not None:
                    update += ["--momentum", meta["momentum"]]
                if meta["correction"] is not None:
                    update += ["--running-var-correction", str(meta["correction"])]
                fwd = (["forward", "--x", "x" + ext, "--gamma", "gamma" + ext,
                        "--beta", "beta" + ext] + running + update
                       + ["--y", "y" + ext, "--mean", "mean" + ext, "--invstd", "invstd" + ext,
                          "--new-running-mean", "new_running_mean" + ext,
                          "--new-running-var", "new_running_var" + ext])
                case.judge(fmt, fmt, tmp, fwd + common + extra,
                           {k: k + ext for k in FWD_OUT + RUNNING_OUT}, kind)
                if fmt == "npy":
                    one = (["forward", "--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy"]
                           + running + update
                           + ["--y", "y_alone.npy", "--new-running-var", "nrv_alone.npy"])
                    case.judge("npy, new var alone", "npy", tmp, one + common,
                               {"y": "y_alone.npy", "new_running_var": "nrv_alone.npy"}, kind)
    case.show(MODES_SUBDIR + "/")


FAMILY_SUBDIR = "family"
FAMILY_NORMS = ("layer", "rms", "instance", "group")
FAMILY_KINDS = tuple("%s:%s" % (n, k) for n in FAMILY_NORMS for k in OUTPUTS)


def run_family_case(bnorm, case_dir, tally, worst, do_csv):
    """One family case (layer, rms, instance, group); see the module docstring."""
    with open(os.path.join(case_dir, "case.json")) as f:
        meta = json.load(f)
    name, norm = meta["name"], meta["norm"]
    dtype = np.dtype(meta["dtype"]).type
    shape = tuple(meta["shape"])
    in_names, outputs = list(meta["inputs"]), list(meta["outputs"])
    inputs = {k: np.load(os.path.join(case_dir, k + ".npy")) for k in in_names}
    exact = {k: np.load(os.path.join(case_dir, k + ".npy")) for k in outputs}
    expect_shape = {"y": shape, "dx": shape,
                    "mean": tuple(meta["stat_shape"]), "invstd": tuple(meta["stat_shape"]),
                    "dgamma": tuple(meta["gamma_shape"]), "dbeta": tuple(meta["gamma_shape"])}
    for k in outputs:  # the committed files and case.json must agree
        tally.check(exact[k].shape == expect_shape[k],
                    "%s: %s.npy has shape %s, case.json says %s"
                    % (name, k, exact[k].shape, expect_shape[k]))
    common = list(meta["cli_options"])
    case = CaseRun(bnorm, name, dtype, exact, expect_shape, tally, worst)

    with tempfile.TemporaryDirectory(prefix="bnorm-golden-family-") as tmp:
        copy_inputs(case_dir, in_names, tmp)
        for fmt in (["npy", "csv"] if do_csv else ["npy"]):
            ext = "." + fmt
            extra = write_csv_inputs(tmp, inputs, shape, dtype) if fmt == "csv" else []
            fwd = ["forward", "--x", "x" + ext, "--gamma", "gamma" + ext]
            if "beta" in in_names:
                fwd += ["--beta", "beta" + ext]
            bwd = ["backward", "--x", "x" + ext, "--gamma", "gamma" + ext, "--dy", "dy" + ext]
            for args, outs in ((fwd, FWD_OUT), (bwd, BWD_OUT)):
                files = {k: k + ext for k in outs if k in outputs}
                cmd = args + sum((["--" + k, f] for k, f in files.items()), []) + common + extra
                case.judge(fmt, fmt, tmp, cmd, files, lambda k: norm + ":" + k)
    case.show(FAMILY_SUBDIR + "/")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bnorm", help="path of the bnorm executable")
    ap.add_argument("--fresh", action="store_true",
                    help="generate new cases with scripts/golden.py instead of the committed set")
    ap.add_argument("--seed", type=int, default=None,
                    help="seed for --fresh (default: random); implies --fresh")
    ap.add_argument("--csv-every", type=int, default=1,
                    help="run the CSV variant for every k-th case only (default 1: all)")
    args = ap.parse_args()
    bnorm = os.path.abspath(args.bnorm)
    t0 = time.perf_counter()

    tmp_golden = None
    if args.fresh or args.seed is not None:
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
        print("seed: %d   (reproduce: %s %s %s --fresh --seed %d)"
              % (seed, PYTHON, sys.argv[0], args.bnorm, seed), flush=True)
        tmp_golden = tempfile.TemporaryDirectory(prefix="bnorm-fresh-golden-")
        golden = tmp_golden.name
        p = subprocess.run([PYTHON, GOLDEN_PY, "--out", golden, "--seed", str(seed)],
                           cwd=REPO, capture_output=True, text=True)
        if p.returncode != 0:
            print("golden.py failed (exit %d):\n%s%s" % (p.returncode, p.stdout, p.stderr))
            print("0 passed, 1 failed")
            return 1
    else:
        golden = os.path.normpath(COMMITTED)
        print("golden set: %s" % golden)

    cases = sorted(d for d in os.listdir(golden)
                   if os.path.isfile(os.path.join(golden, d, "case.json")))
    tally = Tally()
    if not tally.check(len(cases) > 0, "no golden cases found in %s" % golden):
        print("%d passed, %d failed" % (tally.passed, tally.failed))
        return 1
    modes_dir = os.path.join(golden, MODES_SUBDIR)
    mode_cases = sorted(d for d in (os.listdir(modes_dir) if os.path.isdir(modes_dir) else [])
                        if os.path.isfile(os.path.join(modes_dir, d, "case.json")))
    tally.check(len(mode_cases) > 0, "no mode cases (eval, running statistics) found in %s"
                % modes_dir)
    family_dir = os.path.join(golden, FAMILY_SUBDIR)
    family_cases = sorted(d for d in (os.listdir(family_dir) if os.path.isdir(family_dir) else [])
                          if os.path.isfile(os.path.join(family_dir, d, "case.json")))
    tally.check(len(family_cases) > 0, "no family cases (layer, rms, instance, group) found in %s"
                % family_dir)
    worst = {k: (-1.0, None, k, None)
             for k in ("all",) + OUTPUTS + MODE_KINDS + FAMILY_KINDS}
    for i, c in enumerate(cases):
        run_case(bnorm, os.path.join(golden, c), tally, worst, i % args.csv_every == 0)
    for i, c in enumerate(mode_cases):
        run_mode_case(bnorm, os.path.join(modes_dir, c), tally, worst,
                      i % args.csv_every == 0)
    for i, c in enumerate(family_cases):
        run_family_case(bnorm, os.path.join(family_dir, c), tally, worst,
                        i % args.csv_every == 0)
    if tmp_golden is not None:
        tmp_golden.cleanup()

    e, name, k, fmt = worst["all"]
    print("worst: %.2f eps (%s, %s, %s)" % (e, name, k, fmt))
    for k in OUTPUTS + MODE_KINDS + FAMILY_KINDS:
        e, name, _, fmt = worst[k]
        if name is not None:
            print("  worst %-22s: %.2f eps (%s, %s)" % (k, e, name, fmt))
    print("cases: %d + %d mode cases + %d family cases, tolerance %g eps, %.1fs"
          % (len(cases), len(mode_cases), len(family_cases), TOL, time.perf_counter() - t0))
    print("%d passed, %d failed" % (tally.passed, tally.failed))
    return 0 if tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
