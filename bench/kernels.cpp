// bnorm's kernels as the benchmark calls them.
#include "bench.hpp"

#include "bnorm/batchnorm.hpp"

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace bench {

namespace {
/// Room after an output for placing it anywhere modulo 4 KiB ("ahead16").
template <class T> constexpr std::size_t kPlacementRoom = 4096 / sizeof(T);

/// The place in `out` (kPlacementRoom<T> longer than x) that is `ahead` bytes past x,
/// modulo 4 KiB.
template <class T> T* ahead_of(const T* x, T* out, std::size_t ahead) {
    const auto at = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p); };
    return out + (at(x) + ahead - at(out)) % 4096 / sizeof(T); // every buffer is 64-byte aligned
}
} // namespace

template <class T>
Tensors<T>::Tensors(const Case& c)
    : problem(bnorm::check_norm_problem(c.shape, bnorm::parse_norm(c.norm), c.axis, c.groups, "cases.json")),
      layout(bnorm::collapse(c.shape, c.axis)),
      x(static_cast<std::size_t>(layout.size())), dy(x.size()),
      gamma(static_cast<std::size_t>(problem.params)), beta(gamma.size()),
      y(x.size() + kPlacementRoom<T>), mean(static_cast<std::size_t>(problem.sets)), invstd(mean.size()),
      dx(x.size() + kPlacementRoom<T>), dgamma(gamma.size()), dbeta(gamma.size()),
      running_mean(gamma.size()), running_var(gamma.size()), new_running_mean(gamma.size()),
      new_running_var(gamma.size()), y_out(y.data()), dx_out(dx.data()) {
    if (c.data == "ahead16") // the outputs 16 bytes ahead of x, modulo 4 KiB (README, Speed)
        y_out = ahead_of(x.data(), y.data(), 16), dx_out = ahead_of(x.data(), dx.data(), 16);
    fill_normal(x.data(), x.size(), 1);
    fill_normal(dy.data(), dy.size(), 2);
    fill_normal(gamma.data(), gamma.size(), 3);
    fill_normal(beta.data(), beta.size(), 4);
    fill_normal(running_mean.data(), running_mean.size(), 5);
    fill_normal(running_var.data(), running_var.size(), 6);
    for (std::size_t c = 0; c < gamma.size(); ++c) { // near the batch statistics of normal x
        running_mean[c] = T(0.1 * double(running_mean[c]));
        running_var[c] = T(1 + 0.1 * std::abs(double(running_var[c])));
    }
    if (c.data == "offset") // |mean|/spread = 5e4
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(x[i] + 5e4);
    else if (c.data == "linear") // dy nearly linear in x: dx is eps/(var + eps) of its terms
        for (std::size_t i = 0; i < x.size(); ++i) dy[i] = T(0.5 + 2 * double(x[i]));
    else if (c.data != "normal" && c.data != "ahead16")
        throw std::runtime_error("cases.json: unknown data \"" + c.data + "\"");
}

// The one place where the thread count reaches bnorm.
template <class T> void run_forward(Tensors<T>& t, int threads) {
    if (t.problem.norm != bnorm::Norm::batch) {
        const bool rms = t.problem.norm == bnorm::Norm::rms;
        return bnorm::forward<T>(t.x.data(), t.gamma.data(), rms ? nullptr : t.beta.data(), t.problem, kEps, t.y_out,
                                 rms ? nullptr : t.mean.data(), t.invstd.data(), threads);
    }
    bnorm::forward<T>(t.x.data(), t.gamma.data(), t.beta.data(), t.layout, kEps, t.y_out,
                      t.mean.data(), t.invstd.data(), threads);
}

template <class T> void run_backward(Tensors<T>& t, int threads) {
    if (t.problem.norm != bnorm::Norm::batch) {
        const bool rms = t.problem.norm == bnorm::Norm::rms;
        return bnorm::backward<T>(t.x.data(), t.gamma.data(), t.dy.data(), t.problem, kEps, t.dx_out,
                                  t.dgamma.data(), rms ? nullptr : t.dbeta.data(), threads);
    }
    bnorm::backward<T>(t.x.data(), t.gamma.data(), t.dy.data(), t.layout, kEps, t.dx_out,
                       t.dgamma.data(), t.dbeta.data(), threads);
}

template <class T> void run_forward_running(Tensors<T>& t, int threads) {
    bnorm::forward<T>(t.x.data(), t.gamma.data(), t.beta.data(), {t.running_mean.data(), t.running_var.data()},
                      bnorm::RunningUpdate{}, t.layout, kEps, t.y_out, t.mean.data(), t.invstd.data(),
                      t.new_running_mean.data(), t.new_running_var.data(), threads);
}

template <class T> void run_eval_forward(Tensors<T>& t, int threads) {
    bnorm::forward_eval<T>(t.x.data(), t.gamma.data(), t.beta.data(), {t.running_mean.data(), t.running_var.data()},
                           t.layout, kEps, t.y_out, threads);
}

template <class T> void run_op(Op op, Tensors<T>& t, int threads) {
    switch (op) {
    case Op::forward: return run_forward(t, threads);
    case Op::forward_running: return run_forward_running(t, threads);
    case Op::backward: return run_backward(t, threads);
    case Op::eval_forward: return run_eval_forward(t, threads);
    }
}

template struct Tensors<float>;
template struct Tensors<double>;
template void run_forward<float>(Tensors<float>&, int);
template void run_forward<double>(Tensors<double>&, int);
template void run_backward<float>(Tensors<float>&, int);
template void run_backward<double>(Tensors<double>&, int);
template void run_op<float>(Op, Tensors<float>&, int);
template void run_op<double>(Op, Tensors<double>&, int);

} // namespace bench
