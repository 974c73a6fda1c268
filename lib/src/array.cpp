#include "bnorm/array.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

namespace bnorm {

const char* dtype_name(DType t) { return t == DType::f32 ? "float32" : "float64"; }

std::size_t dtype_size(DType t) { return t == DType::f32 ? 4 : 8; }

void Array::FreeAligned::operator()(std::byte* p) const { std::free(p); }

Array::Array(DType dtype, Shape shape)
    : dtype_(dtype), shape_(std::move(shape)), size_(element_count(shape_)) {
    assert(size_ >= 0);
    constexpr std::size_t kAlign = 64;
    const std::size_t n = nbytes();
    const std::size_t rounded = (n + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, n);
    bytes_.reset(static_cast<std::byte*>(p));
}

void Array::reshape(Shape shape) {
    assert(element_count(shape) == size_);
    shape_ = std::move(shape);
}

} // namespace bnorm
