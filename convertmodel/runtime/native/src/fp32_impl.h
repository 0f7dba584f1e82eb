// ISA-independent fp32 kernels, compiled once per ISA unit.  Include inside the unit's own
// namespace after defining `struct V` (vector type T, width W, zero/load/store/set1/fma/max/min)
// and the constants MR (rows of the micro-kernel) and NV (vectors per row: NR = NV * W columns).
// Each unit thus gets its own copy with its own -m flags and internal names (no ODR sharing).
//
// GEMM layout: C[m][col] += A[k][m] * B[k][col]; A is packed in panels [k][MR] (weights of conv,
// rows of X for dense), B in panels [k][NR] (implicit im2col of conv, weights of dense).  The
// micro-kernel keeps MR x NR accumulators in registers and broadcasts A.

using cmf::i64;
static constexpr int NR = NV * V::W;
static constexpr int KC = 256;

// POST: 0 none, 1 per row (conv channels), 2 per column (dense features), 3 per row plus a residual
// tile R (ldr apart) added before the clip.
template <bool LOAD, int POST>
static inline void ukernel(const float* __restrict A, const float* __restrict B, i64 kc, float* C, i64 ldc,
                           const float* scale, const float* shift, float lo, float hi, const float* R, i64 ldr,
                           const float* pf) {
  typename V::T acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) acc[i][j] = LOAD ? V::load(C + i * ldc + j * V::W) : V::zero();
  for (i64 k = 0; k < kc; ++k) {
    __builtin_prefetch(pf + k * MR);  // the A panel of the next call, same layout (cold weights stream in)
    typename V::T b[NV];
    for (int j = 0; j < NV; ++j) b[j] = V::load(B + k * NR + j * V::W);
    for (int i = 0; i < MR; ++i) {
      const typename V::T a = V::set1(A[k * MR + i]);
      for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(a, b[j], acc[i][j]);
    }
  }
  if (POST) {
    const typename V::T vlo = V::set1(lo), vhi = V::set1(hi);
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) {
        typename V::T s, t;
        if (POST != 2) {
          s = V::set1(scale[i]);
          t = V::set1(shift[i]);
        } else {
          s = V::load(scale + j * V::W);
          t = V::load(shift + j * V::W);
        }
        typename V::T v = V::fma(acc[i][j], s, t);
        if (POST == 3) v = V::add(v, V::load(R + i * ldr + j * V::W));
        // max(lo, v) / min(hi, v) return v when v is NaN (x86 returns the second operand).
        acc[i][j] = V::min(vhi, V::max(vlo, v));
      }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NV; ++j) V::store(C + i * ldc + j * V::W, acc[i][j]);
}

template <int POST>
static void ukernel_any(bool load, const float* A, const float* B, i64 kc, float* C, i64 ldc, const float* scale,
                        const float* shift, float lo, float hi, const float* R, i64 ldr, const float* pf) {
  if (load)
    ukernel<true, POST>(A, B, kc, C, ldc, scale, shift, lo, hi, R, ldr, pf);
  else
    ukernel<false, POST>(A, B, kc, C, ldc, scale, shift, lo, hi, R, ldr, pf);
}

static void call_ukernel(bool load, bool last, int post_kind, const float* A, const float* B, i64 kc, float* C,
                         i64 ldc, const float* scale, const float* shift, float lo, float hi,
                         const float* R = nullptr, i64 ldr = 0, const float* pf = nullptr) {
  if (!pf) pf = A;
  if (!last)
    ukernel_any<0>(load, A, B, kc, C, ldc, scale, shift, lo, hi, R, ldr, pf);
  else if (post_kind == 1 && R != nullptr)
    ukernel_any<3>(load, A, B, kc, C, ldc, scale, shift, lo, hi, R, ldr, pf);
  else if (post_kind == 1)
    ukernel_any<1>(load, A, B, kc, C, ldc, scale, shift, lo, hi, R, ldr, pf);
  else
    ukernel_any<2>(load, A, B, kc, C, ldc, scale, shift, lo, hi, R, ldr, pf);
}

// ---------------------------------------------------------------- packing
static void pack_a_impl(const float* w, i64 G, i64 Mg, i64 K, float* out) {
  const i64 mp = cmf::ceil_div(Mg, MR);
  for (i64 g = 0; g < G; ++g)
    for (i64 p = 0; p < mp; ++p) {
      float* dst = out + (g * mp + p) * K * MR;
      for (i64 k = 0; k < K; ++k)
        for (int i = 0; i < MR; ++i) {
          const i64 m = p * MR + i;
          dst[k * MR + i] = m < Mg ? w[(g * Mg + m) * K + k] : 0.0f;
        }
    }
}

