// AVX2 path, exact for any input_levels <= 255: q is zero-extended to int16 when the window is
// quantized (two k per 32-bit lane) and multiplied with int16 weights by vpmaddwd, whose int32 pair
// sums (<= 2 * 255 * 127) cannot saturate -- unlike vpmaddubsw, whose int16 pair sums saturate as soon
// as 2 * 255 * 127 > 32767.  vpmaddwd does 16 multiplies per instruction, as many as the
// vpmaddubsw + vpmaddwd(ones) pair does per multiply-port uop.
#include <cmath>
#include <cstring>
#include <immintrin.h>

#include "common.h"

namespace cm_avx2 {

#include "avx_quant.h"

struct Isa {
  // 16 rows (2 ymm of int32 lanes) x 6 channels: 12 accumulators + 2 A vectors + broadcast + product.
  static constexpr int PANEL = 16, KG = 2, NRC = 6, KQ_ALIGN = 2, KC = 256;
  template <class Src>
  static void quantize_panel(Src src, int K, int Kq, float L, uint32_t* A, float* mn, float* rx,
                             const float* pmx = nullptr) {
    quantize_panel_avx<PANEL, KG>(src, K, Kq, L, A, mn, rx, pmx);
  }
  // Few rows (QGemm at batch 1-2): vectors run over channels instead of rows, so no lane is idle.
  // Reads the 6 lanes of a channel block at one k group plus 2 lanes past them (ignored; the packed
  // weights carry padding so the read stays inside the buffer). acc layout as kernel(): [j][PANEL].
  static constexpr bool HAS_GEMV = true;
  template <int NB, int NR>
  static void gemv_t(const uint32_t* A, int Kq, const uint32_t* W, size_t bstride, int32_t* acc) {
    __m256i c[NB][NR];
    for (int b = 0; b < NB; ++b)
      for (int r = 0; r < NR; ++r) c[b][r] = _mm256_setzero_si256();
    for (int kq = 0; kq < Kq; ++kq) {
      __m256i a[NR];
      for (int r = 0; r < NR; ++r) a[r] = _mm256_set1_epi32(static_cast<int>(A[static_cast<size_t>(kq) * PANEL + r]));
      for (int b = 0; b < NB; ++b) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(W + b * bstride + kq * NRC));
        for (int r = 0; r < NR; ++r) c[b][r] = _mm256_add_epi32(c[b][r], _mm256_madd_epi16(w, a[r]));
      }
    }
    alignas(32) int32_t t[8];
    for (int b = 0; b < NB; ++b)
      for (int r = 0; r < NR; ++r) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(t), c[b][r]);
        for (int j = 0; j < NRC; ++j) acc[(b * NRC + j) * PANEL + r] = t[j];
      }
  }
  // nb channel blocks (<= 4) of the first nr rows (<= 2) of a quantized panel.
  static void gemv(const uint32_t* A, int Kq, const uint32_t* W, size_t bstride, int nb, int nr, int32_t* acc) {
    for (int b = 0; b < nb;) {
      const uint32_t* Wb = W + b * bstride;
      int32_t* ab = acc + b * NRC * PANEL;
      if (nb - b >= 4) {
        nr == 1 ? gemv_t<4, 1>(A, Kq, Wb, bstride, ab) : gemv_t<4, 2>(A, Kq, Wb, bstride, ab);
        b += 4;
      } else {
        nr == 1 ? gemv_t<1, 1>(A, Kq, Wb, bstride, ab) : gemv_t<1, 2>(A, Kq, Wb, bstride, ab);
        b += 1;
      }
    }
  }
  // Hand-allocated registers: 12 accumulators (ymm0-11), two A vectors, the broadcast and the product.
  // GCC spills up to seven accumulators of the intrinsics version of this loop (measured 1.4x slower).
  static void dequantize(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                         bool relu, float* y) {
    dequantize_avx<PANEL>(a, rx, mn, ws, wsum, b, relu, y);
  }
  static void dequantize_n(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                           bool relu, float* y, int n) {
    dequantize_n_avx(a, rx, mn, ws, wsum, b, relu, y, n);
  }
  // acc (NRC x PANEL int32) is overwritten, or added to when `add` (k-blocked GEMM).
  static void kernel_n(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add, int) {
    kernel(A, W, Kq, acc, add);
  }
  static void kernel(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add) {
    long n = Kq / 2;  // Kq is even: KQ_ALIGN = 2 (two k groups per loop trip, ~10% faster)
    long addl = add;
    __asm__ volatile(
        "test %[add], %[add]\n\t"
        "jz 2f\n\t"
        "vmovdqu 0(%[c]), %%ymm0\n\t"
        "vmovdqu 32(%[c]), %%ymm1\n\t"
        "vmovdqu 64(%[c]), %%ymm2\n\t"
        "vmovdqu 96(%[c]), %%ymm3\n\t"
        "vmovdqu 128(%[c]), %%ymm4\n\t"
        "vmovdqu 160(%[c]), %%ymm5\n\t"
        "vmovdqu 192(%[c]), %%ymm6\n\t"
        "vmovdqu 224(%[c]), %%ymm7\n\t"
        "vmovdqu 256(%[c]), %%ymm8\n\t"
        "vmovdqu 288(%[c]), %%ymm9\n\t"
        "vmovdqu 320(%[c]), %%ymm10\n\t"
        "vmovdqu 352(%[c]), %%ymm11\n\t"
        "jmp 1f\n\t"
        "2:\n\t"
        "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
        "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"
        "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"
        "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"
        "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"
        "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"
        "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"
        "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"
        "vpxor %%xmm8, %%xmm8, %%xmm8\n\t"
        "vpxor %%xmm9, %%xmm9, %%xmm9\n\t"
        "vpxor %%xmm10, %%xmm10, %%xmm10\n\t"
        "vpxor %%xmm11, %%xmm11, %%xmm11\n\t"
        "1:\n\t"
        "vmovdqu (%[a]), %%ymm12\n\t"
        "vmovdqu 32(%[a]), %%ymm13\n\t"
  #define CM_STEP(off, c0, c1)                       \
        "vpbroadcastd " #off "(%[w]), %%ymm14\n\t"   \
        "vpmaddwd %%ymm14, %%ymm12, %%ymm15\n\t"     \
        "vpaddd %%ymm15, %%" #c0 ", %%" #c0 "\n\t"   \
        "vpmaddwd %%ymm14, %%ymm13, %%ymm15\n\t"     \
        "vpaddd %%ymm15, %%" #c1 ", %%" #c1 "\n\t"
        CM_STEP(0, ymm0, ymm1)
        CM_STEP(4, ymm2, ymm3)
        CM_STEP(8, ymm4, ymm5)
        CM_STEP(12, ymm6, ymm7)
        CM_STEP(16, ymm8, ymm9)
        CM_STEP(20, ymm10, ymm11)
          "vmovdqu 64(%[a]), %%ymm12\n\t"
        "vmovdqu 96(%[a]), %%ymm13\n\t"
        CM_STEP(24, ymm0, ymm1)
        CM_STEP(28, ymm2, ymm3)
        CM_STEP(32, ymm4, ymm5)
        CM_STEP(36, ymm6, ymm7)
        CM_STEP(40, ymm8, ymm9)
        CM_STEP(44, ymm10, ymm11)
#undef CM_STEP
        "add $128, %[a]\n\t"
        "add $48, %[w]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        "vmovdqu %%ymm0, (%[c])\n\t"
        "vmovdqu %%ymm1, 32(%[c])\n\t"
        "vmovdqu %%ymm2, 64(%[c])\n\t"
        "vmovdqu %%ymm3, 96(%[c])\n\t"
        "vmovdqu %%ymm4, 128(%[c])\n\t"
        "vmovdqu %%ymm5, 160(%[c])\n\t"
        "vmovdqu %%ymm6, 192(%[c])\n\t"
        "vmovdqu %%ymm7, 224(%[c])\n\t"
        "vmovdqu %%ymm8, 256(%[c])\n\t"
        "vmovdqu %%ymm9, 288(%[c])\n\t"
        "vmovdqu %%ymm10, 320(%[c])\n\t"
        "vmovdqu %%ymm11, 352(%[c])\n\t"
        : [a] "+r"(A), [w] "+r"(W), [n] "+r"(n)
        : [c] "r"(acc), [add] "r"(addl)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
  }
};

