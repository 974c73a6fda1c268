// bnorm's kernels as the benchmark calls them.
#include "bench.hpp"

#include "bnorm/batchnorm.hpp"

#include <stdexcept>
#include <string>

namespace bench {

template <class T>
Tensors<T>::Tensors(const Case& c)
    : layout(bnorm::collapse(c.shape, c.axis)),
      x(static_cast<std::size_t>(layout.size())), dy(x.size()),
      gamma(static_cast<std::size_t>(layout.channels)), beta(gamma.size()),
      y(x.size()), mean(gamma.size()), invstd(gamma.size()),
      dx(x.size()), dgamma(gamma.size()), dbeta(gamma.size()) {
    fill_normal(x.data(), x.size(), 1);
    fill_normal(dy.data(), dy.size(), 2);
    fill_normal(gamma.data(), gamma.size(), 3);
    fill_normal(beta.data(), beta.size(), 4);
    if (c.data == "offset") // |mean|/spread = 5e4
        for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(x[i] + 5e4);
    else if (c.data == "linear") // dy nearly linear in x: dx is eps/(var + eps) of its terms
        for (std::size_t i = 0; i < x.size(); ++i) dy[i] = T(0.5 + 2 * double(x[i]));
    else if (c.data != "normal")
        throw std::runtime_error("cases.json: unknown data \"" + c.data + "\"");
}

// The one place where the thread count reaches bnorm.
template <class T> void run_forward(Tensors<T>& t, int threads) {
    bnorm::forward<T>(t.x.data(), t.layout, t.gamma.data(), t.beta.data(), kEps, t.y.data(),
                      t.mean.data(), t.invstd.data(), threads);
}

template <class T> void run_backward(Tensors<T>& t, int threads) {
    bnorm::backward<T>(t.x.data(), t.gamma.data(), t.dy.data(), t.layout, kEps, t.dx.data(),
                       t.dgamma.data(), t.dbeta.data(), threads);
}

template struct Tensors<float>;
template struct Tensors<double>;
template void run_forward<float>(Tensors<float>&, int);
template void run_forward<double>(Tensors<double>&, int);
template void run_backward<float>(Tensors<float>&, int);
template void run_backward<double>(Tensors<double>&, int);

} // namespace bench
