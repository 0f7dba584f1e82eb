// AVX2 + FMA fp32 kernels: 4 x 24 micro-kernel (12 ymm accumulators, 3 B loads + 4 broadcasts per k).
#include <immintrin.h>

#include "fp32.h"

namespace cm_fp32_avx2 {

struct V {
  using T = __m256;
  static constexpr int W = 8;
  static T zero() { return _mm256_setzero_ps(); }
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static void store_part(float* p, T v, int n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane), v);
  }
  static T load_part(const float* p, int n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane));
  }
  // Lanes l in [lo, hi) from p[l], the others 0 (masked: nothing outside is touched).
  static T load_range(const float* p, int lo, int hi) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(lo), lane),
                                          _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane));
    return _mm256_maskload_ps(p, m);
  }
  static T set1(float v) { return _mm256_set1_ps(v); }
  static T fma(T a, T b, T c) { return _mm256_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static T min(T a, T b) { return _mm256_min_ps(a, b); }
  // Lanes 0, 2, 4, ... of the 2W floats a:b (a stride-2 gather from two loads).
  static T even(T a, T b) {
    const __m256 t = _mm256_shuffle_ps(a, b, 0x88);  // a0 a2 b0 b2 | a4 a6 b4 b6
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xd8));
  }
  static T odd(T a, T b) {
    const __m256 t = _mm256_shuffle_ps(a, b, 0xdd);  // a1 a3 b1 b3 | a5 a7 b5 b7
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), 0xd8));
  }
  // max(r, s) that is NaN when either is (s's NaN when both): MaxPool's rule.
  static T maxnan(T r, T s) { return _mm256_blendv_ps(_mm256_max_ps(s, r), s, _mm256_cmp_ps(s, s, _CMP_UNORD_Q)); }
};
static constexpr int MR = 4, NV = 3;
static constexpr int CPR = 6;  // pixels per channel-vectorized tile (0: none)

#include "fp32_impl.h"

}  // namespace cm_fp32_avx2

extern "C" const cmf::Fp32Ops* cm_fp32_ops_avx2() { return cm_fp32_avx2::make_ops("avx2"); }
