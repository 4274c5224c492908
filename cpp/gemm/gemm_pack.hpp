// Packing: copies a block of op(A) or op(B) into a contiguous buffer in the
// order the micro-kernel reads it, zero-padding partial micro-panels of B. This is
// where Trans::T is absorbed -- the kernels only ever see packed panels.
#pragma once
#include <cstddef>

#include "gemm/gemm.hpp"
#include "gemm/gemm_kernels.hpp"

namespace dnnfast {

// Packs op(A)[i0:i0+mc, k0:k0+kc] into ceil(mc/MR) micro-panels of MR x kc,
// each stored k-major (MR values of one k adjacent). A partial last panel's
// padding rows are not written (the micro-tile does not read them).
// (transpose: the table's, for op(A) = A.)
template <class T>
void gemm_pack_a(Trans ta, const T* A, size_t lda, size_t i0, size_t k0, size_t mc, size_t kc,
                 size_t mr, T* dst, TransposeFn<T> transpose);

// Packs op(B)[k0:k0+kc, j0:j0+nc] into ceil(nc/NR) micro-panels of kc x NR,
// each stored k-major (NR values of one k adjacent).
// (transpose: the table's, for op(B) = B^T.)
template <class T>
void gemm_pack_b(Trans tb, const T* B, size_t ldb, size_t k0, size_t j0, size_t kc, size_t nc,
                 size_t nr, T* dst, TransposeFn<T> transpose);

// A grow-only, 64-byte aligned scratch buffer: one per thread (thread_local),
// so the training loop's thousands of calls allocate nothing once warm.
template <class T>
class PackBuffer {
public:
    PackBuffer() = default;
    PackBuffer(const PackBuffer&) = delete;
    PackBuffer& operator=(const PackBuffer&) = delete;
    ~PackBuffer();
    T* get(size_t n);  // at least n elements; contents unspecified
    T* data() const { return data_; }  // as last returned by get(), or null

private:
    T* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace dnnfast
