// bnorm compare: candidate outputs of a normalization (your kernel's y, dx, ...) judged
// against the exact ones; a JSON report on stdout (and --report), one line per tensor on
// stderr. Exit 0 when every candidate passes, 1 when one fails, 2 on bad usage or input.
#include "commands.hpp"
#include "compare_report.hpp"
#include "norm_options.hpp"
#include "problem.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"
#include "bnorm/family.hpp"
#include "bnorm/files.hpp"
#include "bnorm/half.hpp"
#include "bnorm/judge.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace bnorm::app {
namespace {

struct CompareOptions {
    CommonOptions common;
    std::string gamma, beta, dy;
    // the candidates
    std::string y, mean, invstd, dx, dgamma, dbeta, new_running_mean, new_running_var;
    std::string momentum, correction, rtol, atol, tol_eps, report;
};

/// The candidates by option, in the report's order.
std::vector<std::pair<std::string, std::string>> candidates(const CompareOptions& o) {
    return {{"y", o.y},           {"mean", o.mean},     {"invstd", o.invstd},
            {"dx", o.dx},         {"dgamma", o.dgamma}, {"dbeta", o.dbeta},
            {"new_running_mean", o.new_running_mean}, {"new_running_var", o.new_running_var}};
}

/// The rules across options, before anything is read.
void check_options(const CompareOptions& o) {
    bool any = false;
    for (const auto& c : candidates(o)) any = any || !c.second.empty();
    if (!any)
        throw UsageError("give at least one candidate to judge: --y, --mean, --invstd, --dx, --dgamma, --dbeta, "
                         "--new-running-mean or --new-running-var");
    if ((!o.dx.empty() || !o.dgamma.empty() || !o.dbeta.empty()) && o.dy.empty())
        throw UsageError("--dx/--dgamma/--dbeta are the gradients for an upstream gradient: give it with --dy");
    check_mode_options(o.common, true);
    check_running_options(o.common, {!o.mean.empty() || !o.invstd.empty(),
                                     !o.new_running_mean.empty() || !o.new_running_var.empty(),
                                     !o.momentum.empty() || !o.correction.empty()});
    if (!o.tol_eps.empty() && (!o.rtol.empty() || !o.atol.empty()))
        throw UsageError("--tol-eps (normwise) and --rtol/--atol (elementwise) are two criteria: give one");
}

JudgeCriterion criterion(const CompareOptions& o) {
    JudgeCriterion c;
    if (!o.rtol.empty() || !o.atol.empty()) {
        c.kind = JudgeCriterion::Kind::elementwise;
        if (!o.rtol.empty()) c.rtol = parse_nonnegative("--rtol", o.rtol);
        if (!o.atol.empty()) c.atol = parse_nonnegative("--atol", o.atol);
    } else if (!o.tol_eps.empty()) {
        c.kind = JudgeCriterion::Kind::normwise;
        c.tol_eps = parse_nonnegative("--tol-eps", o.tol_eps);
    }
    return c;
}

/// An array's values widened to double (exactly, any dtype); empty for none.
std::vector<double> widened(const std::optional<Array>& a) {
    if (!a) return {};
    const Array w = widen_to_f64(*a);
    return std::vector<double>(w.data<double>(), w.data<double>() + w.size());
}

const double* ptr(const std::vector<double>& v) { return v.empty() ? nullptr : v.data(); }
double* ptr(std::vector<double>& v) { return v.empty() ? nullptr : v.data(); }

/// The exact outputs of the problem (the double results of its inputs, exact in double)
/// and the scale of each element (bnorm/judge.hpp).
struct Exact {
    std::vector<double> y, mean, invstd, dx, dgamma, dbeta, new_mean, new_var;
    std::vector<double> s_y, s_mean, s_invstd, s_dx, s_dgamma, s_dbeta, s_new_mean, s_new_var;
};

Exact exact_results(const CompareOptions& o, const Problem& p, const NormProblem& np, RunningUpdate u) {
    const int threads = thread_count(o.common);
    const std::vector<double> x = widened(p.x), gamma = widened(p.gamma), beta = widened(p.beta), dy = widened(p.dy);
    const std::vector<double> rm = widened(p.running_mean), rv = widened(p.running_var);
    const RunningStats<double> running{ptr(rm), ptr(rv)};
    const std::size_t n = std::size_t(p.x.size()), C = std::size_t(p.layout.channels);
    Exact e;
    const bool rms = np.norm == Norm::rms; // no mean: x̂ = x·invstd
    e.mean.resize(rms ? 0 : std::size_t(np.sets)), e.invstd.resize(std::size_t(np.sets));
    const bool grads = !o.dx.empty() || !o.dgamma.empty() || !o.dbeta.empty();
    if (np.norm != Norm::batch) { // the family's kernels, in double: one call each
        about_x(p, [&] {
            std::vector<double> y(n);
            bnorm::forward<double>(x.data(), ptr(gamma), ptr(beta), np, p.eps, y.data(), ptr(e.mean), e.invstd.data(),
                                   threads);
            if (!o.y.empty()) e.y = std::move(y);
            if (grads) {
                std::vector<double> dx(n);
                e.dgamma.resize(std::size_t(np.params)), e.dbeta.resize(rms ? 0 : std::size_t(np.params));
                bnorm::backward<double>(x.data(), ptr(gamma), dy.data(), np, p.eps, dx.data(), e.dgamma.data(),
                                        ptr(e.dbeta), threads);
                if (!o.dx.empty()) e.dx = std::move(dx);
            }
        });
    } else
        about_x(p, [&] {
            const ForwardPass<double> fp =
                p.eval ? ForwardPass<double>(x.data(), ptr(gamma), ptr(beta), running, p.layout, p.eps, threads)
                       : ForwardPass<double>(x.data(), ptr(gamma), ptr(beta), p.layout, p.eps, threads);
            fp.statistics(e.mean.data(), e.invstd.data()); // eval: the running mean and 1/sqrt(running var + eps)
            if (!o.y.empty()) e.y.resize(n), fp.apply(0, p.layout.outer, e.y.data());
            if (!o.new_running_mean.empty() || !o.new_running_var.empty()) {
                e.new_mean.resize(C), e.new_var.resize(C);
                fp.update_running(running, u, e.new_mean.data(), e.new_var.data());
            }
            if (grads) {
                const BackwardPass<double> bp =
                    p.eval ? BackwardPass<double>(x.data(), ptr(gamma), dy.data(), running, p.layout, p.eps, threads)
                           : BackwardPass<double>(x.data(), ptr(gamma), dy.data(), p.layout, p.eps, threads);
                e.dgamma.resize(C), e.dbeta.resize(C);
                bp.gradients(e.dgamma.data(), e.dbeta.data());
                if (!o.dx.empty()) e.dx.resize(n), bp.apply(0, p.layout.outer, e.dx.data());
            }
        });
    if (!e.y.empty()) {
        e.s_y.resize(n);
        scale_y(x.data(), ptr(gamma), ptr(beta), ptr(e.mean), e.invstd.data(), np, p.eps, e.s_y.data());
    }
    if (!o.mean.empty()) e.s_mean.resize(std::size_t(np.sets)), scale_mean(x.data(), np, e.s_mean.data());
    e.s_invstd = e.invstd; // relative
    if (!e.dx.empty()) {
        e.s_dx.resize(n);
        if (p.eval) // dx = γ·invstd·dy: no sums
            scale_dx_eval(ptr(gamma), dy.data(), e.invstd.data(), np, e.s_dx.data());
        else
            scale_dx(x.data(), ptr(gamma), dy.data(), ptr(e.mean), e.invstd.data(), np, e.s_dx.data());
    }
    if (!e.dgamma.empty()) {
        e.s_dgamma.resize(std::size_t(np.params)), e.s_dbeta.resize(e.dbeta.size());
        scale_dgamma_dbeta(x.data(), dy.data(), ptr(e.mean), e.invstd.data(), np, p.eps, e.s_dgamma.data(),
                           ptr(e.s_dbeta));
    }
    if (!e.new_mean.empty()) {
        e.s_new_mean.resize(C), e.s_new_var.resize(C);
        scale_running(x.data(), rm.data(), rv.data(), e.invstd.data(), u.momentum, u.correction, p.eps, np,
                      e.s_new_mean.data(), e.s_new_var.data());
    }
    return e;
}

/// Loads a candidate that must have `shape` (CSV: read in x's dtype and that shape) and
/// judges it.
JudgedTensor judge_candidate(const std::string& name, const std::string& path, const Shape& shape,
                             const std::vector<double>& exact, const std::vector<double>& scale, const Problem& p,
                             const JudgeCriterion& c) {
    const bool like_x = name == "y" || name == "dx", like_gamma = name == "dgamma" || name == "dbeta";
    const std::string what = like_x ? "x's shape" : like_gamma ? "γ's shape" : "the statistics' shape";
    const DType output = output_dtype(p, like_x); // what bnorm writes (CSV is read so)
    const Array a = load_array(path, CsvRead{output, shape, what, p.threads});
    if (a.shape() != shape)
        throw InputError::in_file(path, fmt::format("shape {} differs from the shape of the exact {}, {} ({})",
                                                    shape_to_string(a.shape()), name, shape_to_string(shape), what));
    JudgedTensor t{name, path, a.dtype(), output, shape, {}};
    t.verdict = judge(exact, widened(a), scale, shape, a.dtype(), c);
    return t;
}

int run_compare(const CompareOptions& o) {
    check_norm_options(o.common,
                       {{"--new-running-mean", o.new_running_mean},
                        {"--new-running-var", o.new_running_var},
                        {"--momentum", o.momentum},
                        {"--running-var-correction", o.correction}},
                       {{"--beta", o.beta}, {"--mean", o.mean}, {"--dbeta", o.dbeta}});
    check_options(o);
    const JudgeCriterion crit = criterion(o);
    const RunningUpdate u = parse_running_update(o.momentum, o.correction);
    NamedPaths inputs;
    for (const auto& c : candidates(o)) inputs.emplace_back("--" + c.first, c.second);
    for (auto& in : inputs)
        for (char& ch : in.first) ch = ch == '_' ? '-' : ch;
    const Problem p = load_problem(o.common, o.gamma, o.beta, o.dy, {}, inputs, {{"--report", o.report}});
    require_finite(p);
    const NormProblem& np = p.norm; // any norm of the family, resolved by load_problem
    const Exact e = exact_results(o, p, np, u);

    // the shapes of the family's outputs (batch: C values for the statistics and parameters)
    const Shape channels{p.layout.channels}, stats = np.stat_shape, params = np.param_shape;
    const struct {
        const std::string& path;
        const char* name;
        const Shape& shape;
        const std::vector<double>&exact, &scale;
    } table[] = {{o.y, "y", p.x.shape(), e.y, e.s_y},
                 {o.mean, "mean", stats, e.mean, e.s_mean},
                 {o.invstd, "invstd", stats, e.invstd, e.s_invstd},
                 {o.dx, "dx", p.x.shape(), e.dx, e.s_dx},
                 {o.dgamma, "dgamma", params, e.dgamma, e.s_dgamma},
                 {o.dbeta, "dbeta", params, e.dbeta, e.s_dbeta},
                 {o.new_running_mean, "new_running_mean", channels, e.new_mean, e.s_new_mean},
                 {o.new_running_var, "new_running_var", channels, e.new_var, e.s_new_var}};
    std::vector<JudgedTensor> judged;
    for (const auto& row : table)
        if (!row.path.empty()) judged.push_back(judge_candidate(row.name, row.path, row.shape, row.exact, row.scale, p, crit));

    CompareProblemNotes notes;
    if (!o.new_running_mean.empty() || !o.new_running_var.empty()) notes.momentum = u.momentum, notes.correction = u.correction;
    const std::string text = compare_report_json(p, np, crit, notes, judged);
    if (!o.report.empty()) {
        PendingFile f(o.report);
        f.write(text.data(), text.size());
        f.commit();
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
    print_compare_summary(crit, judged);
    bool passed = true;
    for (const auto& t : judged) passed = passed && t.verdict.passed;
    return passed ? kExitOk : kExitCheckFailed;
}

} // namespace

void setup_compare(CLI::App& app, int& exit_code) {
    auto opts = std::make_shared<CompareOptions>();
    CLI::App* cmd = app.add_subcommand("compare", "Judge candidate outputs of any norm (your kernel's y, dx, ...) "
                                                  "against the exact ones; JSON report on stdout");
    add_common_options(*cmd, opts->common);
    add_affine_options(*cmd, opts->gamma, opts->beta);
    cmd->add_option("--dy", opts->dy, "Upstream gradient, x's shape (needed with --dx/--dgamma/--dbeta)");
    cmd->add_option("--y", opts->y, "Candidate y, x's shape (float64, float32, float16 or bfloat16: judged in its own dtype)");
    cmd->add_option("--mean", opts->mean, "Candidate mean of each set (batch: C values; the stat shape PyTorch saves)");
    cmd->add_option("--invstd", opts->invstd, "Candidate 1/sqrt(var + eps) of each set, of the mean's shape");
    cmd->add_option("--dx", opts->dx, "Candidate dx, x's shape");
    cmd->add_option("--dgamma", opts->dgamma, "Candidate dγ = Σ dy·x̂, of γ's shape");
    cmd->add_option("--dbeta", opts->dbeta, "Candidate dβ = Σ dy, of γ's shape");
    add_mode_options(*cmd, opts->common, "the statistics that --new-running-mean/--new-running-var update");
    cmd->add_option("--new-running-mean", opts->new_running_mean, "Candidate updated running mean (train mode)");
    cmd->add_option("--new-running-var", opts->new_running_var, "Candidate updated running variance (train mode)");
    cmd->add_option("--momentum", opts->momentum, "Momentum of the running update, in [0, 1] (default 0.1, PyTorch's)");
    cmd->add_option("--running-var-correction", opts->correction,
                    "1: the update takes the unbiased batch variance (PyTorch, default); 0: the biased one (ONNX)");
    cmd->add_option("--rtol", opts->rtol, "Elementwise criterion |got - exact| <= atol + rtol·|exact| (default 0)");
    cmd->add_option("--atol", opts->atol, "Elementwise criterion's atol (default 0)");
    cmd->add_option("--tol-eps", opts->tol_eps, "Normwise criterion max|got - exact| <= N·eps·max|exact|");
    cmd->add_option("--report", opts->report, "Also write the JSON report to this file");
    cmd->footer("Default criterion: |got - exact| <= 64·eps(dtype)·scale per element, scale the magnitude of the\n"
                "terms a correct kernel sums for it (docs/compare.md).\n"
                "Examples:\n"
                "  bnorm compare --x x.npy --gamma g.npy --beta b.npy --y my_y.npy\n"
                "  bnorm compare --x x.npy --gamma g.npy --dy dy.npy --dx my_dx.npy --dgamma my_dg.npy --report r.json\n"
                "  bnorm compare --norm layer --x x.npy --gamma g.npy --beta b.npy --y my_y.npy\n"
                "  bnorm compare --x x.npy --y my_y.npy --rtol 1.3e-6 --atol 1e-5   # torch.testing's float32 defaults\n"
                "Exit codes: 0 every candidate passed, 1 one failed, 2 bad usage or input.");
    refuse_empty_values(*cmd);
    cmd->callback([opts, &exit_code] { exit_code = run_compare(*opts); });
}

} // namespace bnorm::app
