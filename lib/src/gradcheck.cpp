// Gradient check of batch norm (bnorm/gradcheck.hpp): the arguments checked, each
// channel's step sized from bnorm's forward pass, then the set-by-set check of
// gradcheck_engine.cpp with one set per channel.
#include "bnorm/gradcheck.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"
#include "gradcheck_engine.hpp"

#include <cmath>

namespace bnorm {

template <class T>
GradcheckReport gradcheck(const T* x, const Shape& shape, const Layout& l, const T* gamma, const T* beta,
                          const T* dy_given, double eps, const GivenGradients<T>& given,
                          const GradcheckOptions& opt) {
    if (given.any() && !dy_given)
        throw UsageError("judging given gradients needs the --dy they were computed for");
    if (opt.eval && (std::int64_t(opt.running_mean.size()) != l.channels ||
                     std::int64_t(opt.running_var.size()) != l.channels))
        throw UsageError("gradcheck in inference mode needs C running means and variances");
    // Inference mode: the running statistics as T (they came from T).
    const std::vector<T> rm(opt.running_mean.begin(), opt.running_mean.end());
    const std::vector<T> rv(opt.running_var.begin(), opt.running_var.end());
    const RunningStats<T> running{rm.data(), rv.data()};

    // Channel statistics from bnorm's forward pass (also validates eps and the variance).
    // They only size the steps: h_c = 2^-70·std_c, an exact power-of-two scaling of it.
    // In inference mode the running statistics size them instead (and forward_eval
    // validates them: a negative variance, or var + eps = 0).
    const std::int64_t C = l.channels;
    std::vector<T> invstd(C), y(l.size());
    if (opt.eval) {
        forward_eval<T>(x, gamma, beta, running, l, eps, y.data());
        for (std::int64_t c = 0; c < C; ++c) invstd[c] = T(1 / std::sqrt(opt.running_var[c] + eps));
    } else
        forward<T>(x, gamma, beta, l, eps, y.data(), nullptr, invstd.data());

    gradcheck_detail::CheckInputs<T> in;
    in.x = x;
    in.shape = shape;
    in.map = gradcheck_detail::batch_sets(l);
    in.param_shape = {C};
    in.gamma = gamma;
    in.beta = beta;
    in.dy = dy_given;
    in.eps = eps;
    in.given = given;
    in.step.resize(C);
    for (std::int64_t c = 0; c < C; ++c) in.step[c] = std::ldexp(1.0 / double(invstd[c]), -70);
    in.backward = [&](const T* dy, T* dx, T* dgamma, T* dbeta) {
        if (opt.eval) backward_eval<T>(x, gamma, dy, running, l, eps, dx, dgamma, dbeta);
        else backward<T>(x, gamma, dy, l, eps, dx, dgamma, dbeta);
    };
    in.scales = gradcheck_detail::gradient_scales(x, gamma, gradcheck_detail::batch_problem(shape, l), eps, opt);
    return gradcheck_detail::run_check(in, opt);
}

template GradcheckReport gradcheck<float>(const float*, const Shape&, const Layout&, const float*, const float*,
                                          const float*, double, const GivenGradients<float>&,
                                          const GradcheckOptions&);
template GradcheckReport gradcheck<double>(const double*, const Shape&, const Layout&, const double*,
                                           const double*, const double*, double, const GivenGradients<double>&,
                                           const GradcheckOptions&);

} // namespace bnorm
