// Shared declarations of the native fp32 kernels (Conv, Gemm, pooling).
//
// Like common.h for the int8 kernels: every ISA unit (fp32_avx512.cpp, fp32_avx2.cpp,
// fp32_portable.cpp) is compiled with its own -m flags and exports one Fp32Ops table;
// fp32_module.cpp and fp32_conv.cpp (baseline flags) validate arguments, split the work and pick a table at run
// time.  This header holds plain structs, declarations and `static inline` size helpers only (internal
// linkage), so nothing compiled with AVX-512 flags can leak into baseline code through the linker.
//
// All sizes and offsets are int64: the module validates every geometry in 64-bit arithmetic
// before a kernel touches memory.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace cmf {

using i64 = int64_t;

// Per-channel epilogue y = clip(acc * scale[c] + shift[c] (+ res), lo, hi); scale/shift are never null;
// res (conv only) is null or a tensor of the output's shape (a fused residual Add).
struct Post {
  const float* scale;
  const float* shift;
  float lo, hi;
  const float* res;
};

// Convolution as GEMM: out[n, g*Mg + m, p] = sum_k A[g, m, k] * X(n, g, k, p).
// Columns q in [0, N * P) run over (sample, output position), so small images batch together.
// X is read through the (optionally padded) input xp (N, C, Hp, Wp).
struct ConvJob {
  const float* xp;         // padded input (N, C, Hp, Wp)
  i64 N, C, Hp, Wp;        // padded input shape
  i64 kh, kw, sh, sw, dh, dw;
  i64 OH, OW, P;           // output spatial, P = OH * OW
  i64 G, Cg, Mg, M, K;     // groups, input/output channels per group, M = G * Mg, K = Cg * kh * kw
  const float* A;          // packed weights: per group, per m panel: [K][MR]
  const i64* koff;         // (K,): input offset of k = (c, ky, kx) inside one sample's group
  Post post;
  float* out;              // (N, M, OH, OW)
  // Stride 1 (sh == sw == 1): B read in place from xp over the padded-width column index q' = oy * Wp + ox
  // (conv_item's q0 / nq then count columns of NR-wide panels, see conv_direct_impl); else packed im2col.
  bool direct;
  const float* A2;         // cvec_item only: weights per group in panels of CM = cm channels: [K][CM]
};

// Dense: out[r, j] = sum_k X[r, k] * B[k, j]; B packed once in NR panels [K][NR].
struct GemmJob {
  const float* x;  // (R, K)
  i64 R, K, Ncol;
  const float* B;  // packed: ceil(Ncol / NR) panels of [K][NR]
  Post post;       // per column (scale/shift have Ncol entries)
  float* out;      // (R, Ncol)
};

// Depthwise / channel-multiplier convolution (Cg == 1): one output plane per (n, m).
struct DwJob {
  const float* x;  // unpadded input (N, C, H, W)
  i64 N, C, H, W;
  i64 kh, kw, sh, sw, dh, dw, ph, pw;  // ph / pw: begin pads
  i64 OH, OW, M, mult;                 // mult = M / C output channels per input channel
  const float* w;                      // (M, kh * kw)
  Post post;
  float* out;                          // (N, M, OH, OW)
};

struct PoolJob {
  const float* x;  // (N*C planes, H, W)
  i64 H, W, kh, kw, sh, sw, dh, dw, ph, pw, pe_h, pe_w;  // pe_*: end pads (count_include_pad extent)
  i64 OH, OW;
  int kind;        // 0 max, 1 average, 2 global average
  bool include_pad;
  float* out;
};

struct Fp32Ops {
  const char* name;
  int mr, nr, kc, vw;  // vector lanes vw; micro-kernel rows (weights / X rows), columns (vector lanes), k block
  // Pack conv weights (G*Mg, K) row-major into per-group MR panels [K][MR] (zero-padded rows).
  void (*pack_a)(const float* w, i64 G, i64 Mg, i64 K, float* out);
  // Pack dense weights B (K, Ncol) row-major (or (Ncol, K) when trans) into NR panels [K][NR].
  void (*pack_b)(const float* b, i64 K, i64 Ncol, bool trans, float alpha, float* out);
  // Columns [q0, q0 + nq) of group g, channels [m0, m1) of the group. scratch: conv_scratch floats.
  void (*conv_item)(const ConvJob& j, i64 g, i64 q0, i64 nq, i64 m0, i64 m1, float* scratch);
  // Rows [r0, r0 + nr) x columns [c0, c1) (c0 a multiple of NR). scratch: gemm_scratch floats.
  void (*gemm_item)(const GemmJob& j, i64 r0, i64 nr, i64 c0, i64 c1, float* scratch);
  // Output planes [p0, p1) of the N * M planes. scratch: padded plane floats.
  void (*dw_item)(const DwJob& j, i64 p0, i64 p1, float* scratch);
  void (*pool_item)(const PoolJob& j, i64 p0, i64 p1, float* scratch);
  // Channel-vectorized direct convolution for narrow maps (null where the unit has none): cm channels per
  // vector panel (weights [K][cm] per group, ConvJob::A2), up to cpr output pixels per tile.
  int cm, cpr;
  // Sample n, output rows [oy0, oy1), channel panel cb of group g. scratch: (oy1 - oy0) * OW * cm + 16 floats.
  void (*cvec_item)(const ConvJob& j, i64 g, i64 n, i64 oy0, i64 oy1, i64 cb, float* scratch);
};

