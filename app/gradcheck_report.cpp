// The JSON report of bnorm gradcheck, and its summary on stderr.
#include "gradcheck_report.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

namespace bnorm::app {
namespace {

using Json = nlohmann::ordered_json;

/// NaN and ±inf are not JSON numbers: they are written as null.
Json number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

Json verdict_json(const TensorVerdict& v, bool randomized) {
    Json j;
    j["judged"] = v.judged;
    j["passed"] = v.passed;
    j["max_abs_err"] = number(v.max_abs_err);
    j["max_rel_err"] = number(v.max_rel_err);
    j["worst"] = v.worst_index.empty()
                     ? Json(nullptr)
                     : Json{{"index", v.worst_index},
                            {"analytic", number(v.worst_analytic)},
                            {"numerical", number(v.worst_numerical)},
                            {"ratio_to_tolerance", number(v.worst_ratio)},
                            {"dy_draw", v.worst_draw}};
    j["checked"] = v.checked;
    j["total"] = v.total;
    j["atol_used"] = number(v.atol);
    if (randomized)
        j["directional"] = {{"checks", v.directional_checks},
                            {"passed", v.directional_passed},
                            {"max_rel_err", number(v.directional_max_rel_err)},
                            {"ratio_to_tolerance", number(v.directional_worst_ratio)},
                            {"worst_channel", v.directional_worst_channel}};
    return j;
}

} // namespace

std::string gradcheck_report_json(const Problem& p, const GradcheckOptions& opt, const GradcheckReport& r) {
    const bool randomized = r.mode == "randomized";
    std::vector<std::string> judged;
    if (r.x.judged) judged.push_back("dx");
    if (r.gamma.judged) judged.push_back("dgamma");
    if (r.beta.judged) judged.push_back("dbeta");

    Json j;
    j["passed"] = r.passed;
    const bool channel_axis = p.norm.norm != Norm::layer && p.norm.norm != Norm::rms;
    j["problem"] = {{"norm", norm_name(p.norm.norm)},
                    {"groups", p.norm.norm == Norm::group ? Json(p.norm.groups) : Json(nullptr)},
                    {"shape", p.x.shape()},
                    {"axis", p.axis},
                    {"eps", p.eps},
                    {"dtype", dtype_name(p.dtype)},
                    {"channels", channel_axis ? Json(p.norm.channels) : Json(nullptr)},
                    {"per_channel", p.norm.per_set},
                    {"gradients", r.gradients_given ? "given" : "bnorm"},
                    {"judged", judged},
                    {"dy", r.dy_given ? "given" : "random"},
                    {"dy_draws", r.dy_draws},
                    {"seed", opt.seed},
                    {"mode", p.eval ? "eval" : "train"}};
    j["method"] = {{"name", "complex-step"},
                   {"arithmetic", "double-double (about 106 bits)"},
                   {"step_relative_to_std", r.step_relative},
                   {"estimated_error", number(r.estimated_method_error)},
                   {"error_estimate", "max |complex step - Richardson-extrapolated central differences| / "
                                      "max |derivative|, on the crosscheck elements"},
                   {"crosscheck_elements", r.crosscheck_elements},
                   {"lanes_per_pass", r.lanes},
                   {"mode", r.mode},
                   {"directions_per_draw", randomized ? opt.directions : 0},
                   {"samples_per_draw", randomized ? opt.samples : 0}};
    if (r.scaled)
        j["tolerances"] = {{"name", "scaled"},
                           {"rtol", nullptr},
                           {"atol", nullptr},
                           {"k", r.k},
                           {"eps", r.eps},
                           {"criterion", "|analytic - numerical| <= k * eps * scale_i + floor, element by element; "
                                         "scale_i: the magnitude of the terms a correct kernel sums (dx: |gamma| * "
                                         "invstd * (|dy_i| + sum|dy|/m + |xhat_i| * sum|dy * xhat|/m); dgamma: "
                                         "sum|dy * xhat|; dbeta: sum|dy|); randomized directions: sum of the "
                                         "elements' allowances"},
                           {"atol_default", "floor = max(k * eps * 2^-40 * max scale, the dtype's smallest "
                                            "subnormal) of each tensor (see atol_used)"}};
    else
        j["tolerances"] = {{"name", "elementwise"},
                           {"rtol", number(r.x.rtol > 0 ? r.x.rtol : (r.gamma.rtol > 0 ? r.gamma.rtol : r.beta.rtol))},
                           {"atol", opt.atol ? number(*opt.atol) : Json(nullptr)},
                           {"k", nullptr},
                           {"eps", r.eps},
                           {"criterion", "|analytic - numerical| <= atol + rtol * |numerical|, element by element"},
                           {"atol_default", "1e-3 * rtol * max |numerical| of each tensor (see atol_used)"}};
    j["x"] = verdict_json(r.x, randomized);
    j["gamma"] = verdict_json(r.gamma, false);
    j["beta"] = verdict_json(r.beta, false);
    j["forward_evaluations"] = r.forward_evaluations;
    j["forward_element_evaluations"] = r.forward_element_evaluations;
    j["elapsed_seconds"] = r.elapsed_seconds;

    return j.dump(2) + "\n";
}

void print_gradcheck_summary(const GradcheckReport& r) {
    const bool randomized = r.mode == "randomized";
    auto note = [&](const char* name, const TensorVerdict& v) {
        if (!v.judged) return;
        fmt::print(stderr, "gradcheck: {:5} {}  max rel err {:.2e}, {:.3g} of the tolerance, {} of {} elements{}\n",
                   name, v.passed ? "passed" : "FAILED", v.max_rel_err, v.worst_ratio, v.checked, v.total,
                   v.worst_index.empty() ? "" : fmt::format(", worst at ({})", fmt::join(v.worst_index, ", ")));
    };
    note("x", r.x);
    note("gamma", r.gamma);
    note("beta", r.beta);
    if (randomized)
        fmt::print(stderr, "gradcheck: x directional derivatives {} ({} checks, max rel err {:.2e})\n",
                   r.x.directional_passed ? "passed" : "FAILED", r.x.directional_checks,
                   r.x.directional_max_rel_err);
    fmt::print(stderr, "gradcheck: {} ({} mode, {} dy draw(s), {}, {:.2f} s)\n", r.passed ? "PASSED" : "FAILED",
               r.mode, r.dy_draws,
               r.scaled ? fmt::format("scaled criterion, k = {:g}", r.k) : std::string("--rtol/--atol criterion"),
               r.elapsed_seconds);
}

} // namespace bnorm::app