#include "generic.h"

const cm::IsaOps kOps = {"avx2", "avx2-int16", Isa::PANEL, Isa::KG, Isa::NRC, Isa::KQ_ALIGN, pack_weights_impl, run_tile_impl,
                         quantize_rows_impl, run_dw_impl, pad_rows_impl};

}  // namespace cm_avx2

extern "C" const cm::IsaOps* cm_ops_avx2() { return &cm_avx2::kOps; }

// ---------------------------------------------------------------------------------------------------
// u8 x s8 kernels (q as uint8, four k per 32-bit lane, weights int8 -- the VNNI layout), exact only
// for the levels the dispatcher checks (module.cpp kernel_for): vpmaddubsw adds two u8 x s8 products
// into an int16 with signed saturation, so it is exact while 2 * L * max|Wq| <= 32767; the pair-sum
// kernel adds two such results with vpaddw first (exact while 4 * L * max|Wq| <= 32767: BigDL's
// 127 x 64). vpmaddwd with ones then widens to int32 exactly.
alignas(32) static const int16_t kOnes16[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};

// Channel-vectorized GEMV of one or two rows for the u8 x s8 layouts: 8 lanes of W per k group (the
// NRC lanes of one block plus the next ones, ignored), vpmaddubsw + vpmaddwd(ones). Exact under the
// same bound as the kernels. With kq_step = 2 and NRC = 4 the 8 lanes are two k groups of one block:
// lanes 0-3 hold group kq and 4-7 group kq + 1, and the halves are summed at the end.
template <int NRC, int NB, int NR, bool TWO>
static void gemv_u8_t(const uint32_t* A, int Kq, const uint32_t* W, size_t bstride, int32_t* acc, int P) {
  const __m256i ones = _mm256_load_si256(reinterpret_cast<const __m256i*>(kOnes16));
  __m256i c[NB][NR];
  for (int b = 0; b < NB; ++b)
    for (int r = 0; r < NR; ++r) c[b][r] = _mm256_setzero_si256();
  for (int kq = 0; kq < Kq; kq += TWO ? 2 : 1) {
    __m256i a[NR];
    for (int r = 0; r < NR; ++r) {
      const int a0 = static_cast<int>(A[static_cast<size_t>(kq) * P + r]);
      a[r] = TWO ? _mm256_setr_epi32(a0, a0, a0, a0, static_cast<int>(A[static_cast<size_t>(kq + 1) * P + r]),
                                      static_cast<int>(A[static_cast<size_t>(kq + 1) * P + r]),
                                      static_cast<int>(A[static_cast<size_t>(kq + 1) * P + r]),
                                      static_cast<int>(A[static_cast<size_t>(kq + 1) * P + r]))
                 : _mm256_set1_epi32(a0);
    }
    for (int b = 0; b < NB; ++b) {
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(W + b * bstride + kq * NRC));
      for (int r = 0; r < NR; ++r)
        c[b][r] = _mm256_add_epi32(c[b][r], _mm256_madd_epi16(_mm256_maddubs_epi16(a[r], w), ones));
    }
  }
  alignas(32) int32_t t[8];
  for (int b = 0; b < NB; ++b)
    for (int r = 0; r < NR; ++r) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(t), c[b][r]);
      for (int j = 0; j < NRC; ++j) acc[(b * NRC + j) * P + r] = TWO ? t[j] + t[j + 4] : t[j];
    }
}

