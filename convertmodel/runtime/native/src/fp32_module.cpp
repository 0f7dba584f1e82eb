// Python bindings of the native fp32 kernels: argument validation (64-bit), ISA dispatch, work
// splitting over the int8 kernels' thread pool (passed in by module.cpp).  Baseline flags only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "fp32.h"

namespace py = pybind11;
using cmf::i64;

int cm_resolve_threads(int threads);  // module.cpp: threads itself when positive, else the hardware's count

namespace {

using RunFn = void (*)(int, const std::function<void(int)>&);
RunFn g_run = nullptr;

struct Entry {
  const char* name;
  const cmf::Fp32Ops* (*get)();
};

std::vector<Entry> table() {
  std::vector<Entry> t;
#ifdef CM_HAVE_FP32_AVX512
  t.push_back({"avx512", cm_fp32_ops_avx512});
#else
  t.push_back({"avx512", nullptr});
#endif
#ifdef CM_HAVE_FP32_AVX2
  t.push_back({"avx2", cm_fp32_ops_avx2});
#else
  t.push_back({"avx2", nullptr});
#endif
  t.push_back({"portable", cm_fp32_ops_portable});
  return t;
}

bool cpu_has(const std::string& isa) {
  if (isa == "portable") return true;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
  return false;
}

std::vector<std::string> compiled() {
  std::vector<std::string> out;
  for (const auto& e : table())
    if (e.get) out.emplace_back(e.name);
  return out;
}

std::vector<std::string> available() {
  std::vector<std::string> out;
  for (const auto& e : table())
    if (e.get && cpu_has(e.name)) out.emplace_back(e.name);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// "" -> $CONVERTMODEL_ISA -> best.  The int8 path names map onto the fp32 unit they imply.
const cmf::Fp32Ops* resolve(std::string isa) {
  std::string origin = "isa argument";
  if (isa.empty() || isa == "auto") {
    const char* env = std::getenv("CONVERTMODEL_ISA");
    isa = env ? env : "";
    origin = "CONVERTMODEL_ISA";
  }
  if (isa == "avx512vnni") isa = "avx512";
  if (isa == "avxvnni") isa = "avx2";
  if (isa.empty() || isa == "auto") {
    for (const auto& e : table())
      if (e.get && cpu_has(e.name)) return e.get();
  }
  for (const auto& e : table()) {
    if (isa != e.name) continue;
    if (!e.get)
      throw std::invalid_argument(origin + "=" + isa + ": this build has no fp32 " + isa +
                                  " kernels (compiled: " + join(compiled()) + ")");
    if (!cpu_has(isa))
      throw std::invalid_argument(origin + "=" + isa + ": this CPU does not support " + isa +
                                  " (available: " + join(available()) + ")");
    return e.get();
  }
  throw std::invalid_argument(origin + "=" + isa + ": unknown fp32 ISA; expected auto, avx512, avx2 or portable");
}

[[noreturn]] void bad(const std::string& what) { throw std::invalid_argument(what); }

constexpr i64 kDimMax = i64{1} << 31;   // any single size, stride, pad or dilation
constexpr i64 kElemMax = i64{1} << 40;  // any tensor or scratch buffer, in elements

i64 mul(i64 a, i64 b, const char* what) {
  if (a < 0 || b < 0) bad(std::string(what) + ": negative size");
  if (a != 0 && b > kElemMax / a) bad(std::string(what) + ": size overflows (more than 2^40 elements)");
  return a * b;
}

void check_dims(const std::vector<i64>& v, size_t n, i64 lo, const char* what) {
  if (v.size() != n) bad(std::string(what) + ": expected " + std::to_string(n) + " values, got " + std::to_string(v.size()));
  for (i64 x : v)
    if (x < lo || x >= kDimMax)
      bad(std::string(what) + ": value " + std::to_string(x) + " out of range [" + std::to_string(lo) + ", 2^31)");
}

// Below ~2^18 multiply-adds (a few microseconds) waking the pool costs more than it saves.
int threads_for(double work, int T) { return work < 262144.0 ? 1 : T; }  // double: no overflow

// Run items [0, total) on up to T threads; fn(item, scratch) with a thread-local scratch of `floats`.
void parallel(i64 total, int T, size_t floats, const std::function<void(i64, float*)>& fn) {
  if (total <= 0) return;
  std::atomic<i64> next{0};
  auto work = [&](int) {
    thread_local std::vector<float> buf;
    if (buf.size() < floats + 16) buf.resize(floats + 16);
    float* s = buf.data() + (16 - (reinterpret_cast<uintptr_t>(buf.data()) / 4) % 16) % 16;
    for (i64 i = next.fetch_add(1); i < total; i = next.fetch_add(1)) fn(i, s);
  };
  const int t = static_cast<int>(std::min<i64>(T, total));
  py::gil_scoped_release release;
  if (t <= 1 || g_run == nullptr)
    work(0);
  else
    g_run(t, work);
}

using FArr = py::array_t<float, py::array::c_style | py::array::forcecast>;

// Epilogue arrays padded past the channel count (partial tiles read a full panel of them).
struct PostArrays {
  std::vector<float> scale, shift;
  cmf::Post post;
  PostArrays(const py::object& sc, const py::object& sh, i64 n, i64 pad, float lo, float hi) {
    scale.assign(n + pad, 1.0f);
    shift.assign(n + pad, 0.0f);
    if (!sc.is_none()) {
      FArr a = sc.cast<FArr>();
      if (a.size() != n) bad("scale: expected " + std::to_string(n) + " values, got " + std::to_string(a.size()));
      std::copy(a.data(), a.data() + n, scale.begin());
    }
    if (!sh.is_none()) {
      FArr a = sh.cast<FArr>();
      if (a.size() != n) bad("shift: expected " + std::to_string(n) + " values, got " + std::to_string(a.size()));
      std::copy(a.data(), a.data() + n, shift.begin());
    }
    if (lo > hi) bad("clip: lo > hi");
    post = {scale.data(), shift.data(), lo, hi, nullptr};
  }
};

// `out`: None or last run's output, reused when it is a writeable C-contiguous float32 array of this shape.
py::array_t<float> out_array(const py::object& out, const std::vector<i64>& shape) {
  std::vector<py::ssize_t> s(shape.begin(), shape.end());
  if (out.is_none() || !py::isinstance<py::array_t<float>>(out)) return py::array_t<float>(s);
  auto arr = out.cast<py::array_t<float>>();
  const bool ok = arr.ndim() == static_cast<py::ssize_t>(s.size()) && std::equal(s.begin(), s.end(), arr.shape()) &&
                  (arr.flags() & py::array::c_style) && arr.writeable();
  return ok ? arr : py::array_t<float>(s);  // a reusable buffer of another shape: allocate instead
}

// ---------------------------------------------------------------- packed weights
struct PackedConv {
  const cmf::Fp32Ops* ops;
  std::vector<float> a;
  i64 M, G, Mg, Cg, kh, kw, K;
  std::vector<float> a2;  // [K][cm] panels per group for cvec_item, repacked from `a` on first use (GIL held)
  const float* panels2() {
    if (a2.empty()) {
      const i64 cm = ops->cm, mr = ops->mr, cp = cmf::ceil_div(Mg, cm), mp = cmf::ceil_div(Mg, mr);
      a2.assign(static_cast<size_t>(G * cp * K * cm) + 1, 0.0f);
      for (i64 g = 0; g < G; ++g)
        for (i64 m = 0; m < Mg; ++m) {
          const float* src = a.data() + ((g * mp + m / mr) * K) * mr + m % mr;
          float* dst = a2.data() + ((g * cp + m / cm) * K) * cm + m % cm;
          for (i64 k = 0; k < K; ++k) dst[k * cm] = src[k * mr];
        }
    }
    return a2.data();
  }
};

PackedConv* pack_conv(FArr w, i64 group, const std::string& isa) {
  if (w.ndim() != 4) bad("fp32 conv: W must be 4-D (M, C/group, kh, kw)");
  auto* p = new PackedConv();
  p->ops = resolve(isa);
  p->M = w.shape(0), p->Cg = w.shape(1), p->kh = w.shape(2), p->kw = w.shape(3);
  if (group < 1 || p->M % group) {
    delete p;
    bad("fp32 conv: M = " + std::to_string(w.shape(0)) + " is not a multiple of group " + std::to_string(group));
  }
  p->G = group, p->Mg = p->M / group;
  p->K = mul(mul(p->Cg, p->kh, "W"), p->kw, "W");
  const i64 mp = cmf::ceil_div(p->Mg, p->ops->mr);
  p->a.assign(mul(mul(mul(group, mp, "W"), p->K, "W"), p->ops->mr, "W"), 0.0f);
  if (p->K > 0 && p->M > 0) p->ops->pack_a(w.data(), group, p->Mg, p->K, p->a.data());
  return p;
}

struct PackedDense {
  const cmf::Fp32Ops* ops;
  std::vector<float> b;
  i64 K, Ncol;
};

PackedDense* pack_dense(FArr b, bool trans, float alpha, const std::string& isa) {
  if (b.ndim() != 2) bad("fp32 dense: B must be 2-D");
  auto* p = new PackedDense();
  p->ops = resolve(isa);
  p->K = trans ? b.shape(1) : b.shape(0);
  p->Ncol = trans ? b.shape(0) : b.shape(1);
  const i64 np = cmf::ceil_div(p->Ncol, p->ops->nr);
  p->b.assign(mul(mul(np, p->K, "B"), p->ops->nr, "B") + 1, 0.0f);
  if (p->K > 0 && p->Ncol > 0) p->ops->pack_b(b.data(), p->K, p->Ncol, trans, alpha, p->b.data());
  return p;
}

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

py::array_t<float> dense(FArr x, const PackedDense& pd, py::object scale, py::object shift, float lo, float hi,
                         int threads, py::object out) {
  if (x.ndim() != 2 || x.shape(1) != pd.K)
    bad("fp32 dense: X must be (R, K) with K = " + std::to_string(pd.K) + ", got " + std::to_string(x.ndim()) + "-D");
  const cmf::Fp32Ops& ops = *pd.ops;
  const i64 R = x.shape(0), NR = ops.nr, MR = ops.mr;
  PostArrays pa(scale, shift, pd.Ncol, NR + 64, lo, hi);
  mul(R, pd.Ncol, "output");
  py::array_t<float> y = out_array(out, {R, pd.Ncol});
  if (R == 0 || pd.Ncol == 0) return y;
  if (pd.K == 0) {  // an empty sum: the epilogue of zero
    float* o = y.mutable_data();
    for (i64 r = 0; r < R; ++r)
      for (i64 c = 0; c < pd.Ncol; ++c) o[r * pd.Ncol + c] = std::min(hi, std::max(lo, pa.shift[c]));
    return y;
  }
  cmf::GemmJob job{x.data(), R, pd.K, pd.Ncol, pd.b.data(), pa.post, y.mutable_data()};
  const int T = cm_resolve_threads(threads);
  const i64 rb = std::min<i64>(cmf::ceil_div(R, MR) * MR, 16 * MR);
  const i64 rblocks = cmf::ceil_div(R, rb);
  const i64 cpanels = cmf::ceil_div(pd.Ncol, NR);
  i64 cchunks = std::min(cpanels, std::max<i64>(1, cmf::ceil_div(2 * T, rblocks)));
  const i64 ppc = cmf::ceil_div(cpanels, cchunks);
  cchunks = cmf::ceil_div(cpanels, ppc);
  const size_t floats = static_cast<size_t>(cmf::ceil_div(rb, MR) * MR * ops.kc + MR * NR + 16);
  parallel(rblocks * cchunks, threads_for(static_cast<double>(R) * pd.Ncol * pd.K, T), floats, [&](i64 item, float* s) {
    const i64 cc = item % cchunks, rbi = item / cchunks;
    const i64 r0 = rbi * rb, nr = std::min(rb, R - r0);
    const i64 c0 = cc * ppc * NR, c1 = std::min(pd.Ncol, (cc + 1) * ppc * NR);
    if (nr > 0 && c0 < c1) ops.gemm_item(job, r0, nr, c0, c1, s);
  });
  return y;
}

py::array_t<float> pool(FArr x, int kind, std::vector<i64> kernel, std::vector<i64> strides, std::vector<i64> pads,
                        std::vector<i64> dil, std::vector<i64> out_hw, bool include_pad, int threads,
                        const std::string& isa, py::object out) {
  if (x.ndim() != 4) bad("fp32 pool: X must be 4-D (N, C, H, W)");
  if (kind < 0 || kind > 2) bad("fp32 pool: kind must be 0 (max), 1 (average) or 2 (global average)");
  const cmf::Fp32Ops& ops = *resolve(isa);
  const i64 N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
  cmf::PoolJob job{};
  job.x = x.data(), job.H = H, job.W = W, job.kind = kind, job.include_pad = include_pad;
  if (kind == 2) {
    job.OH = job.OW = 1;
  } else {
    check_dims(kernel, 2, 1, "kernel_shape");
    check_dims(strides, 2, 1, "strides");
    check_dims(pads, 4, 0, "pads");
    check_dims(dil, 2, 1, "dilations");
    check_dims(out_hw, 2, 0, "output size");
    job.kh = kernel[0], job.kw = kernel[1], job.sh = strides[0], job.sw = strides[1];
    job.dh = dil[0], job.dw = dil[1], job.ph = pads[0], job.pw = pads[1], job.pe_h = pads[2], job.pe_w = pads[3];
    job.OH = out_hw[0], job.OW = out_hw[1];
    // Every window must start inside the padded extent (the schema's sizes guarantee it).
    if (job.OH > 0 && (job.OH - 1) * job.sh - job.ph >= H + job.pe_h) bad("fp32 pool: output height too large");
    if (job.OW > 0 && (job.OW - 1) * job.sw - job.pw >= W + job.pe_w) bad("fp32 pool: output width too large");
    mul(mul(job.OW, job.sw, "pool row"), 2, "pool row");
    mul(mul(job.kw, job.dw, "pool row"), 2, "pool row");
  }
  const i64 planes = mul(N, C, "pool input");
  mul(mul(planes, std::max<i64>(H, 1), "pool input"), std::max<i64>(W, 1), "pool input");
  mul(mul(planes, job.OH, "pool output"), job.OW, "pool output");
  py::array_t<float> y = out_array(out, {N, C, job.OH, job.OW});
  if (planes == 0 || job.OH == 0 || job.OW == 0) return y;
  if (kind == 2 && H * W == 0) bad("fp32 pool: global pooling of an empty plane");
  job.out = y.mutable_data();
  const int T = cm_resolve_threads(threads);
  const i64 per = std::max<i64>(1, planes / (4 * T));
  const size_t floats = kind == 2 ? 0 : static_cast<size_t>(2 * cmf::pool_row_floats(job));
  const int Tw = threads_for(static_cast<double>(planes) * (static_cast<double>(job.OH) * job.OW * std::max<i64>(job.kh * job.kw, 1) + static_cast<double>(H) * W), T);
  parallel(cmf::ceil_div(planes, per), Tw, floats,
           [&](i64 item, float* s) { ops.pool_item(job, item * per, std::min(planes, (item + 1) * per), s); });
  return y;
}

}  // namespace

void cm_fp32_register(py::module_& m, RunFn run) {
  g_run = run;
  py::class_<PackedConv>(m, "Fp32PackedConv")
      .def_property_readonly("isa", [](const PackedConv& p) { return std::string(p.ops->name); })
      .def_property_readonly("nbytes", [](const PackedConv& p) { return p.a.size() * 4; });
  py::class_<PackedDense>(m, "Fp32PackedDense")
      .def_property_readonly("isa", [](const PackedDense& p) { return std::string(p.ops->name); })
      .def_property_readonly("nbytes", [](const PackedDense& p) { return p.b.size() * 4; });
  m.def("fp32_isa", [](const std::string& isa) { return std::string(resolve(isa)->name); }, py::arg("isa") = "");
  m.def("fp32_compiled_isas", &compiled);
  m.def("fp32_available_isas", &available);
  m.def("fp32_pack_conv", &pack_conv, py::arg("w"), py::arg("group"), py::arg("isa") = "");
  m.def("fp32_pack_dense", &pack_dense, py::arg("b"), py::arg("trans"), py::arg("alpha") = 1.0f,
        py::arg("isa") = "");
  m.def("fp32_conv", &conv, py::arg("x"), py::arg("packed"), py::arg("scale"), py::arg("shift"), py::arg("lo"),
        py::arg("hi"), py::arg("strides"), py::arg("pads"), py::arg("dilations"), py::arg("threads") = 0,
        py::arg("out") = py::none(), py::arg("residual") = py::none());
  m.def("fp32_depthwise", &depthwise, py::arg("x"), py::arg("w"), py::arg("scale"), py::arg("shift"), py::arg("lo"),
        py::arg("hi"), py::arg("strides"), py::arg("pads"), py::arg("dilations"), py::arg("threads") = 0,
        py::arg("isa") = "", py::arg("out") = py::none());
  m.def("fp32_dense", &dense, py::arg("x"), py::arg("packed"), py::arg("scale"), py::arg("shift"), py::arg("lo"),
        py::arg("hi"), py::arg("threads") = 0, py::arg("out") = py::none());
  m.def("fp32_pool", &pool, py::arg("x"), py::arg("kind"), py::arg("kernel"), py::arg("strides"), py::arg("pads"),
        py::arg("dilations"), py::arg("out_hw"), py::arg("include_pad"), py::arg("threads") = 0,
        py::arg("isa") = "", py::arg("out") = py::none());
}
