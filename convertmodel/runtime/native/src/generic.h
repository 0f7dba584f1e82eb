// ISA-independent parts of a work item (im2col gather, epilogue, tile loop), compiled once per
// ISA translation unit.  Include it inside `namespace CM_NS {` after defining the traits struct
// `Isa` (PANEL, KG, NRC, quantize_panel, kernel): every TU gets its own copy with its own -m flags
// and internal names, so nothing here can be linked across ISAs.
//
// Layouts (see common.h): F[k * PANEL + r] float window values of one panel of rows; A[kq * PANEL + r]
// one 32-bit lane per (k group, row) holding KG quantized values; acc[j * PANEL + r] int32.

// Fill F with the windows of rows [r0, r0 + nr) of sample n, group g (rows >= nr are zero).
[[maybe_unused]] static void gather_conv(const cm::Job& jb, int n, int g, int r0, int nr, float* F) {
  constexpr int P = Isa::PANEL;
  const int Cg = jb.C / jb.G;
  if (nr < P) {
    for (int k = 0; k < jb.K; ++k)
      for (int r = nr; r < P; ++r) F[k * P + r] = 0.0f;
  }
  // Runs of rows sharing one output row oh: within a run the input column advances by sw.
  int r = 0;
  while (r < nr) {
    const int p = r0 + r;
    const int oh = p / jb.OW, ow0 = p % jb.OW;
    const int len = (jb.OW - ow0 < nr - r) ? jb.OW - ow0 : nr - r;
    for (int c = 0; c < Cg; ++c) {
      const float* xc = jb.x + (static_cast<size_t>(n) * jb.C + static_cast<size_t>(g) * Cg + c) * jb.H * jb.W;
      for (int ky = 0; ky < jb.kh; ++ky) {
        const int ih = oh * jb.sh - jb.ph + ky * jb.dh;
        const bool row_ok = ih >= 0 && ih < jb.H;
        const float* xr = xc + static_cast<size_t>(row_ok ? ih : 0) * jb.W;
        for (int kx = 0; kx < jb.kw; ++kx) {
          float* dst = F + static_cast<size_t>((c * jb.kh + ky) * jb.kw + kx) * P + r;
          if (!row_ok) {
            for (int i = 0; i < len; ++i) dst[i] = 0.0f;
            continue;
          }
          const int iw0 = ow0 * jb.sw - jb.pw + kx * jb.dw;
          // Valid i: 0 <= iw0 + i*sw < W.
          int lo = iw0 < 0 ? (-iw0 + jb.sw - 1) / jb.sw : 0;
          int hi = iw0 < jb.W ? (jb.W - 1 - iw0) / jb.sw + 1 : 0;
          if (lo > len) lo = len;
          if (hi > len) hi = len;
          if (hi < lo) hi = lo;
          for (int i = 0; i < lo; ++i) dst[i] = 0.0f;
          if (jb.sw == 1) {
            const float* s = xr + iw0;
            for (int i = lo; i < hi; ++i) dst[i] = s[i];
          } else {
            for (int i = lo; i < hi; ++i) dst[i] = xr[iw0 + i * jb.sw];
          }
          for (int i = hi; i < len; ++i) dst[i] = 0.0f;
        }
      }
    }
    r += len;
  }
}

[[maybe_unused]] static void gather_rows(const cm::Job& jb, int r0, int nr, float* F) {
  constexpr int P = Isa::PANEL;
  for (int r = 0; r < P; ++r) {
    if (r < nr) {
      const float* src = jb.x + static_cast<size_t>(r0 + r) * jb.K;
      for (int k = 0; k < jb.K; ++k) F[static_cast<size_t>(k) * P + r] = src[k];
    } else {
      for (int k = 0; k < jb.K; ++k) F[static_cast<size_t>(k) * P + r] = 0.0f;
    }
  }
}

