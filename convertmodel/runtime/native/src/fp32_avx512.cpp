// AVX-512F fp32 kernels: 8 x 32 micro-kernel (16 zmm accumulators, A broadcast from memory); 32 columns
// rather than 48 waste less on 7x7 / 14x14 maps (ResNet stage 4 at batch 1: 54 -> 81 GMAC/s).
#include <immintrin.h>

// GCC 12 warns inside its own _mm512_max_ps / _mm512_min_ps (an intentionally undefined operand).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "fp32.h"

namespace cm_fp32_avx512 {

struct V {
  using T = __m512;
  static constexpr int W = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static void store_part(float* p, T v, int n) { _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), v); }
  static T load_part(const float* p, int n) { return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p); }
  // Lanes l in [lo, hi) from p[l], the others 0 (masked: nothing outside is touched).
  static T load_range(const float* p, int lo, int hi) {
    const unsigned m = (hi >= 16 ? 0xffffu : (1u << hi) - 1) & ~((1u << lo) - 1);
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), p);
  }
  static T set1(float v) { return _mm512_set1_ps(v); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static T min(T a, T b) { return _mm512_min_ps(a, b); }
  // Lanes 0, 2, 4, ... of the 2W floats a:b (a stride-2 gather from two loads).
  static T even(T a, T b) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(a, idx, b);
  }
  static T odd(T a, T b) {
    const __m512i idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    return _mm512_permutex2var_ps(a, idx, b);
  }
  // max(r, s) that is NaN when either is (s's NaN when both): MaxPool's rule.
  static T maxnan(T r, T s) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(s, s, _CMP_UNORD_Q), _mm512_max_ps(s, r), s);
  }
};
static constexpr int MR = 8, NV = 2;
static constexpr int CPR = 14;  // pixels per channel-vectorized tile (0: none)

#include "fp32_impl.h"

}  // namespace cm_fp32_avx512

extern "C" const cmf::Fp32Ops* cm_fp32_ops_avx512() { return cm_fp32_avx512::make_ops("avx512"); }
