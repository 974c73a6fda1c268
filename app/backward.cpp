// bnorm backward: the gradients of f = Σ dy ⊙ y with respect to x, γ and β, for any norm.
#include "commands.hpp"
#include "norm_options.hpp"
#include "outputs.hpp"
#include "problem.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"
#include "bnorm/family.hpp"
#include "bnorm/half.hpp"

#include <memory>

namespace bnorm::app {
namespace {

struct BackwardOptions {
    CommonOptions common;
    std::string gamma, dy, dx, dgamma, dbeta;
};

/// Layer, rms, instance and group norm: one call writing the whole of dx (batch norm keeps
/// its streamed passes below); dγ and dβ of γ's shape.
void run_family_backward(const BackwardOptions& o, const Problem& p) {
    Array dx(p.x.dtype(), p.x.shape());
    Array dgamma(p.x.dtype(), p.norm.param_shape), dbeta(p.x.dtype(), p.norm.param_shape);
    const int threads = thread_count(o.common);
    require_finite(p);
    dispatch(p.x.dtype(), [&](auto t) {
        using T = decltype(t);
        const T* gamma = p.gamma ? p.gamma->data<T>() : nullptr;
        T* dgamma_out = o.dgamma.empty() ? nullptr : dgamma.data<T>();
        T* dbeta_out = o.dbeta.empty() ? nullptr : dbeta.data<T>(); // (rms: --dbeta is refused)
        about_x(p, [&] {
            bnorm::backward(p.x.data<T>(), gamma, p.dy->data<T>(), p.norm, p.eps, dx.data<T>(), dgamma_out,
                            dbeta_out, threads);
        });
    });
    std::vector<PendingFile> dx_file;
    dx_file.push_back(write_array(o.dx, output_array(p, dx, true), threads));
    const Array dgamma_out = output_array(p, dgamma, false), dbeta_out = output_array(p, dbeta, false);
    write_outputs(std::move(dx_file), {{o.dgamma, &dgamma_out}, {o.dbeta, &dbeta_out}});
}

void run_backward(const BackwardOptions& o) {
    const NormChoice norm = check_norm_options(o.common, {}, {{"--dbeta", o.dbeta}});
    check_mode_options(o.common, false);
    Problem p = load_problem(o.common, o.gamma, "", o.dy,
                             {{"--dx", o.dx}, {"--dgamma", o.dgamma}, {"--dbeta", o.dbeta}});
    if (norm.norm != Norm::batch) return run_family_backward(o, p);
    const Shape channels{p.layout.channels};
    Array dgamma(p.x.dtype(), channels), dbeta(p.x.dtype(), channels);
    std::vector<PendingFile> dx_file;
    dispatch(p.x.dtype(), [&](auto t) {
        using T = decltype(t);
        const T* gamma = p.gamma ? p.gamma->data<T>() : nullptr;
        const BackwardPass<T> pass = about_x(p, [&] {
            if (p.eval) // inference: the running statistics are constants
                return BackwardPass<T>(p.x.data<T>(), gamma, p.dy->data<T>(),
                                       RunningStats<T>{p.running_mean->data<T>(), p.running_var->data<T>()}, p.layout,
                                       p.eps, thread_count(o.common));
            return BackwardPass<T>(p.x.data<T>(), gamma, p.dy->data<T>(), p.layout, p.eps, thread_count(o.common));
        });
        require_finite(p, pass.inputs_proven_finite()); // before the exact kernel would run
        about_x(p, [&] { pass.gradients(dgamma.data<T>(), dbeta.data<T>()); });
        if (is_half(p.dtype)) { // dx in double, then rounded once to the half type
            Array dx(p.x.dtype(), p.x.shape());
            pass.apply(0, p.layout.outer, dx.data<T>());
            dx_file.push_back(write_array(o.dx, output_array(p, dx, true), thread_count(o.common)));
            return;
        }
        dx_file.push_back(write_rows<T>(o.dx, p.x.shape(), p.layout, thread_count(o.common),
                                        [&](std::int64_t o0, std::int64_t o1, T* dx) { pass.apply(o0, o1, dx); }));
    });
    const Array dgamma_out = output_array(p, dgamma, false), dbeta_out = output_array(p, dbeta, false);
    write_outputs(std::move(dx_file), {{o.dgamma, &dgamma_out}, {o.dbeta, &dbeta_out}});
}

} // namespace

void setup_backward(CLI::App& app) {
    auto opts = std::make_shared<BackwardOptions>();
    CLI::App* cmd = app.add_subcommand("backward", "Backward pass of any norm: dx, dγ, dβ, the "
                                                   "gradients of f = Σ dy ⊙ y");
    add_common_options(*cmd, opts->common);
    cmd->add_option("--gamma", opts->gamma, "Scale γ used in the forward pass, C values; layer, rms: of shape "
                                            "x.shape[axis:] (default: ones)");
    cmd->add_option("--dy", opts->dy, "Upstream gradient dL/dy, same shape and dtype as x")->required();
    cmd->add_option("--dx", opts->dx, "Output dx, same shape and dtype as x")->required();
    cmd->add_option("--dgamma", opts->dgamma, "Output dγ = Σ dy·x̂, of γ's shape");
    cmd->add_option("--dbeta", opts->dbeta, "Output dβ = Σ dy, of γ's shape (none for rms)");
    add_mode_options(*cmd, opts->common);
    cmd->footer("Example:\n"
                "  bnorm backward --x data/x_nchw.npy --gamma data/gamma.npy --dy data/dy_nchw.npy \\\n"
                "                 --dx dx.npy --dgamma dgamma.npy --dbeta dbeta.npy\n"
                "  bnorm backward --x data/x.csv --dy data/dy.csv --dx dx.csv\n"
                "  bnorm backward --norm rms --x x.npy --gamma g.npy --dy dy.npy --dx dx.npy --dgamma dg.npy\n"
                "  bnorm backward --mode eval --x x.npy --dy dy.npy --running-mean rm.npy --running-var rv.npy \\\n"
                "                 --dx dx.npy --dgamma dgamma.npy --dbeta dbeta.npy");
    refuse_empty_values(*cmd);
    cmd->callback([opts] { run_backward(*opts); });
}

} // namespace bnorm::app
