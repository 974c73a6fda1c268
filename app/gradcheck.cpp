// bnorm gradcheck: analytic gradients (bnorm's own, or given files) against complex-step
// derivatives of the forward pass; a JSON report on stdout (and --report), notes on stderr.
// Exit 0 when every check passes, 1 when one fails, 2 on bad usage or input.
#include "commands.hpp"
#include "problem.hpp"

#include "bnorm/error.hpp"
#include "bnorm/files.hpp"
#include "bnorm/gradcheck.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <cstdio>
#include <memory>
#include <unistd.h>

namespace bnorm::app {
namespace {

struct GradcheckCliOptions {
    CommonOptions common;
    std::string gamma, beta, dy, dx, dgamma, dbeta, report;
    std::string rtol, atol, seed = "0";
    bool full = false;
};

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
                            {"worst_channel", v.directional_worst_channel}};
    return j;
}

std::uint64_t parse_seed(const std::string& text) {
    std::uint64_t v = 0;
    const char* end = text.data() + text.size();
    const auto r = std::from_chars(text.data(), end, v);
    if (text.empty() || r.ec != std::errc() || r.ptr != end)
        throw UsageError(fmt::format("--seed '{}' is not a non-negative integer", text));
    return v;
}

int run_gradcheck(const GradcheckCliOptions& o) {
    Problem p = load_problem(o.common, o.gamma, o.beta, o.dy, {},
                             {{"--dx", o.dx}, {"--dgamma", o.dgamma}, {"--dbeta", o.dbeta}},
                             {{"--report", o.report}});
    require_finite(p);
    const bool given_any = !o.dx.empty() || !o.dgamma.empty() || !o.dbeta.empty();
    if (given_any && o.dy.empty())
        throw UsageError("--dx/--dgamma/--dbeta are judged as the gradients for a given upstream "
                         "gradient: pass it with --dy");
    std::optional<Array> dx, dgamma, dbeta;
    if (!o.dx.empty()) dx = load_like_x(o.dx, p, o.common.x);
    if (!o.dgamma.empty()) dgamma = load_per_channel(o.dgamma, p, o.common.x);
    if (!o.dbeta.empty()) dbeta = load_per_channel(o.dbeta, p, o.common.x);
    if (!o.common.allow_nonfinite) {
        if (dx) check_finite(*dx, o.dx);
        if (dgamma) check_finite(*dgamma, o.dgamma);
        if (dbeta) check_finite(*dbeta, o.dbeta);
    }

    GradcheckOptions opt;
    if (!o.rtol.empty()) opt.rtol = parse_nonnegative("--rtol", o.rtol);
    if (!o.atol.empty()) opt.atol = parse_nonnegative("--atol", o.atol);
    opt.seed = parse_seed(o.seed);
    opt.full = o.full;
    opt.threads = thread_count(o.common);
    const bool tty = ::isatty(STDERR_FILENO);
    if (tty) opt.progress = [](double f) { fmt::print(stderr, "\rgradcheck: {:3.0f}%", 100 * f); };

    GradcheckReport r = dispatch(p.x.dtype(), [&](auto t) {
        using T = decltype(t);
        auto ptr = [](const std::optional<Array>& a) { return a ? a->data<T>() : nullptr; };
        try {
            return gradcheck<T>(p.x.data<T>(), p.x.shape(), p.layout, ptr(p.gamma), ptr(p.beta), ptr(p.dy), p.eps,
                                GivenGradients<T>{ptr(dx), ptr(dgamma), ptr(dbeta)}, opt);
        } catch (const InputError&) {
            rethrow_for_file(o.common.x);
        }
    });
    if (tty) fmt::print(stderr, "\r");

    const bool randomized = r.mode == "randomized";
    std::vector<std::string> judged;
    if (r.x.judged) judged.push_back("dx");
    if (r.gamma.judged) judged.push_back("dgamma");
    if (r.beta.judged) judged.push_back("dbeta");

    Json j;
    j["passed"] = r.passed;
    j["problem"] = {{"shape", p.x.shape()},
                    {"axis", p.axis},
                    {"eps", p.eps},
                    {"dtype", dtype_name(p.x.dtype())},
                    {"channels", p.layout.channels},
                    {"per_channel", p.layout.per_channel()},
                    {"gradients", r.gradients_given ? "given" : "bnorm"},
                    {"judged", judged},
                    {"dy", r.dy_given ? "given" : "random"},
                    {"dy_draws", r.dy_draws},
                    {"seed", opt.seed}};
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
    j["tolerances"] = {{"rtol", number(r.x.rtol > 0 ? r.x.rtol : (r.gamma.rtol > 0 ? r.gamma.rtol : r.beta.rtol))},
                       {"atol", opt.atol ? number(*opt.atol) : Json(nullptr)},
                       {"criterion", "|analytic - numerical| <= atol + rtol * |numerical|, element by element"},
                       {"atol_default", "1e-3 * rtol * max |numerical| of each tensor (see atol_used)"}};
    j["x"] = verdict_json(r.x, randomized);
    j["gamma"] = verdict_json(r.gamma, false);
    j["beta"] = verdict_json(r.beta, false);
    j["forward_evaluations"] = r.forward_evaluations;
    j["forward_element_evaluations"] = r.forward_element_evaluations;
    j["elapsed_seconds"] = r.elapsed_seconds;

    const std::string text = j.dump(2) + "\n";
    if (!o.report.empty()) {
        PendingFile f(o.report);
        f.write(text.data(), text.size());
        f.commit();
    }
    std::fwrite(text.data(), 1, text.size(), stdout);

    auto note = [&](const char* name, const TensorVerdict& v) {
        if (!v.judged) return;
        fmt::print(stderr, "gradcheck: {:5} {}  max rel err {:.2e}, {} of {} elements{}\n", name,
                   v.passed ? "passed" : "FAILED", v.max_rel_err, v.checked, v.total,
                   v.worst_index.empty() ? "" : fmt::format(", worst at ({})", fmt::join(v.worst_index, ", ")));
    };
    note("x", r.x);
    note("gamma", r.gamma);
    note("beta", r.beta);
    if (randomized)
        fmt::print(stderr, "gradcheck: x directional derivatives {} ({} checks, max rel err {:.2e})\n",
                   r.x.directional_passed ? "passed" : "FAILED", r.x.directional_checks,
                   r.x.directional_max_rel_err);
    fmt::print(stderr, "gradcheck: {} ({} mode, {} dy draw(s), {:.2f} s)\n", r.passed ? "PASSED" : "FAILED",
               r.mode, r.dy_draws, r.elapsed_seconds);
    return r.passed ? kExitOk : kExitCheckFailed;
}

} // namespace

