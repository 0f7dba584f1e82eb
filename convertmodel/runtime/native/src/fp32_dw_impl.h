// The depthwise kernels of fp32_impl.h, which includes this file inside the ISA unit's namespace (V, the
// unit's vector type, defined); no include guard and no includes of its own for that reason.

// ---------------------------------------------------------------- depthwise
// Per plane: the input is copied once into a padded plane (rows Hq, pitch Wb, only the pads zeroed), then
// each output row is computed in whole vectors of W outputs, four rows at a time (independent FMA chains);
// a tap reads its W inputs with one load (stride 1), two loads and an even-lane permute (stride 2) or a
// scalar gather (larger strides).  Vectors past OW are computed and dropped (the pitch leaves room).
// Scratch: dw_scratch_floats() (fp32.h).
template <int R>
static inline void dw_rows_impl(const cmf::DwJob& J, const float* buf, i64 Wb, const float* w, i64 oy, i64 ox0,
                                float* out, float* tmp, typename V::T vsc, typename V::T vsf, typename V::T vlo,
                                typename V::T vhi) {
  typename V::T acc[R];
  for (int r = 0; r < R; ++r) acc[r] = V::zero();
  for (i64 ky = 0; ky < J.kh; ++ky)
    for (i64 kx = 0; kx < J.kw; ++kx) {
      const typename V::T wt = V::set1(w[ky * J.kw + kx]);
      for (int r = 0; r < R; ++r) {
        const float* p = buf + ((oy + r) * J.sh + ky * J.dh) * Wb + ox0 * J.sw + kx * J.dw;
        typename V::T v;
        if (J.sw == 1) {
          v = V::load(p);
        } else if (J.sw == 2) {
          v = V::even(V::load(p), V::load(p + V::W));
        } else {
          for (int l = 0; l < V::W; ++l) tmp[l] = p[l * J.sw];
          v = V::load(tmp);
        }
        acc[r] = V::fma(wt, v, acc[r]);
      }
    }
  const i64 n = J.OW - ox0 < V::W ? J.OW - ox0 : V::W;
  for (int r = 0; r < R; ++r) {
    const typename V::T v = V::min(vhi, V::max(vlo, V::fma(acc[r], vsc, vsf)));
    float* o = out + (oy + r) * J.OW + ox0;
    if (n == V::W) {
      V::store(o, v);
    } else {
      V::store(tmp, v);
      for (i64 t = 0; t < n; ++t) o[t] = tmp[t];
    }
  }
}

// dst[0, n) = src[0, n): whole vectors, then one partial store (src may be read up to a vector past n).
static inline void dw_copy_row(float* dst, const float* src, i64 n) {
  i64 i = 0;
  for (; i + V::W <= n; i += V::W) V::store(dst + i, V::load(src + i));
  if (i < n) V::store_part(dst + i, V::load(src + i), static_cast<int>(n - i));
}

// dst[0, n) = src[0, n) writing nothing past dst + n (masked tail store): short rows without a memmove call.
// src may be read up to `avail` floats (a plain load for the tail where it fits: faster than a masked one).
static inline void dw_copy_exact(float* dst, const float* src, i64 n, i64 avail) {
  i64 i = 0;
  for (; i + V::W <= n; i += V::W) V::store(dst + i, V::load(src + i));
  if (i < n) {
    const int r = static_cast<int>(n - i);
    V::store_part(dst + i, i + V::W <= avail ? V::load(src + i) : V::load_part(src + i, r), r);
  }
}

// Lanes l of columns b + l of row s (zero outside [0, cw)).
static inline typename V::T dw_load_cols(const float* s, i64 b, i64 cw) {
  if (b >= 0 && b + V::W <= cw) return V::load(s + b);
  const i64 lo = b < 0 ? -b : 0, hi = cw - b;
  if (hi <= lo || lo >= V::W) return V::zero();
  return V::load_range(s + b, static_cast<int>(lo), static_cast<int>(hi < V::W ? hi : V::W));
}

