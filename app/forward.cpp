// bnorm forward: y = γ·(x − mean)·invstd + β, and optionally the saved statistics.
#include "commands.hpp"
#include "outputs.hpp"
#include "problem.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"

#include <memory>

namespace bnorm::app {
namespace {

struct ForwardOptions {
    CommonOptions common;
    std::string gamma, beta, y, mean, invstd;
};

void run_forward(const ForwardOptions& o) {
    Problem p = load_problem(o.common, o.gamma, o.beta, "",
                             {{"--y", o.y}, {"--mean", o.mean}, {"--invstd", o.invstd}});
    const Shape channels{p.layout.channels};
    Array mean(p.x.dtype(), channels), invstd(p.x.dtype(), channels);
    std::vector<PendingFile> y_file;
    dispatch(p.x.dtype(), [&](auto t) {
        using T = decltype(t);
        const ForwardPass<T> pass = about_x(p, [&] {
            return ForwardPass<T>(p.x.data<T>(), p.gamma ? p.gamma->data<T>() : nullptr,
                                  p.beta ? p.beta->data<T>() : nullptr, p.layout, p.eps, thread_count(o.common));
        });
        require_finite(p, pass.inputs_proven_finite()); // before the exact kernel would run
        about_x(p, [&] { pass.statistics(mean.data<T>(), invstd.data<T>()); });
        y_file.push_back(write_rows<T>(o.y, p.x.shape(), p.layout, thread_count(o.common),
                                       [&](std::int64_t o0, std::int64_t o1, T* y) { pass.apply(o0, o1, y); }));
    });
    write_outputs(std::move(y_file), {{o.mean, &mean}, {o.invstd, &invstd}});
}

} // namespace

void setup_forward(CLI::App& app) {
    auto opts = std::make_shared<ForwardOptions>();
    CLI::App* cmd = app.add_subcommand("forward", "Batch-norm forward pass (training mode): y, and "
                                                  "optionally the batch mean and invstd");
    add_common_options(*cmd, opts->common);
    cmd->add_option("--gamma", opts->gamma, "Scale γ, C values (default: ones)");
    cmd->add_option("--beta", opts->beta, "Shift β, C values (default: zeros)");
    cmd->add_option("--y", opts->y, "Output y, same shape and dtype as x")->required();
    cmd->add_option("--mean", opts->mean, "Output: the batch mean of each channel (C values)");
    cmd->add_option("--invstd", opts->invstd, "Output: 1/sqrt(var + eps) of each channel (C values)");
    cmd->footer("Example:\n"
                "  bnorm forward --x data/x_nchw.npy --gamma data/gamma.npy --beta data/beta.npy \\\n"
                "                --y y.npy --mean mean.npy --invstd invstd.npy\n"
                "  bnorm forward --x data/x.csv --y y.csv --eps 1e-3\n"
                "  bnorm forward --x data/x_nchw.csv --shape 4,3,5,5 --dtype float32 --y y.npy");
    refuse_empty_values(*cmd);
    cmd->callback([opts] { run_forward(*opts); });
}

} // namespace bnorm::app
