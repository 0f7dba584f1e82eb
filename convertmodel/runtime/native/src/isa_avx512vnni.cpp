// AVX-512 VNNI path (EVEX vpdpbusd on 512-bit registers: Cascade Lake+, Zen 4): 32-row panels (two
// zmm of int32 lanes, four u8 k per lane) x 12 channels = 24 accumulators of the 32 zmm registers.
// The window quantization reuses the 256-bit code (it is a small part of the work).
#include <cmath>
#include <cstring>
#include <immintrin.h>

#include "common.h"

namespace cm_avx512vnni {

#include "avx_quant.h"

// The contract's window quantization on 16 rows per zmm: sub, mul, add 0.5 as separate float32 ops (the TU is
// compiled with -ffp-contract=off), then floor and the conversion in one vcvtps2dq with round-down embedded
// rounding (floor(f) is an integer below 2^24, so converting it is exact: the same code as floor + cvtt). The
// clip to [0, L] is not needed while s = L / (mx - mn) is finite: v >= mn gives d >= 0, and e <= L * (1 + 2^-22)
// keeps floor(e + 0.5) <= L. A NaN (a window holding an infinity or a NaN) converts to INT_MIN: the shifts drop
// its bits for k = 1..3 and the first code of a lane is masked to its byte, so it becomes 0, as the clip gives.
// A live window whose range is below L / FLT_MAX has s = +inf (e = +inf, which the clip makes L): such a
// 16-row chunk takes the clipped code, min(L, e) before the conversion and max(q, 0) after.
template <int P, class Src>
static void quantize_panel_avx512(Src src, int K, int Kq, float L, uint32_t* A, float* mn_out, float* rx_out,
                                  const float* pmx) {
  static_assert(P % 16 == 0, "panel must be a multiple of 16 rows");
  const __m512 vL = _mm512_set1_ps(L), half = _mm512_set1_ps(0.5f), inf = _mm512_set1_ps(INFINITY);
  const __m512i zero = _mm512_setzero_si512(), byte = _mm512_set1_epi32(0xff);
  for (int c = 0; c < P; c += 16) {
    __m512 mn, mx;
    if (pmx) {  // precomputed window min (in mn_out) and max
      mn = _mm512_loadu_ps(mn_out + c);
      mx = _mm512_loadu_ps(pmx + c);
    } else {
      mn = mx = _mm512_loadu_ps(src(0) + c);
      // min_ps returns its second operand when either is NaN: the window's NaNs are OR-ed into a mask that makes
      // mn NaN at the end (mx > mn is then false: not live, q = 0, r_x = 0, and mn * w_sum makes y NaN).
      __mmask16 nan = _mm512_cmp_ps_mask(mn, mn, _CMP_UNORD_Q);
      for (int k = 1; k < K; ++k) {
        const __m512 v = _mm512_loadu_ps(src(k) + c);
        mn = _mm512_min_ps(mn, v);
        mx = _mm512_max_ps(mx, v);
        nan = static_cast<__mmask16>(nan | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
      }
      mn = _mm512_mask_mov_ps(mn, nan, _mm512_set1_ps(NAN));
    }
    const __m512 d = _mm512_sub_ps(mx, mn);
    const __mmask16 live = _mm512_cmp_ps_mask(mx, mn, _CMP_GT_OQ);
    const __m512 s = _mm512_div_ps(vL, d);
    _mm512_storeu_ps(mn_out + c, mn);
    _mm512_storeu_ps(rx_out + c, _mm512_maskz_div_ps(live, d, vL));
    const bool clip = _mm512_mask_cmp_ps_mask(live, s, inf, _CMP_EQ_OQ) != 0;
    auto code = [&](int k) {
      const __m512 v = _mm512_loadu_ps(src(k) + c);
      const __m512 e = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(v, mn), s), half);
      return _mm512_cvt_roundps_epi32(e, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    };
    auto code_clipped = [&](int k) {
      const __m512 v = _mm512_loadu_ps(src(k) + c);
      const __m512 e = _mm512_min_ps(vL, _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(v, mn), s), half));
      return _mm512_max_epi32(_mm512_cvt_roundps_epi32(e, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), zero);
    };
    const int full = K / 4;
    if (!clip) {
      for (int kq = 0; kq < full; ++kq) {
        const int k = kq * 4;
        const __m512i q0 = code(k), q1 = code(k + 1), q2 = code(k + 2), q3 = code(k + 3);
        const __m512i lane = _mm512_ternarylogic_epi32(_mm512_and_si512(q0, byte), _mm512_slli_epi32(q1, 8),
                                                       _mm512_slli_epi32(q2, 16), 0xfe);
        _mm512_storeu_si512(A + static_cast<size_t>(kq) * P + c,
                            _mm512_maskz_or_epi32(live, lane, _mm512_slli_epi32(q3, 24)));
      }
    } else {
      for (int kq = 0; kq < full; ++kq) {
        const int k = kq * 4;
        const __m512i q0 = code_clipped(k), q1 = code_clipped(k + 1), q2 = code_clipped(k + 2), q3 = code_clipped(k + 3);
        const __m512i lane = _mm512_ternarylogic_epi32(q0, _mm512_slli_epi32(q1, 8), _mm512_slli_epi32(q2, 16), 0xfe);
        _mm512_storeu_si512(A + static_cast<size_t>(kq) * P + c,
                            _mm512_maskz_or_epi32(live, lane, _mm512_slli_epi32(q3, 24)));
      }
    }
    for (int kq = full; kq < Kq; ++kq) {
      __m512i lane = zero;
      for (int t = 0; t < 4; ++t) {
        const int k = kq * 4 + t;
        if (k >= K) break;
        const __m512i q = clip ? code_clipped(k) : _mm512_and_si512(code(k), byte);
        lane = _mm512_or_si512(lane, _mm512_slli_epi32(q, 8 * t));
      }
      _mm512_storeu_si512(A + static_cast<size_t>(kq) * P + c, _mm512_maskz_mov_epi32(live, lane));
    }
  }
}

