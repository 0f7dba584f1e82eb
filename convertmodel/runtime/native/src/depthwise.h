// Direct depthwise QConv (C/G = 1: one input channel per group, any channel multiplier Mg, any stride),
// included by generic.h into every ISA translation unit (plain loops the compiler vectorizes with that unit's
// flags; -ffp-contract=off keeps every float op separate, as the contract requires).
//
// A depthwise window has only K = kh*kw values, so the GEMM's packing and 12-channel blocks would waste most
// of the work. Here each output row is done at once: the K tap rows are copied out of the padded input
// (strided for sw > 1), the window min/max, the codes q and the dot products run over the row's positions.
// The dot products are summed in float32: q * Wq are integers and K * 255 * 128 < 2^24 for K <= 514
// (module.cpp checks), so every partial sum is exact and float(acc) equals the int32 accumulator.

// The loops, as functions of restrict parameters (GCC ignores restrict on local pointers and then does not
// vectorize loops over several rows of one scratch buffer).
#define CM_DW_FN [[maybe_unused]] static __attribute__((noinline))
CM_DW_FN void dw_minmax(const float* __restrict v, float* __restrict mn, float* __restrict mx, int n) {
  for (int i = 0; i < n; ++i) {
    const float a = v[i], t = a < mn[i] ? a : mn[i];  // min_ps(a, mn): keeps a NaN mn
    mn[i] = a != a ? a : t;                           // and takes a NaN a (see pad_rows.h)
    mx[i] = v[i] > mx[i] ? v[i] : mx[i];
  }
}
CM_DW_FN void dw_scale(const float* __restrict mn, const float* __restrict mx, float* __restrict s,
                       float* __restrict rx, float* __restrict live, float L, int n) {
  for (int i = 0; i < n; ++i) {
    const float d = mx[i] - mn[i];
    const bool lv = mx[i] > mn[i];
    s[i] = lv ? L / d : 0.0f;
    rx[i] = lv ? d / L : 0.0f;
    live[i] = lv ? 1.0f : 0.0f;
  }
}
// Codes in place: floor((v - mn) * s + 0.5) clipped to [0, L], as the truncation of f = e + 0.5 clamped to
// [0, L + 1) first: the same code for every f (NaN included: 0), and a conversion the compiler vectorizes.
CM_DW_FN void dw_codes(const float* __restrict v, float* __restrict out, const float* __restrict mn,
                       const float* __restrict s, const float* __restrict live, float L, int n) {
  for (int i = 0; i < n; ++i) {
    const float d = v[i] - mn[i];
    const float e = d * s[i];
    float f = e + 0.5f;
    f = f > 0.0f ? f : 0.0f;
    f = f < L + 1.0f ? f : L;
    float q = static_cast<float>(static_cast<int>(f));
    q = q < L ? q : L;
    out[i] = live[i] > 0.0f ? q : 0.0f;
  }
}
CM_DW_FN void dw_dot(float* __restrict acc, const float* __restrict q, float w, int n) {
  for (int i = 0; i < n; ++i) acc[i] = acc[i] + q[i] * w;  // exact integers (see above)
}
CM_DW_FN void dw_out(float* __restrict o, const float* __restrict acc, const float* __restrict rx,
                     const float* __restrict mn, float ws, float wsum, float b, bool relu, int n) {
  for (int i = 0; i < n; ++i) {
    const float tt = rx[i] * ws;
    float y = acc[i] * tt;
    y = y + mn[i] * wsum;
    y = y + b;
    o[i] = relu ? (y <= 0.0f ? 0.0f : y) : y;  // NaN stays NaN, as numpy.maximum
  }
}
// Mg = 1 (true depthwise), positions [0, n) in strips of kDwV: every step of the passes above for one strip
// while it is in registers (min/max over the K taps, scale, each tap's codes and its product as they are made,
// the epilogue), without storing the codes. GCC vector types one register wide in each unit (wider ones are
// lowered element by element: 12x slower on AVX2) and the same float32 operations in the same order per
// position as dw_minmax .. dw_out, so the same bits. n must be a multiple of kDwV.
#if defined(__AVX512F__)
constexpr int kDwV = 16;
#elif defined(__AVX__)
constexpr int kDwV = 8;
#else
constexpr int kDwV = 4;
#endif
typedef float cm_dwv __attribute__((vector_size(kDwV * sizeof(float))));
typedef int cm_dwvi __attribute__((vector_size(kDwV * sizeof(int))));
#define CM_DW_LOAD(v, p) std::memcpy(&(v), (p), sizeof(cm_dwv))  // unaligned; no vector-returning function
CM_DW_FN void dw_fused(const float* const* __restrict tap, int K, int n, const float* __restrict w, float L,
                       float ws, float wsum, float b, bool relu, float* __restrict o) {
  const cm_dwv zero = {}, Lv = zero + L, L1 = zero + (L + 1.0f), half = zero + 0.5f;
  for (int i0 = 0; i0 < n; i0 += kDwV) {
    cm_dwv mn, mx, v;
    CM_DW_LOAD(mn, tap[0] + i0);
    mx = mn;
    // v < mn ? v : mn loses a NaN v: the window's NaNs are OR-ed into a mask that makes mn NaN at the end (a
    // select per tap that also takes a NaN v cost 1.6x here; the window's sum 1.1x): the window is then not
    // live and y NaN, as in the reference.
    cm_dwvi nan = mn != mn;
    for (int k = 1; k < K; ++k) {
      CM_DW_LOAD(v, tap[k] + i0);
      mn = v < mn ? v : mn;
      mx = v > mx ? v : mx;
      nan |= v != v;
    }
    mn = nan ? zero + NAN : mn;
    const cm_dwv d = mx - mn;
    const cm_dwvi lv = mx > mn;
    const cm_dwv sc = lv ? Lv / d : zero;
    const cm_dwv rx = lv ? d / Lv : zero;
    cm_dwv acc = zero;
    for (int k = 0; k < K; ++k) {
      CM_DW_LOAD(v, tap[k] + i0);
      const cm_dwv e = (v - mn) * sc;
      cm_dwv f = e + half;
      f = f > zero ? f : zero;
      f = f < L1 ? f : Lv;
      cm_dwv q = __builtin_convertvector(__builtin_convertvector(f, cm_dwvi), cm_dwv);
      q = q < Lv ? q : Lv;
      q = lv ? q : zero;
      acc = acc + q * w[k];
    }
    const cm_dwv tt = rx * ws;
    cm_dwv y = acc * tt;
    y = y + mn * wsum;
    y = y + b;
    if (relu) y = y <= zero ? zero : y;  // NaN stays NaN
    std::memcpy(o + i0, &y, sizeof y);
  }
}
#undef CM_DW_LOAD
#undef CM_DW_FN

