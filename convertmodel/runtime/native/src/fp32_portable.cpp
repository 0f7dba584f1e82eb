// Portable fp32 kernels (any CPU, ARM included): 4-float "vectors" as plain arrays whose loops the
// compiler may auto-vectorize for the baseline ISA (SSE2 on x86-64, NEON on AArch64).
#include "fp32.h"

namespace cm_fp32_portable {

struct V {
  struct T {
    float v[4];
  };
  static constexpr int W = 4;
  static T zero() { return T{{0.0f, 0.0f, 0.0f, 0.0f}}; }
  static T load(const float* p) { return T{{p[0], p[1], p[2], p[3]}}; }
  static void store(float* p, T a) {
    for (int i = 0; i < 4; ++i) p[i] = a.v[i];
  }
  static void store_part(float* p, T a, int n) {
    for (int i = 0; i < n; ++i) p[i] = a.v[i];
  }
  static T load_part(const float* p, int n) {
    T a = zero();
    for (int i = 0; i < n; ++i) a.v[i] = p[i];
    return a;
  }
  // Lanes l in [lo, hi) from p[l], the others 0.
  static T load_range(const float* p, int lo, int hi) {
    T a = zero();
    for (int i = lo; i < hi; ++i) a.v[i] = p[i];
    return a;
  }
  static T set1(float s) { return T{{s, s, s, s}}; }
  static T fma(T a, T b, T c) {
    T r;
    for (int i = 0; i < 4; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i];
    return r;
  }
  static T add(T a, T b) {
    T r;
    for (int i = 0; i < 4; ++i) r.v[i] = a.v[i] + b.v[i];
    return r;
  }
  // Same operand order rule as x86 max/min: the second operand wins when either is NaN.
  static T max(T a, T b) {
    T r;
    for (int i = 0; i < 4; ++i) r.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
    return r;
  }
  static T min(T a, T b) {
    T r;
    for (int i = 0; i < 4; ++i) r.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i];
    return r;
  }
  // Lanes 0, 2, 4, ... of the 2W floats a:b (a stride-2 gather from two loads).
  static T even(T a, T b) { return T{{a.v[0], a.v[2], b.v[0], b.v[2]}}; }
  static T odd(T a, T b) { return T{{a.v[1], a.v[3], b.v[1], b.v[3]}}; }
  // max(r, s) that is NaN when either is (s's NaN when both): MaxPool's rule.
  static T maxnan(T r, T s) {
    T o;
    for (int i = 0; i < 4; ++i) o.v[i] = (s.v[i] > r.v[i] || s.v[i] != s.v[i]) ? s.v[i] : r.v[i];
    return o;
  }
};
static constexpr int MR = 4, NV = 2;
static constexpr int CPR = 0;  // pixels per channel-vectorized tile (0: none)

#include "fp32_impl.h"

}  // namespace cm_fp32_portable

extern "C" const cmf::Fp32Ops* cm_fp32_ops_portable() { return cm_fp32_portable::make_ops("portable"); }
