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
  static constexpr int PANEL = 16, KG = 4, NRC = 6, KQ_ALIGN = 2, KC = 256;
  // One or two rows (a batch-1/2 fully connected layer): vectors over the 6 channels of a block (8 lanes
  // loaded, 2 ignored; the packed weights carry padding), memory-bound on the weights.
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
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(W + b * bstride + static_cast<size_t>(kq) * NRC));
        for (int r = 0; r < NR; ++r) c[b][r] = _mm256_dpbusd_avx_epi32(c[b][r], a[r], w);
      }
    }
    alignas(32) int32_t t[8];
    for (int b = 0; b < NB; ++b)
      for (int r = 0; r < NR; ++r) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(t), c[b][r]);
        for (int j = 0; j < NRC; ++j) acc[(b * NRC + j) * PANEL + r] = t[j];
      }
  }
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
  template <class Src>
  static void quantize_panel(Src src, int K, int Kq, float L, uint32_t* A, float* mn, float* rx,
                             const float* pmx = nullptr) {
    quantize_panel_avx<PANEL, KG>(src, K, Kq, L, A, mn, rx, pmx);
  }
  static void dequantize(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                         bool relu, float* y) {
    dequantize_avx<PANEL>(a, rx, mn, ws, wsum, b, relu, y);
  }
  static void dequantize_n(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                           bool relu, float* y, int n) {
    dequantize_n_avx(a, rx, mn, ws, wsum, b, relu, y, n);
  }
  // Hand-allocated registers as the AVX2 kernel (GCC 12 spills the intrinsics version's accumulators):
  // 12 accumulators ymm0-11 (channel j: ymm 2j, 2j+1), A ymm12-13, the weight broadcast ymm14; two k groups
  // per loop trip (Kq is even: KQ_ALIGN = 2).
  static void kernel_n(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add, int) {
    kernel(A, W, Kq, acc, add);
  }
  static void kernel(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add) {
    long n = Kq / 2;
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
        "vmovdqu 0(%[a]), %%ymm12\n\t"
        "vmovdqu 32(%[a]), %%ymm13\n\t"
        "vpbroadcastd 0(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm0\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm1\n\t"
        "vpbroadcastd 4(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm2\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm3\n\t"
        "vpbroadcastd 8(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm4\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm5\n\t"
        "vpbroadcastd 12(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm6\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm7\n\t"
        "vpbroadcastd 16(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm8\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm9\n\t"
        "vpbroadcastd 20(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm10\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm11\n\t"
        "vmovdqu 64(%[a]), %%ymm12\n\t"
        "vmovdqu 96(%[a]), %%ymm13\n\t"
        "vpbroadcastd 24(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm0\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm1\n\t"
        "vpbroadcastd 28(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm2\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm3\n\t"
        "vpbroadcastd 32(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm4\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm5\n\t"
        "vpbroadcastd 36(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm6\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm7\n\t"
        "vpbroadcastd 40(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm8\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm9\n\t"
        "vpbroadcastd 44(%[w]), %%ymm14\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm12, %%ymm10\n\t"
        "%{vex%} vpdpbusd %%ymm14, %%ymm13, %%ymm11\n\t"
        "add $128, %[a]\n\t"
        "add $48, %[w]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        "vmovdqu %%ymm0, 0(%[c])\n\t"
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
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "memory", "cc");
  }
};

#include "generic.h"

const cm::IsaOps kOps = {"avxvnni", "avxvnni-vpdpbusd", Isa::PANEL, Isa::KG, Isa::NRC, Isa::KQ_ALIGN, pack_weights_impl, run_tile_impl,
                         quantize_rows_impl, run_dw_impl, pad_rows_impl};

}  // namespace cm_avxvnni

extern "C" const cm::IsaOps* cm_ops_avxvnni() { return &cm_avxvnni::kOps; }
