#!/usr/bin/python3
"""float16 and bfloat16 through the CLI, against the exact golden set tests/data/golden/half
(scripts/golden_half.py: mpmath results rounded once to the output dtype).

Usage: /usr/bin/python3 tests/cli/test_half_cli.py BNORM

For every case: bnorm forward and backward with NPY inputs (and, for every case, CSV
inputs with --dtype float16/bfloat16 and CSV outputs); y and dx must be NPY files of the
half type ('<f2', or '<V2' for bfloat16, decoded here from the bits without ml_dtypes), the
statistics and dgamma/dbeta float32; every output within 4 eps of its dtype (float16 2^-10,
bfloat16 2^-7, float32 2^-23), normwise, of the exact golden result; in the half-way cases
("bits": true) y identical bit for bit to the exact result rounded once (rounding through
float32 gives the other neighbour there). Also: the same bits with --threads 1 and 2;
'<u2' bit patterns refused without --dtype bfloat16 (one line, exit 2, no output) and
read with it; compare judging half candidates in their own dtype; gradcheck judging
given half gradients. Exit code 0 iff every check passed.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import golden_half as gh  # noqa: E402  (bits_to_float, to_bits: numpy only)

GOLDEN = os.path.join(HERE, "..", "data", "golden", "half")
EPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7, "float32": 2.0 ** -23}
TOL = 4.0


class Tally:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what)


def run(bnorm, args, cwd):
    return subprocess.run([bnorm] + args, cwd=cwd, capture_output=True, text=True)


def load_out(path, dtype):
    """An NPY output as float64 values, with the dtype it was written in."""
    a = np.load(path)
    if a.dtype == np.float16:
        return a.astype(np.float64), "float16"
    if a.dtype == np.float32:
        return a.astype(np.float64), "float32"
    if a.dtype.kind == "V" and a.dtype.itemsize == 2:
        return gh.bits_to_float(a.view(np.uint16), "bfloat16"), "bfloat16"
    return a.astype(np.float64), str(a.dtype)


def eps_error(got, exact, dtype):
    scale = np.max(np.abs(exact)) if exact.size else 0.0
    err = np.max(np.abs(got - exact)) if exact.size else 0.0
    return err / (scale if scale > 0 else 1.0) / EPS[dtype]


def csv_text(values):
    """Rows of exact decimal text (repr of the float64 value, exact for half values)."""
    a = np.asarray(values, np.float64)
    a = a.reshape(a.shape[0], -1) if a.ndim >= 2 else a.reshape(-1, 1)
    return "".join(",".join(repr(float(v)) for v in row) + "\n" for row in a)


def case_inputs(cdir, meta):
    t = meta["dtype"]
    names = ["x", "gamma", "dy"] + ([] if meta["norm"] == "rms" else ["beta"])
    return {k: gh.load_half(os.path.join(cdir, k + ".npy"), t) for k in names}


def run_case(bnorm, cdir, meta, tally, worst):
    name, t = meta["name"], meta["dtype"]
    rms = meta["norm"] == "rms"
    exact = {}
    for k, dt in meta["outputs"].items():
        exact[k] = (gh.load_half(os.path.join(cdir, k + ".npy"), dt) if dt != "float32"
                    else np.load(os.path.join(cdir, k + ".npy")).astype(np.float64))
    with tempfile.TemporaryDirectory(prefix="bnorm-half-") as tmp:
        for k in ("x", "gamma", "beta", "dy"):
            if os.path.exists(os.path.join(cdir, k + ".npy")):
                shutil.copy(os.path.join(cdir, k + ".npy"), tmp)
        opts = meta["cli_options"]
        fwd = ["forward", "--x", "x.npy", "--gamma", "gamma.npy", "--y", "y.npy", "--invstd", "invstd.npy"]
        if not rms:
            fwd += ["--beta", "beta.npy", "--mean", "mean.npy"]
        bwd = ["backward", "--x", "x.npy", "--gamma", "gamma.npy", "--dy", "dy.npy", "--dx", "dx.npy",
               "--dgamma", "dgamma.npy"] + ([] if rms else ["--dbeta", "dbeta.npy"])
        for args in (fwd, bwd):
            r = run(bnorm, args + opts, tmp)
            tally.check(r.returncode == 0, "%s: %s exit %d: %s" % (name, args[0], r.returncode, r.stderr))
        for k, dt in meta["outputs"].items():
            path = os.path.join(tmp, k + ".npy")
            if not os.path.exists(path):
                tally.check(False, "%s: no %s" % (name, k))
                continue
            got, got_dt = load_out(path, dt)
            tally.check(got_dt == dt, "%s: %s written as %s, expected %s" % (name, k, got_dt, dt))
            tally.check(got.shape == exact[k].shape, "%s: %s shape %s" % (name, k, got.shape))
            if got.shape != exact[k].shape:
                continue
            e = eps_error(got, exact[k], dt)
            key = "%s:%s" % (t, k)
            worst[key] = max(worst.get(key, 0.0), e)
            tally.check(e <= TOL, "%s: %s is %.3g eps of %s from the exact result" % (name, k, e, dt))
            if meta["bits"] and k in ("y", "dx"):
                tally.check(np.array_equal(gh.to_bits(got, dt), gh.to_bits(exact[k], dt)),
                            "%s: %s not the exact result rounded once: %s vs %s"
                            % (name, k, got.ravel().tolist(), exact[k].ravel().tolist()))
        # the same bits on one thread and two
        y2 = os.path.join(tmp, "y_t1.npy")
        r = run(bnorm, [a if a != "y.npy" else "y_t1.npy" for a in fwd] + opts + ["--threads", "1"], tmp)
        same = r.returncode == 0 and open(y2, "rb").read() == open(os.path.join(tmp, "y.npy"), "rb").read()
        tally.check(same, "%s: y differs between --threads 1 and the default" % name)

        # CSV inputs (--dtype) and CSV outputs
        ins = case_inputs(cdir, meta)
        shape = meta["shape"]
        for k, v in ins.items():
            if k in ("x", "dy"):
                text = csv_text(v)
            else:
                text = "".join(repr(float(u)) + "\n" for u in np.ravel(v))
            with open(os.path.join(tmp, k + ".csv"), "w") as f:
                f.write(text)
        csv_common = ["--dtype", t] + (["--shape", ",".join(map(str, shape))] if len(shape) > 2 else [])
        cf = ["forward", "--x", "x.csv", "--gamma", "gamma.csv", "--y", "y.csv"] + ([] if rms else ["--beta", "beta.csv"])
        cb = ["backward", "--x", "x.csv", "--gamma", "gamma.csv", "--dy", "dy.csv", "--dx", "dx.csv"]
        for args, k in ((cf, "y"), (cb, "dx")):
            r = run(bnorm, args + opts + csv_common, tmp)
            tally.check(r.returncode == 0, "%s: CSV %s exit %d: %s" % (name, args[0], r.returncode, r.stderr))
            if r.returncode != 0:
                continue
            text = open(os.path.join(tmp, k + ".csv")).read()
            tokens = text.replace("\n", ",").strip(",").split(",")
            # each number is short (float16: 5 significant digits at most, bfloat16: 4) and
            # reads back, rounded to the type, as the NPY output's value
            digits = max(len(tok.lstrip("-").split("e")[0].replace(".", "").lstrip("0")) for tok in tokens)
            tally.check(digits <= (5 if t == "float16" else 4), "%s: CSV %s has %d-digit numbers" % (name, k, digits))
            got = np.array([gh._round_once(gh.mpf(tok), t) for tok in tokens]).reshape(exact[k].shape)
            tally.check(np.array_equal(got, load_out(os.path.join(tmp, k + ".npy"), t)[0]),
                        "%s: CSV %s differs from the NPY one" % (name, k))


def run_special(bnorm, tally):
    """'<u2' refusal and reading; compare and gradcheck on half data."""
    c = os.path.join(GOLDEN, "batch_n32c4_bf16")
    with tempfile.TemporaryDirectory(prefix="bnorm-half-") as tmp:
        x = np.load(os.path.join(c, "x.npy")).view(np.uint16)
        np.save(os.path.join(tmp, "xu.npy"), x)
        r = run(bnorm, ["forward", "--x", "xu.npy", "--y", "y.npy"], tmp)
        tally.check(r.returncode == 2 and "--dtype bfloat16" in r.stderr and r.stderr.count("\n") == 1
                    and not os.listdir(tmp) == ["y.npy"] and not os.path.exists(os.path.join(tmp, "y.npy")),
                    "'<u2' without --dtype bfloat16: exit %d, %r" % (r.returncode, r.stderr))
        shutil.copy(os.path.join(c, "x.npy"), tmp)
        r1 = run(bnorm, ["forward", "--x", "xu.npy", "--dtype", "bfloat16", "--y", "yu.npy"], tmp)
        r2 = run(bnorm, ["forward", "--x", "x.npy", "--y", "yv.npy"], tmp)
        tally.check(r1.returncode == 0 and r2.returncode == 0 and
                    open(os.path.join(tmp, "yu.npy"), "rb").read() == open(os.path.join(tmp, "yv.npy"), "rb").read(),
                    "'<u2' with --dtype bfloat16 reads as the '|V2' file: %s %s" % (r1.stderr, r2.stderr))
        r = run(bnorm, ["forward", "--x", "x.npy", "--dtype", "float16", "--y", "y.npy"], tmp)
        tally.check(r.returncode == 2 and "--dtype float16" in r.stderr, "--dtype float16 with a bfloat16 x: %r"
                    % r.stderr)

    for name in ("batch_n32c4_f16", "batch_n32c4_bf16"):
        c = os.path.join(GOLDEN, name)
        t = json.load(open(os.path.join(c, "case.json")))["dtype"]
        ins = ["--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy", "--dy", "dy.npy"]
        with tempfile.TemporaryDirectory(prefix="bnorm-half-") as tmp:
            for k in ("x", "gamma", "beta", "dy", "y", "dx", "dgamma", "dbeta", "mean", "invstd"):
                shutil.copy(os.path.join(c, k + ".npy"), tmp)
            # compare: the exact results rounded once pass, judged in their own dtype, within 0.5 ulp
            r = run(bnorm, ["compare"] + ins + ["--y", "y.npy", "--dx", "dx.npy", "--mean", "mean.npy",
                                                "--invstd", "invstd.npy", "--dgamma", "dgamma.npy"], tmp)
            rep = json.loads(r.stdout) if r.stdout else {}
            ok = r.returncode == 0 and rep.get("problem", {}).get("dtype") == t
            for tname, tt in rep.get("tensors", {}).items():
                want = t if tname in ("y", "dx") else "float32"
                ok = ok and tt["judged_in"] == want and tt["max_ulp"] <= 0.5 + 1e-9 and "dtype_note" not in tt
            tally.check(ok, "%s: compare of the exact results: exit %d %s" % (name, r.returncode, r.stdout[:400]))
            # a kernel computing in float32 and rounding once to the half type passes the default
            xf = gh.load_half(os.path.join(tmp, "x.npy"), t).astype(np.float32)
            gf = gh.load_half(os.path.join(tmp, "gamma.npy"), t).astype(np.float32)
            bf = gh.load_half(os.path.join(tmp, "beta.npy"), t).astype(np.float32)
            mu = xf.mean(0, dtype=np.float32)
            var = ((xf - mu) ** 2).mean(0, dtype=np.float32)
            y32 = (xf - mu) / np.sqrt(var + np.float32(1e-5)) * gf + bf
            if t == "float16":
                np.save(os.path.join(tmp, "y32.npy"), y32.astype(np.float16))
            else:
                u = y32.astype(np.float32).view(np.uint32).astype(np.uint64)
                np.save(os.path.join(tmp, "y32.npy"), ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16).view("V2"))
            r = run(bnorm, ["compare"] + ins + ["--y", "y32.npy"], tmp)
            tally.check(r.returncode == 0, "%s: compare of a float32 kernel rounded to %s: exit %d %s"
                        % (name, t, r.returncode, r.stdout[-600:]))
            # a y 8 ulps off at its largest element fails the normwise 4-eps criterion, reported in ulps of t
            y, _ = load_out(os.path.join(tmp, "y.npy"), t)
            i = np.unravel_index(np.argmax(np.abs(y)), y.shape)
            step = np.abs(y[i]) * EPS[t]  # >= 1 ulp there
            bad = y.copy()
            bad[i] += 8 * 2.0 ** np.floor(np.log2(step))
            gh.save_half(os.path.join(tmp, "bad.npy"), bad, t)
            r = run(bnorm, ["compare"] + ins + ["--y", "bad.npy", "--tol-eps", "4"], tmp)
            rep = json.loads(r.stdout) if r.stdout else {}
            tt = rep.get("tensors", {}).get("y", {})
            tally.check(r.returncode == 1 and 7 <= tt.get("max_ulp", 0) <= 9,
                        "%s: compare of a y 8 ulps off: exit %d %s" % (name, r.returncode, r.stdout[:400]))
            # gradcheck: the exact gradients (dx in the half type, dgamma/dbeta float32) pass; a
            # dx with one element off by a quarter fails
            r = run(bnorm, ["gradcheck"] + ins + ["--dx", "dx.npy", "--dgamma", "dgamma.npy", "--dbeta", "dbeta.npy"],
                    tmp)
            tally.check(r.returncode == 0, "%s: gradcheck of the exact gradients: exit %d %s %s"
                        % (name, r.returncode, r.stdout[:300], r.stderr))
            dx, _ = load_out(os.path.join(tmp, "dx.npy"), t)
            j = np.unravel_index(np.argmax(np.abs(dx)), dx.shape)
            dx[j] *= 1.25
            gh.save_half(os.path.join(tmp, "dx_bad.npy"), gh._quantize(dx, t), t)
            r = run(bnorm, ["gradcheck"] + ins + ["--dx", "dx_bad.npy"], tmp)
            tally.check(r.returncode == 1, "%s: gradcheck of a wrong dx: exit %d" % (name, r.returncode))


def run_modes(bnorm, tally):
    """Half x with float32 running statistics: eval y against naive float64 numpy (written
    here, rounded once by numpy's correctly rounded float64 -> float16 conversion); train
    mode's updated running statistics are float32."""
    rng = np.random.default_rng(26)
    x = (rng.standard_normal((16, 3)) * 2 + 1).astype(np.float16)
    rm = rng.standard_normal(3).astype(np.float32)
    rv = rng.uniform(0.5, 2, 3).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="bnorm-half-") as tmp:
        np.save(os.path.join(tmp, "x.npy"), x)
        np.save(os.path.join(tmp, "rm.npy"), rm)
        np.save(os.path.join(tmp, "rv.npy"), rv)
        r = run(bnorm, ["forward", "--mode", "eval", "--x", "x.npy", "--running-mean", "rm.npy", "--running-var",
                        "rv.npy", "--y", "y.npy"], tmp)
        want = ((x.astype(np.float64) - rm.astype(np.float64)) / np.sqrt(rv.astype(np.float64) + 1e-5))
        ok = r.returncode == 0
        if ok:
            y = np.load(os.path.join(tmp, "y.npy"))
            ok = y.dtype == np.float16 and np.array_equal(y, want.astype(np.float16))
        tally.check(ok, "eval mode, float16 x, float32 running statistics: %s" % r.stderr)
        r = run(bnorm, ["forward", "--x", "x.npy", "--running-mean", "rm.npy", "--running-var", "rv.npy",
                        "--y", "y2.npy", "--new-running-mean", "nm.npy", "--new-running-var", "nv.npy"], tmp)
        ok = r.returncode == 0
        if ok:
            nm, nv = np.load(os.path.join(tmp, "nm.npy")), np.load(os.path.join(tmp, "nv.npy"))
            xf = x.astype(np.float64)
            want_m = 0.9 * rm.astype(np.float64) + 0.1 * xf.mean(0)
            want_v = 0.9 * rv.astype(np.float64) + 0.1 * xf.var(0, ddof=1)
            ok = (nm.dtype == np.float32 and nv.dtype == np.float32 and
                  np.max(np.abs(nm - want_m) / np.abs(want_m)) < 4 * EPS["float32"] and
                  np.max(np.abs(nv - want_v) / np.abs(want_v)) < 4 * EPS["float32"])
        tally.check(ok, "train mode, float16 x: float32 new running statistics: %s" % r.stderr)


def main():
    bnorm = os.path.abspath(sys.argv[1])
    tally, worst = Tally(), {}
    cases = sorted(d for d in os.listdir(GOLDEN) if os.path.isfile(os.path.join(GOLDEN, d, "case.json")))
    tally.check(len(cases) >= 16, "only %d half cases in %s" % (len(cases), GOLDEN))
    for d in cases:
        meta = json.load(open(os.path.join(GOLDEN, d, "case.json")))
        run_case(bnorm, os.path.join(GOLDEN, d), meta, tally, worst)
    run_special(bnorm, tally)
    run_modes(bnorm, tally)
    for k in sorted(worst):
        print("worst %-18s %.3f eps" % (k, worst[k]))
    print("%d passed, %d failed" % (tally.passed, tally.failed))
    return 0 if tally.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
