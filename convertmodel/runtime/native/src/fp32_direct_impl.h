// The direct (in-place B) and channel-vectorized convolutions of fp32_impl.h, which includes this file inside
// the ISA unit's namespace (after conv_item_impl, which dispatches to conv_direct_impl); no include guard and no
// includes of its own for that reason.

// Micro-kernel of the direct convolution: B rows are read in place at Bk = B + boff[k] (a panel of NR
// consecutive padded-input pixels per k, no packing); the running sum is loaded from Cin (ldci apart)
// unless it is null, and the result stored to C (ldc apart).
template <int POST>
static inline void ukernel_d(const float* __restrict A, const float* B, const i64* __restrict boff, i64 kc,
                             const float* Cin, i64 ldci, float* C, i64 ldc, const float* scale, const float* shift,
                             float lo, float hi, const float* R, i64 ldr, const float* pf) {
  typename V::T acc[MR][NV];
  if (Cin)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) acc[i][j] = V::load(Cin + i * ldci + j * V::W);
  else
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();
  for (i64 k = 0; k < kc; ++k) {
    __builtin_prefetch(pf + k * MR);  // the next A block (same layout): cold weights stream in
    const float* bk = B + boff[k];
    typename V::T b[NV];
    for (int j = 0; j < NV; ++j) b[j] = V::load(bk + j * V::W);
    for (int i = 0; i < MR; ++i) {
      const typename V::T a = V::set1(A[k * MR + i]);
      for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(a, b[j], acc[i][j]);
    }
  }
  if (POST) {
    const typename V::T vlo = V::set1(lo), vhi = V::set1(hi);
    for (int i = 0; i < MR; ++i) {
      const typename V::T s = V::set1(scale[i]), t = V::set1(shift[i]);
      for (int j = 0; j < NV; ++j) {
        typename V::T v = V::fma(acc[i][j], s, t);
        if (POST == 3) v = V::add(v, V::load(R + i * ldr + j * V::W));
        acc[i][j] = V::min(vhi, V::max(vlo, v));
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) V::store(C + i * ldc + j * V::W, acc[i][j]);
}

// Stride-1 convolution without packing (ConvJob::direct).  Columns run over the padded-width index
// q' = oy * Wp + ox of each sample (columns with ox >= OW are computed and dropped), so the NR pixels of a
// panel are NR consecutive floats of the padded input at every k.  Work items are runs of such panels:
// [pan0, pan0 + npan) of the N * pps panels (pps = ceil(Qd / NR) per sample, Qd = (OH - 1) * Wp + OW).
// k is blocked by whole input channels; partial sums of a k block live in a scratch block.
// Scratch: conv_direct_scratch_floats() (fp32.h).
static void conv_direct_impl(const cmf::ConvJob& J, i64 g, i64 pan0, i64 npan, i64 m0, i64 m1, float* scratch) {
  const i64 taps = J.kh * J.kw, plane = J.Hp * J.Wp;
  const i64 kcd = cmf::direct_kc(KC, taps, J.K, cmf::kDirectWholeK);
  const i64 Qd = (J.OH - 1) * J.Wp + J.OW, pps = cmf::ceil_div(Qd, NR);
  const i64 mpanels = cmf::ceil_div(J.Mg, MR), mp0 = m0 / MR, nmp = cmf::ceil_div(m1 - m0, MR);
  const bool blocked = kcd < J.K;
  float* part = scratch;                                        // nmp * npan tiles (when blocked)
  float* tile = part + (blocked ? nmp * npan * MR * NR : 0);    // MR x NR
  float* rtile = tile + MR * NR;                                // MR x NR
  float* pb = rtile + MR * NR;                                  // kcd x NR (a partial panel, packed)
  i64* iota = reinterpret_cast<i64*>(pb + kcd * NR);            // kcd
  for (i64 k = 0; k < kcd; ++k) iota[k] = k * NR;
  for (i64 k0 = 0; k0 < J.K; k0 += kcd) {
    const i64 kc = J.K - k0 < kcd ? J.K - k0 : kcd;
    const bool first = k0 == 0, last = k0 + kc == J.K;
    for (i64 b = 0; b < npan; ++b) {
      const i64 gp = pan0 + b, n = gp / pps, c0 = (gp - n * pps) * NR;
      const i64 nr = Qd - c0 < NR ? Qd - c0 : NR;
      const float* xb = J.xp + (n * J.C + g * J.Cg) * plane + c0;
      const float* B = xb;
      const i64* boff = J.koff + k0;
      if (b + 1 < npan) {  // the next panel's rows, while this one computes (first touches miss L2)
        const i64 gq = gp + 1, nq = gq / pps;
        const float* xn = J.xp + (nq * J.C + g * J.Cg) * plane + (gq - nq * pps) * NR;
        for (i64 kk = 0; kk < kc; ++kk) {
          __builtin_prefetch(xn + J.koff[k0 + kk]);
          __builtin_prefetch(xn + J.koff[k0 + kk] + NR - 1);
        }
      }
      if (nr < NR) {  // the sample's last panel: pack it (its full width would read past the sample)
        for (i64 kk = 0; kk < kc; ++kk) {
          const float* s = xb + J.koff[k0 + kk];
          float* d = pb + kk * NR;
          for (i64 t = 0; t < nr; ++t) d[t] = s[t];
          for (i64 t = nr; t < NR; ++t) d[t] = 0.0f;
        }
        B = pb, boff = iota;
      }
      const i64 oy = c0 / J.Wp, ox = c0 - oy * J.Wp;
      const bool whole = nr == NR && ox + NR <= J.OW;  // every column valid, one output row
      for (i64 mi = 0; mi < nmp; ++mi) {
        const i64 m = m0 + mi * MR, mr = m1 - m < MR ? m1 - m : MR;
        const float* Ap = J.A + ((g * mpanels + mp0 + mi) * J.K + k0) * MR;
        // Prefetch: the next channel panel's A block, after the last the first one's next k block.
        const float* pf = mi + 1 < nmp ? Ap + J.K * MR
                          : (k0 + kc < J.K ? J.A + ((g * mpanels + mp0) * J.K + k0 + kc) * MR : Ap);
        float* pt = part + (mi * npan + b) * MR * NR;
        const float* cin = first ? nullptr : pt;
        if (!last) {
          ukernel_d<0>(Ap, B, boff, kc, cin, NR, pt, NR, nullptr, nullptr, 0.0f, 0.0f, nullptr, 0, pf);
          continue;
        }
        const float* sc = J.post.scale + g * J.Mg + m;
        const float* sh = J.post.shift + g * J.Mg + m;
        const i64 obase = (n * J.M + g * J.Mg + m) * J.P;
        if (b + 1 < npan && mr == MR) {  // the next panel's output (and residual) rows of these channels
          const i64 gq = gp + 1, nn = gq / pps, cq = (gq - nn * pps) * NR, yq = cq / J.Wp;
          const i64 oq = (nn * J.M + g * J.Mg + m) * J.P + yq * J.OW + (cq - yq * J.Wp);
          if (oq + (MR - 1) * J.P + NR <= J.N * J.M * J.P)
            for (int i = 0; i < MR; ++i) {
              __builtin_prefetch(J.out + oq + i * J.P, 1);
              if (J.post.res) __builtin_prefetch(J.post.res + oq + i * J.P);
            }
        }
        if (whole && mr == MR) {
          const i64 o = obase + oy * J.OW + ox;
          if (J.post.res)
            ukernel_d<3>(Ap, B, boff, kc, cin, NR, J.out + o, J.P, sc, sh, J.post.lo, J.post.hi, J.post.res + o, J.P, pf);
          else
            ukernel_d<1>(Ap, B, boff, kc, cin, NR, J.out + o, J.P, sc, sh, J.post.lo, J.post.hi, nullptr, 0, pf);
          continue;
        }
        // Scatter the valid columns row segment by row segment (the epilogue applied in registers, unless a
        // residual must be added before the clip).
        const bool res = J.post.res != nullptr;
        if (res)
          ukernel_d<0>(Ap, B, boff, kc, cin, NR, tile, NR, nullptr, nullptr, 0.0f, 0.0f, nullptr, 0, pf);
        else
          ukernel_d<1>(Ap, B, boff, kc, cin, NR, tile, NR, sc, sh, J.post.lo, J.post.hi, nullptr, 0, pf);
        for (i64 t0 = 0; t0 < nr;) {
          const i64 q = c0 + t0, y = q / J.Wp, x = q - y * J.Wp;
          const i64 seg = (J.Wp - x < nr - t0 ? J.Wp - x : nr - t0);
          const i64 len = x >= J.OW ? 0 : (J.OW - x < seg ? J.OW - x : seg);
          for (i64 i = 0; i < mr && len > 0 && !res; ++i) {
            const float* src = tile + i * NR + t0;
            std::copy(src, src + len, J.out + obase + i * J.P + y * J.OW + x);
          }
          for (i64 i = 0; i < mr && len > 0 && res; ++i) {
            const float s = sc[i], h = sh[i];
            const float* src = tile + i * NR + t0;
            float* dst = J.out + obase + i * J.P + y * J.OW + x;
            const float* rs = J.post.res + obase + i * J.P + y * J.OW + x;
            const float lo = J.post.lo, hi = J.post.hi;
            for (i64 t = 0; t < len; ++t) {  // clip as the vector max / min do: a NaN stays NaN
              float v = src[t] * s + h + rs[t];
              v = lo > v ? lo : v;
              dst[t] = hi < v ? hi : v;
            }
          }
          t0 += seg;
        }
      }
    }
  }
}

// ---------------------------------------------------------------- channel-vectorized convolution
// For maps narrower than a column panel (7x7, 14x14, 1x1 on small planes): vectors run over CM output
// channels (weights packed [K][CM]) and the PR pixels of one output row segment are broadcast straight from
// the padded input, so no column is wasted on padding or a partial panel.  Output tiles are PR x CM,
// transposed into the NCHW output with the epilogue.  CPR (the unit's constant) bounds PR by the registers.
static constexpr int CM = NV * V::W;

template <int PR>
static void ukernel_c(const float* __restrict A, const float* X, const i64* __restrict koff, i64 kc, float* T,
                      bool load, const float* pf) {
  typename V::T acc[PR][NV];
  for (int i = 0; i < PR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = load ? V::load(T + i * CM + j * V::W) : V::zero();
  for (i64 k = 0; k < kc; ++k) {
    __builtin_prefetch(pf + k * CM);
    if (CM > 16) __builtin_prefetch(pf + k * CM + 16);
    typename V::T w[NV];
    for (int j = 0; j < NV; ++j) w[j] = V::load(A + k * CM + j * V::W);
    const float* xk = X + koff[k];
    for (int i = 0; i < PR; ++i) {
      const typename V::T a = V::set1(xk[i]);
      for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(a, w[j], acc[i][j]);
    }
  }
  for (int i = 0; i < PR; ++i)
    for (int j = 0; j < NV; ++j) V::store(T + i * CM + j * V::W, acc[i][j]);
}

using UcFn = void (*)(const float*, const float*, const i64*, i64, float*, bool, const float*);
static UcFn ukernel_c_for(i64 pr) {
  static const UcFn t[] = {nullptr,        ukernel_c<1>,  ukernel_c<2>,  ukernel_c<3>,  ukernel_c<4>,
                           ukernel_c<5>,   ukernel_c<6>,  ukernel_c<7>,  ukernel_c<8>,  ukernel_c<9>,
                           ukernel_c<10>,  ukernel_c<11>, ukernel_c<12>, ukernel_c<13>, ukernel_c<14>};
  return t[pr];
}

// Scratch: (oy1 - oy0) * OW tiles' partial sums, CM floats per pixel.
static void cvec_item_impl(const cmf::ConvJob& J, i64 g, i64 n, i64 oy0, i64 oy1, i64 cb, float* scratch) {
  const i64 taps = J.kh * J.kw, plane = J.Hp * J.Wp;
  const i64 kcb = cmf::direct_kc(128, taps, J.K);
  const i64 cp = cmf::ceil_div(J.Mg, CM), m0 = cb * CM, mr = J.Mg - m0 < CM ? J.Mg - m0 : CM;
  const i64 nseg = cmf::ceil_div(J.OW, CPR > 0 ? CPR : 1), segw = cmf::ceil_div(J.OW, nseg);  // near-equal row segments
  const float* Ab = J.A2 + (g * cp + cb) * J.K * CM;
  const float* xb = J.xp + (n * J.C + g * J.Cg) * plane;
  const float* sc = J.post.scale + g * J.Mg + m0;
  const float* sh = J.post.shift + g * J.Mg + m0;
  const i64 obase = (n * J.M + g * J.Mg + m0) * J.P;
  for (i64 k0 = 0; k0 < J.K; k0 += kcb) {
    const i64 kc = J.K - k0 < kcb ? J.K - k0 : kcb;
    const bool first = k0 == 0, last = k0 + kc == J.K;
    const float* A = Ab + k0 * CM;
    const float* pf = last ? A : A + kc * CM;  // the next k block of weights
    for (i64 oy = oy0; oy < oy1; ++oy)
      for (i64 x0 = 0; x0 < J.OW; x0 += segw) {
        const i64 np = J.OW - x0 < segw ? J.OW - x0 : segw;
        float* T = scratch + ((oy - oy0) * J.OW + x0) * CM;
        ukernel_c_for(np)(A, xb + oy * J.Wp + x0, J.koff + k0, kc, T, !first, pf);
        if (!last) continue;
        // Epilogue, then the transpose into NCHW (channel rows of np pixels).
        const typename V::T vlo = V::set1(J.post.lo), vhi = V::set1(J.post.hi);
        const bool res = J.post.res != nullptr;
        for (i64 i = 0; i < np; ++i)
          for (int j = 0; j < NV; ++j) {
            typename V::T v = V::fma(V::load(T + i * CM + j * V::W), V::load(sc + j * V::W), V::load(sh + j * V::W));
            if (!res) v = V::min(vhi, V::max(vlo, v));
            V::store(T + i * CM + j * V::W, v);
          }
        const i64 p0 = oy * J.OW + x0;
        for (i64 c = 0; c < mr; ++c) {
          float* o = J.out + obase + c * J.P + p0;
          if (!res) {
            for (i64 i = 0; i < np; ++i) o[i] = T[i * CM + c];
          } else {
            const float* rs = J.post.res + obase + c * J.P + p0;
            const float lo = J.post.lo, hi = J.post.hi;
            for (i64 i = 0; i < np; ++i) {  // clip as the vector max / min do: a NaN stays NaN
              float v = T[i * CM + c] + rs[i];
              v = lo > v ? lo : v;
              o[i] = hi < v ? hi : v;
            }
          }
        }
      }
  }
}