// Pack already-quantized uint8 rows into A (exactness tests of the integer GEMM).
[[maybe_unused]] static void pack_q8(const cm::Job& jb, int r0, int nr, int Kq, uint32_t* A) {
  constexpr int P = Isa::PANEL, KG = Isa::KG, BITS = 32 / Isa::KG;
  for (int kq = 0; kq < Kq; ++kq)
    for (int r = 0; r < P; ++r) {
      uint32_t lane = 0;
      if (r < nr)
        for (int t = 0; t < KG; ++t) {
          const int k = kq * KG + t;
          if (k < jb.K) lane |= static_cast<uint32_t>(jb.q8[static_cast<size_t>(r0 + r) * jb.K + k]) << (t * BITS);
        }
      A[static_cast<size_t>(kq) * P + r] = lane;
    }
}

// Scalar reference of the contract's window quantization for one panel (portable path, and the
// tail of SIMD paths).  Op by op in float32; the TU is compiled with -ffp-contract=off so the
// multiply and add are never fused (an FMA would round once and change q).
template <class Src>
static void quantize_panel_scalar(Src src, int K, int Kq, float L, uint32_t* A, float* mn_out, float* rx_out,
                                  const float* pmx) {
  constexpr int P = Isa::PANEL, KG = Isa::KG, BITS = 32 / Isa::KG;
  for (int r = 0; r < P; ++r) {
    float mn = src(0)[r], mx = src(0)[r];
    if (pmx) {  // precomputed window min (in mn_out) and max
      mn = mn_out[r];
      mx = pmx[r];
    } else {
      for (int k = 1; k < K; ++k) {
        const float v = src(k)[r];
        mn = v != v ? v : (v < mn ? v : mn);  // a NaN in the window makes mn NaN (and the window not live)
        mx = v > mx ? v : mx;
      }
    }
    const bool live = mx > mn;
    const float s = live ? L / (mx - mn) : 0.0f;
    mn_out[r] = mn;
    rx_out[r] = live ? (mx - mn) / L : 0.0f;
    for (int kq = 0; kq < Kq; ++kq) {
      uint32_t lane = 0;
      if (live)
        for (int t = 0; t < KG; ++t) {
          const int k = kq * KG + t;
          if (k >= K) break;
          const float d = src(k)[r] - mn;
          const float e = d * s;
          float qf = std::floor(e + 0.5f);
          qf = qf >= 0.0f ? (qf > L ? L : qf) : 0.0f;  // NaN (an infinity in the window, s = 0) -> 0, no UB cast
          lane |= static_cast<uint32_t>(qf) << (t * BITS);
        }
      A[static_cast<size_t>(kq) * P + r] = lane;
    }
  }
}

// Contract step 4 for one panel of rows and one channel, scalar (the portable path's version).
[[maybe_unused]] static void dequantize_scalar(const int32_t* a, const float* rx, const float* mn, float ws, float wsum,
                                               float b, bool relu, float* y) {
  for (int r = 0; r < Isa::PANEL; ++r) {
    const float t = rx[r] * ws;
    float v = static_cast<float>(a[r]) * t;
    v = v + mn[r] * wsum;
    v = v + b;
    y[r] = relu ? (v <= 0.0f ? 0.0f : v) : v;  // numpy.maximum(v, 0): NaN stays NaN, -0.0 gives +0.0
  }
}

[[maybe_unused]] static void dequantize_n_scalar(const int32_t* a, const float* rx, const float* mn, float ws,
                                                 float wsum, float b, bool relu, float* y, int n) {
  for (int r = 0; r < n; ++r) {
    const float t = rx[r] * ws;
    float v = static_cast<float>(a[r]) * t;
    v = v + mn[r] * wsum;
    v = v + b;
    y[r] = relu ? (v <= 0.0f ? 0.0f : v) : v;  // numpy.maximum(v, 0): NaN stays NaN, -0.0 gives +0.0
  }
}

// A fused residual Add (then ReLU) on n outputs just written: y + r in float32, as the Add node computes it.
[[maybe_unused]] static void add_residual(float* __restrict y, const float* __restrict r, int n, bool relu) {
  if (relu) {
    for (int i = 0; i < n; ++i) {
      const float v = y[i] + r[i];
      y[i] = v <= 0.0f ? 0.0f : v;  // NaN stays NaN, as numpy.maximum
    }
  } else {
    for (int i = 0; i < n; ++i) y[i] = y[i] + r[i];
  }
}