static inline i64 ceil_div(i64 a, i64 b) { return (a + b - 1) / b; }

// The direct convolution keeps K up to this in one block (3x3 over 128 channels): 1.5-5% faster than
// blocks of ~256 with their partial sums (VGG16 block1_conv2: 111 -> 116 GMAC/s).
constexpr i64 kDirectWholeK = 1152;

// k block of the direct convolution: whole input channels (taps k values each) of about kc values.
static inline i64 direct_kc(i64 kc, i64 taps, i64 K, i64 whole = 0) {
  if (K <= whole) return K;  // one block: no partial sums
  const i64 b = (kc / taps > 0 ? kc / taps : 1) * taps;
  return b < K ? b : K;
}

// Panels per sample of the direct convolution (columns q' in [0, (OH - 1) * Wp + OW)).
static inline i64 direct_panels(const ConvJob& j, i64 nr) { return ceil_div((j.OH - 1) * j.Wp + j.OW, nr); }

// Scratch floats of one direct-convolution item of up to `rows` channels x `cols` columns.
static inline i64 conv_direct_scratch_floats(i64 mr, i64 nr, i64 kc, i64 taps, i64 K, i64 rows, i64 cols) {
  const i64 kcd = direct_kc(kc, taps, K, kDirectWholeK);
  const i64 part = kcd < K ? ceil_div(rows, mr) * mr * ceil_div(cols, nr) * nr : 0;
  return part + 2 * mr * nr + kcd * nr + 2 * kcd + 16;
}

// Row buffer of one pooling work item: the padded width every window of a row reads.
static inline i64 pool_row_floats(const PoolJob& j) {
  const i64 need = (j.OW - 1) * j.sw + (j.kw - 1) * j.dw + 1;
  return (need > j.pw + j.W ? need : j.pw + j.W) + 16;
}

// Padded plane of the depthwise kernel: rows Hq, row pitch Wb (every vector load of every tap stays inside
// its row: whole vectors of w outputs, and for stride 2 the second load of the even-lane gather).
static inline i64 dw_rows(const DwJob& j) { return (j.OH - 1) * j.sh + (j.kh - 1) * j.dh + 1; }
// Strides 1 and 2 compute over the flattened (oy, x) index of sh x sw phase planes instead: phase (a, b)
// holds padded pixels (y * sh + a, x * sw + b) for y < dw_ph, x < dw_pw, so every tap is one unit-stride
// load at a fixed offset and only dw_pw - OW lanes per row are wasted (stride 2 on 7x7 outputs: 1 of 8).
static inline bool dw_flat(const DwJob& j) { return j.sh <= 2 && j.sw <= 2; }
static inline i64 dw_pw(const DwJob& j) { return j.OW + (j.kw - 1) * j.dw / j.sw; }
static inline i64 dw_ph(const DwJob& j) { return j.OH + (j.kh - 1) * j.dh / j.sh; }
// Floats per phase plane: its pixels, then 4 vectors of slack (flat reads run past; full-vector row stores).
static inline i64 dw_plane_stride(const DwJob& j, int w) { return ceil_div(dw_ph(j) * dw_pw(j) + 4 * w, 16) * 16; }
// Flat outputs computed per plane: whole groups of 4 vectors over (OH - 1) * dw_pw + OW.
static inline i64 dw_flat_outputs(const DwJob& j, int w) {
  return ceil_div((j.OH - 1) * dw_pw(j) + j.OW, 4 * w) * 4 * w;
}
static inline i64 dw_pitch(const DwJob& j, int w) {
  const i64 last = ceil_div(j.OW, w) * w - 1;  // the last output column computed
  return last * j.sw + (j.sw == 2 ? w : 0) + (j.kw - 1) * j.dw + 1;
}

// Scratch floats of one depthwise work item with vectors of `w` lanes (see dw_item_impl; flat: two sets of
// phase planes, two buffers of flat outputs with a vector of read slack, then kh * kw int64 tap offsets).
static inline i64 dw_scratch_floats(const DwJob& j, int w) {
  if (dw_flat(j))
    return 2 * j.sh * j.sw * dw_plane_stride(j, w) + 2 * dw_flat_outputs(j, w) + 2 * dw_pw(j) + 4 * w + 64 +
           2 * j.kh * j.kw;
  return dw_rows(j) * dw_pitch(j, w) + 4 * w + 32;
}

}  // namespace cmf

extern "C" {
const cmf::Fp32Ops* cm_fp32_ops_portable();
const cmf::Fp32Ops* cm_fp32_ops_avx2();
const cmf::Fp32Ops* cm_fp32_ops_avx512();
}