// Strides 1 and 2 (dw_flat): the plane is split once into sh x sw phase planes (fp32.h), whose pads and slack
// are zeroed once per work item (only the input rows are rewritten per plane; a stride-2 row is loaded with
// masked loads straight from the input and deinterleaved with even / odd lane permutes), then the outputs run over the flat
// (oy, x) index of the phase width, four vectors at a time; each tap is one unit-stride load at a fixed offset.
static void dw_flat_impl(const cmf::DwJob& J, i64 p0, i64 p1, float* scratch) {
  const i64 Pw = cmf::dw_pw(J), Ph = cmf::dw_ph(J), PS = cmf::dw_plane_stride(J, V::W);
  const i64 nph = J.sh * J.sw, nflat = cmf::dw_flat_outputs(J, V::W);
  float* planes = scratch;
  // Flat outputs, two buffers: a plane is copied out after the next one is computed (by then its stores
  // have left the store buffer; reading them back at once stalls on store forwarding, 7x7: ~1.3x slower).
  // Phase planes, two sets as well: the next plane's input is written before this one is computed.
  float* bufs[2] = {planes, planes + nph * PS};
  const float* holds[2] = {nullptr, nullptr};  // the input plane each set holds (channel multipliers reuse it)
  float* tmps[2] = {planes + 2 * nph * PS, planes + 2 * nph * PS + nflat};
  std::fill(planes, tmps[0], 0.0f);
  const i64 T = J.kh * J.kw;
  i64* off = reinterpret_cast<i64*>(tmps[1] + nflat + 16);  // tap offsets (scratch is 64-byte aligned)
  auto copy_out = [&](i64 pl) {
    const float* tmp = tmps[pl & 1];
    float* out = J.out + pl * J.OH * J.OW;
    if (Pw == J.OW) {
      dw_copy_row(out, tmp, J.OH * J.OW);
    } else {
      // Whole-vector stores while they end before the last row (later rows overwrite the spill, in order:
      // nothing outside this plane is touched), then exact ones (masked partial stores are slower).
      const i64 full = cmf::ceil_div(J.OW, V::W) * V::W, last = (J.OH - 1) * J.OW;
      i64 oy = 0;
      for (; oy < J.OH && oy * J.OW + full <= last; ++oy)
        for (i64 i = 0; i < full; i += V::W) V::store(out + oy * J.OW + i, V::load(tmp + oy * Pw + i));
      for (; oy < J.OH; ++oy) dw_copy_row(out + oy * J.OW, tmp + oy * Pw, J.OW);
    }
  };
  for (i64 ky = 0; ky < J.kh; ++ky)
    for (i64 kx = 0; kx < J.kw; ++kx) {
      const i64 y = ky * J.dh, x = kx * J.dw;
      off[ky * J.kw + kx] = ((y % J.sh) * J.sw + x % J.sw) * PS + (y / J.sh) * Pw + x / J.sw;
    }
  // Input columns [0, cw) are padded columns [pw, pw + cw) (those a phase row holds).
  const i64 span = J.sw == 1 ? Pw : 2 * Pw;
  const i64 cw = J.pw >= span ? 0 : (J.W < span - J.pw ? J.W : span - J.pw);
  auto fill = [&](int k, const float* src) {
    holds[k] = src;
    float* bp = bufs[k];
    if (cw <= 0) return;
    for (i64 a = 0; a < J.sh; ++a)
      for (i64 y = 0; y < Ph; ++y) {
        const i64 iy = y * J.sh + a - J.ph;
        if (iy < 0 || iy >= J.H) continue;  // a pad row: zero since the item began
        const float* s = src + iy * J.W;
        if (J.sw == 1) {
          dw_copy_exact(bp + a * PS + y * Pw + J.pw, s, cw, (J.H - iy) * J.W);
          continue;
        }
        float* d0 = bp + (a * 2) * PS + y * Pw;
        float* d1 = d0 + PS;
        for (i64 x0 = 0; x0 < Pw; x0 += V::W) {  // padded columns 2 * x0 + [0, 2W): src columns - pw
          const i64 b0 = 2 * x0 - J.pw, b1 = b0 + V::W;  // loaded straight from src (no store forwarding)
          const typename V::T u = dw_load_cols(s, b0, cw), v = dw_load_cols(s, b1, cw);
          V::store(d0 + x0, V::even(u, v));
          V::store(d1 + x0, V::odd(u, v));
        }
      }
  };
  auto source = [&](i64 pl) { return J.x + ((pl / J.M) * J.C + (pl % J.M) / J.mult) * J.H * J.W; };
  if (p1 > p0) fill(0, source(p0));
  for (i64 pl = p0; pl < p1; ++pl) {
    const i64 m = pl % J.M;
    const float* src = source(pl);
    const int k = holds[0] == src ? 0 : 1;
    if (pl + 1 < p1) {
      const float* nx = source(pl + 1);
      if (nx != src && holds[1 - k] != nx) fill(1 - k, nx);
    }
    const float* cur = bufs[k];
    const float* w = J.w + m * T;
    const typename V::T vsc = V::set1(J.post.scale[m]), vsf = V::set1(J.post.shift[m]);
    const typename V::T vlo = V::set1(J.post.lo), vhi = V::set1(J.post.hi);
    float* tmp = tmps[pl & 1];
    for (i64 i = 0; i < nflat; i += 4 * V::W) {
      typename V::T a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
      for (i64 t = 0; t < T; ++t) {
        const typename V::T wt = V::set1(w[t]);
        const float* sp = cur + off[t] + i;
        a0 = V::fma(wt, V::load(sp), a0);
        a1 = V::fma(wt, V::load(sp + V::W), a1);
        a2 = V::fma(wt, V::load(sp + 2 * V::W), a2);
        a3 = V::fma(wt, V::load(sp + 3 * V::W), a3);
      }
      V::store(tmp + i, V::min(vhi, V::max(vlo, V::fma(a0, vsc, vsf))));
      V::store(tmp + i + V::W, V::min(vhi, V::max(vlo, V::fma(a1, vsc, vsf))));
      V::store(tmp + i + 2 * V::W, V::min(vhi, V::max(vlo, V::fma(a2, vsc, vsf))));
      V::store(tmp + i + 3 * V::W, V::min(vhi, V::max(vlo, V::fma(a3, vsc, vsf))));
    }
    if (pl > p0) copy_out(pl - 1);
  }
  if (p1 > p0) copy_out(p1 - 1);
}

