// Shared declarations of the native int8 kernels (QConv / QGemm, docs: /work/notes/qcontract.md).
//
// Every ISA translation unit (isa_*.cpp) is compiled with its own -m flags and exports one
// IsaOps table; module.cpp (baseline flags) picks a table at run time from cpuid.  Nothing
// in this header is compiled into code: it holds plain structs and declarations only, so no
// inline function built with AVX-512 flags can leak into the baseline code through the
// linker's choice among identical-looking definitions (the classic multi-versioning ODR trap).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cm {

// Where the rows (quantization windows) of a job come from.
enum class RowSource : int {
  kConv = 0,  // im2col of an NCHW float32 tensor, one row per (n, g, output position)
  kRows = 1,  // rows of a (R, K) float32 matrix (QGemm)
  kQ8 = 2,    // already-quantized uint8 rows (R, K) -- exactness tests of the integer GEMM
};

// One quantized GEMM job.  The driver splits it into (row tile, channel range) work items.
struct Job {
  RowSource src;
  const float* x;       // kConv: (N, C, H, W); kRows: (R, K)
  const uint8_t* q8;    // kQ8: (R, K)
  int N, C, H, W;       // kConv input shape
  int kh, kw, sh, sw, ph, pw, dh, dw;  // kConv geometry (ph/pw = pads at the beginning)
  int OH, OW;           // kConv output spatial shape
  int G;                // groups (1 for rows sources)
  int K;                // window length = C/G*kh*kw (conv) or row length
  int Mg;               // output channels per group
  int rows;             // rows per (n, g): OH*OW for conv (OH*Wp with xp), R for row sources (with N = 1)
  // Stride-1 convolutions: the input padded once per layer, (N, C, Hp, Wp) planes of `plane` floats plus slack,
  // and its channel min/max maps (N, G) planes of the same shape. Row p = oh * Wp + ow then reads the window
  // of k = (c, ky, kx) at xp[c][p + ky*dh*Wp + kx*dw]: every panel is P consecutive floats per k, with no
  // gather; rows with ow >= OW wrap into the next padded row and are computed but never stored.
  const float* xp;       // nullptr: windows come from x (direct or gathered panels)
  const float* cmin;     // (N, G, plane) min over the group's channels of xp
  const float* cmax;
  int Hp, Wp;
  size_t plane;
  // Banded (run_banded in module.cpp): xp/cmin/cmax hold only the padded rows of one band of output rows of
  // sample n, group g (channel c at xp + c * plane), starting at output row oh0; rows r count from the band.
  // Strides: each channel's band is sh x sw phase planes of `pplane` floats (padded row hl, column w of the band
  // at phase (hl % sh, w % sw), row hl / sh, column w / sw) with rows of Wp = ceil(padded W / sw) floats, so
  // the window value of tap (ky, kx) of row p = oh * Wp + ow is P consecutive floats of one phase plane.
  bool band;
  int oh0;
  size_t pplane;
  float levels;         // input_levels L
  // Epilogue (float output) ...
  const float* w_scale;  // (M,)
  const float* w_sum;    // (M,)
  const float* bias;     // (M,) or nullptr
  bool relu;
  float* out;            // conv: (N, M, OH, OW); rows: (R, M)
  // conv only: a residual of the output's shape added after the epilogue (a fused Add), then ReLU if res_relu.
  const float* res;
  bool res_relu;
  // ... or raw accumulators (int32, (R, M)) when acc != nullptr.
  int32_t* acc;
};

// Weights packed once for one ISA: per group, blocks of `nrc` channels, k grouped by `kg`,
// each 32-bit lane holding kg consecutive k of one channel (int16 pairs or int8 quads).
struct PackedW {
  const uint32_t* data;  // G * Mblocks * Kq * nrc lanes
  int G, Mg, K, Kq;      // Kq = k_lanes(ops, K)
  int mblocks;           // ceil(Mg / nrc)
};

