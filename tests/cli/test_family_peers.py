#!/usr/bin/python3
"""bnorm's layer, rms, instance and group norm (issue 24) against PyTorch.

Usage (Debian's Python, which has numpy; torch where installed):

    /usr/bin/python3 tests/cli/test_family_peers.py BNORM [NAME-SUBSTRING ...]

Without torch (`import torch` fails) the script prints "skipped: torch not installed"
and exits with 0.

Every test runs in float64 on well-conditioned random data (fixed seeds), writes x, γ,
β and dy as NPY files, runs `bnorm forward` and `bnorm backward` with --norm (and --axis,
--groups) and compares every output with PyTorch's, normwise:

    max|bnorm - torch| / max|torch| <= 1e-12      (RTOL below)

and each output's shape with the shape PyTorch gives it. PyTorch's side:

  * layer: torch.native_layer_norm(x, x.shape[axis:], weight, bias, eps) for y, mean and
    rstd (saved as x.shape[:axis] followed by ones), F.layer_norm's autograd for dx,
    dweight, dbias; axis -1, -2 and an axis in the middle of a rank-4 x;
  * rms: not in torch 1.13, written in torch ops (x * rsqrt(mean(x², normalized axes) +
    eps) * weight), autograd for dx and dweight; invstd is rsqrt(...) itself;
  * group: torch.native_group_norm(x, weight, bias, N, C, HxW, G, eps) for y, mean and
    rstd ((N, G)), F.group_norm's autograd for the gradients; G = 1, a middle G and
    G = C; (N, C), (N, C, L), NCHW, and channels last (--axis -1), which torch takes
    permuted to channels first (x.movedim(axis, 1));
  * instance: F.instance_norm(x, weight=, bias=, eps=) and its autograd; mean and invstd
    from torch.native_batch_norm over x viewed as (1, N*C, rest) in training mode (what
    F.instance_norm computes), reshaped to (N, C); NCL, NCHW and channels last.

Prints `PASS name` / `FAIL name: reason` per test and `N passed, M failed`; exit 1 on a
failure.
"""

import os
import sys
import tempfile

import numpy as np

from runner import check, import_torch, rel, run_ok, run_tests

torch, F = import_torch()

BNORM = None  # set by run_tests()
RTOL = 1e-12
EPS = 1e-5


def bnorm(tmp, args):
    run_ok(BNORM, tmp, args)


def random_inputs(seed, shape, param_shape):
    """Well-conditioned float64 data: x of mean 0.3 and spread 1, γ near 1, β and dy
    of order 1."""
    rng = np.random.default_rng(seed)
    x = 0.3 + rng.standard_normal(shape)
    gamma = 1.0 + 0.5 * rng.standard_normal(param_shape)
    beta = rng.standard_normal(param_shape)
    dy = rng.standard_normal(shape)
    return x, gamma, beta, dy


def run_bnorm(tmp, norm_args, x, gamma, beta, dy, rms=False):
    """bnorm forward and backward on the given arrays; returns its outputs by name."""
    for name, a in (("x", x), ("gamma", gamma), ("beta", beta), ("dy", dy)):
        np.save(os.path.join(tmp, name + ".npy"), a)
    fwd = ["forward", "--x", "x.npy", "--gamma", "gamma.npy", "--y", "y.npy",
           "--invstd", "invstd.npy", "--eps", repr(EPS)] + norm_args
    bwd = ["backward", "--x", "x.npy", "--gamma", "gamma.npy", "--dy", "dy.npy",
           "--dx", "dx.npy", "--dgamma", "dgamma.npy", "--eps", repr(EPS)] + norm_args
    if not rms:
        fwd += ["--beta", "beta.npy", "--mean", "mean.npy"]
        bwd += ["--dbeta", "dbeta.npy"]
    bnorm(tmp, fwd)
    bnorm(tmp, bwd)
    names = ["y", "invstd", "dx", "dgamma"] + ([] if rms else ["mean", "dbeta"])
    return {k: np.load(os.path.join(tmp, k + ".npy")) for k in names}