static void pack_b_impl(const float* b, i64 K, i64 Ncol, bool trans, float alpha, float* out) {
  const i64 np = cmf::ceil_div(Ncol, NR);
  for (i64 p = 0; p < np; ++p) {
    float* dst = out + p * K * NR;
    for (i64 k = 0; k < K; ++k)
      for (int j = 0; j < NR; ++j) {
        const i64 c = p * NR + j;
        const float v = c < Ncol ? (trans ? b[c * K + k] : b[k * Ncol + c]) : 0.0f;
        dst[k * NR + j] = alpha == 1.0f ? v : v * alpha;
      }
  }
}

// ---------------------------------------------------------------- convolution
static void conv_direct_impl(const cmf::ConvJob& J, i64 g, i64 pan0, i64 npan, i64 m0, i64 m1, float* scratch);

// Scratch (floats): B block KC x NCB, two tiles MR x NR (output, residual), then i64 arrays: out_off (NCB),
// runs (3 * NCB), panel starts.
static void conv_item_impl(const cmf::ConvJob& J, i64 g, i64 q0, i64 nq, i64 m0, i64 m1, float* scratch) {
  if (J.direct) return conv_direct_impl(J, g, q0 / NR, cmf::ceil_div(nq, NR), m0, m1, scratch);
  const i64 ncb = cmf::ceil_div(nq, NR) * NR;
  const i64 npanel = ncb / NR;
  float* Bp = scratch;
  float* tile = Bp + KC * ncb;
  float* rtile = tile + MR * NR;
  i64* out_off = reinterpret_cast<i64*>(rtile + MR * NR);
  i64* runs = out_off + ncb;  // per run: (column j, length, input offset)
  i64* prun = runs + 3 * ncb;  // run index where each panel starts (npanel + 1)
  const i64 plane = J.Hp * J.Wp;
  // Columns -> input and output offsets, and runs of columns whose input advances by sw.
  i64 nruns = 0;
  i64 n = q0 / J.P, p = q0 - n * J.P, oy = p / J.OW, ox = p - oy * J.OW;  // advanced without divisions
  for (i64 j = 0; j < nq; ++j, ++p, ++ox) {
    if (ox == J.OW) ox = 0, ++oy;
    if (p == J.P) p = 0, oy = 0, ++n;
    out_off[j] = (n * J.M + g * J.Mg) * J.P + p;
    const i64 in = (n * J.C + g * J.Cg) * plane + oy * J.sh * J.Wp + ox * J.sw;
    if (j % NR == 0) prun[j / NR] = nruns;
    if (j % NR != 0 && ox != 0 && nruns > 0) {
      ++runs[3 * (nruns - 1) + 1];
    } else {
      runs[3 * nruns] = j;
      runs[3 * nruns + 1] = 1;
      runs[3 * nruns + 2] = in;
      ++nruns;
    }
  }
  prun[npanel] = nruns;
  const i64 mpanels = cmf::ceil_div(J.Mg, MR);
  for (i64 k0 = 0; k0 < J.K; k0 += KC) {
    const i64 kc = J.K - k0 < KC ? J.K - k0 : KC;
    // Implicit im2col of this k block into NR-column panels.
    for (i64 b = 0; b < npanel; ++b) {
      float* dst = Bp + b * kc * NR;
      const i64 jb = b * NR, jn = nq - jb < NR ? nq - jb : NR;
      for (i64 kk = 0; kk < kc; ++kk) {
        float* row = dst + kk * NR;
        const float* base = J.xp + J.koff[k0 + kk];
        for (i64 r = prun[b]; r < prun[b + 1]; ++r) {
          const i64 j = runs[3 * r] - jb, len = runs[3 * r + 1];
          const float* s = base + runs[3 * r + 2];
          if (J.sw == 1) {
            for (i64 t = 0; t < len; ++t) row[j + t] = s[t];
          } else if (J.sw == 2) {  // vectors while a scalar tail remains (the last load stays in the row)
            i64 t = 0;
            for (; t + V::W < len; t += V::W) V::store(row + j + t, V::even(V::load(s + 2 * t), V::load(s + 2 * t + V::W)));
            for (; t < len; ++t) row[j + t] = s[2 * t];
          } else {
            for (i64 t = 0; t < len; ++t) row[j + t] = s[t * J.sw];
          }
        }
        for (i64 t = jn; t < NR; ++t) row[t] = 0.0f;
      }
    }
    const bool first = k0 == 0, last = k0 + kc == J.K;
    for (i64 m = m0; m < m1; m += MR) {
      const i64 mr = m1 - m < MR ? m1 - m : MR;
      const float* Ap = J.A + ((g * mpanels + m / MR) * J.K + k0) * MR;
      const float* sc = J.post.scale + g * J.Mg + m;
      const float* sh = J.post.shift + g * J.Mg + m;
      for (i64 b = 0; b < npanel; ++b) {
        const i64 jb = b * NR, nr = nq - jb < NR ? nq - jb : NR;
        const i64 o = out_off[jb] + m * J.P;
        const bool direct = mr == MR && nr == NR && out_off[jb + NR - 1] == out_off[jb] + NR - 1;
        const float* res = J.post.res;
        const float* pf = b + 1 == npanel && m + MR < m1 ? Ap + J.K * MR : Ap;  // the next channel panel's A
        if (direct) {
          call_ukernel(!first, last, 1, Ap, Bp + b * kc * NR, kc, J.out + o, J.P, sc, sh, J.post.lo, J.post.hi,
                       res ? res + o : nullptr, J.P, pf);
          continue;
        }
        if (!first)
          for (i64 i = 0; i < mr; ++i)
            for (i64 t = 0; t < nr; ++t) tile[i * NR + t] = J.out[out_off[jb + t] + (m + i) * J.P];
        if (last && res)
          for (i64 i = 0; i < MR; ++i)
            for (i64 t = 0; t < NR; ++t)
              rtile[i * NR + t] = (i < mr && t < nr) ? res[out_off[jb + t] + (m + i) * J.P] : 0.0f;
        call_ukernel(!first, last, 1, Ap, Bp + b * kc * NR, kc, tile, NR, sc, sh, J.post.lo, J.post.hi,
                     res ? rtile : nullptr, NR, pf);
        for (i64 i = 0; i < mr; ++i)
          for (i64 t = 0; t < nr; ++t) J.out[out_off[jb + t] + (m + i) * J.P] = tile[i * NR + t];
      }
    }
  }
}

