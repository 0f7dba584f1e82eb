// The padding pass of a band (IsaOps::pad_rows, see common.h), compiled once per ISA translation unit:
// included by generic.h inside the TU's namespace, like it.

[[maybe_unused]] static void pad_rows_impl(const cm::Job& jb, int n, int g, float* xp, float* cmin, float* cmax) {
  const int Cg = jb.C / jb.G, H = jb.H, W = jb.W, Wq = jb.Wp, pt = jb.ph, pl = jb.pw, sh = jb.sh, sw = jb.sw;
  const size_t c0 = static_cast<size_t>(n) * jb.C + static_cast<size_t>(g) * Cg, pp = jb.pplane;
  const int hq = static_cast<int>(pp / Wq), hp0 = jb.oh0 * sh;  // phase rows; the band's first padded row
  for (int c = 0; c < Cg; ++c) {
    float* __restrict dst = xp + c * jb.plane;
    const float* src = jb.x + (c0 + c) * H * static_cast<size_t>(W);
    for (int py = 0; py < sh; ++py)
      for (int r = 0; r < hq; ++r) {
        const int h = hp0 + r * sh + py - pt;  // the input row of phase row r of row phase py
        for (int px = 0; px < sw; ++px) {
          float* row = dst + static_cast<size_t>(py * sw + px) * pp + static_cast<size_t>(r) * Wq;
          if (h < 0 || h >= H) {
            std::memset(row, 0, sizeof(float) * Wq);
            continue;
          }
          const float* s = src + static_cast<size_t>(h) * W;
          if (sw == 1) {
            const int right = Wq - pl - W;
            std::memset(row, 0, sizeof(float) * pl);
            std::memcpy(row + pl, s, sizeof(float) * W);
            if (right > 0) std::memset(row + pl + W, 0, sizeof(float) * right);
            continue;
          }
          // Padded column j * sw + px is input column w = j * sw + px - pl: [jlo, jhi) are inside the input.
          const int jlo = std::min(Wq, pl > px ? (pl - px + sw - 1) / sw : 0);
          const int last = W - 1 + pl - px;  // j * sw <= last
          const int jhi = last < 0 ? jlo : std::max(jlo, std::min(Wq, last / sw + 1));
          for (int j = 0; j < jlo; ++j) row[j] = 0.0f;
          const float* __restrict sp = s + (jlo * sw + px - pl);
          float* __restrict rp = row + jlo;
          if (sw == 2) {  // a constant stride the compiler vectorizes
            for (int j = 0; j < jhi - jlo; ++j) rp[j] = sp[2 * j];
          } else {
            for (int j = 0; j < jhi - jlo; ++j) rp[j] = sp[static_cast<size_t>(j) * sw];
          }
          for (int j = jhi; j < Wq; ++j) row[j] = 0.0f;
        }
      }
    // The channel's maps while its band is in L1/L2: min over c = 0, 1, ... in order, as the window minima need.
    const size_t nq = static_cast<size_t>(sh) * sw * pp;
    if (c == 0) {
      std::memcpy(cmin, dst, sizeof(float) * nq);
      std::memcpy(cmax, dst, sizeof(float) * nq);
    } else {
      float* __restrict mn = cmin;
      float* __restrict mx = cmax;
      for (size_t q = 0; q < nq; ++q) {
        const float v = dst[q];
        // A NaN stays in the min map (v < NaN is false) and enters it (v != v): the window's min is then NaN,
        // which is all a NaN window needs (mx > mn is false, so it is not live; mn * w_sum makes y NaN).
        const float t = v < mn[q] ? v : mn[q];
        mn[q] = v != v ? v : t;
        mx[q] = v > mx[q] ? v : mx[q];
      }
    }
  }
}
