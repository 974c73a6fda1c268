// Gradient check by complex-step differentiation in double-double arithmetic.
// See lib/include/bnorm/gradcheck.hpp for the contract and README.md for the report.
#include "bnorm/gradcheck.hpp"

#include "bnorm/batchnorm.hpp"
#include "bnorm/error.hpp"
#include "ddouble.hpp"
#include "parallel.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

namespace bnorm {
namespace {

using detail::dd;

// ---- the two scalar types the forward template is instantiated for ------------------

/// A real double-double number.
struct Real {
    dd v;
};
inline Real operator+(Real a, Real b) { return {detail::add(a.v, b.v)}; }
inline Real operator-(Real a, Real b) { return {detail::sub(a.v, b.v)}; }
inline Real operator*(Real a, Real b) { return {detail::mul(a.v, b.v)}; }
inline Real operator*(Real a, double b) { return {detail::mul(a.v, b)}; }
inline Real operator/(Real a, double b) { return {detail::div(a.v, b)}; }
inline Real operator+(Real a, double b) { return {detail::add(a.v, b)}; }
inline Real rsqrt(Real a) { return {detail::rsqrt(a.v)}; }

/// A complex number with double-double parts, for the complex step.
struct Complex {
    dd re, im;
};
inline Complex operator+(Complex a, Complex b) { return {detail::add(a.re, b.re), detail::add(a.im, b.im)}; }
inline Complex operator-(Complex a, Complex b) { return {detail::sub(a.re, b.re), detail::sub(a.im, b.im)}; }
inline Complex operator*(Complex a, Complex b) {
    return {detail::sub(detail::mul(a.re, b.re), detail::mul(a.im, b.im)),
            detail::add(detail::mul(a.re, b.im), detail::mul(a.im, b.re))};
}
inline Complex operator*(Complex a, double b) { return {detail::mul(a.re, b), detail::mul(a.im, b)}; }
inline Complex operator/(Complex a, double b) { return {detail::div(a.re, b), detail::div(a.im, b)}; }
inline Complex operator+(Complex a, double b) { return {detail::add(a.re, b), a.im}; }
/// 1/sqrt(z) for Re z > 0 and |Im z| <= 2^-50 |Re z| (always the case here: the step is
/// 2^-70 of the standard deviation). The series 1/sqrt(a + ib) = a^-1/2 (1 − ib/(2a)
/// − 3b²/(8a²) + ...) is truncated after the term in b; the next term is below 2^-100
/// relative, i.e. at double-double resolution, so this is the complex function itself.
inline Complex rsqrt(Complex z) {
    const dd r = detail::rsqrt(z.re);
    const dd r3 = detail::mul(detail::mul(r, r), r);
    return {r, detail::mul(detail::mul(r3, z.im), -0.5)};
}

/// The forward pass of one channel, reduced to the objective f_c = Σ dy·y, in the
/// arithmetic of S. Written once for every S, it is the definition being differentiated:
///   mean = Σ x / m (refined by a corrected second pass), var = Σ (x − mean)² / m,
///   invstd = 1/sqrt(var + eps), y = γ·(x − mean)·invstd + β,  f_c = Σ dy·y.
/// x points to the m values of the channel.
template <class S>
S channel_objective(const S* x, std::int64_t m, const double* dy, S gamma, S beta, double eps) {
    const double md = static_cast<double>(m);
    S sum{};
    for (std::int64_t i = 0; i < m; ++i) sum = sum + x[i];
    const S mean0 = sum / md;
    S sd{}, sdd{};
    for (std::int64_t i = 0; i < m; ++i) {
        const S d = x[i] - mean0;
        sd = sd + d;
        sdd = sdd + d * d;
    }
    const S shift = sd / md;
    const S mean = mean0 + shift;
    const S var = (sdd - sd * shift) / md; // biased variance
    const S invstd = rsqrt(var + eps);
    S f{};
    for (std::int64_t i = 0; i < m; ++i) {
        const S y = gamma * ((x[i] - mean) * invstd) + beta;
        f = f + y * dy[i];
    }
    return f;
}

// ---- seeded random numbers, independent of threads: value = F(seed, stream, index) ----

std::uint64_t splitmix64(std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
std::uint64_t random_bits(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
    return splitmix64(splitmix64(seed ^ splitmix64(stream)) + i);
}
double uniform01(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) { // in (0, 1)
    return (static_cast<double>(random_bits(seed, stream, i) >> 11) + 0.5) * 0x1p-53;
}
double normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) { // Box–Muller
    const double u = uniform01(seed, stream, 2 * i), v = uniform01(seed, stream, 2 * i + 1);
    return std::sqrt(-2 * std::log(u)) * std::cos(2 * M_PI * v);
}
enum Stream : std::uint64_t { kDyStream = 1, kDirectionStream = 1000, kSampleStream = 2000 };

// ---- the pieces of one check ----------------------------------------------------------

/// Channel c of an (outer, C, inner) tensor, as m contiguous values, and back.
struct ChannelMap {
    Layout l;
    std::int64_t flat(std::int64_t c, std::int64_t j) const { // j-th element of channel c
        return (j / l.inner) * l.channels * l.inner + c * l.inner + j % l.inner;
    }
    std::int64_t channel_of(std::int64_t flat_index) const { return (flat_index / l.inner) % l.channels; }
    std::int64_t position_in_channel(std::int64_t flat_index) const {
        return (flat_index / (l.channels * l.inner)) * l.inner + flat_index % l.inner;
    }
};

std::vector<std::int64_t> multi_index(std::int64_t flat, const Shape& shape) {
    std::vector<std::int64_t> idx(shape.size());
    for (std::size_t d = shape.size(); d-- > 0;) {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    return idx;
}

/// One compared element.
struct Sample {
    std::int64_t index; // flat index into the tensor
    double analytic, numerical;
};

double to_double(const dd& v) { return v.hi + v.lo; }

/// Folds the samples of one tensor for one dy draw into its verdict.
void judge(TensorVerdict& v, const std::vector<Sample>& samples, const Shape& shape, int draw,
           double rtol, std::optional<double> atol_opt) {
    double max_num = 0;
    for (const Sample& s : samples) max_num = std::max(max_num, std::abs(s.numerical));
    const double atol = atol_opt ? *atol_opt : 1e-3 * rtol * max_num;
    const double floor = 1e-3 * max_num;
    for (const Sample& s : samples) {
        const double err = std::abs(s.analytic - s.numerical);
        const double allowed = atol + rtol * std::abs(s.numerical);
        const bool ok = err <= allowed; // NaN fails
        const double ratio = std::isnan(err) ? INFINITY : (allowed > 0 ? err / allowed : (err > 0 ? INFINITY : 0));
        if (!ok) v.passed = false;
        v.max_abs_err = std::max(v.max_abs_err, std::isnan(err) ? INFINITY : err);
        const double denom = std::max(std::abs(s.numerical), floor);
        v.max_rel_err = std::max(v.max_rel_err, denom > 0 ? err / denom : (err > 0 ? INFINITY : 0));
        if (ratio > v.worst_ratio) {
            v.worst_ratio = ratio;
            v.worst_index = multi_index(s.index, shape);
            v.worst_analytic = s.analytic;
            v.worst_numerical = s.numerical;
            v.worst_draw = draw;
            v.atol = atol;
        }
    }
    v.rtol = rtol;
}

} // namespace

template <class T>
GradcheckReport gradcheck(const T* x, const Shape& shape, const Layout& l, const T* gamma, const T* beta,
                          const T* dy_given, double eps, const GivenGradients<T>& given,
                          const GradcheckOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    if (given.any() && !dy_given)
        throw UsageError("judging given gradients needs the --dy they were computed for");

    const std::int64_t n = l.size(), C = l.channels, m = l.per_channel();
    const ChannelMap map{l};
    const int threads = detail::resolve_threads(opt.threads);
    const double rtol = opt.rtol ? *opt.rtol : (sizeof(T) == 4 ? 1e-5 : 1e-11);

    GradcheckReport r;
    r.gradients_given = given.any();
    r.dy_given = dy_given != nullptr;
    r.mode = (opt.full || n <= opt.elementwise_limit) ? "elementwise" : "randomized";
    r.dy_draws = dy_given ? 1 : opt.random_dy_draws;
    r.x.judged = !given.any() || given.dx;
    r.gamma.judged = !given.any() || given.dgamma;
    r.beta.judged = !given.any() || given.dbeta;
    r.x.total = n;
    r.gamma.total = r.beta.total = C;
    const bool elementwise = r.mode == "elementwise";

    // Channel statistics from bnorm's forward pass (also validates eps and the variance).
    // They only size the steps: h_c = 2^-70·std_c, an exact power-of-two scaling.
    std::vector<T> invstd(C), y(n);
    forward<T>(x, l, gamma, beta, eps, y.data(), nullptr, invstd.data());
    std::vector<double> step(C);
    for (std::int64_t c = 0; c < C; ++c) step[c] = std::ldexp(1.0 / double(invstd[c]), -70);
    r.step_relative = std::ldexp(1.0, -70);

    // The channels as contiguous double arrays, gathered once.
    std::vector<double> xc(n);
    for (std::int64_t c = 0; c < C; ++c)
        for (std::int64_t j = 0; j < m; ++j) xc[c * m + j] = double(x[map.flat(c, j)]);
    auto gamma_of = [&](std::int64_t c) { return gamma ? double(gamma[c]) : 1.0; };
    auto beta_of = [&](std::int64_t c) { return beta ? double(beta[c]) : 0.0; };

    std::int64_t evaluations = 0, element_evaluations = 0;
    auto count = [&](std::int64_t evals) {
        evaluations += evals;
        element_evaluations += evals * m;
    };

    // Complex-step derivative of f_c with respect to the elements `positions` (positions
    // in channel c), into out[k]. Thread-safe: its own buffer.
    auto d_dx = [&](std::int64_t c, const std::vector<std::int64_t>& positions, std::vector<dd>& out,
                    const std::vector<double>& dyc, std::vector<Complex>& buf) {
        buf.resize(m);
        for (std::int64_t j = 0; j < m; ++j) buf[j] = Complex{{xc[c * m + j], 0}, {0, 0}};
        const Complex g{{gamma_of(c), 0}, {}}, b{{beta_of(c), 0}, {}};
        for (std::size_t k = 0; k < positions.size(); ++k) {
            const std::int64_t j = positions[k];
            buf[j].im = {step[c], 0};
            const Complex f = channel_objective(buf.data(), m, dyc.data() + c * m, g, b, eps);
            buf[j].im = {0, 0};
            out[k] = detail::div(f.im, step[c]);
        }
    };

    std::vector<double> dyc(n); // dy of the current draw, gathered by channel
    std::vector<T> dy_draw(n), dx(n), dgamma(C), dbeta(C);
    const double total_work = double(r.dy_draws);
    auto report_progress = [&](int draw, double within) {
        if (opt.progress) opt.progress((draw + within) / total_work);
    };

    for (int draw = 0; draw < r.dy_draws; ++draw) {
        const T* dy = dy_given;
        if (!dy) {
            for (std::int64_t i = 0; i < n; ++i) dy_draw[i] = T(normal(opt.seed, kDyStream + draw, i));
            dy = dy_draw.data();
        }
        for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t j = 0; j < m; ++j) dyc[c * m + j] = double(dy[map.flat(c, j)]);

        // The analytic gradients: the caller's, or bnorm's own backward.
        const T *a_dx = given.dx, *a_dgamma = given.dgamma, *a_dbeta = given.dbeta;
        if (!given.any()) {
            backward<T>(x, gamma, dy, l, eps, dx.data(), dgamma.data(), dbeta.data());
            a_dx = dx.data(), a_dgamma = dgamma.data(), a_dbeta = dbeta.data();
        }

        // γ and β: one complex step per channel each (f is linear in both).
        if (r.gamma.judged || r.beta.judged) {
            std::vector<Sample> sg, sb;
            std::vector<Complex> buf(m);
            for (std::int64_t c = 0; c < C; ++c) {
                for (std::int64_t j = 0; j < m; ++j) buf[j] = Complex{{xc[c * m + j], 0}, {0, 0}};
                const Complex g{{gamma_of(c), 0}, {}}, b{{beta_of(c), 0}, {}};
                if (r.gamma.judged) {
                    const Complex f = channel_objective(buf.data(), m, dyc.data() + c * m,
                                                        Complex{g.re, {0x1p-70, 0}}, b, eps);
                    sg.push_back({c, double(a_dgamma[c]), to_double(detail::mul(f.im, 0x1p70))});
                    count(1);
                }
                if (r.beta.judged) {
                    const Complex f = channel_objective(buf.data(), m, dyc.data() + c * m, g,
                                                        Complex{b.re, {0x1p-70, 0}}, eps);
                    sb.push_back({c, double(a_dbeta[c]), to_double(detail::mul(f.im, 0x1p70))});
                    count(1);
                }
            }
            if (r.gamma.judged) judge(r.gamma, sg, Shape{C}, draw, rtol, opt.atol), r.gamma.checked = C;
            if (r.beta.judged) judge(r.beta, sb, Shape{C}, draw, rtol, opt.atol), r.beta.checked = C;
        }

        if (r.x.judged) {
            // Which elements to compare one by one, grouped by channel.
            std::vector<std::vector<std::int64_t>> positions(C);
            if (elementwise) {
                for (std::int64_t c = 0; c < C; ++c) {
                    positions[c].resize(m);
                    std::iota(positions[c].begin(), positions[c].end(), 0);
                }
            } else {
                for (std::int64_t c = 0; c < C; ++c) positions[c] = {0, m - 1};
                for (int s = 0; s < opt.samples; ++s) {
                    const std::int64_t flat = std::int64_t(random_bits(opt.seed, kSampleStream + draw, s) % std::uint64_t(n));
                    positions[map.channel_of(flat)].push_back(map.position_in_channel(flat));
                }
                for (auto& p : positions) {
                    std::sort(p.begin(), p.end());
                    p.erase(std::unique(p.begin(), p.end()), p.end());
                }
            }
            // Work items: (channel, block of positions), in a fixed order.
            struct Item {
                std::int64_t c, begin, end;
            };
            std::vector<Item> items;
            const std::int64_t block = 16;
            for (std::int64_t c = 0; c < C; ++c)
                for (std::int64_t b = 0; b < std::int64_t(positions[c].size()); b += block)
                    items.push_back({c, b, std::min<std::int64_t>(b + block, positions[c].size())});
            std::vector<std::vector<double>> numerical(C);
            for (std::int64_t c = 0; c < C; ++c) numerical[c].resize(positions[c].size());

            // Run in slices so that progress can be reported from this thread.
            const std::int64_t slices = std::min<std::int64_t>(50, std::int64_t(items.size()));
            for (std::int64_t s = 0; s < slices; ++s) {
                const std::int64_t lo = std::int64_t(items.size()) * s / slices;
                const std::int64_t hi = std::int64_t(items.size()) * (s + 1) / slices;
                detail::parallel_for(hi - lo, threads, [&](std::int64_t b, std::int64_t e) {
                    std::vector<Complex> buf;
                    std::vector<std::int64_t> pos;
                    std::vector<dd> out;
                    for (std::int64_t k = lo + b; k < lo + e; ++k) {
                        const Item& it = items[k];
                        pos.assign(positions[it.c].begin() + it.begin, positions[it.c].begin() + it.end);
                        out.resize(pos.size());
                        d_dx(it.c, pos, out, dyc, buf);
                        std::transform(out.begin(), out.end(), numerical[it.c].begin() + it.begin, to_double);
                    }
                });
                report_progress(draw, 0.9 * double(s + 1) / double(slices));
            }
            std::vector<Sample> sx;
            for (std::int64_t c = 0; c < C; ++c) {
                count(std::int64_t(positions[c].size()));
                for (std::size_t k = 0; k < positions[c].size(); ++k) {
                    const std::int64_t flat = map.flat(c, positions[c][k]);
                    sx.push_back({flat, double(a_dx[flat]), numerical[c][k]});
                }
            }
            judge(r.x, sx, shape, draw, rtol, opt.atol);
            r.x.checked = std::max<std::int64_t>(r.x.checked, std::int64_t(sx.size()));

            // Randomized mode: directional derivatives through every element, per channel.
            if (!elementwise) {
                const double atol_elem = opt.atol ? *opt.atol : r.x.atol;
                for (int dir = 0; dir < opt.directions; ++dir) {
                    std::vector<double> dir_num(C), dir_ana(C), dir_scale(C);
                    detail::parallel_for(C, threads, [&](std::int64_t b, std::int64_t e) {
                        std::vector<Complex> buf(m);
                        for (std::int64_t c = b; c < e; ++c) {
                            dd ana{}, scale{};
                            for (std::int64_t j = 0; j < m; ++j) {
                                const std::int64_t flat = map.flat(c, j);
                                // v_i = ±1, drawn per element of the tensor
                                const double v = (random_bits(opt.seed, kDirectionStream + 64 * draw + dir, flat) & 1) ? 1.0 : -1.0;
                                buf[j] = Complex{{xc[c * m + j], 0}, {v * step[c], 0}};
                                ana = detail::add(ana, double(a_dx[flat]) * v);
                                scale = detail::add(scale, std::abs(double(a_dx[flat])));
                            }
                            const Complex g{{gamma_of(c), 0}, {}}, bb{{beta_of(c), 0}, {}};
                            const Complex f = channel_objective(buf.data(), m, dyc.data() + c * m, g, bb, eps);
                            dir_num[c] = to_double(detail::div(f.im, step[c]));
                            dir_ana[c] = to_double(ana);
                            dir_scale[c] = to_double(scale);
                        }
                    });
                    count(C);
                    for (std::int64_t c = 0; c < C; ++c) {
                        // If every element were within atol + rtol·|n_i|, the directional
                        // derivative would be within the sum of those allowances.
                        const double err = std::abs(dir_ana[c] - dir_num[c]);
                        const double allowed = double(m) * atol_elem + rtol * dir_scale[c];
                        const double rel = dir_scale[c] > 0 ? err / dir_scale[c] : (err > 0 ? INFINITY : 0);
                        ++r.x.directional_checks;
                        if (!(err <= allowed)) r.x.directional_passed = r.x.passed = false;
                        if (!(rel <= r.x.directional_max_rel_err)) {
                            r.x.directional_max_rel_err = std::isnan(rel) ? INFINITY : rel;
                            r.x.directional_worst_channel = c;
                        }
                    }
                }
            }
        }
        report_progress(draw, 1.0);

        // The method's own error, on draw 0: complex step against Richardson-extrapolated
        // central differences of the same forward template in real double-double.
        if (draw == 0) {
            std::vector<std::int64_t> cross = {map.flat(0, 0), map.flat(C - 1, m - 1)};
            for (int s = 0; s < 4; ++s)
                cross.push_back(std::int64_t(random_bits(opt.seed, kSampleStream + 999, s) % std::uint64_t(n)));
            double max_diff = 0, max_mag = 0;
            std::vector<Real> rbuf(m);
            std::vector<Complex> cbuf;
            for (const std::int64_t flat : cross) {
                const std::int64_t c = map.channel_of(flat), j = map.position_in_channel(flat);
                std::vector<dd> cs(1);
                d_dx(c, {j}, cs, dyc, cbuf);
                for (std::int64_t i = 0; i < m; ++i) rbuf[i] = Real{{xc[c * m + i], 0}};
                const Real g{{gamma_of(c), 0}}, b{{beta_of(c), 0}};
                auto central = [&](double h) {
                    rbuf[j] = Real{detail::two_sum(xc[c * m + j], h)};
                    const Real up = channel_objective(rbuf.data(), m, dyc.data() + c * m, g, b, eps);
                    rbuf[j] = Real{detail::two_sum(xc[c * m + j], -h)};
                    const Real down = channel_objective(rbuf.data(), m, dyc.data() + c * m, g, b, eps);
                    rbuf[j] = Real{{xc[c * m + j], 0}};
                    return detail::div((up - down).v, 2 * h);
                };
                const double h = std::ldexp(step[c], 50); // 2^-20 std
                const dd d1 = central(h), d2 = central(h / 2);
                const dd richardson = detail::div(detail::sub(detail::mul(d2, 4.0), d1), 3.0);
                max_diff = std::max(max_diff, std::abs(to_double(detail::sub(richardson, cs[0]))));
                max_mag = std::max(max_mag, std::abs(to_double(cs[0])));
                count(5);
            }
            r.crosscheck_elements = std::int64_t(cross.size());
            r.estimated_method_error = max_mag > 0 ? max_diff / max_mag : max_diff;
        }
    }

    r.passed = r.x.passed && r.gamma.passed && r.beta.passed;
    r.forward_evaluations = evaluations;
    r.forward_element_evaluations = element_evaluations;
    r.elapsed_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

template GradcheckReport gradcheck<float>(const float*, const Shape&, const Layout&, const float*, const float*,
                                          const float*, double, const GivenGradients<float>&,
                                          const GradcheckOptions&);
template GradcheckReport gradcheck<double>(const double*, const Shape&, const Layout&, const double*,
                                           const double*, const double*, double, const GivenGradients<double>&,
                                           const GradcheckOptions&);

} // namespace bnorm
