// Pass B's kernels: y (forward) and dx (backward) over channels-last rows or over one
// channel's run, from per-channel coefficients.
#pragma once

#include "formulas.hpp"
#include "lanes.hpp"
#include "pass_b/streaming.hpp"
#include "prefetch.hpp"
#include "simd.hpp"
#include <cmath>
#include <cstdint>

namespace bnorm::kernels {
namespace { // each .cpp its own copy, optimised with its callers as one unit

/// Pass B of forward, float32: y = a·((x − μh) − μl) + β, over `rows` channels-last rows
/// of C channels, four lanes at a time (double's 2^-53 is far below float32's half ulp).
template <bool Stream>
[[gnu::noinline]] void normalize_rows_plain(const float* __restrict x, float* __restrict y, std::int64_t C,
                                            std::int64_t rows, const double* __restrict mh,
                                            const double* __restrict ml, const double* __restrict ah,
                                            const double* __restrict b) {
    using namespace detail::simd;
    // few channels: the same operations, the coefficients in registers
    if (!Stream && with_narrow_rows(C, [&](auto v_const) {
            constexpr int V = decltype(v_const)::value;
            v4d m[V], mlo[V], a[V], bv[V];
            for (int j = 0; j < V; ++j)
                m[j] = load(mh + j * kWidth), mlo[j] = load(ml + j * kWidth), a[j] = load(ah + j * kWidth),
                bv[j] = load(b + j * kWidth);
            for (std::int64_t r = 0; r < rows; ++r, x += C, y += C)
#pragma GCC unroll 4
                for (int j = 0; j < V; ++j)
                    store(y + j * kWidth, normalize_plain(load(x + j * kWidth), m[j], mlo[j], a[j], bv[j]));
        }))
        return;
#if defined(__AVX512F__)
    // AVX-512, rows of whole vectors of eight, y on 32 bytes: eight lanes (v8d), the same
    // operations in half the instructions.
    if (C % 8 == 0 && reinterpret_cast<std::uintptr_t>(y) % 32 == 0) {
        for (std::int64_t r = 0; r < rows; ++r, x += C, y += C)
            for (std::int64_t c = 0; c < C; c += 8) {
                prefetch_l1(x, c + std::int64_t(kReadAhead / sizeof(float)));
                const v8d v = normalize_plain(load8(x + c), load8(mh + c), load8(ml + c), load8(ah + c), load8(b + c));
                put_lanes<Stream>(y + c, v);
            }
        return;
    }
#endif
    for (std::int64_t r = 0; r < rows; ++r, x += C, y += C)
        write_lanes<Stream>(
            y, C,
            [&](std::int64_t c) {
                return normalize_plain(load(x + c), load(mh + c), load(ml + c), load(ah + c), load(b + c));
            },
            [&](std::int64_t c) { return normalize_plain(double(x[c]), mh[c], ml[c], ah[c], b[c]); }, x);
}

/// The same over a run of one channel's values: eight lanes where x and y are
/// eight_aligned, which streams 32 bytes at a time.
template <bool Stream>
[[gnu::noinline]] void normalize_run_plain(const float* __restrict x, float* __restrict y, std::int64_t len,
                                           double mh, double ml, double ah, double b) {
    using detail::broadcast;
    write_each<Stream>(y, len, eight_aligned(x, y), [&]<class D>(D, std::int64_t i) {
        return normalize_plain(lanes<D>(x, i), broadcast<D>(mh), broadcast<D>(ml), broadcast<D>(ah), broadcast<D>(b));
    }, x);
}

/// Pass B of backward from certified plain sums (float32): dx = a·((dy − B) − (x − μ)·H),
/// in double, over `rows` channels-last rows of C channels.
template <bool Stream>
[[gnu::noinline]] void input_gradient_rows_plain(const float* __restrict x, const float* __restrict g,
                                                 float* __restrict dx, std::int64_t C, std::int64_t rows,
                                                 const double* __restrict mh, const double* __restrict ah,
                                                 const double* __restrict Bh, const double* __restrict Hh) {
    using namespace detail::simd;
    // few channels: the same operations, the coefficients in registers
    if (!Stream && with_narrow_rows(C, [&](auto v_const) {
            constexpr int V = decltype(v_const)::value;
            v4d m[V], a[V], B[V], H[V];
            for (int j = 0; j < V; ++j)
                m[j] = load(mh + j * kWidth), a[j] = load(ah + j * kWidth), B[j] = load(Bh + j * kWidth),
                H[j] = load(Hh + j * kWidth);
            for (std::int64_t r = 0; r < rows; ++r, x += C, g += C, dx += C)
#pragma GCC unroll 4
                for (int j = 0; j < V; ++j)
                    store(dx + j * kWidth,
                          input_gradient_plain(load(x + j * kWidth), load(g + j * kWidth), m[j], a[j], B[j], H[j]));
        }))
        return;
    for (std::int64_t r = 0; r < rows; ++r, x += C, g += C, dx += C)
        write_each<Stream>(dx, C, eight_aligned(x, g, dx), [&]<class D>(D, std::int64_t c) {
            return input_gradient_plain(lanes<D>(x, c), lanes<D>(g, c), lanes<D>(mh, c), lanes<D>(ah, c),
                                        lanes<D>(Bh, c), lanes<D>(Hh, c));
        }, x, g);
}

/// The same over a run of one channel's values.
template <bool Stream>
[[gnu::noinline]] void input_gradient_run_plain(const float* __restrict x, const float* __restrict g,
                                                float* __restrict dx, std::int64_t len, double mh, double ah,
                                                double Bh, double Hh) {
    using namespace detail::simd;
    write_each<Stream>(dx, len, eight_aligned(x, g, dx), [&]<class D>(D, std::int64_t i) {
        return input_gradient_plain(lanes<D>(x, i), lanes<D>(g, i), detail::broadcast<D>(mh), detail::broadcast<D>(ah),
                                    detail::broadcast<D>(Bh), detail::broadcast<D>(Hh));
    }, x, g);
}

/// Pass B of forward, float64: normalize_dd over `rows` channels-last rows of C channels.
/// Where `wide_rows` (inference: y, and backward's dx = a·dy) and the build has AVX-512,
/// rows of whole vectors of eight on 64 bytes: eight lanes, two rows at a time with each
/// channel's coefficients loaded once for both (in L1, 0.62 of four lanes' time; 0.70 to
/// 0.76 of eight lanes a row at a time). Training's forward keeps four lanes: eight, a row
/// at a time, measured slower after its pass A (Zen 5, performance.md).
template <bool Stream>
[[gnu::noinline]] void normalize_rows_dd(const double* __restrict x, double* __restrict y, std::int64_t C,
                                         std::int64_t rows, const double* __restrict mh, const double* __restrict ml,
                                         const double* __restrict ah, const double* __restrict al,
                                         const double* __restrict b, [[maybe_unused]] bool wide_rows) {
    using namespace detail::simd;
#if defined(__AVX512F__)
    if (wide_rows && C % 8 == 0 && eight_aligned(x, y)) {
        // twice kReadAhead: the same 512 values ahead as the float32 kernels; 2 KiB left
        // these rows waiting on memory (Zen 5, performance.md)
        constexpr std::int64_t ahead = 2 * kReadAhead / sizeof(double);
        std::int64_t r = 0;
        for (; r + 2 <= rows; r += 2, x += 2 * C, y += 2 * C)
            for (std::int64_t c = 0; c < C; c += 8) {
                prefetch_l1(x, c + ahead), prefetch_l1(x + C, c + ahead);
                const v8d m = load8(mh + c), m_lo = load8(ml + c), a = load8(ah + c), a_lo = load8(al + c),
                          bc = load8(b + c);
                put_lanes<Stream>(y + c, normalize_dd(load8(x + c), m, m_lo, a, a_lo, bc));
                put_lanes<Stream>(y + C + c, normalize_dd(load8(x + C + c), m, m_lo, a, a_lo, bc));
            }
        for (; r < rows; ++r, x += C, y += C)
            for (std::int64_t c = 0; c < C; c += 8) {
                prefetch_l1(x, c + ahead);
                put_lanes<Stream>(y + c, normalize_dd(load8(x + c), load8(mh + c), load8(ml + c), load8(ah + c),
                                                      load8(al + c), load8(b + c)));
            }
        return;
    }
#endif
    for (std::int64_t r = 0; r < rows; ++r, x += C, y += C)
        write_lanes<Stream>(
            y, C,
            [&](std::int64_t c) {
                return normalize_dd(load(x + c), load(mh + c), load(ml + c), load(ah + c), load(al + c), load(b + c));
            },
            [&](std::int64_t c) { return normalize_dd(x[c], mh[c], ml[c], ah[c], al[c], b[c]); }, x);
}

/// The same over a run of one channel's values, eight lanes where x and y are
/// eight_aligned (in training too: NCHW float64 forward, Zen 5, performance.md).
template <bool Stream>
[[gnu::noinline]] void normalize_run_dd(const double* __restrict x, double* __restrict y, std::int64_t len, double mh,
                                        double ml, double ah, double al, double b) {
    using detail::broadcast;
    write_each<Stream>(y, len, eight_aligned(x, y), [&]<class D>(D, std::int64_t i) {
        return normalize_dd(lanes<D>(x, i), broadcast<D>(mh), broadcast<D>(ml), broadcast<D>(ah), broadcast<D>(al),
                            broadcast<D>(b));
    }, x);
}

/// Pass B of forward in inference mode, float32: normalize_checked, the plain form, or
/// normalize_dd (a in double-double) where β cancels a·(x − μ), so that y is right relative
/// to itself (float32's rounding of x and a single-double a would not be); over `rows`
/// channels-last rows of C channels. μ is one double; t: per channel, cancel_threshold(β).
template <bool Stream>
[[gnu::noinline]] void normalize_rows_dd_f32(const float* __restrict x, float* __restrict y, std::int64_t C,
                                             std::int64_t rows, const double* __restrict mh,
                                             const double* __restrict ah, const double* __restrict al,
                                             const double* __restrict b, const double* __restrict t) {
#if defined(__AVX512F__)
    // AVX-512, rows of whole vectors of eight, x and y on 32 bytes: eight lanes, without
    // write_each's set-up for every row (rows of 64 channels are eight vectors)
    if (C % 8 == 0 && eight_aligned(x, y)) {
        using namespace detail::simd;
        // y of two vectors of x, at channels c0 and c1, behind one test and one branch;
        // each lane's form is still decided by its own test, so the bits are normalize_checked's
        const auto two = [&](const float* x0, std::int64_t c0, const float* x1, std::int64_t c1, float* y0, float* y1) {
            const v8d xv0 = load8(x0), xv1 = load8(x1), m0 = load8(mh + c0), m1 = load8(mh + c1),
                      a0 = load8(ah + c0), a1 = load8(ah + c1), b0 = load8(b + c0), b1 = load8(b + c1),
                      t0 = load8(t + c0), t1 = load8(t + c1);
            v8d v0 = normalize_unchecked(xv0, m0, a0, b0), v1 = normalize_unchecked(xv1, m1, a1, b1);
            if (!all_at_least(abs(v0), t0, abs(v1), t1)) {
                v0 = normalize_rechecked(v0, xv0, m0, a0, load8(al + c0), b0, t0);
                v1 = normalize_rechecked(v1, xv1, m1, a1, load8(al + c1), b1, t1);
            }
            put_lanes<Stream>(y0, v0), put_lanes<Stream>(y1, v1);
        };
        constexpr std::int64_t ahead = kReadAhead / sizeof(float);
        std::int64_t r = 0;
        // rows of up to 64 channels two at a time, both rows' vectors at the same channels:
        // the loads, not the arithmetic, held these rows back (Zen 5, performance.md)
        if (C <= 64)
            for (; r + 2 <= rows; r += 2, x += 2 * C, y += 2 * C)
                for (std::int64_t c = 0; c < C; c += 8) {
                    if (c % 16 == 0) prefetch_l1(x, c + ahead), prefetch_l1(x + C, c + ahead); // 64 bytes each
                    two(x + c, c, x + C + c, c, y + c, y + C + c);
                }
        // longer rows (and an odd last row) 16 channels, 64 bytes of x, at a time: one prefetch
        // and one branch for the two vectors
        if (C % 16 == 0)
            for (; r < rows; ++r, x += C, y += C)
                for (std::int64_t c = 0; c < C; c += 16) {
                    prefetch_l1(x, c + ahead);
                    two(x + c, c, x + c + 8, c + 8, y + c, y + c + 8);
                }
        for (; r < rows; ++r, x += C, y += C)
            for (std::int64_t c = 0; c < C; c += 8) {
                prefetch_l1(x, c + ahead);
                put_lanes<Stream>(y + c, normalize_checked(load8(x + c), load8(mh + c), load8(ah + c),
                                                           load8(al + c), load8(b + c), load8(t + c)));
            }
        return;
    }
#endif
    for (std::int64_t r = 0; r < rows; ++r, x += C, y += C)
        write_each<Stream>(y, C, eight_aligned(x, y), [&]<class D>(D, std::int64_t c) {
            return normalize_checked(lanes<D>(x, c), lanes<D>(mh, c), lanes<D>(ah, c), lanes<D>(al, c), lanes<D>(b, c),
                                     lanes<D>(t, c));
        }, x);
}

/// The same over a run of one channel's values.
template <bool Stream>
[[gnu::noinline]] void normalize_run_dd_f32(const float* __restrict x, float* __restrict y, std::int64_t len,
                                            double mh, double ah, double al, double b) {
    using detail::broadcast;
    const double t = cancel_threshold(b);
    write_each<Stream>(y, len, eight_aligned(x, y), [&]<class D>(D, std::int64_t i) {
        return normalize_checked(lanes<D>(x, i), broadcast<D>(mh), broadcast<D>(ah), broadcast<D>(al), broadcast<D>(b),
                                 broadcast<D>(t));
    }, x);
}

/// Which form of dx the channels of a rows kernel take: the offset form for some (per
/// channel, tested per vector), for all, or for none (the centred form everywhere).
enum class DxForms { mixed, all_offset, all_centred };

/// Pass B of backward, float64 (and float32 when every channel needs every error term):
/// input_gradient_dd over `rows` channels-last rows of C channels, or the offset form
/// where offset4[c] (four channels from c) or offset[c] says so. When every channel takes
/// the same form (Forms), there is no test per vector, and eight lanes where the build has
/// them.
template <bool Stream, DxForms Forms, class T>
[[gnu::noinline]] void input_gradient_rows_dd(const T* __restrict x, const T* __restrict g,
                                              T* __restrict dx, std::int64_t C, std::int64_t rows,
                                              const double* __restrict mh, const double* __restrict ml,
                                              const double* __restrict ah, const double* __restrict al,
                                              const double* __restrict Bh, const double* __restrict Bl,
                                              const double* __restrict Hh, const double* __restrict Hl,
                                              const double* __restrict Kh, const double* __restrict Kl,
                                              const char* __restrict offset, const char* __restrict offset4) {
    using namespace detail::simd;
    // float64: 1 KiB ahead, which took 0.86 to 0.92 of kReadAhead's time (4 KiB was slower
    // than 2: Zen 5, performance.md)
    constexpr std::size_t ahead = sizeof(T) == 8 ? kReadAhead / 2 : kReadAhead;
    if constexpr (Forms != DxForms::mixed) {
        for (std::int64_t r = 0; r < rows; ++r, x += C, g += C, dx += C)
            write_each<Stream, ahead>(dx, C, eight_aligned(x, g, dx), [&]<class D>(D, std::int64_t c) {
                if constexpr (Forms == DxForms::all_offset)
                    return input_gradient_offset_dd(lanes<D>(x, c), lanes<D>(g, c), lanes<D>(ah, c), lanes<D>(al, c),
                                                    lanes<D>(Kh, c), lanes<D>(Kl, c), lanes<D>(Hh, c), lanes<D>(Hl, c));
                else
                    return input_gradient_dd(lanes<D>(x, c), lanes<D>(g, c), lanes<D>(mh, c), lanes<D>(ml, c),
                                             lanes<D>(ah, c), lanes<D>(al, c), lanes<D>(Bh, c), lanes<D>(Bl, c),
                                             lanes<D>(Hh, c), lanes<D>(Hl, c));
            }, x, g);
        return;
    }
    for (std::int64_t r = 0; r < rows; ++r, x += C, g += C, dx += C)
        write_lanes<Stream, ahead>(
            dx, C,
            [&](std::int64_t c) {
                if (offset4[c])
                    return input_gradient_offset_dd(load(x + c), load(g + c), load(ah + c), load(al + c),
                                                    load(Kh + c), load(Kl + c), load(Hh + c), load(Hl + c));
                return input_gradient_dd(load(x + c), load(g + c), load(mh + c), load(ml + c), load(ah + c),
                                         load(al + c), load(Bh + c), load(Bl + c), load(Hh + c), load(Hl + c));
            },
            [&](std::int64_t c) {
                const double xc = double(x[c]), gc = double(g[c]);
                if (offset[c])
                    return input_gradient_offset_dd(xc, gc, ah[c], al[c], Kh[c], Kl[c], Hh[c], Hl[c]);
                return input_gradient_dd(xc, gc, mh[c], ml[c], ah[c], al[c], Bh[c], Bl[c], Hh[c], Hl[c]);
            }, x, g);
}

/// The same over a run of one channel's values.
template <bool Stream, class T>
[[gnu::noinline]] void input_gradient_run_dd(const T* __restrict x, const T* __restrict g, T* __restrict dx,
                                             std::int64_t len, double mh, double ml, double ah, double al, double Bh,
                                             double Bl, double Hh, double Hl) {
    using namespace detail::simd;
    using detail::broadcast;
    write_each<Stream>(dx, len, eight_aligned(x, g, dx), [&]<class D>(D, std::int64_t i) {
        return input_gradient_dd(lanes<D>(x, i), lanes<D>(g, i), broadcast<D>(mh), broadcast<D>(ml), broadcast<D>(ah),
                                 broadcast<D>(al), broadcast<D>(Bh), broadcast<D>(Bl), broadcast<D>(Hh),
                                 broadcast<D>(Hl));
    }, x, g);
}

/// The same in the offset form (input_gradient_offset_dd).
template <bool Stream, class T>
[[gnu::noinline]] void input_gradient_run_offset_dd(const T* __restrict x, const T* __restrict g, T* __restrict dx,
                                                    std::int64_t len, double ah, double al, double Kh, double Kl,
                                                    double Hh, double Hl) {
    using namespace detail::simd;
    using detail::broadcast;
    write_each<Stream>(dx, len, eight_aligned(x, g, dx), [&]<class D>(D, std::int64_t i) {
        return input_gradient_offset_dd(lanes<D>(x, i), lanes<D>(g, i), broadcast<D>(ah), broadcast<D>(al),
                                        broadcast<D>(Kh), broadcast<D>(Kl), broadcast<D>(Hh), broadcast<D>(Hl));
    }, x, g);
}

} // namespace
} // namespace bnorm::kernels
