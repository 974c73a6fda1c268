// bnorm gradcheck: analytic gradients (bnorm's own, or given files) against complex-step
// derivatives of the forward pass; a JSON report on stdout (and --report), notes on stderr.
// Exit 0 when every check passes, 1 when one fails, 2 on bad usage or input.
#include "commands.hpp"
#include "gradcheck_report.hpp"
#include "norm_options.hpp"
#include "problem.hpp"

#include "bnorm/error.hpp"
#include "bnorm/files.hpp"
#include "bnorm/gradcheck.hpp"
#include "bnorm/half.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <unistd.h>

namespace bnorm::app {
namespace {

struct GradcheckCliOptions {
    CommonOptions common;
    std::string gamma, beta, dy, dx, dgamma, dbeta, report;
    std::string rtol, atol, seed = "0";
    bool full = false;
};

std::uint64_t parse_seed(const std::string& text) {
    std::uint64_t v = 0;
    const char* end = text.data() + text.size();
    const auto r = std::from_chars(text.data(), end, v);
    if (text.empty() || r.ec != std::errc() || r.ptr != end)
        throw UsageError(fmt::format("--seed '{}' is not a non-negative integer", text));
    return v;
}

/// The gradients given to judge (--dx, --dgamma, --dbeta), each absent when not given.
struct GivenArrays {
    std::optional<Array> dx, dgamma, dbeta;
};

/// Loads the given gradients, checked against x like dy (shape, dtype, finite values).
GivenArrays load_given(const GradcheckCliOptions& o, const Problem& p) {
    const bool given_any = !o.dx.empty() || !o.dgamma.empty() || !o.dbeta.empty();
    if (given_any && o.dy.empty())
        throw UsageError("--dx/--dgamma/--dbeta are judged as the gradients for a given upstream "
                         "gradient: pass it with --dy");
    GivenArrays g;
    if (!o.dx.empty()) g.dx = load_like_x(o.dx, p, o.common.x);
    if (!o.dgamma.empty()) g.dgamma = load_params(o.dgamma, "--dgamma", p, o.common.x);
    if (!o.dbeta.empty()) g.dbeta = load_params(o.dbeta, "--dbeta", p, o.common.x);
    if (!o.common.allow_nonfinite) {
        if (g.dx) check_finite(*g.dx, o.dx);
        if (g.dgamma) check_finite(*g.dgamma, o.dgamma);
        if (g.dbeta) check_finite(*g.dbeta, o.dbeta);
    }
    return g;
}

/// --rtol, --atol, --seed, --full and --threads, and a progress line when stderr is a terminal.
GradcheckOptions gradcheck_options(const GradcheckCliOptions& o) {
    GradcheckOptions opt;
    if (!o.rtol.empty()) opt.rtol = parse_nonnegative("--rtol", o.rtol);
    if (!o.atol.empty()) opt.atol = parse_nonnegative("--atol", o.atol);
    opt.seed = parse_seed(o.seed);
    opt.full = o.full;
    opt.threads = thread_count(o.common);
    if (::isatty(STDERR_FILENO)) opt.progress = [](double f) { fmt::print(stderr, "\rgradcheck: {:3.0f}%", 100 * f); };
    return opt;
}

/// Runs the check in x's dtype; an InputError about the data names x's file.
GradcheckReport check(const Problem& p, const GivenArrays& g, const GradcheckOptions& opt) {
    GradcheckReport r = dispatch(p.x.dtype(), [&](auto t) {
        using T = decltype(t);
        auto ptr = [](const std::optional<Array>& a) { return a ? a->data<T>() : nullptr; };
        const GivenGradients<T> given{ptr(g.dx), ptr(g.dgamma), ptr(g.dbeta)};
        try {
            if (p.norm.norm != Norm::batch) // the family's overload: its sets and parameter shapes
                return gradcheck<T>(p.x.data<T>(), p.norm, ptr(p.gamma), ptr(p.beta), ptr(p.dy), p.eps, given, opt);
            return gradcheck<T>(p.x.data<T>(), p.x.shape(), p.layout, ptr(p.gamma), ptr(p.beta), ptr(p.dy), p.eps,
                                given, opt);
        } catch (const InputError&) {
            rethrow_for_file(p.x_path);
        }
    });
    if (opt.progress) fmt::print(stderr, "\r");
    return r;
}

/// The report on stdout, and into the file `path` when one is given (empty: none).
void write_report(const std::string& text, const std::string& path) {
    if (!path.empty()) {
        PendingFile f(path);
        f.write(text.data(), text.size());
        f.commit();
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
}

/// The running statistics of --mode eval, widened to double (exactly).
std::vector<double> widened(const std::optional<Array>& a) {
    std::vector<double> v;
    if (a) dispatch(a->dtype(), [&](auto t) {
        using T = decltype(t);
        v.assign(a->data<T>(), a->data<T>() + a->size());
    });
    return v;
}

int run_gradcheck(const GradcheckCliOptions& o) {
    check_norm_options(o.common, {}, {{"--beta", o.beta}, {"--dbeta", o.dbeta}});
    check_mode_options(o.common, false);
    const Problem p = load_problem(o.common, o.gamma, o.beta, o.dy, {},
                                   {{"--dx", o.dx}, {"--dgamma", o.dgamma}, {"--dbeta", o.dbeta}},
                                   {{"--report", o.report}});
    require_finite(p);
    const GivenArrays given = load_given(o, p);
    GradcheckOptions opt = gradcheck_options(o);
    // Half precision: the check runs on the exact float64 widening, the criterion in eps of
    // x's half type (GradcheckOptions::given_dtype).
    if (is_half(p.dtype)) opt.given_dtype = p.dtype;
    opt.eval = p.eval, opt.running_mean = widened(p.running_mean), opt.running_var = widened(p.running_var);
    const GradcheckReport r = check(p, given, opt);
    write_report(gradcheck_report_json(p, opt, r), o.report);
    print_gradcheck_summary(r);
    return r.passed ? kExitOk : kExitCheckFailed;
}

} // namespace

void setup_gradcheck(CLI::App& app, int& exit_code) {
    auto opts = std::make_shared<GradcheckCliOptions>();
    CLI::App* cmd = app.add_subcommand(
        "gradcheck", "Check a backward pass (bnorm's own, or the gradients you give) against "
                     "numerical derivatives of the forward pass; JSON report on stdout");
    add_common_options(*cmd, opts->common);
    add_affine_options(*cmd, opts->gamma, opts->beta);
    cmd->add_option("--dy", opts->dy, "Upstream gradient; without it, several random ones are drawn "
                                      "(required with --dx/--dgamma/--dbeta)");
    cmd->add_option("--dx", opts->dx, "Judge this dx (your implementation's) instead of bnorm's");
    cmd->add_option("--dgamma", opts->dgamma, "Judge this dγ instead of bnorm's");
    cmd->add_option("--dbeta", opts->dbeta, "Judge this dβ instead of bnorm's (none for rms)");
    cmd->add_option("--rtol", opts->rtol, "Elementwise criterion |a - n| <= atol + rtol·|n| instead of the "
                                          "default (rtol then defaults to 1e-11 for float64, 1e-5 for float32, 16 eps for "
                                          "float16 and bfloat16: 1/64, 1/8)");
    cmd->add_option("--atol", opts->atol, "Elementwise criterion's atol (then defaults to 1e-3·rtol·max|gradient| "
                                          "per tensor)");
    cmd->add_option("--seed", opts->seed, "Seed of the random dy draws, directions and samples")
        ->capture_default_str();
    cmd->add_option("--report", opts->report, "Also write the JSON report to this file");
    cmd->add_flag("--full", opts->full, "Check every element, however large the tensor");
    add_mode_options(*cmd, opts->common);
    cmd->footer("Default criterion: |analytic - numerical| <= 64·eps(dtype)·scale per element, scale the\n"
                "magnitude of the terms a correct kernel sums for it, as bnorm compare (docs/gradcheck.md).\n"
                "Examples:\n"
                "  bnorm gradcheck --x data/x_nchw.npy --gamma data/gamma.npy\n"
                "  bnorm gradcheck --x x.npy --gamma g.npy --dy dy.npy --dx my_dx.npy --dgamma my_dg.npy "
                "--report report.json\n"
                "  bnorm gradcheck --mode eval --x x.npy --running-mean rm.npy --running-var rv.npy\n"
                "  bnorm gradcheck --norm group --groups 2 --x x.npy --gamma g.npy --dy dy.npy --dx my_dx.npy\n"
                "Exit codes: 0 every check passed, 1 a check failed, 2 bad usage or input.");
    refuse_empty_values(*cmd);
    cmd->callback([opts, &exit_code] { exit_code = run_gradcheck(*opts); });
}

} // namespace bnorm::app
