// An owned, C-contiguous n-dimensional array of float32 or float64 (or the bit patterns of
// float16/bfloat16, bnorm/half.hpp): what files are read into and written from. Kernels take raw pointers plus a Layout (batchnorm.hpp).
#pragma once

#include "bnorm/layout.hpp"

#include <cassert>
#include <cstddef>
#include <memory>
#include <string>

namespace bnorm {

/// f32 and f64 are computed in; f16 and bf16 are storage only (arrays of std::uint16_t bit
/// patterns, widened to f64 before any computation: bnorm/half.hpp).
enum class DType { f32, f64, f16, bf16 };

/// "float32" / "float64" / "float16" / "bfloat16", numpy's (and ml_dtypes') names.
const char* dtype_name(DType t);
std::size_t dtype_size(DType t);
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::f32; }
template <> constexpr DType dtype_of<double>() { return DType::f64; }

/// Calls f(T{}) with T = float or double according to t, returns what f returns.
/// Requires: t is f32 or f64 (half arrays are widened first).
template <class F> decltype(auto) dispatch(DType t, F&& f) {
    assert(t == DType::f32 || t == DType::f64);
    if (t == DType::f32) return f(float{});
    return f(double{});
}

class Array {
public:
    Array() = default;
    /// Allocates element_count(shape) zero-initialized elements (64-byte aligned; large
    /// arrays get fresh pages from the kernel, transparent huge pages where available).
    /// Requires: every dimension >= 0 and the count fits in memory.
    Array(DType dtype, Shape shape);

    /// An array over memory owned by someone else, e.g. the data of a memory-mapped NPY
    /// file: `data` points to element_count(shape) elements, suitably aligned, and stays
    /// valid as long as `data` (a shared_ptr that may alias its owner) is held.
    static Array adopt(DType dtype, Shape shape, std::shared_ptr<std::byte> data);

    DType dtype() const { return dtype_; }
    const Shape& shape() const { return shape_; }
    std::int64_t size() const { return size_; }
    std::size_t nbytes() const { return static_cast<std::size_t>(size_) * dtype_size(dtype_); }

    template <class T> T* data() {
        assert(dtype_of<T>() == dtype_);
        return reinterpret_cast<T*>(bytes_.get());
    }
    template <class T> const T* data() const {
        assert(dtype_of<T>() == dtype_);
        return reinterpret_cast<const T*>(bytes_.get());
    }
    std::byte* bytes() { return bytes_.get(); }
    const std::byte* bytes() const { return bytes_.get(); }

    /// Same data, another shape with the same element count (asserted).
    void reshape(Shape shape);

private:
    DType dtype_ = DType::f64;
    Shape shape_;
    std::int64_t size_ = 0;
    std::shared_ptr<std::byte> bytes_;
};

} // namespace bnorm
