#!/usr/bin/python3
"""bnorm's inference mode and running-statistics update against PyTorch.

Usage (Debian's Python, which has numpy; torch where installed):

    /usr/bin/python3 tests/cli/test_modes_peers.py BNORM [NAME-SUBSTRING ...]

Without torch (`import torch` fails) the script prints "skipped: torch not installed"
and exits with 0.

Every test runs in float64 on well-conditioned random data (fixed seeds) and compares
bnorm's NPY outputs with PyTorch's, normwise:

    max|bnorm - torch| / max|torch| <= 1e-12      (RTOL below)

  * inference: torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias,
    training=False, eps=eps) and its autograd backward for an upstream gradient dy
    (x.grad, weight.grad, bias.grad) against `bnorm forward --mode eval` (y) and
    `bnorm backward --mode eval` (dx, dgamma, dbeta), for (N, C), (N, C, L), NCHW, an
    NHWC file with --axis -1 (torch given the NCHW view), and a batch of one;
  * training, one step: nn.BatchNorm2d (NCHW) and nn.BatchNorm1d ((N, C)) in train()
    with given running_mean/running_var buffers, weight and bias; the updated
    running_mean/running_var (and y) against `bnorm forward --running-mean R
    --running-var V --new-running-mean --new-running-var` with
      - momentum 0.1 (options left out: bnorm's defaults are PyTorch's),
      - momentum 0.5 (--momentum 0.5 --running-var-correction 1),
      - momentum None, the cumulative average, with num_batches_tracked 0 -> 1 after
        the step (--momentum 1) and 4 -> 5 (--momentum 0.2 = 1/5); num_batches_tracked
        after the step is checked too.

Prints `PASS name` / `FAIL name: reason` per test and `N passed, M failed`; exit 1 on a
failure.
"""

import os
import sys
import tempfile

import numpy as np

from runner import check, import_torch, note, rel, run_ok, run_tests

torch, F = import_torch()

BNORM = None  # set by run_tests()
RTOL = 1e-12


def bnorm(tmp, args):
    run_ok(BNORM, tmp, args)


def compare(what, got_path, ref, results):
    got = np.load(got_path)
    check(got.dtype == np.float64 and got.shape == tuple(ref.shape),
          "%s: dtype %s shape %s, expected float64 %s" % (what, got.dtype, got.shape,
                                                        tuple(ref.shape)))
    e = rel(got, ref)
    results.append("%s %.1e" % (what, e))
    check(e <= RTOL, "%s: normwise relative difference %.3g > %g" % (what, e, RTOL))


def data(seed, shape, C):
    rng = np.random.default_rng(seed)
    return dict(x=rng.standard_normal(shape), dy=rng.standard_normal(shape),
                gamma=rng.standard_normal(C), beta=rng.standard_normal(C),
                rm=0.5 * rng.standard_normal(C), rv=rng.uniform(0.5, 2.0, C))


# ---------------------------------------------------------------------------
# Inference mode: F.batch_norm(training=False) and its autograd backward
# ---------------------------------------------------------------------------

def eval_case(seed, shape, eps="1e-5", nhwc=False):
    """shape is torch's (N, C, ...); with nhwc the files hold x, dy with the channel axis
    last and bnorm runs with --axis -1."""
    C = shape[1]
    d = data(seed, shape, C)
    x = torch.tensor(d["x"], requires_grad=True)
    w = torch.tensor(d["gamma"], requires_grad=True)
    b = torch.tensor(d["beta"], requires_grad=True)
    y = F.batch_norm(x, torch.tensor(d["rm"]), torch.tensor(d["rv"]), w, b,
                     training=False, eps=float(eps))
    y.backward(torch.tensor(d["dy"]))
    ref = dict(y=y.detach().numpy(), dx=x.grad.numpy(), dgamma=w.grad.numpy(),
               dbeta=b.grad.numpy())
    to_file = (lambda a: np.ascontiguousarray(np.moveaxis(a, 1, -1))) if nhwc else (lambda a: a)
    axis = "-1" if nhwc else "1"
    results = []
    with tempfile.TemporaryDirectory(prefix="bnorm-peers-") as tmp:
        for k, a in (("x", to_file(d["x"])), ("dy", to_file(d["dy"])), ("gamma", d["gamma"]),
                     ("beta", d["beta"]), ("rm", d["rm"]), ("rv", d["rv"])):
            np.save(os.path.join(tmp, k + ".npy"), a)
        running = ["--running-mean", "rm.npy", "--running-var", "rv.npy",
                   "--eps", eps, "--axis", axis]
        bnorm(tmp, ["forward", "--mode", "eval", "--x", "x.npy", "--gamma", "gamma.npy",
                    "--beta", "beta.npy", "--y", "y.npy"] + running)
        bnorm(tmp, ["backward", "--mode", "eval", "--x", "x.npy", "--gamma", "gamma.npy",
                    "--dy", "dy.npy", "--dx", "dx.npy", "--dgamma", "dgamma.npy",
                    "--dbeta", "dbeta.npy"] + running)
        compare("y", os.path.join(tmp, "y.npy"), to_file(ref["y"]), results)
        compare("dx", os.path.join(tmp, "dx.npy"), to_file(ref["dx"]), results)
        compare("dgamma", os.path.join(tmp, "dgamma.npy"), ref["dgamma"], results)
        compare("dbeta", os.path.join(tmp, "dbeta.npy"), ref["dbeta"], results)
    note(", ".join(results))