def autograd(fn, x, gamma, beta, dy):
    """fn(x, weight, bias) in float64, and the gradients of sum(dy * y) by autograd."""
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(gamma, requires_grad=True)
    bt = None if beta is None else torch.tensor(beta, requires_grad=True)
    y = fn(xt, gt, bt)
    y.backward(torch.tensor(dy))
    grads = {"y": y.detach().numpy(), "dx": xt.grad.numpy(), "dgamma": gt.grad.numpy()}
    if bt is not None:
        grads["dbeta"] = bt.grad.numpy()
    return grads


def compare_all(what, got, ref):
    """Every output of ref against bnorm's: dtype float64, the same shape, RTOL."""
    errs = []
    for k, r in ref.items():
        g = got[k]
        check(g.dtype == np.float64 and g.shape == tuple(r.shape),
              "%s: %s is %s %s, expected float64 %s" % (what, k, g.dtype, g.shape, tuple(r.shape)))
        e = rel(g, r)
        errs.append("%s %.1e" % (k, e))
        check(e <= RTOL, "%s: %s differs from torch by %.3g (normwise) > %g" % (what, k, e, RTOL))
    print("  %s: %s" % (what, ", ".join(errs)))
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# layer and rms
# ---------------------------------------------------------------------------

ROW_CASES = [((8, 16), -1), ((4, 6, 10), -1), ((4, 6, 10), -2), ((3, 4, 5, 6), 1),
             ((3, 4, 5, 6), 2), ((2, 3, 2, 5), -1)]


def test_layer_norm():
    for i, (shape, axis) in enumerate(ROW_CASES):
        a = axis % len(shape)
        nshape = list(shape[a:])
        x, gamma, beta, dy = random_inputs(100 + i, shape, nshape)
        what = "layer %s axis %d" % (shape, axis)
        with tempfile.TemporaryDirectory() as tmp:
            got = run_bnorm(tmp, ["--norm", "layer", "--axis", str(axis)], x, gamma, beta, dy)
        ref = autograd(lambda xt, gt, bt: F.layer_norm(xt, nshape, gt, bt, EPS), x, gamma, beta, dy)
        y, mean, rstd = torch.native_layer_norm(torch.tensor(x), nshape, torch.tensor(gamma),
                                                torch.tensor(beta), EPS)
        ref.update(mean=mean.numpy(), invstd=rstd.numpy())
        check(rel(y.numpy(), ref["y"]) <= RTOL, "%s: torch's two layer norms differ" % what)
        compare_all(what, got, ref)


def rms_norm_torch(xt, gt, dims):
    invstd = torch.rsqrt((xt * xt).mean(dim=dims, keepdim=True) + EPS)
    return xt * invstd * gt, invstd


def test_rms_norm():
    for i, (shape, axis) in enumerate(ROW_CASES):
        a = axis % len(shape)
        dims = tuple(range(a, len(shape)))
        x, gamma, _, dy = random_inputs(200 + i, shape, shape[a:])
        what = "rms %s axis %d" % (shape, axis)
        with tempfile.TemporaryDirectory() as tmp:
            got = run_bnorm(tmp, ["--norm", "rms", "--axis", str(axis)], x, gamma, None, dy,
                            rms=True)
        ref = autograd(lambda xt, gt, bt: rms_norm_torch(xt, gt, dims)[0], x, gamma, None, dy)
        ref["invstd"] = rms_norm_torch(torch.tensor(x), torch.tensor(gamma), dims)[1].numpy()
        compare_all(what, got, ref)


def test_rms_default_axis_is_last():
    """Without --axis, rms normalizes over the last axis, as ONNX RMSNormalization's -1."""
    shape = (5, 7, 12)
    x, gamma, _, dy = random_inputs(250, shape, (12,))
    with tempfile.TemporaryDirectory() as tmp:
        got = run_bnorm(tmp, ["--norm", "rms"], x, gamma, None, dy, rms=True)
    ref = autograd(lambda xt, gt, bt: rms_norm_torch(xt, gt, (2,))[0], x, gamma, None, dy)
    ref["invstd"] = rms_norm_torch(torch.tensor(x), torch.tensor(gamma), (2,))[1].numpy()
    compare_all("rms %s default axis" % (shape,), got, ref)


