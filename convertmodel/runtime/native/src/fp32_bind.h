// Shared pieces of the fp32 bindings (fp32_module.cpp: dense, pooling, registration; fp32_conv.cpp:
// convolutions): ISA dispatch, 64-bit argument checks, the work splitter over the int8 kernels' thread pool,
// epilogue arrays and packed weights.  Baseline flags only; everything inline (one definition per program).
#pragma once

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

int cm_resolve_threads(int threads);  // module.cpp: threads itself when positive, else the hardware's count

namespace cmf_bind {

namespace py = pybind11;
using cmf::i64;


using RunFn = void (*)(int, const std::function<void(int)>&);
inline RunFn g_run = nullptr;

struct Entry {
  const char* name;
  const cmf::Fp32Ops* (*get)();
};

inline std::vector<Entry> table() {
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

inline bool cpu_has(const std::string& isa) {
  if (isa == "portable") return true;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
#endif
  return false;
}

inline std::vector<std::string> compiled() {
  std::vector<std::string> out;
  for (const auto& e : table())
    if (e.get) out.emplace_back(e.name);
  return out;
}

inline std::vector<std::string> available() {
  std::vector<std::string> out;
  for (const auto& e : table())
    if (e.get && cpu_has(e.name)) out.emplace_back(e.name);
  return out;
}

inline std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// "" -> $CONVERTMODEL_ISA -> best.  The int8 path names map onto the fp32 unit they imply.
inline const cmf::Fp32Ops* resolve(std::string isa) {
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

[[noreturn]] inline void bad(const std::string& what) { throw std::invalid_argument(what); }

constexpr i64 kDimMax = i64{1} << 31;   // any single size, stride, pad or dilation
constexpr i64 kElemMax = i64{1} << 40;  // any tensor or scratch buffer, in elements

inline i64 mul(i64 a, i64 b, const char* what) {
  if (a < 0 || b < 0) bad(std::string(what) + ": negative size");
  if (a != 0 && b > kElemMax / a) bad(std::string(what) + ": size overflows (more than 2^40 elements)");
  return a * b;
}

inline void check_dims(const std::vector<i64>& v, size_t n, i64 lo, const char* what) {
  if (v.size() != n) bad(std::string(what) + ": expected " + std::to_string(n) + " values, got " + std::to_string(v.size()));
  for (i64 x : v)
    if (x < lo || x >= kDimMax)
      bad(std::string(what) + ": value " + std::to_string(x) + " out of range [" + std::to_string(lo) + ", 2^31)");
}

// Below ~2^18 multiply-adds (a few microseconds) waking the pool costs more than it saves.
inline int threads_for(double work, int T) { return work < 262144.0 ? 1 : T; }  // double: no overflow

// Run items [0, total) on up to T threads; fn(item, scratch) with a thread-local scratch of `floats`.
inline void parallel(i64 total, int T, size_t floats, const std::function<void(i64, float*)>& fn) {
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
inline py::array_t<float> out_array(const py::object& out, const std::vector<i64>& shape) {
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

inline PackedConv* pack_conv(FArr w, i64 group, const std::string& isa) {
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

inline PackedDense* pack_dense(FArr b, bool trans, float alpha, const std::string& isa) {
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

}  // namespace cmf_bind
