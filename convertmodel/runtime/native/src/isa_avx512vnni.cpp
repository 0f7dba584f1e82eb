// AVX-512 VNNI path (EVEX vpdpbusd on 512-bit registers: Cascade Lake+, Zen 4): 32-row panels (two
// zmm of int32 lanes, four u8 k per lane) x 12 channels = 24 accumulators of the 32 zmm registers.
// The window quantization reuses the 256-bit code (it is a small part of the work).
#include <cmath>
#include <cstring>
#include <immintrin.h>

#include "common.h"

namespace cm_avx512vnni {

#include "avx_quant.h"

struct Isa {
  static constexpr int PANEL = 32, KG = 4, NRC = 12, KQ_ALIGN = 1, KC = 128;
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
    __m512i c[NRC][2];
    for (int j = 0; j < NRC; ++j) {
      c[j][0] = add ? _mm512_loadu_si512(acc + j * PANEL) : _mm512_setzero_si512();
      c[j][1] = add ? _mm512_loadu_si512(acc + j * PANEL + 16) : _mm512_setzero_si512();
    }
    for (int kq = 0; kq < Kq; ++kq) {
      const __m512i a0 = _mm512_loadu_si512(A);
      const __m512i a1 = _mm512_loadu_si512(A + 16);
      for (int j = 0; j < NRC; ++j) {
        const __m512i b = _mm512_set1_epi32(static_cast<int>(W[j]));
        c[j][0] = _mm512_dpbusd_epi32(c[j][0], a0, b);
        c[j][1] = _mm512_dpbusd_epi32(c[j][1], a1, b);
      }
      A += PANEL;
      W += NRC;
    }
    for (int j = 0; j < NRC; ++j) {
      _mm512_storeu_si512(acc + j * PANEL, c[j][0]);
      _mm512_storeu_si512(acc + j * PANEL + 16, c[j][1]);
    }
  }
};

#include "generic.h"

const cm::IsaOps kOps = {"avx512vnni", Isa::PANEL, Isa::KG, Isa::NRC, Isa::KQ_ALIGN, pack_weights_impl, run_tile_impl,
                         quantize_rows_impl};

}  // namespace cm_avx512vnni

extern "C" const cm::IsaOps* cm_ops_avx512vnni() { return &cm_avx512vnni::kOps; }