# ---------------------------------------------------------------------------
# group and instance
# ---------------------------------------------------------------------------

def channels_first(fn, axis):
    """fn over a channels-first tensor, applied to x with its channel axis at `axis`."""
    return lambda xt, gt, bt: fn(xt.movedim(axis, 1), gt, bt).movedim(1, axis)


GROUP_CASES = [((6, 8), 1, 2), ((4, 6, 7), 1, 3), ((3, 6, 5, 4), 1, 1), ((3, 6, 5, 4), 1, 6),
               ((3, 8, 4, 5), 1, 4), ((3, 5, 4, 6), -1, 2), ((2, 3, 4, 6), -1, 3),
               ((2, 4, 6, 3), 2, 3)]


def test_group_norm():
    for i, (shape, axis, groups) in enumerate(GROUP_CASES):
        a = axis % len(shape)
        C = shape[a]
        x, gamma, beta, dy = random_inputs(300 + i, shape, (C,))
        what = "group %s axis %d G %d" % (shape, axis, groups)
        with tempfile.TemporaryDirectory() as tmp:
            got = run_bnorm(tmp, ["--norm", "group", "--groups", str(groups), "--axis", str(axis)],
                            x, gamma, beta, dy)
        ref = autograd(channels_first(lambda xt, gt, bt: F.group_norm(xt, groups, gt, bt, EPS), a),
                       x, gamma, beta, dy)
        xc = torch.tensor(x).movedim(a, 1).contiguous()
        n, hxw = shape[0], xc[0, 0].numel()
        _, mean, rstd = torch.native_group_norm(xc, torch.tensor(gamma), torch.tensor(beta), n, C,
                                                hxw, groups, EPS)
        ref.update(mean=mean.numpy(), invstd=rstd.numpy())
        compare_all(what, got, ref)


INSTANCE_CASES = [((4, 3, 9), 1), ((3, 4, 5, 6), 1), ((3, 5, 6, 4), -1), ((2, 3, 4, 5, 2), 1)]


def test_instance_norm():
    for i, (shape, axis) in enumerate(INSTANCE_CASES):
        a = axis % len(shape)
        C = shape[a]
        x, gamma, beta, dy = random_inputs(400 + i, shape, (C,))
        what = "instance %s axis %d" % (shape, axis)
        with tempfile.TemporaryDirectory() as tmp:
            got = run_bnorm(tmp, ["--norm", "instance", "--axis", str(axis)], x, gamma, beta, dy)
        ref = autograd(channels_first(
            lambda xt, gt, bt: F.instance_norm(xt, weight=gt, bias=bt, eps=EPS), a),
            x, gamma, beta, dy)
        xc = torch.tensor(x).movedim(a, 1).contiguous()
        n = shape[0]
        _, mean, invstd = torch.native_batch_norm(xc.reshape(1, n * C, -1), None, None, None, None,
                                                  True, 0.1, EPS)
        ref.update(mean=mean.reshape(n, C).numpy(), invstd=invstd.reshape(n, C).numpy())
        compare_all(what, got, ref)


def test_group_of_one_is_layer_norm_over_chw():
    """--norm group --groups 1 is layer norm over (C, H, W) with one γ per channel: the
    same y as F.layer_norm without affine, then γ, β per channel."""
    shape = (3, 4, 5, 6)
    x, gamma, beta, dy = random_inputs(500, shape, (4,))
    with tempfile.TemporaryDirectory() as tmp:
        got = run_bnorm(tmp, ["--norm", "group", "--groups", "1"], x, gamma, beta, dy)
    ref = autograd(lambda xt, gt, bt: F.layer_norm(xt, [4, 5, 6], None, None, EPS)
                   * gt.reshape(1, 4, 1, 1) + bt.reshape(1, 4, 1, 1), x, gamma, beta, dy)
    compare_all("group G=1 as layer norm %s" % (shape,), got, ref)


def main():
    if torch is None:
        print("skipped: torch not installed")
        return 0
    torch.set_num_threads(1)

    return run_tests(globals(), __doc__)


if __name__ == "__main__":
    sys.exit(main())