#include "fp32_direct_impl.h"  // the direct and channel-vectorized convolutions

// ---------------------------------------------------------------- dense
// Scratch (floats): packed rows ceil(nr / MR) * MR x KC, then a tile MR x NR.
static void gemm_item_impl(const cmf::GemmJob& J, i64 r0, i64 nr, i64 c0, i64 c1, float* scratch) {
  const i64 rp = cmf::ceil_div(nr, MR);
  float* Ap = scratch;
  float* tile = Ap + rp * MR * KC;
  for (i64 k0 = 0; k0 < J.K; k0 += KC) {
    const i64 kc = J.K - k0 < KC ? J.K - k0 : KC;
    for (i64 p = 0; p < rp; ++p)
      for (int i = 0; i < MR; ++i) {
        const i64 r = p * MR + i;
        float* dst = Ap + p * kc * MR + i;
        if (r < nr) {
          const float* src = J.x + (r0 + r) * J.K + k0;
          for (i64 k = 0; k < kc; ++k) dst[k * MR] = src[k];
        } else {
          for (i64 k = 0; k < kc; ++k) dst[k * MR] = 0.0f;
        }
      }
    const bool first = k0 == 0, last = k0 + kc == J.K;
    for (i64 c = c0; c < c1; c += NR) {
      const i64 ncol = c1 - c < NR ? c1 - c : NR;
      const float* Bp = J.B + (c / NR) * J.K * NR + k0 * NR;
      for (i64 p = 0; p < rp; ++p) {
        const i64 mr = nr - p * MR < MR ? nr - p * MR : MR;
        float* C = J.out + (r0 + p * MR) * J.Ncol + c;
        const float* A = Ap + p * kc * MR;
        if (mr == MR && ncol == NR) {
          call_ukernel(!first, last, 2, A, Bp, kc, C, J.Ncol, J.post.scale + c, J.post.shift + c, J.post.lo,
                       J.post.hi);
          continue;
        }
        if (!first)
          for (i64 i = 0; i < mr; ++i)
            for (i64 t = 0; t < ncol; ++t) tile[i * NR + t] = C[i * J.Ncol + t];
        call_ukernel(!first, last, 2, A, Bp, kc, tile, NR, J.post.scale + c, J.post.shift + c, J.post.lo, J.post.hi);
        for (i64 i = 0; i < mr; ++i)
          for (i64 t = 0; t < ncol; ++t) C[i * J.Ncol + t] = tile[i * NR + t];
      }
    }
  }
}

#include "fp32_dw_impl.h"  // depthwise: phase planes over flat outputs (strides 1-2), per-row kernel

// ---------------------------------------------------------------- pooling
static inline void tap_range(i64 start, i64 k, i64 d, i64 lo, i64 hi, i64& t0, i64& t1) {
  // Taps t in [0, k) with lo <= start + t * d < hi.
  t0 = start >= lo ? 0 : (lo - start + d - 1) / d;
  t1 = start < hi ? (hi - 1 - start) / d + 1 : 0;
  if (t1 > k) t1 = k;
  if (t0 > t1) t0 = t1;
}