// float(acc) * (r_x * w_scale) + mn * w_sum + B, then ReLU, written straight to the output.
[[maybe_unused]] static void epilogue(const cm::Job& jb, const int32_t* acc, int n, int g, int r0, int nr, int mbase, int nch,
                     const float* mn, const float* rx) {
  constexpr int P = Isa::PANEL;
  const int M = jb.G * jb.Mg;
  if (jb.src == cm::RowSource::kConv && !jb.acc) {
    // The panel's rows as runs of consecutive outputs of a channel plane (the same for every channel): rows
    // oh * Wp + ow of a padded input keep ow < OW and oh < OH; other conv rows are one run.
    int seg_r[P + 1], seg_n[P + 1], nseg = 0;
    size_t seg_o[P + 1];
    if (jb.xp) {
      int oh = r0 / jb.Wp, ow = r0 - oh * jb.Wp, r = 0;
      oh += jb.oh0;
      while (r < nr && oh < jb.OH) {
        const int run = std::min(jb.Wp - ow, nr - r), valid = std::max(0, std::min(run, jb.OW - ow));
        const size_t so = static_cast<size_t>(oh) * jb.OW + ow;
        if (valid > 0 && nseg > 0 && seg_r[nseg - 1] + seg_n[nseg - 1] == r && seg_o[nseg - 1] + seg_n[nseg - 1] == so)
          seg_n[nseg - 1] += valid;  // contiguous with the previous run (no dropped columns): one run
        else if (valid > 0)
          seg_r[nseg] = r, seg_n[nseg] = valid, seg_o[nseg++] = so;
        r += run;
        ow = 0, ++oh;
      }
    } else {
      seg_r[0] = 0, seg_n[0] = nr, seg_o[0] = static_cast<size_t>(r0), nseg = 1;
    }
    const size_t plane = static_cast<size_t>(jb.OH) * jb.OW;
    if (nseg == 1 && seg_n[0] == P && !jb.res) {  // one full run (1x1 convs, rows without dropped columns)
      float* o = jb.out + (static_cast<size_t>(n) * M + g * jb.Mg + mbase) * plane + seg_o[0];
      const float* bias = jb.bias ? jb.bias + g * jb.Mg + mbase : nullptr;
      const float* wsc = jb.w_scale + g * jb.Mg + mbase;
      const float* wsm = jb.w_sum + g * jb.Mg + mbase;
      for (int j = 0; j < nch; ++j)
        Isa::dequantize(acc + j * P, rx, mn, wsc[j], wsm[j], bias ? bias[j] : 0.0f, jb.relu, o + j * plane);
      return;
    }
    for (int j = 0; j < nch; ++j) {
      const int m = g * jb.Mg + mbase + j;
      const int32_t* a = acc + j * P;
      const float ws = jb.w_scale[m], wsum = jb.w_sum[m], b = jb.bias ? jb.bias[m] : 0.0f;
      const size_t po = (static_cast<size_t>(n) * M + m) * plane;
      float* o = jb.out + po;
      for (int s = 0; s < nseg; ++s) {
        const int sr = seg_r[s];
        if (seg_n[s] == P)
          Isa::dequantize(a, rx, mn, ws, wsum, b, jb.relu, o + seg_o[s]);
        else
          Isa::dequantize_n(a + sr, rx + sr, mn + sr, ws, wsum, b, jb.relu, o + seg_o[s], seg_n[s]);
        if (jb.res) add_residual(o + seg_o[s], jb.res + po + seg_o[s], seg_n[s], jb.res_relu);
      }
    }
    return;
  }
  for (int j = 0; j < nch; ++j) {
    const int m = g * jb.Mg + mbase + j;
    const int32_t* a = acc + j * P;
    if (jb.acc) {
      for (int r = 0; r < nr; ++r) jb.acc[static_cast<size_t>(r0 + r) * M + m] = a[r];
      continue;
    }
    const float ws = jb.w_scale[m], wsum = jb.w_sum[m], b = jb.bias ? jb.bias[m] : 0.0f;
    alignas(64) float y[P];
    Isa::dequantize(a, rx, mn, ws, wsum, b, jb.relu, y);
    for (int r = 0; r < nr; ++r) jb.out[static_cast<size_t>(r0 + r) * M + m] = y[r];
  }
}