def test_eval_2d():
    eval_case(1, (16, 5))


def test_eval_ncl():
    eval_case(2, (4, 3, 7), eps="1e-3")


def test_eval_nchw():
    eval_case(3, (4, 3, 5, 5))


def test_eval_nhwc_axis_last():
    eval_case(4, (2, 4, 3, 5), nhwc=True)


def test_eval_batch_of_one():
    eval_case(5, (1, 6))
    eval_case(6, (1, 3, 1, 1))


# ---------------------------------------------------------------------------
# Training mode, one step: the running-statistics update of nn.BatchNorm1d/2d
# ---------------------------------------------------------------------------

def train_case(seed, shape, momentum, bnorm_opts, nbt_before=0, nbt_after=1, eps="1e-5"):
    C = shape[1]
    d = data(seed, shape, C)
    module = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
    bn = module(C, eps=float(eps), momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(d["gamma"]))
        bn.bias.copy_(torch.tensor(d["beta"]))
        bn.running_mean.copy_(torch.tensor(d["rm"]))
        bn.running_var.copy_(torch.tensor(d["rv"]))
        bn.num_batches_tracked.fill_(nbt_before)
    bn.train()
    with torch.no_grad():
        y = bn(torch.tensor(d["x"])).numpy()
    check(int(bn.num_batches_tracked) == nbt_after,
          "num_batches_tracked %d after the step, expected %d"
          % (int(bn.num_batches_tracked), nbt_after))
    results = []
    with tempfile.TemporaryDirectory(prefix="bnorm-peers-") as tmp:
        for k in ("x", "gamma", "beta", "rm", "rv"):
            np.save(os.path.join(tmp, k + ".npy"), d[k])
        bnorm(tmp, ["forward", "--x", "x.npy", "--gamma", "gamma.npy", "--beta", "beta.npy",
                    "--running-mean", "rm.npy", "--running-var", "rv.npy",
                    "--new-running-mean", "nrm.npy", "--new-running-var", "nrv.npy",
                    "--y", "y.npy", "--eps", eps, "--axis", "1"] + bnorm_opts)
        compare("running_mean", os.path.join(tmp, "nrm.npy"), bn.running_mean.numpy(), results)
        compare("running_var", os.path.join(tmp, "nrv.npy"), bn.running_var.numpy(), results)
        compare("y", os.path.join(tmp, "y.npy"), y, results)
    note("momentum %s %s: %s" % (momentum, " ".join(bnorm_opts) or "(defaults)",
                                 ", ".join(results)))


def test_train_bn2d_momentum_default():
    train_case(11, (4, 3, 5, 5), 0.1, [])


def test_train_bn2d_momentum_0_5():
    train_case(12, (4, 3, 5, 5), 0.5, ["--momentum", "0.5", "--running-var-correction", "1"])


def test_train_bn2d_cumulative_first_batch():
    train_case(13, (2, 3, 4, 4), None, ["--momentum", "1"], nbt_before=0, nbt_after=1)


def test_train_bn2d_cumulative_fifth_batch():
    train_case(14, (2, 3, 4, 4), None, ["--momentum", repr(1 / 5)], nbt_before=4, nbt_after=5)


def test_train_bn1d_momentum_default():
    train_case(15, (16, 5), 0.1, ["--momentum", "0.1"])


def test_train_bn1d_momentum_0_5():
    train_case(16, (16, 5), 0.5, ["--momentum", "0.5"])


def test_train_bn1d_cumulative():
    train_case(17, (16, 5), None, ["--momentum", "1"], nbt_before=0, nbt_after=1)
    train_case(18, (16, 5), None, ["--momentum", repr(1 / 5)], nbt_before=4, nbt_after=5)


def main():
    if torch is None:
        print("skipped: torch not installed")
        return 0

    torch.manual_seed(0)
    note("torch %s" % torch.__version__)
    return run_tests(globals(), __doc__)


if __name__ == "__main__":
    sys.exit(main())
