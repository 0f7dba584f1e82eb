// Python bindings of the fp32 convolutions (dense, grouped, strided via phase planes, depthwise): argument
// checks, the choice of path (direct / packed / cvec) and the work split.  Baseline flags only.
#include "fp32_bind.h"

namespace cmf_bind {

// ---------------------------------------------------------------- conv
struct Geo {
  i64 N, C, H, W, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, OH, OW;
};

Geo geometry(const FArr& x, i64 kh, i64 kw, const std::vector<i64>& strides, const std::vector<i64>& pads,
             const std::vector<i64>& dil, const char* what) {
  if (x.ndim() != 4) bad(std::string(what) + ": X must be 4-D (N, C, H, W)");
  check_dims(strides, 2, 1, "strides");
  check_dims(pads, 4, 0, "pads");
  check_dims(dil, 2, 1, "dilations");
  Geo g{x.shape(0), x.shape(1), x.shape(2), x.shape(3), kh, kw, strides[0], strides[1], dil[0], dil[1],
        pads[0],    pads[1],    pads[2],    pads[3],    0,  0};
  if (kh < 1 || kw < 1 || kh >= kDimMax || kw >= kDimMax) bad(std::string(what) + ": kernel sizes must be >= 1");
  for (i64 d : {g.N, g.C, g.H, g.W})
    if (d >= kDimMax) bad(std::string(what) + ": input dimension too large");
  const i64 eh = (kh - 1) * g.dh + 1, ew = (kw - 1) * g.dw + 1;  // < 2^62: both factors < 2^31
  const i64 hp = g.H + g.pt + g.pb, wp = g.W + g.pl + g.pr;
  if (eh > hp || ew > wp)
    bad(std::string(what) + ": dilated kernel " + std::to_string(eh) + "x" + std::to_string(ew) +
        " larger than the padded input " + std::to_string(hp) + "x" + std::to_string(wp));
  g.OH = (hp - eh) / g.sh + 1;
  g.OW = (wp - ew) / g.sw + 1;
  return g;
}

// Direct (in-place B) or packed convolution: the direct path saves the packing, which is paid once per
// column block and amortized over the block's Mg channels; above ~128 channels on maps at least a panel
// wide packing is the cheaper one (measured, docs/performance.md).  $CONVERTMODEL_FP32_CONV = direct | packed forces one (tests, benchmarks).
std::string conv_mode() {
  const char* env = std::getenv("CONVERTMODEL_FP32_CONV");
  return env ? std::string(env) : std::string("auto");
}

bool forced_direct() { return conv_mode() == "direct" || conv_mode() == "cvec"; }

bool use_direct(i64 Mg, i64 K, i64 taps, i64 OW, i64 NR) {
  const char* env = std::getenv("CONVERTMODEL_FP32_CONV");
  if (env && std::string(env) == "direct") return true;
  if (env && std::string(env) == "packed") return false;
  if (K < 32) return false;  // RGB first layers (K = 27): the packed panel's aligned loads win (0.55-0.7x)
  return Mg <= 128 || (taps > 1 && OW < NR);  // small maps: packing pays several runs per panel
}

// The padded input of a strided convolution split into sh x sw phase planes per channel: phase (a, b) holds
// padded pixels (y * sh + a, x * sw + b), Hph x Wph of them; only the phases some tap reads are filled.
// Then every tap reads its phase with unit stride and the convolution runs as a stride-1 one over planes
// Hph x Wph (returned in Hp / Wp; a channel's planes are Hp * Wp = sh * sw * Hph * Wph floats), koff the
// tap offsets inside one group's channels.
const float* phase_planes(const float* xs, const Geo& g, i64 Cg, i64 kh, i64 kw, std::vector<float>& buf, int T,
                          i64* koff, i64& Hp, i64& Wp) {
  const i64 hp = g.H + g.pt + g.pb, wp = g.W + g.pl + g.pr;
  const i64 Hph = cmf::ceil_div(hp, g.sh), Wph = cmf::ceil_div(wp, g.sw), nph = g.sh * g.sw;
  const i64 pln = Hph * Wph, chan = nph * pln;
  std::vector<char> used(static_cast<size_t>(nph), 0);
  for (i64 ky = 0; ky < kh; ++ky)
    for (i64 kx = 0; kx < kw; ++kx) used[((ky * g.dh) % g.sh) * g.sw + (kx * g.dw) % g.sw] = 1;
  const size_t need = static_cast<size_t>(mul(mul(g.N, g.C, "phase planes"), chan, "phase planes"));
  if (buf.size() < need) {
    buf.clear();
    buf.shrink_to_fit();
    buf.resize(need);
  }
  float* xd = buf.data();
  parallel(g.N * g.C, threads_for(static_cast<double>(need), T), 0, [&](i64 pl, float*) {
    const float* s = xs + pl * g.H * g.W;
    for (i64 a = 0; a < g.sh; ++a)
      for (i64 b = 0; b < g.sw; ++b) {
        if (!used[a * g.sw + b]) continue;
        float* d = xd + pl * chan + (a * g.sw + b) * pln;
        // Columns xx with 0 <= xx * sw + b - pl < W.
        const i64 x0 = std::min(Wph, g.pl > b ? cmf::ceil_div(g.pl - b, g.sw) : 0);
        const i64 x1 = std::max(x0, std::min(Wph, cmf::ceil_div(g.pl + g.W - b, g.sw)));
        for (i64 yy = 0; yy < Hph; ++yy) {
          float* row = d + yy * Wph;
          const i64 iy = yy * g.sh + a - g.pt;
          if (iy < 0 || iy >= g.H) {
            std::fill(row, row + Wph, 0.0f);
            continue;
          }
          const float* sr = s + iy * g.W + (x0 * g.sw + b - g.pl);
          std::fill(row, row + x0, 0.0f);
          for (i64 xx = 0; xx < x1 - x0; ++xx) row[x0 + xx] = sr[xx * g.sw];
          std::fill(row + x1, row + Wph, 0.0f);
        }
      }
  });
  for (i64 c = 0; c < Cg; ++c)
    for (i64 ky = 0; ky < kh; ++ky)
      for (i64 kx = 0; kx < kw; ++kx) {
        const i64 y = ky * g.dh, x = kx * g.dw;
        koff[(c * kh + ky) * kw + kx] = c * chan + ((y % g.sh) * g.sw + x % g.sw) * pln + (y / g.sh) * Wph + x / g.sw;
      }
  Hp = nph * Hph, Wp = Wph;
  return xd;
}

py::array_t<float> conv(FArr x, PackedConv& pc, py::object scale, py::object shift, float lo, float hi,
                        std::vector<i64> strides, std::vector<i64> pads, std::vector<i64> dil, int threads,
                        py::object out, py::object residual) {
  Geo g = geometry(x, pc.kh, pc.kw, strides, pads, dil, "fp32 conv");
  if (g.C != pc.G * pc.Cg)
    bad("fp32 conv: X has " + std::to_string(g.C) + " channels; W expects " + std::to_string(pc.G * pc.Cg));
  const cmf::Fp32Ops& ops = *pc.ops;
  PostArrays pa(scale, shift, pc.M, 64, lo, hi);
  const i64 P = mul(g.OH, g.OW, "output");
  const i64 Q = mul(g.N, P, "output");
  mul(Q, pc.M, "output");
  FArr res;
  const bool has_res = !residual.is_none();
  if (has_res) {
    res = residual.cast<FArr>();
    const std::vector<i64> want{g.N, pc.M, g.OH, g.OW};
    if (res.ndim() != 4 || !std::equal(want.begin(), want.end(), res.shape()))
      bad("fp32 conv: the residual input must have the output's shape");
    pa.post.res = res.data();
  }
  py::array_t<float> y = out_array(out, {g.N, pc.M, g.OH, g.OW});
  if (has_res && res.data() == y.data()) y = py::array_t<float>(std::vector<py::ssize_t>{g.N, pc.M, g.OH, g.OW});
  if (Q == 0 || pc.M == 0) return y;
  // Strided convolutions take the direct path through phase planes (strides up to 4: sh * sw planes).
  // A strided 1x1 convolution packs: its phase copy would be as large as its packing, with fewer columns.
  // Channel-vectorized tiles for narrow maps (no column waste; $CONVERTMODEL_FP32_CONV=cvec forces them).
  const std::string mode = conv_mode();
  const bool unpadded1x1 = pc.kh == 1 && pc.kw == 1 && g.sh == 1 && g.sw == 1 && !(g.pt || g.pl || g.pb || g.pr);
  // Measured (docs/performance.md): AVX-512 (14-pixel tiles) wins on 3x3 maps up to 30 wide (1.03-1.32x the
  // direct path) and on 1x1 over <= 256 pixels with K >= 512 (smaller K: the transposed stores eat the gain
  // inside a network); AVX2 (6-pixel tiles) on 7-8 wide maps only.
  const bool wide_tiles = ops.cpr >= 8;
  const bool narrow = pc.K >= 32 && (unpadded1x1 ? wide_tiles && P <= 256 && pc.K >= 512
                                                 : g.OW <= (wide_tiles ? 2 * ops.cpr + 2 : ops.cpr + 2));
  bool cvec = ops.cvec_item && g.sh <= 4 && g.sw <= 4 && (mode == "cvec" || (mode == "auto" && narrow));
  const bool direct =
      cvec || (use_direct(pc.Mg, pc.K, pc.kh * pc.kw, g.OW, ops.nr) && g.sh <= 4 && g.sw <= 4);
  const bool phased = direct && (g.sh > 1 || g.sw > 1) && (pc.kh > 1 || pc.kw > 1 || forced_direct());
  // Pad once per layer (or, for 1x1 stride-1 unpadded, see the input as one row per sample).
  const bool padded = !phased && (g.pt || g.pl || g.pb || g.pr);
  i64 Hp = g.H + g.pt + g.pb, Wp = g.W + g.pl + g.pr;
  // Grow-only per calling thread: a fresh buffer per call costs page faults on every layer.
  thread_local std::vector<float> xp;
  const float* src = x.data();
  const int T = cm_resolve_threads(threads);
  if (padded) {
    const size_t need = static_cast<size_t>(mul(mul(g.N * g.C, Hp, "padded input"), Wp, "padded input"));
    if (xp.size() < need) {
      xp.clear();
      xp.shrink_to_fit();
      xp.resize(need);
    }
    const float* xs = x.data();
    float* xd = xp.data();
    parallel(g.N * g.C, threads_for(static_cast<double>(need), T), 0, [&](i64 pl, float*) {  // zero only borders
      float* d = xd + pl * Hp * Wp;
      std::fill(d, d + g.pt * Wp, 0.0f);
      for (i64 r = 0; r < g.H; ++r) {
        float* dr = d + (r + g.pt) * Wp;
        std::fill(dr, dr + g.pl, 0.0f);
        std::copy(xs + (pl * g.H + r) * g.W, xs + (pl * g.H + r + 1) * g.W, dr + g.pl);
        std::fill(dr + g.pl + g.W, dr + Wp, 0.0f);
      }
      std::fill(d + (g.pt + g.H) * Wp, d + Hp * Wp, 0.0f);
    });
    src = xd;
  }
  i64 OH = g.OH, OW = g.OW, sh = g.sh;
  if (!padded && pc.kh == 1 && pc.kw == 1 && g.sh == 1 && g.sw == 1 && pc.M > 0) {
    Wp = g.H * g.W, Hp = 1, OW = P, OH = 1, sh = 1;
  }
  std::vector<i64> koff(pc.K);
  if (phased) {
    src = phase_planes(x.data(), g, pc.Cg, pc.kh, pc.kw, xp, T, koff.data(), Hp, Wp);
    sh = 1;
  } else {
    for (i64 c = 0; c < pc.Cg; ++c)
      for (i64 ky = 0; ky < pc.kh; ++ky)
        for (i64 kx = 0; kx < pc.kw; ++kx)
          koff[(c * pc.kh + ky) * pc.kw + kx] = c * Hp * Wp + ky * g.dh * Wp + kx * g.dw;
  }
  cmf::ConvJob job{src, g.N, g.C, Hp, Wp, pc.kh, pc.kw, sh, phased ? 1 : g.sw, g.dh, g.dw, OH, OW, P,
                   pc.G, pc.Cg, pc.Mg, pc.M, pc.K, pc.a.data(), koff.data(), pa.post, y.mutable_data(),
                   direct && sh == 1 && (phased || g.sw == 1), nullptr};
  cvec = cvec && job.direct;
  const double macs = static_cast<double>(Q) * pc.M * pc.K;
  if (cvec) {  // items: sample x row block (<= 256 pixels) x group x channel panel
    job.A2 = pc.panels2();
    const i64 cp = cmf::ceil_div(pc.Mg, ops.cm);
    i64 rows = std::max<i64>(1, std::min(OH, 256 / OW));
    while (rows > 1 && g.N * cmf::ceil_div(OH, rows) * pc.G * cp < 2 * T) rows = cmf::ceil_div(rows, 2);
    const i64 rb = cmf::ceil_div(OH, rows);
    const size_t fl = static_cast<size_t>(rows * OW * ops.cm + 16);
    parallel(g.N * rb * pc.G * cp, threads_for(macs, T), fl, [&](i64 item, float* s) {
      const i64 cb = item % cp, r1 = item / cp, gi = r1 % pc.G, r2 = r1 / pc.G, bi = r2 % rb, n = r2 / rb;
      ops.cvec_item(job, gi, n, bi * rows, std::min(OH, (bi + 1) * rows), cb, s);
    });
    return y;
  }
  // Column blocks of up to ~256 columns (B block KC x NC in L2); smaller, then channel chunks,
  // until every thread has a couple of items.
  const i64 NR = ops.nr, MR = ops.mr;
  // The direct path's columns: NR-wide panels of the padded-width index, per sample.
  const i64 Qc = job.direct ? g.N * cmf::direct_panels(job, NR) * NR : Q;
  i64 nc = std::max<i64>(1, 256 / NR) * NR;
  nc = std::min(nc, cmf::ceil_div(Qc, NR) * NR);
  const i64 want = 2 * T;
  while (nc > NR && pc.G * cmf::ceil_div(Qc, nc) < want) nc -= NR;
  const i64 cblocks = cmf::ceil_div(Qc, nc);
  const i64 mpanels = cmf::ceil_div(pc.Mg, MR);
  i64 mchunks = 1;
  if (pc.G * cblocks < want) mchunks = std::min(mpanels, cmf::ceil_div(want, pc.G * cblocks));
  // The direct path keeps k-block partial sums of an item in scratch: at most 128 channels (L2).
  if (job.direct && cmf::direct_kc(ops.kc, pc.kh * pc.kw, pc.K, cmf::kDirectWholeK) < pc.K)
    mchunks = std::max(mchunks, cmf::ceil_div(mpanels * MR, 128));
  const i64 ppc = cmf::ceil_div(mpanels, mchunks);
  mchunks = cmf::ceil_div(mpanels, ppc);
  const i64 ncb = cmf::ceil_div(nc, NR) * NR;
  const size_t floats = static_cast<size_t>(
      job.direct ? cmf::conv_direct_scratch_floats(MR, NR, ops.kc, pc.kh * pc.kw, pc.K, ppc * MR, ncb)
                 : ops.kc * ncb + 2 * MR * NR + 2 * (4 * ncb + ncb / NR + 2) + 16);
  parallel(pc.G * cblocks * mchunks, threads_for(macs, T), floats, [&](i64 item, float* s) {
    const i64 mc = item % mchunks, rest = item / mchunks;
    const i64 cb = rest % cblocks, gi = rest / cblocks;
    const i64 q0 = cb * nc, nq = std::min(nc, Qc - q0);
    const i64 m0 = mc * ppc * MR, m1 = std::min(pc.Mg, (mc + 1) * ppc * MR);
    if (nq > 0 && m0 < m1) ops.conv_item(job, gi, q0, nq, m0, m1, s);
  });
  return y;
}

py::array_t<float> depthwise(FArr x, FArr w, py::object scale, py::object shift, float lo, float hi,
                             std::vector<i64> strides, std::vector<i64> pads, std::vector<i64> dil, int threads,
                             const std::string& isa, py::object out) {
  if (w.ndim() != 4 || w.shape(1) != 1) bad("fp32 depthwise: W must be (M, 1, kh, kw)");
  Geo g = geometry(x, w.shape(2), w.shape(3), strides, pads, dil, "fp32 depthwise");
  const i64 M = w.shape(0);
  if (g.C < 1 || M % g.C)
    bad("fp32 depthwise: " + std::to_string(M) + " output channels are not a multiple of " + std::to_string(g.C) +
        " input channels");
  const cmf::Fp32Ops& ops = *resolve(isa);
  PostArrays pa(scale, shift, M, 0, lo, hi);
  const i64 planes = mul(g.N, M, "output");
  mul(mul(planes, g.OH, "output"), g.OW, "output");
  py::array_t<float> y = out_array(out, {g.N, M, g.OH, g.OW});
  if (planes == 0 || g.OH * g.OW == 0) return y;
  cmf::DwJob job{x.data(), g.N, g.C, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pt, g.pl,
                 g.OH, g.OW, M, M / g.C, w.data(), pa.post, y.mutable_data()};
  const i64 hq = (g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1, wq = (g.OW - 1) * g.sw + (g.kw - 1) * g.dw + 1;
  mul(mul(hq, wq, "padded plane"), 2, "padded plane");
  mul(cmf::dw_rows(job), cmf::dw_pitch(job, ops.vw), "padded plane");  // each factor < 2^62: no overflow
  const size_t floats = static_cast<size_t>(cmf::dw_scratch_floats(job, ops.vw));
  const int T = cm_resolve_threads(threads);
  const i64 per = std::max<i64>(1, planes / (4 * T));
  const int Tw = threads_for(static_cast<double>(planes) * g.OH * g.OW * g.kh * g.kw, T);
  parallel(cmf::ceil_div(planes, per), Tw, floats, [&](i64 item, float* s) {
    ops.dw_item(job, item * per, std::min(planes, (item + 1) * per), s);
  });
  return y;
}

}  // namespace cmf_bind