struct IsaOps {
  const char* name;    // the ISA path (what CONVERTMODEL_ISA selects)
  const char* kernel;  // the GEMM kernel of this table (an ISA may have several, chosen by the levels)
  int panel;  // rows per panel (vector lanes x vectors of the micro-kernel)
  int kg;     // k values per 32-bit lane
  int nrc;    // channels per micro-kernel block
  int kq_align;  // the number of k groups is padded (zero lanes) to a multiple of this
  // Pack Wq (G*Mg, K) int8 into `out` (size: packed_lanes(G, Mg, K) uint32).
  void (*pack_weights)(const int8_t* wq, int G, int Mg, int K, int Kq, uint32_t* out);
  // Process rows [r0, r0 + nrows) of sample n, group g, channels [m0, m1) of the group.
  // `scratch` holds scratch_bytes(job, nrows) bytes, 64-byte aligned.
  void (*run_tile)(const Job& job, const PackedW& w, int n, int g, int r0, int nrows, int m0, int m1,
                   unsigned char* scratch);
  // Quantize rows of a (R, K) float matrix with this ISA's code and unpack q (tests only).
  void (*quantize_rows)(const float* x, int R, int K, float levels, uint8_t* q, float* mn, float* rx);
  // Depthwise QConv (C/G = 1, K <= kDwMaxK, job.xp set): output rows [oh0, oh1) of sample n, group g;
  // wf = Wq as float (M, K); scratch of dw_scratch_floats(K, OW) floats (depthwise.h).
  void (*run_dw)(const Job& job, const float* wf, int n, int g, int oh0, int oh1, float* scratch);
  // The band of output rows starting at job.oh0 of sample n, group g: copy its padded input rows from job.x into
  // xp in the layout above (channel c of the group at xp + c * job.plane, zero borders) and build the group's
  // channel min/max maps of them (cmin, cmax: one channel's layout) in the same pass (min over c in order).
  void (*pad_rows)(const Job& job, int n, int g, float* xp, float* cmin, float* cmax);
};

// Largest depthwise window the direct kernel takes: K * 255 * 128 < 2^24 keeps its float sums exact.
constexpr int kDwMaxK = 514;

// Floats of scratch per depthwise work item of `np` positions (Wp per output row at most): K tap rows, K
// code rows and 6 per-position rows, each rounded up to 64.
inline size_t dw_scratch_floats(int K, int np) {
  const size_t npa = (static_cast<size_t>(np) + 63) / 64 * 64;
  return (2 * static_cast<size_t>(K) + 6) * npa;
}

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Number of 32-bit k-group lanes per row / channel: ceil(K / kg), padded to kq_align.
inline int k_lanes(const IsaOps& ops, int K) { return ceil_div(ceil_div(K, ops.kg), ops.kq_align) * ops.kq_align; }

inline size_t packed_lanes(const IsaOps& ops, int G, int Mg, int K) {
  return static_cast<size_t>(G) * ceil_div(Mg, ops.nrc) * k_lanes(ops, K) * ops.nrc;
}

// Bytes of scratch one work item of `nrows` rows and up to `mg` channels needs: a float window
// buffer for one panel (K x panel), the packed quantized tile (Kq x rows rounded up to panels),
// per-row mn/r_x, K input pointers (or offsets and tap offsets) and the int32 partial sums (channels x rows,
// blocks rounded up).
inline size_t scratch_bytes(const IsaOps& ops, int K, int nrows, int mg) {
  size_t panels = static_cast<size_t>(ceil_div(nrows, ops.panel));
  auto up = [](size_t v) { return (v + 63) / 64 * 64; };
  size_t f = static_cast<size_t>(K) * ops.panel * sizeof(float);
  size_t a = static_cast<size_t>(k_lanes(ops, K)) * ops.panel * panels * sizeof(uint32_t);
  size_t s = 2 * panels * ops.panel * sizeof(float);
  size_t p = 2 * static_cast<size_t>(K) * sizeof(float*);  // K pointers or offsets, then up to K tap offsets
  size_t acc = static_cast<size_t>(ceil_div(mg, ops.nrc)) * ops.nrc * panels * ops.panel * sizeof(int32_t);
  return up(f) + up(a) + up(s) + up(p) + up(acc) + 64;
}

}  // namespace cm

extern "C" {
const cm::IsaOps* cm_ops_portable();
const cm::IsaOps* cm_ops_avx2();
const cm::IsaOps* cm_ops_avx2_u8s8();  // vpmaddubsw pairs: exact when 2 * levels * max|Wq| <= 32767
const cm::IsaOps* cm_ops_avx2_pair();  // two vpmaddubsw summed: exact when 4 * levels * max|Wq| <= 32767
const cm::IsaOps* cm_ops_avxvnni();
const cm::IsaOps* cm_ops_avx512vnni();
}