// Larger strides: per plane a padded copy (rows Hq, pitch Wb), output rows in whole vectors (dw_rows_impl).
static void dw_item_impl(const cmf::DwJob& J, i64 p0, i64 p1, float* scratch) {
  if (cmf::dw_flat(J)) {
    dw_flat_impl(J, p0, p1, scratch);
    return;
  }
  const i64 Hq = cmf::dw_rows(J), Wb = cmf::dw_pitch(J, V::W);
  float* buf = scratch;
  for (i64 i = Hq * Wb; i < Hq * Wb + 4 * V::W; ++i) buf[i] = 0.0f;
  const i64 tmp_at = Hq * Wb + 4 * V::W;
  float* tmp = buf + tmp_at + 16 - tmp_at % 16;  // 64-byte aligned (scratch is)
  // Input columns [0, cw) land at [pw, pw + cw) of each row; rows [0, ch) at [ph, ph + ch).
  const i64 cw = J.W < Wb - J.pw ? J.W : (Wb - J.pw > 0 ? Wb - J.pw : 0);
  const i64 ch = J.H < Hq - J.ph ? J.H : (Hq - J.ph > 0 ? Hq - J.ph : 0);
  const float* have = nullptr;  // the input plane buf holds (channel multipliers reuse it)
  for (i64 pl = p0; pl < p1; ++pl) {
    const i64 n = pl / J.M, m = pl % J.M, c = m / J.mult;
    const float* src = J.x + (n * J.C + c) * J.H * J.W;
    if (src != have) {
      have = src;
      std::fill(buf, buf + Hq * Wb, 0.0f);  // one pass (cheaper than per-row pad fills on small planes)
      for (i64 iy = 0; iy < ch && cw > 0; ++iy) {
        const float* s = src + iy * J.W;
        std::copy(s, s + cw, buf + (iy + J.ph) * Wb + J.pw);
      }
    }
    const float* w = J.w + m * J.kh * J.kw;
    const typename V::T vsc = V::set1(J.post.scale[m]), vsf = V::set1(J.post.shift[m]);
    const typename V::T vlo = V::set1(J.post.lo), vhi = V::set1(J.post.hi);
    float* out = J.out + pl * J.OH * J.OW;
    for (i64 ox0 = 0; ox0 < J.OW; ox0 += V::W) {
      i64 oy = 0;
      for (; oy + 4 <= J.OH; oy += 4) dw_rows_impl<4>(J, buf, Wb, w, oy, ox0, out, tmp, vsc, vsf, vlo, vhi);
      for (; oy < J.OH; ++oy) dw_rows_impl<1>(J, buf, Wb, w, oy, ox0, out, tmp, vsc, vsf, vlo, vhi);
    }
  }
}
