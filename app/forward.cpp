// bnorm forward: y = γ·(x − mean)·invstd + β over the sets of the norm, and optionally
// the saved statistics.
#include "commands.hpp"
#include "norm_options.hpp"
#include "outputs.hpp"
#include "problem.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"
#include "bnorm/family.hpp"
#include "bnorm/half.hpp"

#include <fmt/format.h>

#include <memory>

namespace bnorm::app {
namespace {

struct ForwardOptions {
    CommonOptions common;
    std::string gamma, beta, y, mean, invstd;
    std::string new_running_mean, new_running_var, momentum, correction;
};

/// --momentum and --running-var-correction, and the rules of --mode for forward's
/// options. Before anything is read.
RunningUpdate running_update(const ForwardOptions& o) {
    check_running_options(o.common, {!o.mean.empty() || !o.invstd.empty(),
                                     !o.new_running_mean.empty() || !o.new_running_var.empty(),
                                     !o.momentum.empty() || !o.correction.empty()});
    return parse_running_update(o.momentum, o.correction);
}

/// Layer, rms, instance and group norm: one call writing the whole of y (batch norm keeps
/// its streamed passes and running statistics below).
void run_family_forward(const ForwardOptions& o, const Problem& p) {
    Array y(p.x.dtype(), p.x.shape());
    Array mean(p.x.dtype(), p.norm.stat_shape), invstd(p.x.dtype(), p.norm.stat_shape);
    const int threads = thread_count(o.common);
    require_finite(p);
    dispatch(p.x.dtype(), [&](auto t) {
        using T = decltype(t);
        const T* gamma = p.gamma ? p.gamma->data<T>() : nullptr;
        const T* beta = p.beta ? p.beta->data<T>() : nullptr;
        T* mean_out = o.mean.empty() ? nullptr : mean.data<T>(); // (rms: --mean is refused)
        about_x(p, [&] {
            bnorm::forward(p.x.data<T>(), gamma, beta, p.norm, p.eps, y.data<T>(), mean_out, invstd.data<T>(), threads);
        });
    });
    std::vector<PendingFile> y_file;
    y_file.push_back(write_array(o.y, output_array(p, y, true), threads));
    const Array mean_out = output_array(p, mean, false), invstd_out = output_array(p, invstd, false);
    write_outputs(std::move(y_file), {{o.mean, &mean_out}, {o.invstd, &invstd_out}});
}

void run_forward(const ForwardOptions& o) {
    const NormChoice norm = check_norm_options(o.common,
                                               {{"--new-running-mean", o.new_running_mean},
                                                {"--new-running-var", o.new_running_var},
                                                {"--momentum", o.momentum},
                                                {"--running-var-correction", o.correction}},
                                               {{"--beta", o.beta}, {"--mean", o.mean}});
    check_mode_options(o.common, true);
    const RunningUpdate update = running_update(o);
    Problem p = load_problem(o.common, o.gamma, o.beta, "",
                             {{"--y", o.y},
                              {"--mean", o.mean},
                              {"--invstd", o.invstd},
                              {"--new-running-mean", o.new_running_mean},
                              {"--new-running-var", o.new_running_var}});
    if (norm.norm != Norm::batch) return run_family_forward(o, p);
    const Shape channels{p.layout.channels};
    Array mean(p.x.dtype(), channels), invstd(p.x.dtype(), channels);
    Array new_mean(p.x.dtype(), channels), new_var(p.x.dtype(), channels);
    std::vector<PendingFile> y_file;
    dispatch(p.x.dtype(), [&](auto t) {
        using T = decltype(t);
        const T* gamma = p.gamma ? p.gamma->data<T>() : nullptr;
        const T* beta = p.beta ? p.beta->data<T>() : nullptr;
        const auto running = [&] {
            return RunningStats<T>{p.running_mean ? p.running_mean->data<T>() : nullptr,
                                   p.running_var ? p.running_var->data<T>() : nullptr};
        };
        const ForwardPass<T> pass = about_x(p, [&] {
            if (p.eval) // inference: no batch statistics, no pass over x before y
                return ForwardPass<T>(p.x.data<T>(), gamma, beta, running(), p.layout, p.eps, thread_count(o.common));
            return ForwardPass<T>(p.x.data<T>(), gamma, beta, p.layout, p.eps, thread_count(o.common));
        });
        require_finite(p, pass.inputs_proven_finite()); // before the exact kernel would run
        about_x(p, [&] { pass.statistics(mean.data<T>(), invstd.data<T>()); });
        if (!o.new_running_mean.empty() || !o.new_running_var.empty())
            about_x(p, [&] { pass.update_running(running(), update, new_mean.data<T>(), new_var.data<T>()); });
        if (is_half(p.dtype)) { // y in double, then rounded once to the half type
            Array y(p.x.dtype(), p.x.shape());
            pass.apply(0, p.layout.outer, y.data<T>());
            y_file.push_back(write_array(o.y, output_array(p, y, true), thread_count(o.common)));
            return;
        }
        y_file.push_back(write_rows<T>(o.y, p.x.shape(), p.layout, thread_count(o.common),
                                       [&](std::int64_t o0, std::int64_t o1, T* y) { pass.apply(o0, o1, y); }));
    });
    const Array mean_out = output_array(p, mean, false), invstd_out = output_array(p, invstd, false);
    const Array new_mean_out = output_array(p, new_mean, false), new_var_out = output_array(p, new_var, false);
    write_outputs(std::move(y_file), {{o.mean, &mean_out},
                                      {o.invstd, &invstd_out},
                                      {o.new_running_mean, &new_mean_out},
                                      {o.new_running_var, &new_var_out}});
}

} // namespace

void setup_forward(CLI::App& app) {
    auto opts = std::make_shared<ForwardOptions>();
    CLI::App* cmd = app.add_subcommand("forward", "Forward pass of any norm: y, and optionally the mean and "
                                                  "invstd of each set (batch norm: the updated running "
                                                  "statistics too)");
    add_common_options(*cmd, opts->common);
    add_affine_options(*cmd, opts->gamma, opts->beta);
    cmd->add_option("--y", opts->y, "Output y, same shape and dtype as x (float16/bfloat16 x: rounded once to it; "
                                  "the statistics are then float32)")->required();
    cmd->add_option("--mean", opts->mean, "Output: the mean of each set: (C) for batch, (N, C) instance, (N, G) "
                                          "group, x.shape[:axis] + ones layer (none for rms)");
    cmd->add_option("--invstd", opts->invstd, "Output: 1/sqrt(var + eps) of each set, of the mean's shape "
                                              "(rms: 1/sqrt(mean(x²) + eps))");
    add_mode_options(*cmd, opts->common, "the statistics that --new-running-mean/--new-running-var update");
    cmd->add_option("--new-running-mean", opts->new_running_mean,
                    "Output (train mode): (1 - momentum)·running mean + momentum·batch mean (C values)");
    cmd->add_option("--new-running-var", opts->new_running_var,
                    "Output (train mode): (1 - momentum)·running var + momentum·batch var·m/(m - correction)");
    cmd->add_option("--momentum", opts->momentum, "PyTorch's momentum of the running statistics' update, in [0, 1] "
                                                  "(default 0.1; ONNX's momentum m is 1 - m)");
    cmd->add_option("--running-var-correction", opts->correction,
                    "1: the update takes the unbiased batch variance (PyTorch, default); 0: the biased one (ONNX)");
    cmd->footer("Example:\n"
                "  bnorm forward --x data/x_nchw.npy --gamma data/gamma.npy --beta data/beta.npy \\\n"
                "                --y y.npy --mean mean.npy --invstd invstd.npy\n"
                "  bnorm forward --x data/x.csv --y y.csv --eps 1e-3\n"
                "  bnorm forward --x data/x_nchw.csv --shape 4,3,5,5 --dtype float32 --y y.npy\n"
                "  bnorm forward --norm layer --x x.npy --gamma g.npy --beta b.npy --y y.npy\n"
                "  bnorm forward --norm instance --x data/x_nchw.npy --y y.npy --mean mean.npy --invstd invstd.npy\n"
                "  bnorm forward --mode eval --x x.npy --running-mean rm.npy --running-var rv.npy --y y.npy\n"
                "  bnorm forward --x x.npy --running-mean rm.npy --running-var rv.npy \\\n"
                "                --y y.npy --new-running-mean rm2.npy --new-running-var rv2.npy --momentum 0.1");
    refuse_empty_values(*cmd);
    cmd->callback([opts] { run_forward(*opts); });
}

} // namespace bnorm::app
