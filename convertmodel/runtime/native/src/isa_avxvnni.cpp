// AVX-VNNI path (VEX-encoded vpdpbusd on 256-bit registers: Alder Lake+, Zen 5): q as uint8, four k
// per 32-bit lane, weights int8; vpdpbusd sums four u8 x s8 products into int32 without saturation
// (the "s" variant vpdpbusds saturates; this one wraps, and |acc| <= 255 * 127 * K fits int32).
#include <cmath>
#include <cstring>
#include <immintrin.h>

#include "common.h"

namespace cm_avxvnni {

#include "avx_quant.h"

struct Isa {
  static constexpr int PANEL = 16, KG = 4, NRC = 6, KQ_ALIGN = 1, KC = 256;
  static constexpr bool HAS_GEMV = false;
  static void gemv(const uint32_t*, int, const uint32_t*, size_t, int, int, int32_t*) {}
  template <class Src>
  static void quantize_panel(Src src, int K, int Kq, float L, uint32_t* A, float* mn, float* rx) {
    quantize_panel_avx<PANEL, KG>(src, K, Kq, L, A, mn, rx);
  }
  static void dequantize(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                         bool relu, float* y) {
    dequantize_avx<PANEL>(a, rx, mn, ws, wsum, b, relu, y);
  }
  static void kernel(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add) {
    __m256i c[NRC][2];
    const __m256i* in = reinterpret_cast<const __m256i*>(acc);
    for (int j = 0; j < NRC; ++j) {
      c[j][0] = add ? _mm256_load_si256(in + 2 * j) : _mm256_setzero_si256();
      c[j][1] = add ? _mm256_load_si256(in + 2 * j + 1) : _mm256_setzero_si256();
    }
    for (int kq = 0; kq < Kq; ++kq) {
      const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(A));
      const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(A + 8));
      for (int j = 0; j < NRC; ++j) {
        const __m256i b = _mm256_set1_epi32(static_cast<int>(W[j]));
        c[j][0] = _mm256_dpbusd_avx_epi32(c[j][0], a0, b);
        c[j][1] = _mm256_dpbusd_avx_epi32(c[j][1], a1, b);
      }
      A += PANEL;
      W += NRC;
    }
    __m256i* o = reinterpret_cast<__m256i*>(acc);
    for (int j = 0; j < NRC; ++j) {
      _mm256_store_si256(o + 2 * j, c[j][0]);
      _mm256_store_si256(o + 2 * j + 1, c[j][1]);
    }
  }
};

#include "generic.h"

const cm::IsaOps kOps = {"avxvnni", Isa::PANEL, Isa::KG, Isa::NRC, Isa::KQ_ALIGN, pack_weights_impl, run_tile_impl,
                         quantize_rows_impl};

}  // namespace cm_avxvnni

extern "C" const cm::IsaOps* cm_ops_avxvnni() { return &cm_avxvnni::kOps; }
