// The JSON report of bnorm compare, and its lines on stderr.
#include "compare_report.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

namespace bnorm::app {
namespace {

using Json = nlohmann::ordered_json;

/// NaN and ±inf are not JSON numbers: they are written as null.
Json number(double v) { return std::isfinite(v) ? Json(v) : Json(nullptr); }

const char* kind_name(JudgeCriterion::Kind k) {
    switch (k) {
    case JudgeCriterion::Kind::scaled: return "scaled";
    case JudgeCriterion::Kind::elementwise: return "elementwise";
    case JudgeCriterion::Kind::normwise: return "normwise";
    }
    return "";
}

Json tensor_json(const JudgedTensor& t) {
    const JudgeVerdict& v = t.verdict;
    Json j;
    j["passed"] = v.passed;
    j["file"] = t.path;
    j["dtype"] = dtype_name(t.dtype);
    j["judged_in"] = dtype_name(t.dtype);
    if (t.dtype != t.output_dtype)
        j["dtype_note"] = fmt::format("judged in its own dtype {}; bnorm's output would be {}", dtype_name(t.dtype),
                                      dtype_name(t.output_dtype));
    j["shape"] = t.shape;
    j["count"] = v.count;
    j["max_abs_err"] = number(v.max_abs_err);
    j["normwise_err_eps"] = number(v.normwise_eps);
    j["max_ulp"] = number(v.max_ulp);
    j["ulp_histogram"] = {{"0", v.ulp_histogram[0]},    {"1", v.ulp_histogram[1]},
                          {"2-4", v.ulp_histogram[2]},  {"5-16", v.ulp_histogram[3]},
                          {"17-256", v.ulp_histogram[4]}, {">256", v.ulp_histogram[5]}};
    j["over_tolerance"] = v.over;
    j["over_fraction"] = v.over_fraction;
    j["max_ratio_to_tolerance"] = number(v.max_ratio);
    j["floor"] = number(v.floor);
    j["worst"] = v.worst < 0 ? Json(nullptr)
                             : Json{{"index", v.worst_index},
                                    {"got", number(v.worst_got)},
                                    {"exact", number(v.worst_exact)},
                                    {"ulp_error", number(v.worst_ulp)},
                                    {"allowed", number(v.worst_allowed)},
                                    {"ratio_to_tolerance", number(v.max_ratio)}};
    return j;
}

} // namespace

std::string criterion_text(const JudgeCriterion& c) {
    switch (c.kind) {
    case JudgeCriterion::Kind::scaled:
        return fmt::format("|got - exact| <= {:g} * eps * scale + floor, element by element; scale: the magnitude "
                           "of the terms a correct kernel sums for that element (docs/compare.md)",
                           c.k);
    case JudgeCriterion::Kind::elementwise:
        return fmt::format("|got - exact| <= atol + rtol * |exact|, element by element (rtol {:g}, atol {:g})",
                           c.rtol, c.atol);
    case JudgeCriterion::Kind::normwise:
        return fmt::format("max |got - exact| <= {:g} * eps * max |exact| (normwise)", c.tol_eps);
    }
    return "";
}

std::string compare_report_json(const Problem& p, const NormProblem& np, const JudgeCriterion& c,
                                const CompareProblemNotes& notes,
                                const std::vector<JudgedTensor>& tensors) {
    bool passed = true;
    for (const auto& t : tensors) passed = passed && t.verdict.passed;
    Json j;
    j["passed"] = passed;
    j["problem"] = {{"norm", std::string(norm_name(np.norm))},
                    {"shape", p.x.shape()},
                    {"axis", p.axis},
                    {"eps", p.eps},
                    {"dtype", dtype_name(p.dtype)},
                    {"mode", p.eval ? "eval" : "train"},
                    {"sets", np.sets},
                    {"per_set", np.per_set}};
    if (notes.momentum >= 0) {
        j["problem"]["momentum"] = notes.momentum;
        j["problem"]["running_var_correction"] = notes.correction;
    }
    Json crit = {{"name", kind_name(c.kind)}, {"rule", criterion_text(c)}};
    switch (c.kind) {
    case JudgeCriterion::Kind::scaled: crit["k"] = c.k, crit["k_half"] = c.half_k; break;
    case JudgeCriterion::Kind::elementwise: crit["rtol"] = c.rtol, crit["atol"] = c.atol; break;
    case JudgeCriterion::Kind::normwise: crit["tol_eps"] = c.tol_eps; break;
    }
    crit["eps"] = {{"float32", dtype_eps(DType::f32)},
                   {"float64", dtype_eps(DType::f64)},
                   {"float16", dtype_eps(DType::f16)},
                   {"bfloat16", dtype_eps(DType::bf16)}};
    crit["exact"] = "bnorm's float64 result (the exact value rounded once to float64)";
    j["criterion"] = crit;
    Json ts = Json::object();
    for (const auto& t : tensors) ts[t.name] = tensor_json(t);
    j["tensors"] = ts;
    return j.dump(2) + "\n";
}

void print_compare_summary(const JudgeCriterion& c, const std::vector<JudgedTensor>& tensors) {
    bool passed = true;
    for (const auto& t : tensors) {
        const JudgeVerdict& v = t.verdict;
        passed = passed && v.passed;
        const std::string where =
            v.worst < 0 ? "" : fmt::format(" at ({}): got {}, exact {}, {:.3g} ulp", fmt::join(v.worst_index, ", "),
                                           v.worst_got, v.worst_exact, v.worst_ulp);
        if (v.passed)
            fmt::print(stderr, "compare: {:16} passed  max {:.3g} ulp, normwise {:.3g} eps, worst {:.3g} of the "
                               "tolerance{}\n",
                       t.name, v.max_ulp, v.normwise_eps, v.max_ratio, where);
        else
            fmt::print(stderr, "compare: {:16} FAILED  {} of {} elements over the tolerance ({:.3g}%), worst {:.3g} "
                               "times the tolerance{}\n",
                       t.name, v.over, v.count, 100 * v.over_fraction, v.max_ratio, where);
    }
    fmt::print(stderr, "compare: {} ({} {}; exit {})\n", passed ? "PASSED" : "FAILED", kind_name(c.kind),
               c.kind == JudgeCriterion::Kind::scaled ? fmt::format("criterion, k = {:g}", c.k) : "criterion",
               passed ? 0 : 1);
}

} // namespace bnorm::app
