// Portable C++ path: int16 pairs (KG = 2), scalar loops the compiler may auto-vectorize.
#include <cmath>
#include <cstring>

#include "common.h"

namespace cm_portable {

struct Isa {
  static constexpr int PANEL = 8, KG = 2, NRC = 4, KQ_ALIGN = 1, KC = 256;
  static constexpr bool HAS_GEMV = false;
  static void gemv(const uint32_t*, int, const uint32_t*, size_t, int, int, int32_t*) {}
  template <class Src>
  static void quantize_panel(Src src, int K, int Kq, float L, uint32_t* A, float* mn, float* rx,
                             const float* pmx = nullptr);
  static void dequantize(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                         bool relu, float* y);
  static void dequantize_n(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                           bool relu, float* y, int n);
  static void kernel_n(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add, int) {
    kernel(A, W, Kq, acc, add);
  }
  static void kernel(const uint32_t* A, const uint32_t* W, int Kq, int32_t* acc, bool add) {
    int32_t c[NRC][PANEL] = {};
    if (add) std::memcpy(c, acc, sizeof(c));
    for (int kq = 0; kq < Kq; ++kq) {
      const uint32_t* a = A + static_cast<size_t>(kq) * PANEL;
      const uint32_t* w = W + static_cast<size_t>(kq) * NRC;
      for (int j = 0; j < NRC; ++j) {
        const int32_t w0 = static_cast<int16_t>(w[j] & 0xffffu), w1 = static_cast<int16_t>(w[j] >> 16);
        for (int r = 0; r < PANEL; ++r)
          c[j][r] += static_cast<int32_t>(a[r] & 0xffffu) * w0 + static_cast<int32_t>(a[r] >> 16) * w1;
      }
    }
    std::memcpy(acc, c, sizeof(c));
  }
};

#include "generic.h"

template <class Src>
void Isa::quantize_panel(Src src, int K, int Kq, float L, uint32_t* A, float* mn, float* rx, const float* pmx) {
  quantize_panel_scalar(src, K, Kq, L, A, mn, rx, pmx);
}

void Isa::dequantize(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b, bool relu,
                     float* y) {
  dequantize_scalar(a, rx, mn, ws, wsum, b, relu, y);
}

void Isa::dequantize_n(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b, bool relu,
                       float* y, int n) {
  dequantize_n_scalar(a, rx, mn, ws, wsum, b, relu, y, n);
}

const cm::IsaOps kOps = {"portable", "portable-int16", Isa::PANEL, Isa::KG, Isa::NRC, Isa::KQ_ALIGN, pack_weights_impl, run_tile_impl,
                         quantize_rows_impl, run_dw_impl, pad_rows_impl};

}  // namespace cm_portable

extern "C" const cm::IsaOps* cm_ops_portable() { return &cm_portable::kOps; }
