#include "bnorm/array.hpp"

#include <cstdlib>
#include <cstring>
#include <new>

#include <sys/mman.h>

namespace bnorm {

const char* dtype_name(DType t) {
    switch (t) {
    case DType::f32: return "float32";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    default: return "float64";
    }
}

std::size_t dtype_size(DType t) {
    switch (t) {
    case DType::f32: return 4;
    case DType::f16:
    case DType::bf16: return 2;
    default: return 8;
    }
}

namespace {

constexpr std::size_t kAlign = 64;
constexpr std::size_t kFreshPagesFrom = std::size_t(1) << 21; // 2 MiB

/// Zero-initialized storage of n bytes. Small: the heap, cleared. Large: an anonymous
/// mapping, whose pages the kernel hands out already zero and only when first touched,
/// advised to use transparent huge pages (far fewer page faults when an output is
/// written for the first time).
std::shared_ptr<std::byte> allocate_zeroed(std::size_t n) {
    if (n >= kFreshPagesFrom) {
        void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
        ::madvise(p, n, MADV_HUGEPAGE); // advice only: fine if refused
        return {static_cast<std::byte*>(p), [n](std::byte* q) { ::munmap(q, n); }};
    }
    const std::size_t rounded = (n + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, rounded == 0 ? kAlign : rounded);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, n);
    return {static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); }};
}

} // namespace

Array::Array(DType dtype, Shape shape)
    : dtype_(dtype), shape_(std::move(shape)), size_(element_count(shape_)) {
    assert(size_ >= 0);
    bytes_ = allocate_zeroed(nbytes());
}

Array Array::adopt(DType dtype, Shape shape, std::shared_ptr<std::byte> data) {
    Array a;
    a.dtype_ = dtype;
    a.shape_ = std::move(shape);
    a.size_ = element_count(a.shape_);
    assert(a.size_ >= 0 && data);
    a.bytes_ = std::move(data);
    return a;
}

void Array::reshape(Shape shape) {
    assert(element_count(shape) == size_);
    shape_ = std::move(shape);
}

} // namespace bnorm
