"""The normalization family's part of the bad-input catalog (issue 24): the refusals of
--norm and --groups, and of the layer, rms, instance and group problems that are not
defined. scripts/make_bad_inputs.py calls add_family_cases; every case keeps the same
error contract (exit 2, one line naming the option or the file, nothing left behind).
"""
import numpy as np


def add_family_cases(put, case, npy_bytes):
    """Writes the family's input files with put(name, bytes) and registers its cases with
    case(name, why, args, file, expect, outputs) (see make_bad_inputs.py)."""
    rng = np.random.default_rng(20260601)
    put("x_nld.npy", npy_bytes(rng.standard_normal((2, 5, 8))))    # (N, L, D)
    put("dy_nld.npy", npy_bytes(rng.standard_normal((2, 5, 8))))
    put("x_ncl.npy", npy_bytes(rng.standard_normal((2, 6, 4))))    # (N, C, L), C = 6
    put("x_4x1.npy", npy_bytes(rng.standard_normal((4, 1))))       # rows of one element
    put("x_nc11.npy", npy_bytes(rng.standard_normal((2, 3, 1, 1))))  # one element per (n, c)
    put("gamma_d8.npy", npy_bytes(np.ones(8)))
    put("gamma_ld.npy", npy_bytes(np.ones((5, 8))))
    put("gamma_c6.npy", npy_bytes(np.ones(6)))
    put("gamma_c4.npy", npy_bytes(np.ones(4)))
    put("gamma_c3.npy", npy_bytes(np.ones(3)))
    put("gamma_dl.npy", npy_bytes(np.ones((8, 5))))
    put("gamma_ld_rows.csv", "".join(",".join(["1"] * 8) + "\n" for _ in range(4)))
    put("rm3.npy", npy_bytes(np.zeros(3)))
    put("rv3.npy", npy_bytes(np.ones(3)))
    x_nan = rng.standard_normal((2, 5, 8))
    x_nan[1, 2, 3] = np.nan
    put("x_nld_nan.npy", npy_bytes(x_nan))
    x_const = rng.standard_normal((2, 5, 8))
    x_const[1] = 0.25
    put("x_nld_const_row.npy", npy_bytes(x_const))

    def fwd(x, *more):
        return ["forward", "--x", x, "--y", "y.npy"] + list(more)

    # ----------------------------------------------------------- --norm, --groups
    case("norm_unknown", "--norm batchnorm is not one of batch, layer, rms, instance, group.",
         fwd("x_ncl.npy", "--norm", "batchnorm"), None, ["--norm 'batchnorm'", "valid"],
         ["y.npy"])
    case("norm_uppercase", "--norm Layer: the values are lower case, as scripts call them.",
         fwd("x_ncl.npy", "--norm", "Layer"), None, ["--norm 'Layer'"], ["y.npy"])
    for name, value in [("groups_zero", "0"), ("groups_negative", "-2")]:
        case(name, "--groups %s is not a positive number of groups." % value,
             fwd("x_ncl.npy", "--norm", "group", "--groups", value), None,
             ["--groups %s" % value, "positive"], ["y.npy"])
    for name, value in [("groups_not_a_number", "two"), ("groups_fraction", "1.5"),
                        ("groups_trailing_garbage", "2x")]:
        case(name, "--groups '%s' is not an integer." % value,
             fwd("x_ncl.npy", "--norm", "group", "--groups", value), None,
             ["--groups '%s'" % value, "not an integer"], ["y.npy"])
    case("groups_missing", "--norm group without --groups.",
         fwd("x_ncl.npy", "--norm", "group", "--mean", "mean.npy"), None,
         ["--norm group", "--groups"], ["y.npy", "mean.npy"])
    case("groups_with_layer", "--groups given with --norm layer.",
         fwd("x_ncl.npy", "--norm", "layer", "--groups", "2"), None,
         ["--groups", "--norm layer"], ["y.npy"])
    case("groups_with_default_batch", "--groups given without --norm (batch norm).",
         fwd("x_ncl.npy", "--groups", "2"), None, ["--groups", "--norm batch"], ["y.npy"])
    case("groups_not_dividing", "--groups 4 does not divide C = 6.",
         fwd("x_ncl.npy", "--norm", "group", "--groups", "4"), None,
         ["--groups 4", "C = 6", "(2, 6, 4)"], ["y.npy"])
    case("groups_not_dividing_backward", "backward with --groups 5 for C = 6.",
         ["backward", "--norm", "group", "--groups", "5", "--x", "x_ncl.npy", "--dy", "x_ncl.npy",
          "--dx", "dx.npy"], None, ["--groups 5", "C = 6"], ["dx.npy"])
    case("groups_more_than_channels", "--groups 12 for C = 6.",
         fwd("x_ncl.npy", "--norm", "group", "--groups", "12"), None, ["--groups 12", "C = 6"],
         ["y.npy"])

    # ------------------------------------------------------------------- the axis
    for norm in ("instance", "group"):
        more = ["--groups", "2"] if norm == "group" else []
        case("%s_axis0" % norm, "--norm %s with --axis 0, the sample axis." % norm,
             fwd("x_ncl.npy", "--norm", norm, "--axis", "0", *more), None,
             ["--axis 0", "--norm %s" % norm], ["y.npy"])
    case("instance_axis_minus3", "--norm instance with --axis -3, the sample axis of a rank-3 x.",
         fwd("x_ncl.npy", "--norm", "instance", "--axis", "-3"), None,
         ["--axis -3", "--norm instance"], ["y.npy"])
    case("layer_axis_out_of_range", "--norm layer with --axis 3 for a rank-3 x.",
         fwd("x_nld.npy", "--norm", "layer", "--axis", "3"), None, ["--axis", "3"], ["y.npy"])

    # ------------------------------------------------------- sets of one element
    for norm, x, more, why in [
            ("layer", "x_4x1.npy", [], "rows of one element (x (4, 1), axis -1)"),
            ("rms", "x_4x1.npy", [], "rows of one element (x (4, 1), axis -1)"),
            ("instance", "x_nc11.npy", [], "one element per sample and channel (x (2, 3, 1, 1))"),
            ("group", "x_nc11.npy", ["--groups", "3"],
             "one element per sample and group (x (2, 3, 1, 1), 3 groups)")]:
        case("%s_m1" % norm, "--norm %s over %s: m = 1." % (norm, why),
             fwd(x, "--norm", norm, *more), x, ["--norm %s" % norm, "--axis", "m = 1"],
             ["y.npy"])
    case("layer_m1_backward", "backward --norm layer --axis 1 over x (4, 1): m = 1.",
         ["backward", "--norm", "layer", "--axis", "1", "--x", "x_4x1.npy", "--dy", "x_4x1.npy",
          "--dx", "dx.npy"], "x_4x1.npy", ["--norm layer", "--axis 1", "m = 1"], ["dx.npy"])
    case("rms_m1_gradcheck", "gradcheck --norm rms over x (4, 1): m = 1.",
         ["gradcheck", "--norm", "rms", "--x", "x_4x1.npy", "--report", "report.json"],
         "x_4x1.npy", ["--norm rms", "m = 1"], ["report.json"])

    # ---------------------------------------------------- γ, β of the wrong shape
    case("layer_gamma_wrong_shape", "--norm layer --axis 1 of (2, 5, 8): γ (8,) for (5, 8).",
         fwd("x_nld.npy", "--norm", "layer", "--axis", "1", "--gamma", "gamma_d8.npy"),
         "gamma_d8.npy", ["--gamma", "(5, 8)", "found shape (8,)"], ["y.npy"])
    case("layer_gamma_transposed", "--norm layer --axis 1: γ (8, 5) for (5, 8), same count.",
         fwd("x_nld.npy", "--norm", "layer", "--axis", "1", "--gamma", "gamma_dl.npy"),
         "gamma_dl.npy", ["(5, 8)", "found shape (8, 5)"], ["y.npy"])
    case("layer_beta_wrong_shape", "--norm layer (axis -1 of (2, 5, 8)): β (5, 8) for (8,).",
         fwd("x_nld.npy", "--norm", "layer", "--beta", "gamma_ld.npy"),
         "gamma_ld.npy", ["--beta", "(8,)", "found shape (5, 8)"], ["y.npy"])
    case("layer_gamma_csv_rows", "--norm layer --axis 1: a CSV γ of 4 rows of 8 for (5, 8).",
         fwd("x_nld.npy", "--norm", "layer", "--axis", "1", "--gamma", "gamma_ld_rows.csv"),
         "gamma_ld_rows.csv", ["(5, 8)", "found shape (4, 8)"], ["y.npy"])
    case("rms_gamma_wrong_shape", "--norm rms (axis -1 of (2, 5, 8)): γ (6,) for (8,).",
         fwd("x_nld.npy", "--norm", "rms", "--gamma", "gamma_c6.npy"),
         "gamma_c6.npy", ["--gamma", "(8,)", "found shape (6,)"], ["y.npy"])
    case("instance_gamma_wrong_shape", "--norm instance, C = 6: γ of 4 values.",
         fwd("x_ncl.npy", "--norm", "instance", "--gamma", "gamma_c4.npy"),
         "gamma_c4.npy", ["--gamma", "(6,)", "found shape (4,)"], ["y.npy"])
    case("group_gamma_one_per_group", "--norm group --groups 3, C = 6: γ of 3 values (one per "
         "group instead of one per channel).",
         fwd("x_ncl.npy", "--norm", "group", "--groups", "3", "--gamma", "gamma_c3.npy"),
         "gamma_c3.npy", ["--gamma", "(6,)", "found shape (3,)"], ["y.npy"])
    case("group_beta_wrong_shape", "--norm group --groups 2, C = 6: β of 4 values.",
         fwd("x_ncl.npy", "--norm", "group", "--groups", "2", "--beta", "gamma_c4.npy"),
         "gamma_c4.npy", ["--beta", "(6,)", "found shape (4,)"], ["y.npy"])
    case("layer_backward_gamma_wrong_shape", "backward --norm layer: γ (6,) for (8,).",
         ["backward", "--norm", "layer", "--x", "x_nld.npy", "--dy", "dy_nld.npy", "--gamma",
          "gamma_c6.npy", "--dx", "dx.npy", "--dgamma", "dgamma.npy"], "gamma_c6.npy",
         ["(8,)", "found shape (6,)"], ["dx.npy", "dgamma.npy"])
    case("layer_gradcheck_dgamma_wrong_shape", "gradcheck --norm layer: a given dγ (6,) for (8,).",
         ["gradcheck", "--norm", "layer", "--x", "x_nld.npy", "--dy", "dy_nld.npy", "--dgamma",
          "gamma_c6.npy", "--report", "report.json"], "gamma_c6.npy",
         ["--dgamma", "(8,)", "found shape (6,)"], ["report.json"])

    # ------------------------------------------------------------ rms has no β, mean
    case("rms_beta", "--beta given with --norm rms (y = γ·x·invstd has no β).",
         fwd("x_nld.npy", "--norm", "rms", "--beta", "gamma_d8.npy"), None,
         ["--norm rms", "--beta"], ["y.npy"])
    case("rms_mean", "--mean asked for with --norm rms (no mean is subtracted).",
         fwd("x_nld.npy", "--norm", "rms", "--mean", "mean.npy", "--invstd", "invstd.npy"), None,
         ["--norm rms", "--mean"], ["y.npy", "mean.npy", "invstd.npy"])
    case("rms_dbeta", "--dbeta asked for with backward --norm rms.",
         ["backward", "--norm", "rms", "--x", "x_nld.npy", "--dy", "dy_nld.npy", "--dx", "dx.npy",
          "--dgamma", "dgamma.npy", "--dbeta", "dbeta.npy"], None, ["--norm rms", "--dbeta"],
         ["dx.npy", "dgamma.npy", "dbeta.npy"])
    case("rms_gradcheck_beta", "gradcheck --norm rms with --beta.",
         ["gradcheck", "--norm", "rms", "--x", "x_nld.npy", "--beta", "gamma_d8.npy",
          "--report", "report.json"], None, ["--norm rms", "--beta"], ["report.json"])
    case("rms_gradcheck_dbeta", "gradcheck --norm rms judging a given --dbeta.",
         ["gradcheck", "--norm", "rms", "--x", "x_nld.npy", "--dy", "dy_nld.npy", "--dbeta",
          "gamma_d8.npy", "--report", "report.json"], None, ["--norm rms", "--dbeta"],
         ["report.json"])

    # --------------------------------------- inference mode: batch norm only
    R = ["--running-mean", "rm3.npy", "--running-var", "rv3.npy"]
    for norm, more in [("layer", []), ("rms", []), ("instance", []), ("group", ["--groups", "2"])]:
        case("%s_mode_eval" % norm, "--mode eval with --norm %s (inference mode is batch norm's)."
             % norm, ["forward", "--mode", "eval", "--norm", norm] + more
             + ["--x", "x_ncl.npy", "--y", "y.npy"] + R, None,
             ["--mode eval", "--norm batch only"], ["y.npy"])
    case("instance_backward_mode_eval", "backward --mode eval with --norm instance.",
         ["backward", "--mode", "eval", "--norm", "instance", "--x", "x_ncl.npy", "--dy",
          "x_ncl.npy", "--dx", "dx.npy"] + R, None, ["--mode eval", "--norm batch only"],
         ["dx.npy"])
    case("layer_gradcheck_mode_eval", "gradcheck --mode eval with --norm layer.",
         ["gradcheck", "--mode", "eval", "--norm", "layer", "--x", "x_nld.npy",
          "--report", "report.json"] + R, None, ["--mode eval", "--norm batch only"],
         ["report.json"])
    case("instance_running_update", "--running-mean/--running-var and --new-running-mean with "
         "--norm instance (track_running_stats is not supported).",
         fwd("x_ncl.npy", "--norm", "instance", *(R + ["--new-running-mean", "nrm.npy"])), None,
         ["--running-mean", "--norm batch only"], ["y.npy", "nrm.npy"])
    case("group_momentum", "--momentum with --norm group.",
         fwd("x_ncl.npy", "--norm", "group", "--groups", "2", "--momentum", "0.1"), None,
         ["--momentum", "--norm batch only"], ["y.npy"])

    # ------------------------------------------------- the data rules hold for all
    case("layer_nan_in_x", "--norm layer: x holds a NaN at (1, 2, 3).",
         fwd("x_nld_nan.npy", "--norm", "layer", "--mean", "mean.npy"), "x_nld_nan.npy",
         ["nan", "index (1, 2, 3)", "--allow-nonfinite"], ["y.npy", "mean.npy"])
    case("group_nan_in_dy", "backward --norm group: dy holds a NaN at (1, 2, 3).",
         ["backward", "--norm", "group", "--groups", "1", "--x", "x_nld.npy", "--dy",
          "x_nld_nan.npy", "--dx", "dx.npy", "--dgamma", "dgamma.npy"], "x_nld_nan.npy",
         ["nan", "index (1, 2, 3)"], ["dx.npy", "dgamma.npy"])
    case("layer_constant_row_eps0", "--norm layer with --eps 0 and a constant row: "
         "1/sqrt(var + eps) is infinite.",
         fwd("x_nld_const_row.npy", "--norm", "layer", "--axis", "1", "--eps", "0",
             "--invstd", "invstd.npy"), "x_nld_const_row.npy", [], ["y.npy", "invstd.npy"])
    case("layer_dy_wrong_shape", "backward --norm layer: dy (2, 6, 4) for x (2, 5, 8).",
         ["backward", "--norm", "layer", "--x", "x_nld.npy", "--dy", "x_ncl.npy", "--dx",
          "dx.npy"], "x_ncl.npy", ["(2, 6, 4)", "(2, 5, 8)"], ["dx.npy"])