template <int NRC, bool TWO>
static void gemv_u8(const uint32_t* A, int Kq, const uint32_t* W, size_t bstride, int nb, int nr, int32_t* acc, int P) {
  for (int b = 0; b < nb;) {
    const uint32_t* Wb = W + b * bstride;
    int32_t* ab = acc + b * NRC * P;
    if (nb - b >= 4) {
      nr == 1 ? gemv_u8_t<NRC, 4, 1, TWO>(A, Kq, Wb, bstride, ab, P) : gemv_u8_t<NRC, 4, 2, TWO>(A, Kq, Wb, bstride, ab, P);
      b += 4;
    } else {
      nr == 1 ? gemv_u8_t<NRC, 1, 1, TWO>(A, Kq, Wb, bstride, ab, P) : gemv_u8_t<NRC, 1, 2, TWO>(A, Kq, Wb, bstride, ab, P);
      b += 1;
    }
  }
}

#define CM_LOAD_OR_ZERO_8                                                                                    \
  "test %[add], %[add]\n\t"                                                                                  \
  "jz 2f\n\t"                                                                                                \
  "vmovdqu 0(%[c]), %%ymm0\n\t"                                                                              \
  "vmovdqu 32(%[c]), %%ymm1\n\t"                                                                             \
  "vmovdqu 64(%[c]), %%ymm2\n\t"                                                                             \
  "vmovdqu 96(%[c]), %%ymm3\n\t"                                                                             \
  "vmovdqu 128(%[c]), %%ymm4\n\t"                                                                            \
  "vmovdqu 160(%[c]), %%ymm5\n\t"                                                                            \
  "vmovdqu 192(%[c]), %%ymm6\n\t"                                                                            \
  "vmovdqu 224(%[c]), %%ymm7\n\t"