// d[i] = maxnan(d[i], s[i]) for i < n (vectors, then a scalar tail with the same NaN rule).
static inline void maxnan_into(float* d, const float* s, i64 n) {
  i64 i = 0;
  for (; i + V::W <= n; i += V::W) V::store(d + i, V::maxnan(V::load(d + i), V::load(s + i)));
  for (; i < n; ++i) d[i] = (s[i] > d[i] || s[i] != s[i]) ? s[i] : d[i];
}

// Max / average windows: per output row a vertical pass over the valid rows (contiguous, vectorized by
// the compiler) into a row buffer padded with the fill value, then the horizontal window over it.
// Scratch: 2 * pool_row_floats() (fp32.h): the row buffer, then the horizontal windows.
static void pool_item_impl(const cmf::PoolJob& J, i64 p0, i64 p1, float* scratch) {
  const bool mx = J.kind == 0;
  const float fill = mx ? -__builtin_inff() : 0.0f;
  const i64 wb = cmf::pool_row_floats(J);
  for (i64 pl = p0; pl < p1; ++pl) {
    const float* x = J.x + pl * J.H * J.W;
    float* out = J.out + pl * J.OH * J.OW;
    if (J.kind == 2) {
      const i64 n = J.H * J.W;
      typename V::T acc = V::zero();
      i64 i = 0;
      for (; i + V::W <= n; i += V::W) acc = V::add(acc, V::load(x + i));
      alignas(64) float lanes[V::W];
      V::store(lanes, acc);
      float s = 0.0f;
      for (int l = 0; l < V::W; ++l) s += lanes[l];
      for (; i < n; ++i) s += x[i];
      out[0] = s / static_cast<float>(n);
      continue;
    }
    float* row = scratch;
    for (i64 oy = 0; oy < J.OH; ++oy) {
      const i64 y0 = oy * J.sh - J.ph;
      i64 ty0, ty1, cy0, cy1;
      tap_range(y0, J.kh, J.dh, 0, J.H, ty0, ty1);
      tap_range(y0, J.kh, J.dh, J.include_pad ? -J.ph : 0, J.include_pad ? J.H + J.pe_h : J.H, cy0, cy1);
      if (ty0 < ty1) {  // the first valid row overwrites [pw, pw + W): fill only the pads around it
        for (i64 i = 0; i < J.pw; ++i) row[i] = fill;
        for (i64 i = J.pw + J.W; i < wb; ++i) row[i] = fill;
      } else {
        for (i64 i = 0; i < wb; ++i) row[i] = fill;
      }
      float* r = row + J.pw;
      for (i64 ty = ty0; ty < ty1; ++ty) {
        const float* s = x + (y0 + ty * J.dh) * J.W;
        if (ty == ty0) {
          for (i64 i = 0; i < J.W; ++i) r[i] = s[i];
        } else if (mx) {
          maxnan_into(r, s, J.W);
        } else {
          for (i64 i = 0; i < J.W; ++i) r[i] += s[i];
        }
      }
      // Horizontal windows at every start column (contiguous passes the compiler vectorizes), then the
      // strided pick of the output columns.
      float* o = out + oy * J.OW;
      const i64 nh = (J.OW - 1) * J.sw + 1;
      // Whole vectors: the row buffer has 16 floats of slack past the widest window (pool_row_floats).
      const i64 nv = V::W > 1 ? cmf::ceil_div(nh, V::W) * V::W : nh;
      float* h = row + wb;
      for (i64 i = 0; i < nv; ++i) h[i] = row[i];
      for (i64 tx = 1; tx < J.kw; ++tx) {
        const float* s = row + tx * J.dw;
        if (mx)
          maxnan_into(h, s, nv);
        else
          for (i64 i = 0; i < nh; ++i) h[i] += s[i];
      }
      if (mx) {
        for (i64 ox = 0; ox < J.OW; ++ox) o[ox] = h[ox * J.sw];
      } else {
        for (i64 ox = 0; ox < J.OW; ++ox) {
          const i64 x0 = ox * J.sw - J.pw;
          i64 cx0, cx1;
          tap_range(x0, J.kw, J.dw, J.include_pad ? -J.pw : 0, J.include_pad ? J.W + J.pe_w : J.W, cx0, cx1);
          o[ox] = h[ox * J.sw] / static_cast<float>((cy1 - cy0) * (cx1 - cx0));
        }
      }
    }
  }
}

static const cmf::Fp32Ops* make_ops(const char* name) {
  static const cmf::Fp32Ops ops = {name,           MR,           NR,           KC,
                                   V::W,           pack_a_impl,  pack_b_impl,  conv_item_impl,
                                   gemm_item_impl, dw_item_impl, pool_item_impl, CM,
                                   CPR,            CPR > 0 ? cvec_item_impl : nullptr};
  return &ops;
}