// A full panel of one output row whose windows never touch padding, with unit stride along W.
[[maybe_unused]] static bool direct_panel(const cm::Job& jb, int pr0, int pn) {
  const int oh = pr0 / jb.OW, ow0 = pr0 % jb.OW;
  if (pn != Isa::PANEL || jb.sw != 1 || ow0 + pn > jb.OW) return false;
  const int ih0 = oh * jb.sh - jb.ph, iw0 = ow0 - jb.pw;
  return ih0 >= 0 && ih0 + (jb.kh - 1) * jb.dh < jb.H && iw0 >= 0 && iw0 + pn - 1 + (jb.kw - 1) * jb.dw < jb.W;
}

[[maybe_unused]] static void run_tile_impl(const cm::Job& jb, const cm::PackedW& w, int n, int g, int r0, int nrows, int m0, int m1,
                          unsigned char* scratch) {
  constexpr int P = Isa::PANEL, NRC = Isa::NRC;
  const int Kq = w.Kq;
  const int panels = cm::ceil_div(nrows, P);
  auto up = [](size_t v) { return (v + 63) / 64 * 64; };
  float* F = reinterpret_cast<float*>(scratch);
  uint32_t* A = reinterpret_cast<uint32_t*>(scratch + up(static_cast<size_t>(jb.K) * P * sizeof(float)));
  float* MN = reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(A) +
                                       up(static_cast<size_t>(Kq) * P * panels * sizeof(uint32_t)));
  float* RX = MN + static_cast<size_t>(panels) * P;
  const float** PTR = reinterpret_cast<const float**>(RX + static_cast<size_t>(panels) * P);
  // Padded input: the window value of k = (c, ky, kx) of row p is at xp[c][p + ky*dh*Wp + kx*dw], the same
  // offsets from every panel's first row, so they are computed once per tile (in the pointer buffer).
  size_t* OFF = reinterpret_cast<size_t*>(PTR);
  size_t* TAP = OFF + jb.K;  // offsets of the kh x kw taps within a channel (or its min/max maps)
  if (jb.src == cm::RowSource::kConv && jb.xp) {
    for (int ky = 0; ky < jb.kh; ++ky)
      for (int kx = 0; kx < jb.kw; ++kx) {
        const int y = ky * jb.dh, x = kx * jb.dw;  // phase plane (y % sh, x % sw), row y / sh, column x / sw
        TAP[ky * jb.kw + kx] = static_cast<size_t>((y % jb.sh) * jb.sw + x % jb.sw) * jb.pplane +
                               static_cast<size_t>(y / jb.sh) * jb.Wp + static_cast<size_t>(x / jb.sw);
      }
    const int taps = jb.kh * jb.kw;
    for (int k = 0; k < jb.K; ++k) OFF[k] = (k / taps) * jb.plane + TAP[k % taps];
  }
  for (int pi = 0; pi < panels; ++pi) {
    const int pr0 = r0 + pi * P;
    const int pn = nrows - pi * P < P ? nrows - pi * P : P;
    uint32_t* Ap = A + static_cast<size_t>(pi) * Kq * P;
    if (jb.src == cm::RowSource::kQ8) {
      pack_q8(jb, pr0, pn, Kq, Ap);
      for (int r = 0; r < P; ++r) MN[pi * P + r] = RX[pi * P + r] = 0.0f;
      continue;
    }
    if (jb.src == cm::RowSource::kConv && jb.xp) {
      // Padded band: window values of k = (c, tap) at xp[c * plane + TAP[tap] + pr0 + r]; window min/max from
      // the channel maps (min over c first, then over the kh x kw taps: exact, min is order-independent).
      const float* xg = jb.xp + pr0;
      const size_t mo = static_cast<size_t>(pr0);
      float* mn = MN + pi * P;
      alignas(64) float mx[P];
      for (int r = 0; r < P; ++r) mn[r] = jb.cmin[mo + TAP[0] + r], mx[r] = jb.cmax[mo + TAP[0] + r];
      for (int t = 1; t < jb.kh * jb.kw; ++t) {
        const float* a = jb.cmin + mo + TAP[t];
        const float* b = jb.cmax + mo + TAP[t];
        for (int r = 0; r < P; ++r) {
          const float t = a[r] < mn[r] ? a[r] : mn[r];
          mn[r] = a[r] != a[r] ? a[r] : t;  // NaN-propagating (see pad_rows.h)
          mx[r] = b[r] > mx[r] ? b[r] : mx[r];
        }
      }
      Isa::quantize_panel([xg, OFF](int kk) { return xg + OFF[kk]; }, jb.K, Kq, jb.levels, Ap, mn, RX + pi * P, mx);
      continue;
    }
    if (jb.src == cm::RowSource::kConv && direct_panel(jb, pr0, pn)) {
      // No padding and one output row: the window values of each k are P consecutive input floats,
      // so quantize straight from the input (saves writing and re-reading a K x P float copy).
      const int oh = pr0 / jb.OW, ow0 = pr0 % jb.OW, Cg = jb.C / jb.G;
      const float* xg = jb.x + (static_cast<size_t>(n) * jb.C + static_cast<size_t>(g) * Cg) * jb.H * jb.W;
      int k = 0;
      for (int c = 0; c < Cg; ++c)
        for (int ky = 0; ky < jb.kh; ++ky)
          for (int kx = 0; kx < jb.kw; ++kx)
            PTR[k++] = xg + (static_cast<size_t>(c) * jb.H + oh * jb.sh - jb.ph + ky * jb.dh) * jb.W + ow0 - jb.pw +
                       kx * jb.dw;
      Isa::quantize_panel([PTR](int kk) { return PTR[kk]; }, jb.K, Kq, jb.levels, Ap, MN + pi * P, RX + pi * P);
      continue;
    }
    if (jb.src == cm::RowSource::kConv)
      gather_conv(jb, n, g, pr0, pn, F);
    else
      gather_rows(jb, pr0, pn, F);
    Isa::quantize_panel([F](int kk) { return F + static_cast<size_t>(kk) * P; }, jb.K, Kq, jb.levels, Ap, MN + pi * P,
                        RX + pi * P);
  }
  if (Isa::HAS_GEMV && jb.src == cm::RowSource::kRows && nrows <= 2) {
    // One or two rows (a batch-1/2 fully connected layer): channel-vectorized GEMV, memory-bound on the weights.
    alignas(64) int32_t acc4[4 * NRC * P];
    const size_t bstride = static_cast<size_t>(Kq) * NRC;
    const int mb_lo = m0 / NRC, mb_hi = cm::ceil_div(m1, NRC);
    for (int mb = mb_lo; mb < mb_hi; mb += 4) {
      const int nb = mb_hi - mb < 4 ? mb_hi - mb : 4;
      Isa::gemv(A, Kq, w.data + (static_cast<size_t>(g) * w.mblocks + mb) * bstride, bstride, nb, nrows, acc4);
      for (int b = 0; b < nb; ++b) {
        const int mbase = (mb + b) * NRC;
        const int nch = mbase + NRC < m1 ? NRC : m1 - mbase;
        epilogue(jb, acc4 + b * NRC * P, n, g, r0, nrows, mbase, nch, MN, RX);
      }
    }
    return;
  }
  // GEMM blocked along k (KC lanes at a time) so one A chunk (KC x P lanes) and one weight chunk
  // (KC x NRC lanes) stay in L1 while the panels of the tile are swept; int32 partial sums of
  // every (channel block, panel) live in ACC between chunks, and the epilogue runs after the last.
  const int mb0 = m0 / NRC, mb1 = cm::ceil_div(m1, NRC);
  int32_t* ACC = reinterpret_cast<int32_t*>(
      reinterpret_cast<unsigned char*>(PTR) + up(2 * static_cast<size_t>(jb.K) * sizeof(float*)));
  for (int kc0 = 0; kc0 < Kq; kc0 += Isa::KC) {
    const int kn = Kq - kc0 < Isa::KC ? Kq - kc0 : Isa::KC;
    for (int mb = mb0; mb < mb1; ++mb) {
      const uint32_t* Wb = w.data + ((static_cast<size_t>(g) * w.mblocks + mb) * Kq + kc0) * NRC;
      const int nch = (mb + 1) * NRC < m1 ? NRC : m1 - mb * NRC;  // a short last block: a narrower kernel
      for (int pi = 0; pi < panels; ++pi)
        Isa::kernel_n(A + (static_cast<size_t>(pi) * Kq + kc0) * P, Wb, kn,
                      ACC + (static_cast<size_t>(mb - mb0) * panels + pi) * NRC * P, kc0 > 0, nch);
    }
  }
  for (int mb = mb0; mb < mb1; ++mb) {
    const int nch = (mb + 1) * NRC < m1 ? NRC : m1 - mb * NRC;
    for (int pi = 0; pi < panels; ++pi) {
      const int pn = nrows - pi * P < P ? nrows - pi * P : P;
      epilogue(jb, ACC + (static_cast<size_t>(mb - mb0) * panels + pi) * NRC * P, n, g, r0 + pi * P, pn, mb * NRC,
               nch, MN + pi * P, RX + pi * P);
    }
  }
}