void setup_gradcheck(CLI::App& app, int& exit_code) {
    auto opts = std::make_shared<GradcheckCliOptions>();
    CLI::App* cmd = app.add_subcommand(
        "gradcheck", "Check a backward pass (bnorm's own, or the gradients you give) against "
                     "numerical derivatives of the forward pass; JSON report on stdout");
    add_common_options(*cmd, opts->common);
    cmd->add_option("--gamma", opts->gamma, "Scale γ, C values (default: ones)");
    cmd->add_option("--beta", opts->beta, "Shift β, C values (default: zeros)");
    cmd->add_option("--dy", opts->dy, "Upstream gradient; without it, several random ones are drawn "
                                      "(required with --dx/--dgamma/--dbeta)");
    cmd->add_option("--dx", opts->dx, "Judge this dx (your implementation's) instead of bnorm's");
    cmd->add_option("--dgamma", opts->dgamma, "Judge this dγ instead of bnorm's");
    cmd->add_option("--dbeta", opts->dbeta, "Judge this dβ instead of bnorm's");
    cmd->add_option("--rtol", opts->rtol, "Relative tolerance (default 1e-11 for float64, 1e-5 for float32)");
    cmd->add_option("--atol", opts->atol, "Absolute tolerance (default 1e-3·rtol·max|gradient| per tensor)");
    cmd->add_option("--seed", opts->seed, "Seed of the random dy draws, directions and samples")
        ->capture_default_str();
    cmd->add_option("--report", opts->report, "Also write the JSON report to this file");
    cmd->add_flag("--full", opts->full, "Check every element, however large the tensor");
    cmd->footer("Examples:\n"
                "  bnorm gradcheck --x data/x_nchw.npy --gamma data/gamma.npy\n"
                "  bnorm gradcheck --x x.npy --gamma g.npy --dy dy.npy --dx my_dx.npy --dgamma my_dg.npy "
                "--report report.json\n"
                "Exit codes: 0 every check passed, 1 a check failed, 2 bad usage or input.");
    refuse_empty_values(*cmd);
    cmd->callback([opts, &exit_code] { exit_code = run_gradcheck(*opts); });
}

} // namespace bnorm::app
