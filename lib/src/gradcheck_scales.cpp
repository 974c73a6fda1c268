// The yardsticks of gradcheck's default criterion (gradcheck_engine.hpp's
// gradient_scales): the scales of dx, dγ and dβ from bnorm/judge.hpp, the same that
// `bnorm compare` judges with, for one problem and any upstream gradient.
#include "gradcheck_engine.hpp"

#include "bnorm/judge.hpp"

#include <cmath>

namespace bnorm::gradcheck_detail {

NormProblem batch_problem(const Shape& shape, const Layout& l) {
    NormProblem p;
    p.norm = Norm::batch;
    p.shape = shape;
    p.sets = p.params = p.channels = l.channels;
    p.per_set = l.per_channel();
    p.middle = l.outer;
    p.inner = l.inner;
    p.param_shape = {l.channels};
    p.stat_shape = {l.channels};
    return p;
}

template <class T>
std::function<void(const T*, double*, double*, double*)> gradient_scales(const T* x, const T* gamma,
                                                                        const NormProblem& p, double eps,
                                                                        const GradcheckOptions& opt) {
    // Computed once: x and γ widened, and the statistics the scales measure x̂ with, in
    // double (a yardstick needs a few digits, not bnorm's exact ones).
    struct State {
        NormProblem p;
        std::vector<double> x, gamma, mean, invstd;
        bool eval;
        double eps;
    };
    auto st = std::make_shared<State>();
    st->p = p;
    st->eval = opt.eval;
    st->eps = eps;
    st->x.assign(x, x + p.size());
    if (gamma) st->gamma.assign(gamma, gamma + p.params);
    st->invstd.resize(std::size_t(p.sets));
    if (p.norm != Norm::rms) st->mean.resize(std::size_t(p.sets));
    if (opt.eval) { // inference: the running statistics are the constants y uses
        for (std::int64_t s = 0; s < p.sets; ++s) {
            st->mean[s] = opt.running_mean[s];
            st->invstd[s] = 1 / std::sqrt(opt.running_var[s] + eps);
        }
    } else {
        std::vector<double> y(st->x.size());
        forward<double>(st->x.data(), nullptr, nullptr, p, eps, y.data(), st->mean.empty() ? nullptr : st->mean.data(),
                        st->invstd.data(), opt.threads);
    }
    return [st](const T* dy, double* sdx, double* sdgamma, double* sdbeta) {
        const std::vector<double> d(dy, dy + st->p.size());
        const double* g = st->gamma.empty() ? nullptr : st->gamma.data();
        const double* mean = st->mean.empty() ? nullptr : st->mean.data();
        if (st->eval) scale_dx_eval(g, d.data(), st->invstd.data(), st->p, sdx);
        else scale_dx(st->x.data(), g, d.data(), mean, st->invstd.data(), st->p, sdx);
        scale_dgamma_dbeta(st->x.data(), d.data(), mean, st->invstd.data(), st->p, st->eps, sdgamma, sdbeta);
    };
}

template std::function<void(const float*, double*, double*, double*)>
gradient_scales<float>(const float*, const float*, const NormProblem&, double, const GradcheckOptions&);
template std::function<void(const double*, double*, double*, double*)>
gradient_scales<double>(const double*, const double*, const NormProblem&, double, const GradcheckOptions&);

} // namespace bnorm::gradcheck_detail
