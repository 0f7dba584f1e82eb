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
    mn[i] = v[i] < mn[i] ? v[i] : mn[i];
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
    o[i] = relu ? (y > 0.0f ? y : 0.0f) : y;
  }
}
#undef CM_DW_FN

// Output rows [oh0, oh1) of sample n, group g, as one flat vector of positions. Unit strides: positions
// oh * Wp + ow of the padded rows, so each tap is one contiguous range of the padded input (the columns
// ow >= OW are computed and dropped); other strides: the K tap rows are gathered first. `wf`: Wq as float
// (M, K).
[[maybe_unused]] static void run_dw_impl(const cm::Job& jb, const float* wf, int n, int g, int oh0, int oh1,
                                         float* scratch) {
  const int K = jb.K, OW = jb.OW, Mg = jb.Mg, M = jb.G * jb.Mg;
  const bool unit = jb.sh == 1 && jb.sw == 1;
  const int rw = unit ? jb.Wp : OW;  // positions per output row in the flat vector
  const int np = (oh1 - oh0) * rw;
  const size_t npa = (static_cast<size_t>(np) + 63) / 64 * 64;
  float* T = scratch;                             // [K][npa]: gathered taps (strided convolutions)
  float* Q = T + static_cast<size_t>(K) * npa;    // [K][npa]: codes
  float* mn = Q + static_cast<size_t>(K) * npa;
  float* mx = mn + npa;
  float* s = mx + npa;
  float* rx = s + npa;
  float* live = rx + npa;
  float* acc = live + npa;
  const float* xpl = jb.xp + (static_cast<size_t>(n) * jb.C + g) * jb.plane;
  const float* tap[cm::kDwMaxK];
  int t = 0;
  for (int ky = 0; ky < jb.kh; ++ky)
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
        for (int i = 0; i < OW; ++i) d[i] = src[static_cast<size_t>(i) * jb.sw];
      }
    }
  std::memcpy(mn, tap[0], sizeof(float) * np);
  std::memcpy(mx, tap[0], sizeof(float) * np);
  for (int k = 1; k < K; ++k) dw_minmax(tap[k], mn, mx, np);
  dw_scale(mn, mx, s, rx, live, jb.levels, np);
  for (int k = 0; k < K; ++k) dw_codes(tap[k], Q + static_cast<size_t>(k) * npa, mn, s, live, jb.levels, np);
  float* y = T;  // the taps are no longer needed: the output rows of one channel
  for (int mi = 0; mi < Mg; ++mi) {
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