// Output rows [oh0, oh1) of sample n, group g, as one flat vector of positions. Unit strides: positions
// oh * Wp + ow of the padded rows, so each tap is one contiguous range of the padded input (the columns
// ow >= OW are computed and dropped); other strides: the K tap rows are gathered first. `wf`: Wq as float
// (M, K).
[[maybe_unused]] static void run_dw_impl(const cm::Job& jb, const float* wf, int n, int g, int oh0, int oh1,
                                         float* scratch) {
  const int K = jb.K, OW = jb.OW, Mg = jb.Mg, M = jb.G * jb.Mg;
  const bool unit = jb.sh == 1 && jb.sw == 1;
  // Stride 2 (Mg = 1, no dilation): the block's padded rows split once into 2 x 2 phase planes of Wq = ceil(Wp
  // / 2) columns, so that every tap is again one contiguous range (positions oh * Wq + ow, the columns ow >= OW
  // computed and dropped) instead of a gather per tap and row. Used when the planes fit where the taps would.
  const int Wq = (jb.Wp + 1) / 2, hq = oh1 - oh0 + (jb.kh - 1) / 2 + 1;  // phase rows a plane holds
  const size_t pq = static_cast<size_t>(hq) * Wq;                        // floats a phase plane holds
  bool phase = !unit && Mg == 1 && jb.sh == 2 && jb.sw == 2 && jb.dh == 1 && jb.dw == 1;
  int rw = unit ? jb.Wp : (phase ? Wq : OW);  // positions per output row in the flat vector
  int np = (oh1 - oh0) * rw;
  size_t npa = (static_cast<size_t>(np) + 63) / 64 * 64;
  if (phase && 4 * pq > static_cast<size_t>(K) * npa) {
    phase = false;
    rw = OW;
    np = (oh1 - oh0) * rw;
    npa = (static_cast<size_t>(np) + 63) / 64 * 64;
  }
  float* T = scratch;                             // [K][npa]: gathered taps (strided convolutions), or phases
  float* Q = T + static_cast<size_t>(K) * npa;    // [K][npa]: codes
  float* mn = Q + static_cast<size_t>(K) * npa;
  float* mx = mn + npa;
  float* s = mx + npa;
  float* rx = s + npa;
  float* live = rx + npa;
  float* acc = live + npa;
  const float* xpl = jb.xp + (static_cast<size_t>(n) * jb.C + g) * jb.plane;
  const float* tap[cm::kDwMaxK];
  if (phase) {
    for (int a = 0; a < 2; ++a)
      for (int i = 0; i < hq; ++i) {
        const int r = 2 * (oh0 + i) + a;  // padded input row; rows past it (only in dropped columns) read 0
        const float* src = r < jb.Hp ? xpl + static_cast<size_t>(r) * jb.Wp : xpl;
        for (int b = 0; b < 2; ++b) {
          float* d = T + (2 * a + b) * pq + static_cast<size_t>(i) * Wq;
          const int nv = r < jb.Hp ? (jb.Wp - b + 1) / 2 : 0;  // columns 2j + b inside the row
          for (int j = 0; j < nv; ++j) d[j] = src[2 * static_cast<size_t>(j) + b];
          for (int j = nv; j < Wq; ++j) d[j] = 0.0f;
        }
      }
    int t = 0;
    for (int ky = 0; ky < jb.kh; ++ky)
      for (int kx = 0; kx < jb.kw; ++kx, ++t)
        tap[t] = T + (2 * (ky & 1) + (kx & 1)) * pq + static_cast<size_t>(ky >> 1) * Wq + (kx >> 1);
  }
  int t = 0;
  for (int ky = 0; ky < jb.kh && !phase; ++ky)
    for (int kx = 0; kx < jb.kw; ++kx, ++t) {
      const size_t off = static_cast<size_t>(ky) * jb.dh * jb.Wp + static_cast<size_t>(kx) * jb.dw;
      if (unit) {
        tap[t] = xpl + static_cast<size_t>(oh0) * jb.Wp + off;
        continue;
      }
      float* dst = T + static_cast<size_t>(t) * npa;
      tap[t] = dst;
      for (int oh = oh0; oh < oh1; ++oh) {
        const float* src = xpl + static_cast<size_t>(oh) * jb.sh * jb.Wp + off;
        float* d = dst + static_cast<size_t>(oh - oh0) * OW;
        if (jb.sw == 2) {  // a constant stride the compiler vectorizes
          for (int i = 0; i < OW; ++i) d[i] = src[2 * static_cast<size_t>(i)];
          continue;
        }
        for (int i = 0; i < OW; ++i) d[i] = src[static_cast<size_t>(i) * jb.sw];
      }
    }
  // The output rows of one channel: T once the taps are coded (unit strides: they lie in xp); with phases
  // (Mg = 1: the fused strips use none of the passes' arrays) mn.
  float* y = phase ? mn : T;
  if (Mg == 1) {  // the fused strips; the last np % kDwV positions as one strip of copies (zeros beyond)
    float* o = jb.out + (static_cast<size_t>(n) * M + g) * jb.OH * OW + static_cast<size_t>(oh0) * OW;
    float* dst = rw == OW ? o : y;
    const float* w = wf + static_cast<size_t>(g) * K;
    const float ws = jb.w_scale[g], wsum = jb.w_sum[g], b = jb.bias ? jb.bias[g] : 0.0f;
    const int done = np / kDwV * kDwV, nt = np - done;
    dw_fused(tap, K, done, w, jb.levels, ws, wsum, b, jb.relu, dst);
    if (nt > 0) {
      for (int k = 0; k < K; ++k) {
        float* c = Q + static_cast<size_t>(k) * kDwV;  // Q (K * npa >= K * kDwV floats) is free here
        std::memcpy(c, tap[k] + done, sizeof(float) * nt);
        std::memset(c + nt, 0, sizeof(float) * (kDwV - nt));
        tap[k] = c;
      }
      float last[kDwV];
      dw_fused(tap, K, kDwV, w, jb.levels, ws, wsum, b, jb.relu, last);
      std::memcpy(dst + done, last, sizeof(float) * nt);
    }
    if (rw != OW)
      for (int r = 0; r < oh1 - oh0; ++r)
        std::memcpy(o + static_cast<size_t>(r) * OW, y + static_cast<size_t>(r) * rw, sizeof(float) * OW);
    return;
  }
  std::memcpy(mn, tap[0], sizeof(float) * np);
  std::memcpy(mx, tap[0], sizeof(float) * np);
  for (int k = 1; k < K; ++k) dw_minmax(tap[k], mn, mx, np);
  dw_scale(mn, mx, s, rx, live, jb.levels, np);
  for (int k = 0; k < K; ++k) dw_codes(tap[k], Q + static_cast<size_t>(k) * npa, mn, s, live, jb.levels, np);
  for (int mi = 0; mi < Mg; ++mi) {  // a channel multiplier: the codes are shared by Mg output channels
    const int m = g * Mg + mi;
    const float* w = wf + static_cast<size_t>(m) * K;
    std::memset(acc, 0, sizeof(float) * np);
    for (int k = 0; k < K; ++k) dw_dot(acc, Q + static_cast<size_t>(k) * npa, w[k], np);
    float* o = jb.out + (static_cast<size_t>(n) * M + m) * jb.OH * OW + static_cast<size_t>(oh0) * OW;
    const float ws = jb.w_scale[m], wsum = jb.w_sum[m], b = jb.bias ? jb.bias[m] : 0.0f;
    if (rw == OW) {
      dw_out(o, acc, rx, mn, ws, wsum, b, jb.relu, np);
      continue;
    }
    dw_out(y, acc, rx, mn, ws, wsum, b, jb.relu, np);
    for (int r = 0; r < oh1 - oh0; ++r)
      std::memcpy(o + static_cast<size_t>(r) * OW, y + static_cast<size_t>(r) * rw, sizeof(float) * OW);
  }
}