// Wq (G*Mg, K) int8 -> lanes [g][mblock][kq][NRC], zero-padded in k and in channels.
[[maybe_unused]] static void pack_weights_impl(const int8_t* wq, int G, int Mg, int K, int Kq, uint32_t* out) {
  constexpr int NRC = Isa::NRC, KG = Isa::KG, BITS = 32 / Isa::KG;
  const int mblocks = cm::ceil_div(Mg, NRC);
  const uint32_t mask = BITS == 32 ? 0xffffffffu : ((1u << BITS) - 1u);
  for (int g = 0; g < G; ++g)
    for (int mb = 0; mb < mblocks; ++mb)
      for (int kq = 0; kq < Kq; ++kq)
        for (int j = 0; j < NRC; ++j) {
          const int m = mb * NRC + j;
          uint32_t lane = 0;
          if (m < Mg)
            for (int t = 0; t < KG; ++t) {
              const int k = kq * KG + t;
              if (k < K) {
                const int32_t v = wq[(static_cast<size_t>(g) * Mg + m) * K + k];
                lane |= (static_cast<uint32_t>(v) & mask) << (t * BITS);
              }
            }
          out[((static_cast<size_t>(g) * mblocks + mb) * Kq + kq) * NRC + j] = lane;
        }
}

[[maybe_unused]] static void quantize_rows_impl(const float* x, int R, int K, float levels, uint8_t* q, float* mn, float* rx) {
  constexpr int P = Isa::PANEL, KG = Isa::KG, BITS = 32 / Isa::KG;
  const int Kq = cm::ceil_div(cm::ceil_div(K, KG), Isa::KQ_ALIGN) * Isa::KQ_ALIGN;
  float* F = new float[static_cast<size_t>(K) * P];
  uint32_t* A = new uint32_t[static_cast<size_t>(Kq) * P];
  float MN[P], RX[P];
  cm::Job jb{};
  jb.x = x;
  jb.K = K;
  for (int r0 = 0; r0 < R; r0 += P) {
    const int nr = R - r0 < P ? R - r0 : P;
    gather_rows(jb, r0, nr, F);
    Isa::quantize_panel([F](int kk) { return F + static_cast<size_t>(kk) * P; }, K, Kq, levels, A, MN, RX);
    for (int r = 0; r < nr; ++r) {
      mn[r0 + r] = MN[r];
      rx[r0 + r] = RX[r];
      for (int k = 0; k < K; ++k)
        q[static_cast<size_t>(r0 + r) * K + k] =
            static_cast<uint8_t>((A[static_cast<size_t>(k / KG) * P + r] >> ((k % KG) * BITS)) & 0xffu);
    }
  }
  delete[] F;
  delete[] A;
}

#include "pad_rows.h"
#include "depthwise.h"