namespace cm_avx2_u8s8 {

#include "avx_quant.h"

struct Isa {
  // 16 rows x 6 channels as the int16 kernel (same addressing: 64 bytes of A and 24 of W per k group),
  // with vpmaddubsw + vpmaddwd(ones from memory, so the 12 accumulators keep their registers).
  static constexpr int PANEL = 16, KG = 4, NRC = 6, KQ_ALIGN = 2, KC = 256;
  static constexpr bool HAS_GEMV = true;
  template <class Src>
  static void quantize_panel(Src src, int K, int Kq, float L, uint32_t* A, float* mn, float* rx,
                             const float* pmx = nullptr) {
    quantize_panel_avx<PANEL, KG>(src, K, Kq, L, A, mn, rx, pmx);
  }
  static void gemv(const uint32_t* A, int Kq, const uint32_t* W, size_t bstride, int nb, int nr, int32_t* acc) {
    gemv_u8<NRC, false>(A, Kq, W, bstride, nb, nr, acc, PANEL);
  }
  static void dequantize(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                         bool relu, float* y) {
    dequantize_avx<PANEL>(a, rx, mn, ws, wsum, b, relu, y);
  }
  static void dequantize_n(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                           bool relu, float* y, int n) {
    dequantize_n_avx(a, rx, mn, ws, wsum, b, relu, y, n);
  }
  static void kernel_n(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add, int) {
    kernel(A, W, Kq, acc, add);
  }
  static void kernel(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add) {
    long n = Kq / 2;
    long addl = add;
    __asm__ volatile(
        CM_LOAD_OR_ZERO_8
        "vmovdqu 256(%[c]), %%ymm8\n\t"
        "vmovdqu 288(%[c]), %%ymm9\n\t"
        "vmovdqu 320(%[c]), %%ymm10\n\t"
        "vmovdqu 352(%[c]), %%ymm11\n\t"
        "jmp 1f\n\t"
        "2:\n\t"
        "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
        "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"
        "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"
        "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"
        "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"
        "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"
        "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"
        "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"
        "vpxor %%xmm8, %%xmm8, %%xmm8\n\t"
        "vpxor %%xmm9, %%xmm9, %%xmm9\n\t"
        "vpxor %%xmm10, %%xmm10, %%xmm10\n\t"
        "vpxor %%xmm11, %%xmm11, %%xmm11\n\t"
        "1:\n\t"
        "vmovdqu (%[a]), %%ymm12\n\t"
        "vmovdqu 32(%[a]), %%ymm13\n\t"
#define CM_STEP(off, c0, c1)                         \
        "vpbroadcastd " #off "(%[w]), %%ymm14\n\t"   \
        "vpmaddubsw %%ymm14, %%ymm12, %%ymm15\n\t"   \
        "vpmaddwd (%[ones]), %%ymm15, %%ymm15\n\t"   \
        "vpaddd %%ymm15, %%" #c0 ", %%" #c0 "\n\t"   \
        "vpmaddubsw %%ymm14, %%ymm13, %%ymm15\n\t"   \
        "vpmaddwd (%[ones]), %%ymm15, %%ymm15\n\t"   \
        "vpaddd %%ymm15, %%" #c1 ", %%" #c1 "\n\t"
        CM_STEP(0, ymm0, ymm1)
        CM_STEP(4, ymm2, ymm3)
        CM_STEP(8, ymm4, ymm5)
        CM_STEP(12, ymm6, ymm7)
        CM_STEP(16, ymm8, ymm9)
        CM_STEP(20, ymm10, ymm11)
        "vmovdqu 64(%[a]), %%ymm12\n\t"
        "vmovdqu 96(%[a]), %%ymm13\n\t"
        CM_STEP(24, ymm0, ymm1)
        CM_STEP(28, ymm2, ymm3)
        CM_STEP(32, ymm4, ymm5)
        CM_STEP(36, ymm6, ymm7)
        CM_STEP(40, ymm8, ymm9)
        CM_STEP(44, ymm10, ymm11)
#undef CM_STEP
        "add $128, %[a]\n\t"
        "add $48, %[w]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        "vmovdqu %%ymm0, (%[c])\n\t"
        "vmovdqu %%ymm1, 32(%[c])\n\t"
        "vmovdqu %%ymm2, 64(%[c])\n\t"
        "vmovdqu %%ymm3, 96(%[c])\n\t"
        "vmovdqu %%ymm4, 128(%[c])\n\t"
        "vmovdqu %%ymm5, 160(%[c])\n\t"
        "vmovdqu %%ymm6, 192(%[c])\n\t"
        "vmovdqu %%ymm7, 224(%[c])\n\t"
        "vmovdqu %%ymm8, 256(%[c])\n\t"
        "vmovdqu %%ymm9, 288(%[c])\n\t"
        "vmovdqu %%ymm10, 320(%[c])\n\t"
        "vmovdqu %%ymm11, 352(%[c])\n\t"
        : [a] "+r"(A), [w] "+r"(W), [n] "+r"(n)
        : [c] "r"(acc), [add] "r"(addl), [ones] "r"(kOnes16)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
  }
};

#include "generic.h"

const cm::IsaOps kOps = {"avx2", "avx2-u8s8", Isa::PANEL, Isa::KG, Isa::NRC, Isa::KQ_ALIGN, pack_weights_impl,
                         run_tile_impl, quantize_rows_impl, run_dw_impl, pad_rows_impl};

}  // namespace cm_avx2_u8s8

namespace cm_avx2_pair {

#include "avx_quant.h"

struct Isa {
  // 16 rows x 4 channels, two k groups per step: 8 accumulators (ymm0-7), the four A vectors of the two
  // groups (ymm8-11), two weight broadcasts (ymm12-13) and two products (ymm14-15); ones from memory.
  static constexpr int PANEL = 16, KG = 4, NRC = 4, KQ_ALIGN = 2, KC = 256;
  static constexpr bool HAS_GEMV = true;
  template <class Src>
  static void quantize_panel(Src src, int K, int Kq, float L, uint32_t* A, float* mn, float* rx,
                             const float* pmx = nullptr) {
    quantize_panel_avx<PANEL, KG>(src, K, Kq, L, A, mn, rx, pmx);
  }
  static void gemv(const uint32_t* A, int Kq, const uint32_t* W, size_t bstride, int nb, int nr, int32_t* acc) {
    gemv_u8<NRC, true>(A, Kq, W, bstride, nb, nr, acc, PANEL);
  }
  static void dequantize(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                         bool relu, float* y) {
    dequantize_avx<PANEL>(a, rx, mn, ws, wsum, b, relu, y);
  }
  static void dequantize_n(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                           bool relu, float* y, int n) {
    dequantize_n_avx(a, rx, mn, ws, wsum, b, relu, y, n);
  }
  static void kernel_n(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add, int) {
    kernel(A, W, Kq, acc, add);
  }
  static void kernel(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add) {
    long n = Kq / 2;
    long addl = add;
    __asm__ volatile(
        CM_LOAD_OR_ZERO_8
        "jmp 1f\n\t"
        "2:\n\t"
        "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
        "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"
        "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"
        "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"
        "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"
        "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"
        "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"
        "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"
        "1:\n\t"
        "vmovdqu (%[a]), %%ymm8\n\t"
        "vmovdqu 32(%[a]), %%ymm9\n\t"
        "vmovdqu 64(%[a]), %%ymm10\n\t"
        "vmovdqu 96(%[a]), %%ymm11\n\t"
#define CM_STEP(off, c0, c1)                           \
        "vpbroadcastd " #off "(%[w]), %%ymm12\n\t"     \
        "vpbroadcastd 16+" #off "(%[w]), %%ymm13\n\t"  \
        "vpmaddubsw %%ymm12, %%ymm8, %%ymm14\n\t"      \
        "vpmaddubsw %%ymm13, %%ymm10, %%ymm15\n\t"     \
        "vpaddw %%ymm15, %%ymm14, %%ymm14\n\t"         \
        "vpmaddwd (%[ones]), %%ymm14, %%ymm14\n\t"     \
        "vpaddd %%ymm14, %%" #c0 ", %%" #c0 "\n\t"     \
        "vpmaddubsw %%ymm12, %%ymm9, %%ymm14\n\t"      \
        "vpmaddubsw %%ymm13, %%ymm11, %%ymm15\n\t"     \
        "vpaddw %%ymm15, %%ymm14, %%ymm14\n\t"         \
        "vpmaddwd (%[ones]), %%ymm14, %%ymm14\n\t"     \
        "vpaddd %%ymm14, %%" #c1 ", %%" #c1 "\n\t"
        CM_STEP(0, ymm0, ymm1)
        CM_STEP(4, ymm2, ymm3)
        CM_STEP(8, ymm4, ymm5)
        CM_STEP(12, ymm6, ymm7)
#undef CM_STEP
        "add $128, %[a]\n\t"
        "add $32, %[w]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        "vmovdqu %%ymm0, (%[c])\n\t"
        "vmovdqu %%ymm1, 32(%[c])\n\t"
        "vmovdqu %%ymm2, 64(%[c])\n\t"
        "vmovdqu %%ymm3, 96(%[c])\n\t"
        "vmovdqu %%ymm4, 128(%[c])\n\t"
        "vmovdqu %%ymm5, 160(%[c])\n\t"
        "vmovdqu %%ymm6, 192(%[c])\n\t"
        "vmovdqu %%ymm7, 224(%[c])\n\t"
        : [a] "+r"(A), [w] "+r"(W), [n] "+r"(n)
        : [c] "r"(acc), [add] "r"(addl), [ones] "r"(kOnes16)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc");
  }
};

#include "generic.h"

const cm::IsaOps kOps = {"avx2", "avx2-pair", Isa::PANEL, Isa::KG, Isa::NRC, Isa::KQ_ALIGN, pack_weights_impl,
                         run_tile_impl, quantize_rows_impl, run_dw_impl, pad_rows_impl};

}  // namespace cm_avx2_pair

#undef CM_LOAD_OR_ZERO_8

extern "C" const cm::IsaOps* cm_ops_avx2_u8s8() { return &cm_avx2_u8s8::kOps; }
extern "C" const cm::IsaOps* cm_ops_avx2_pair() { return &cm_avx2_pair::kOps; }