struct Isa {
  // KC: no k blocking. A panel (Kq x 32 lanes) and a weight block stream from L2 well; blocks of 128 lanes
  // cost their int32 partial-sum round trips (VGG16 conv2-5 2% slower, measured).
  static constexpr int PANEL = 32, KG = 4, NRC = 12, KQ_ALIGN = 1, KC = 1 << 20;
  // One or two rows (a batch-1/2 fully connected layer): vectors over the 12 channels of a block (16 lanes
  // loaded, 4 ignored; the packed weights carry padding), memory-bound on the weights.
  static constexpr bool HAS_GEMV = true;
  template <int NB, int NR>
  static void gemv_t(const uint32_t* A, int Kq, const uint32_t* W, size_t bstride, int32_t* acc) {
    __m512i c[NB][NR];
    for (int b = 0; b < NB; ++b)
      for (int r = 0; r < NR; ++r) c[b][r] = _mm512_setzero_si512();
    for (int kq = 0; kq < Kq; ++kq) {
      __m512i a[NR];
      for (int r = 0; r < NR; ++r) a[r] = _mm512_set1_epi32(static_cast<int>(A[static_cast<size_t>(kq) * PANEL + r]));
      for (int b = 0; b < NB; ++b) {
        const __m512i w = _mm512_loadu_si512(W + b * bstride + static_cast<size_t>(kq) * NRC);
        for (int r = 0; r < NR; ++r) c[b][r] = _mm512_dpbusd_epi32(c[b][r], a[r], w);
      }
    }
    alignas(64) int32_t t[16];
    for (int b = 0; b < NB; ++b)
      for (int r = 0; r < NR; ++r) {
        _mm512_store_si512(t, c[b][r]);
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
    quantize_panel_avx512<PANEL>(src, K, Kq, L, A, mn, rx, pmx);
  }
  static void dequantize(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                         bool relu, float* y) {
    dequantize_n(a, rx, mn, ws, wsum, b, relu, y, PANEL);
  }
  // n (1..PANEL) rows at any offset, 16 per zmm (plain loads and stores), a masked last vector; the same op
  // order as dequantize_avx.
  static void dequantize_n(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                           bool relu, float* y, int n) {
    // ReLU as max_ps(zero, v): v when v is NaN (numpy.maximum keeps NaN); v = -0.0 (numpy gives +0.0) needs
    // b = -0.0, which b + 0.0f turns into +0.0 (see dequantize_avx).
    const __m512 vws = _mm512_set1_ps(ws), vsum = _mm512_set1_ps(wsum), vb = _mm512_set1_ps(relu ? b + 0.0f : b);
    auto one = [&](__m512 vrx, __m512i va, __m512 vmn) {
      __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(va), _mm512_mul_ps(vrx, vws));
      v = _mm512_add_ps(v, _mm512_mul_ps(vmn, vsum));
      v = _mm512_add_ps(v, vb);
      return relu ? _mm512_max_ps(_mm512_setzero_ps(), v) : v;
    };
    int r = 0;
    for (; r + 16 <= n; r += 16)
      _mm512_storeu_ps(y + r, one(_mm512_loadu_ps(rx + r), _mm512_loadu_si512(a + r), _mm512_loadu_ps(mn + r)));
    if (r < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - r)) - 1u);
      _mm512_mask_storeu_ps(y + r, m, one(_mm512_maskz_loadu_ps(m, rx + r), _mm512_maskz_loadu_epi32(m, a + r),
                                          _mm512_maskz_loadu_ps(m, mn + r)));
    }
  }
  // The last channel block of a group when it holds at most 8 channels (64 = 5 x 12 + 4, 128 = 10 x 12 + 8):
  // NCH channels of the 12-lane weight block, 2 * NCH accumulators (few enough that GCC keeps them in
  // registers), instead of the 12-channel kernel computing 12.
  template <int NCH>
  static void kernel_t(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add) {
    __m512i c[2 * NCH];
    for (int j = 0; j < 2 * NCH; ++j) c[j] = add ? _mm512_loadu_si512(acc + j * 16) : _mm512_setzero_si512();
    for (int kq = 0; kq < Kq; ++kq) {
      const __m512i a0 = _mm512_loadu_si512(A + static_cast<size_t>(kq) * PANEL);
      const __m512i a1 = _mm512_loadu_si512(A + static_cast<size_t>(kq) * PANEL + 16);
      const uint32_t* w = W + static_cast<size_t>(kq) * NRC;
      for (int j = 0; j < NCH; ++j) {
        const __m512i b = _mm512_set1_epi32(static_cast<int>(w[j]));
        c[2 * j] = _mm512_dpbusd_epi32(c[2 * j], a0, b);
        c[2 * j + 1] = _mm512_dpbusd_epi32(c[2 * j + 1], a1, b);
      }
    }
    for (int j = 0; j < 2 * NCH; ++j) _mm512_storeu_si512(acc + j * 16, c[j]);
  }
  // nch (1..NRC) channels of a block.
  static void kernel_n(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add, int nch) {
    if (nch <= 4)
      kernel_t<4>(A, W, Kq, acc, add);
    else if (nch <= 8)
      kernel_t<8>(A, W, Kq, acc, add);
    else
      kernel(A, W, Kq, acc, add);
  }
  // Hand-allocated registers (GCC 12 copies every vpdpbusd accumulator through the stack when this loop is
  // written with intrinsics: measured 1.6x slower): accumulators zmm0-23 (channel j: zmm 2j, 2j+1 = rows
  // 0-15, 16-31), the two A vectors zmm24-25, weight broadcasts zmm26-27.
  static void kernel(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add) {
    long n = Kq;
    long addl = add;
    __asm__ volatile(
        "test %[add], %[add]\n\t"
        "jz 2f\n\t"
        "vmovdqu32 0(%[c]), %%zmm0\n\t"
        "vmovdqu32 64(%[c]), %%zmm1\n\t"
        "vmovdqu32 128(%[c]), %%zmm2\n\t"
        "vmovdqu32 192(%[c]), %%zmm3\n\t"
        "vmovdqu32 256(%[c]), %%zmm4\n\t"
        "vmovdqu32 320(%[c]), %%zmm5\n\t"
        "vmovdqu32 384(%[c]), %%zmm6\n\t"
        "vmovdqu32 448(%[c]), %%zmm7\n\t"
        "vmovdqu32 512(%[c]), %%zmm8\n\t"
        "vmovdqu32 576(%[c]), %%zmm9\n\t"
        "vmovdqu32 640(%[c]), %%zmm10\n\t"
        "vmovdqu32 704(%[c]), %%zmm11\n\t"
        "vmovdqu32 768(%[c]), %%zmm12\n\t"
        "vmovdqu32 832(%[c]), %%zmm13\n\t"
        "vmovdqu32 896(%[c]), %%zmm14\n\t"
        "vmovdqu32 960(%[c]), %%zmm15\n\t"
        "vmovdqu32 1024(%[c]), %%zmm16\n\t"
        "vmovdqu32 1088(%[c]), %%zmm17\n\t"
        "vmovdqu32 1152(%[c]), %%zmm18\n\t"
        "vmovdqu32 1216(%[c]), %%zmm19\n\t"
        "vmovdqu32 1280(%[c]), %%zmm20\n\t"
        "vmovdqu32 1344(%[c]), %%zmm21\n\t"
        "vmovdqu32 1408(%[c]), %%zmm22\n\t"
        "vmovdqu32 1472(%[c]), %%zmm23\n\t"
        "jmp 1f\n\t"
        "2:\n\t"
        "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
        "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
        "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
        "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
        "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
        "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
        "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
        "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
        "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
        "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
        "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
        "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
        "vpxord %%zmm12, %%zmm12, %%zmm12\n\t"
        "vpxord %%zmm13, %%zmm13, %%zmm13\n\t"
        "vpxord %%zmm14, %%zmm14, %%zmm14\n\t"
        "vpxord %%zmm15, %%zmm15, %%zmm15\n\t"
        "vpxord %%zmm16, %%zmm16, %%zmm16\n\t"
        "vpxord %%zmm17, %%zmm17, %%zmm17\n\t"
        "vpxord %%zmm18, %%zmm18, %%zmm18\n\t"
        "vpxord %%zmm19, %%zmm19, %%zmm19\n\t"
        "vpxord %%zmm20, %%zmm20, %%zmm20\n\t"
        "vpxord %%zmm21, %%zmm21, %%zmm21\n\t"
        "vpxord %%zmm22, %%zmm22, %%zmm22\n\t"
        "vpxord %%zmm23, %%zmm23, %%zmm23\n\t"
        "1:\n\t"
        "vmovdqu32 (%[a]), %%zmm24\n\t"
        "vmovdqu32 64(%[a]), %%zmm25\n\t"
        "vpbroadcastd 0(%[w]), %%zmm26\n\t"
        "vpdpbusd %%zmm26, %%zmm24, %%zmm0\n\t"
        "vpdpbusd %%zmm26, %%zmm25, %%zmm1\n\t"
        "vpbroadcastd 4(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm2\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm3\n\t"
        "vpbroadcastd 8(%[w]), %%zmm26\n\t"
        "vpdpbusd %%zmm26, %%zmm24, %%zmm4\n\t"
        "vpdpbusd %%zmm26, %%zmm25, %%zmm5\n\t"
        "vpbroadcastd 12(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm6\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm7\n\t"
        "vpbroadcastd 16(%[w]), %%zmm26\n\t"
        "vpdpbusd %%zmm26, %%zmm24, %%zmm8\n\t"
        "vpdpbusd %%zmm26, %%zmm25, %%zmm9\n\t"
        "vpbroadcastd 20(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm10\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm11\n\t"
        "vpbroadcastd 24(%[w]), %%zmm26\n\t"
        "vpdpbusd %%zmm26, %%zmm24, %%zmm12\n\t"
        "vpdpbusd %%zmm26, %%zmm25, %%zmm13\n\t"
        "vpbroadcastd 28(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm14\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm15\n\t"
        "vpbroadcastd 32(%[w]), %%zmm26\n\t"
        "vpdpbusd %%zmm26, %%zmm24, %%zmm16\n\t"
        "vpdpbusd %%zmm26, %%zmm25, %%zmm17\n\t"
        "vpbroadcastd 36(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm18\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm19\n\t"
        "vpbroadcastd 40(%[w]), %%zmm26\n\t"
        "vpdpbusd %%zmm26, %%zmm24, %%zmm20\n\t"
        "vpdpbusd %%zmm26, %%zmm25, %%zmm21\n\t"
        "vpbroadcastd 44(%[w]), %%zmm27\n\t"
        "vpdpbusd %%zmm27, %%zmm24, %%zmm22\n\t"
        "vpdpbusd %%zmm27, %%zmm25, %%zmm23\n\t"
        "add $128, %[a]\n\t"
        "add $48, %[w]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        "vmovdqu32 %%zmm0, 0(%[c])\n\t"
        "vmovdqu32 %%zmm1, 64(%[c])\n\t"
        "vmovdqu32 %%zmm2, 128(%[c])\n\t"
        "vmovdqu32 %%zmm3, 192(%[c])\n\t"
        "vmovdqu32 %%zmm4, 256(%[c])\n\t"
        "vmovdqu32 %%zmm5, 320(%[c])\n\t"
        "vmovdqu32 %%zmm6, 384(%[c])\n\t"
        "vmovdqu32 %%zmm7, 448(%[c])\n\t"
        "vmovdqu32 %%zmm8, 512(%[c])\n\t"
        "vmovdqu32 %%zmm9, 576(%[c])\n\t"
        "vmovdqu32 %%zmm10, 640(%[c])\n\t"
        "vmovdqu32 %%zmm11, 704(%[c])\n\t"
        "vmovdqu32 %%zmm12, 768(%[c])\n\t"
        "vmovdqu32 %%zmm13, 832(%[c])\n\t"
        "vmovdqu32 %%zmm14, 896(%[c])\n\t"
        "vmovdqu32 %%zmm15, 960(%[c])\n\t"
        "vmovdqu32 %%zmm16, 1024(%[c])\n\t"
        "vmovdqu32 %%zmm17, 1088(%[c])\n\t"
        "vmovdqu32 %%zmm18, 1152(%[c])\n\t"
        "vmovdqu32 %%zmm19, 1216(%[c])\n\t"
        "vmovdqu32 %%zmm20, 1280(%[c])\n\t"
        "vmovdqu32 %%zmm21, 1344(%[c])\n\t"
        "vmovdqu32 %%zmm22, 1408(%[c])\n\t"
        "vmovdqu32 %%zmm23, 1472(%[c])\n\t"
        : [a] "+r"(A), [w] "+r"(W), [n] "+r"(n)
        : [c] "r"(acc), [add] "r"(addl)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "memory", "cc");
  }
};

#include "generic.h"

const cm::IsaOps kOps = {"avx512vnni", "avx512vnni-vpdpbusd", Isa::PANEL, Isa::KG, Isa::NRC, Isa::KQ_ALIGN, pack_weights_impl, run_tile_impl,
                         quantize_rows_impl, run_dw_impl, pad_rows_impl};

}  // namespace cm_avx512vnni

extern "C" const cm::IsaOps* cm_ops_avx512vnni() { return &cm_avx512vnni::kOps; }
