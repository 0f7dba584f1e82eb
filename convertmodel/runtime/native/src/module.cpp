// Python bindings, run-time ISA dispatch and the thread pool of the native int8 kernels.
// Compiled with baseline flags only: SIMD code lives in isa_*.cpp, reached through IsaOps tables.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

// fp32 kernels (fp32_module.cpp) register into this module and share its thread pool.
void cm_fp32_register(pybind11::module_& m, void (*run)(int, const std::function<void(int)>&));

// The native fallback for threads <= 0 (Python passes counts resolved by runtime/threads.py), shared with fp32_module.cpp.
int cm_resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

namespace py = pybind11;

namespace {

// ---------------------------------------------------------------- ISA dispatch
struct IsaEntry {
  const char* name;
  const cm::IsaOps* (*get)();  // nullptr when not compiled into this build
};

// Best first.
std::vector<IsaEntry> isa_table() {
  std::vector<IsaEntry> t;
#ifdef CM_HAVE_AVX512VNNI
  t.push_back({"avx512vnni", cm_ops_avx512vnni});
#else
  t.push_back({"avx512vnni", nullptr});
#endif
#ifdef CM_HAVE_AVXVNNI
  t.push_back({"avxvnni", cm_ops_avxvnni});
#else
  t.push_back({"avxvnni", nullptr});
#endif
#ifdef CM_HAVE_AVX2
  t.push_back({"avx2", cm_ops_avx2});
#else
  t.push_back({"avx2", nullptr});
#endif
  t.push_back({"portable", cm_ops_portable});
  return t;
}

bool cpu_supports(const std::string& isa) {
  if (isa == "portable") return true;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // libgcc's cpu model also checks XCR0, i.e. that the OS saves the AVX / AVX-512 register state.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx2") return avx2;
  if (isa == "avxvnni") return avx2 && __builtin_cpu_supports("avxvnni");
  if (isa == "avx512vnni")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
  return false;
}

std::vector<std::string> compiled_isas() {
  std::vector<std::string> out;
  for (const auto& e : isa_table())
    if (e.get) out.emplace_back(e.name);
  return out;
}

std::vector<std::string> available_isas() {
  std::vector<std::string> out;
  for (const auto& e : isa_table())
    if (e.get && cpu_supports(e.name)) out.emplace_back(e.name);
  return out;
}

// isa == "" -> $CONVERTMODEL_ISA, then the best the CPU supports.
const cm::IsaOps* resolve(std::string isa) {
  std::string origin = "isa argument";
  if (isa.empty() || isa == "auto") {
    const char* env = std::getenv("CONVERTMODEL_ISA");
    isa = env ? env : "";
    origin = "CONVERTMODEL_ISA";
  }
  std::string names;
  for (const auto& e : isa_table()) names += std::string(names.empty() ? "" : ", ") + e.name;
  if (isa.empty() || isa == "auto") {
    for (const auto& e : isa_table())
      if (e.get && cpu_supports(e.name)) return e.get();
  }
  for (const auto& e : isa_table()) {
    if (isa != e.name) continue;
    if (!e.get) throw std::invalid_argument(origin + "=" + isa + ": this build was compiled without the " + isa +
                                            " kernels (compiled: " + py::str(py::cast(compiled_isas())).cast<std::string>() + ")");
    if (!cpu_supports(isa))
      throw std::invalid_argument(origin + "=" + isa + ": this CPU does not support " + isa +
                                  " (available: " + py::str(py::cast(available_isas())).cast<std::string>() + ")");
    return e.get();
  }
  throw std::invalid_argument(origin + "=" + isa + ": unknown ISA; expected one of auto, " + names);
}

// ---------------------------------------------------------------- thread pool
// A persistent pool of std::threads; run(T, fn) calls fn(0..T-1) on the caller plus T-1 workers.
class Pool {
 public:
  void run(int nthreads, const std::function<void(int)>& fn) {
    if (nthreads <= 1) {
      fn(0);
      return;
    }
    std::lock_guard<std::mutex> call(call_mu_);  // one job at a time
    {
      std::unique_lock<std::mutex> lk(mu_);
      while (static_cast<int>(workers_.size()) < nthreads - 1) {
        const int idx = static_cast<int>(workers_.size()) + 1;
        workers_.emplace_back([this, idx] { loop(idx); });
        workers_.back().detach();  // lives until process exit, blocked on the condition variable
      }
      task_ = &fn;
      active_ = nthreads;
      pending_ = nthreads - 1;
      ++gen_;
    }
    cv_.notify_all();
    fn(0);
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    task_ = nullptr;
  }

 private:
  void loop(int idx) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* task;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_ != seen; });
        seen = gen_;
        if (idx >= active_) continue;
        task = task_;
      }
      (*task)(idx);
      std::lock_guard<std::mutex> lk(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
  std::mutex call_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* task_ = nullptr;
  int active_ = 0, pending_ = 0;
  uint64_t gen_ = 0;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: detached workers may outlive static destructors
  return *p;
}

// Runs a work-stealing loop over `total` items (`work(t)` pulls indices from `next`) on min(T, total) threads
// with the GIL released; the first exception of any thread is rethrown here (one must not escape a pool thread:
// std::terminate), and the other threads stop taking items.
void run_guarded(int64_t total, int T, std::atomic<int64_t>& next, const std::function<void(int)>& work) {
  std::exception_ptr err;
  std::mutex err_mu;
  auto guarded = [&](int t) {
    try {
      work(t);
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu);
      if (!err) err = std::current_exception();
      next.store(total);
    }
  };
  {
    py::gil_scoped_release release;
    pool().run(static_cast<int>(std::min<int64_t>(T, total)), guarded);
  }
  if (err) std::rethrow_exception(err);
}

// ---------------------------------------------------------------- argument checks
// Every size and geometry value the kernels index with is an int; they are taken from Python as
// 64-bit integers, checked here, and every product is formed in 64 bits and checked before use, so
// hostile geometry gives a ValueError (std::invalid_argument), never an overflow, SIGFPE or SIGSEGV.
constexpr int64_t kMaxDim = int64_t(1) << 30;

int64_t check_range(int64_t v, int64_t lo, const std::string& what) {
  if (v < lo || v > kMaxDim)
    throw std::invalid_argument(what + " = " + std::to_string(v) + ": expected " + std::to_string(lo) + ".." +
                                std::to_string(kMaxDim));
  return v;
}

// a * b in 64 bits, refusing results above kMaxDim (the kernels' int indices) unless `limit` says otherwise.
int64_t mul_checked(int64_t a, int64_t b, const std::string& what, int64_t limit = kMaxDim) {
  if (a < 0 || b < 0 || (a > 0 && b > limit / a))
    throw std::invalid_argument(what + " = " + std::to_string(a) + " x " + std::to_string(b) + " is too large");
  return a * b;
}

int check_levels(double levels) {
  if (!(levels >= 1.0 && levels <= 255.0) || levels != static_cast<double>(static_cast<int>(levels)))
    throw std::invalid_argument("input_levels must be an integer in [1, 255], got " + std::to_string(levels));
  return static_cast<int>(levels);
}

// ---------------------------------------------------------------- packed weights
struct PackedWeights {
  const cm::IsaOps* ops;
  std::vector<uint32_t> lanes;
  cm::PackedW w;
  int M;
  int wmax;        // max |Wq| over the weights
  int max_levels;  // the largest input_levels the chosen kernel is exact for
  std::vector<float> wf;  // Wq as float (M, K) for the direct depthwise kernel (grouped, K <= kDwMaxK)
};

// The GEMM kernel of an ISA for weights whose largest |value| is wmax, used with up to `levels` input levels.
// On AVX2 the u8 x s8 vpmaddubsw kernels are exact only while their int16 pair sums cannot saturate
// (docs/performance.md): a pair 2 * L * wmax <= 32767, the two-pair sum 4 * L * wmax <= 32767.
const cm::IsaOps* kernel_for(const cm::IsaOps* isa, int levels, int wmax, int* max_levels) {
  *max_levels = 255;
#ifdef CM_HAVE_AVX2
  if (isa == cm_ops_avx2()) {
    const int w = std::max(wmax, 1);
    if (4 * levels * w <= 32767) {
      *max_levels = 32767 / (4 * w);
      return cm_ops_avx2_pair();
    }
    if (2 * levels * w <= 32767) {
      *max_levels = 32767 / (2 * w);
      return cm_ops_avx2_u8s8();
    }
  }
#endif
  (void)levels;
  (void)wmax;
  return isa;
}

PackedWeights* pack(py::array_t<int8_t, py::array::c_style | py::array::forcecast> wq, int64_t group,
                    const std::string& isa, double levels) {
  if (wq.ndim() != 2) throw std::invalid_argument("pack_weights: Wq must be 2-D (M, K)");
  const int L = check_levels(levels);
  const int64_t M = check_range(wq.shape(0), 0, "pack_weights: M"), K = check_range(wq.shape(1), 1, "pack_weights: K");
  check_range(group, 1, "pack_weights: group");
  if (M % group) throw std::invalid_argument("pack_weights: M = " + std::to_string(M) + " is not a multiple of group = " +
                                             std::to_string(group));
  auto p = std::make_unique<PackedWeights>();
  const int8_t* d = wq.data();
  int wmax = 0;
  for (int64_t i = 0, n = M * K; i < n; ++i) wmax = std::max(wmax, d[i] < 0 ? -static_cast<int>(d[i]) : static_cast<int>(d[i]));
  p->wmax = wmax;
  p->ops = kernel_for(resolve(isa), L, wmax, &p->max_levels);
  p->M = static_cast<int>(M);
  const int G = static_cast<int>(group), Mg = static_cast<int>(M / group);
  const int Kq = cm::k_lanes(*p->ops, static_cast<int>(K));
  // +16 lanes of padding: the GEMV paths read a full vector where the last channel block is shorter.
  p->lanes.assign(cm::packed_lanes(*p->ops, G, Mg, static_cast<int>(K)) + 16, 0u);
  if (M > 0) p->ops->pack_weights(d, G, Mg, static_cast<int>(K), Kq, p->lanes.data());
  p->w = {p->lanes.data(), G, Mg, static_cast<int>(K), Kq, cm::ceil_div(Mg, p->ops->nrc)};
  if (G > 1 && K <= cm::kDwMaxK) p->wf.assign(d, d + M * K);
  return p.release();
}

void run_job(const PackedWeights& pw, const cm::Job& job, int threads) {
  const cm::IsaOps& ops = *pw.ops;
  if (job.N <= 0 || job.rows <= 0 || job.Mg <= 0) return;  // empty output: nothing to compute
  const int T = cm_resolve_threads(threads);
  const int P = ops.panel;
  const int rp = cm::ceil_div(job.rows, P);  // panels per (n, g)
  // Panels per tile: the GEMM sweeps all panels of a tile per k chunk (KC lanes), so the weights are
  // read once per tile; up to 8 panels, the whole packed tile within ~1 MiB (it is touched in chunks).
  const size_t budget = 1024 * 1024;
  int tp = static_cast<int>(std::min<size_t>(8, std::max<size_t>(1, budget / (static_cast<size_t>(pw.w.Kq) * 4 * P))));
  tp = std::min(tp, rp);
  // Enough work items for every thread: split rows first (no duplicated gather), then channels.
  const int64_t ng = static_cast<int64_t>(job.N) * job.G;
  const int64_t want = 2 * static_cast<int64_t>(T);
  if (ng * cm::ceil_div(rp, tp) < want)
    tp = std::max(1, cm::ceil_div(rp, static_cast<int>(std::min<int64_t>(rp, (want + ng - 1) / ng))));
  const int tiles = cm::ceil_div(rp, tp);
  const int64_t base = ng * tiles;
  int chunks = 1;
  if (base < want) chunks = static_cast<int>(std::min<int64_t>(pw.w.mblocks, (want + base - 1) / base));
  const int bpc = cm::ceil_div(pw.w.mblocks, chunks);
  chunks = cm::ceil_div(pw.w.mblocks, bpc);
  const int64_t total = base * chunks;
  const int rows_per_tile = tp * P;
  const size_t sbytes = cm::scratch_bytes(ops, job.K, rows_per_tile, bpc * ops.nrc);
  std::atomic<int64_t> next{0};
  auto work = [&](int) {
    thread_local std::vector<unsigned char> buf;
    if (buf.size() < sbytes + 64) buf.resize(sbytes + 64);
    unsigned char* s = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
    for (int64_t i = next.fetch_add(1); i < total; i = next.fetch_add(1)) {
      const int chunk = static_cast<int>(i % chunks);
      const int64_t rest = i / chunks;
      const int tile = static_cast<int>(rest % tiles);
      const int64_t ngi = rest / tiles;
      const int n = static_cast<int>(ngi / job.G), g = static_cast<int>(ngi % job.G);
      const int r0 = tile * rows_per_tile;
      const int nrows = std::min(rows_per_tile, job.rows - r0);
      const int m0 = chunk * bpc * ops.nrc, m1 = std::min(job.Mg, (chunk + 1) * bpc * ops.nrc);
      if (nrows > 0 && m0 < m1) ops.run_tile(job, pw.w, n, g, r0, nrows, m0, m1, s);
    }
  };
  run_guarded(total, T, next, work);
}

using FArr = py::array_t<float, py::array::c_style | py::array::forcecast>;

void epilogue_args(cm::Job& job, const PackedWeights& pw, const FArr& w_scale, const FArr& w_sum,
                   const py::object& bias, FArr& bias_arr, double levels, bool relu) {
  if (w_scale.size() != pw.M || w_sum.size() != pw.M)
    throw std::invalid_argument("w_scale and w_sum must have M = " + std::to_string(pw.M) + " elements");
  job.w_scale = w_scale.data();
  job.w_sum = w_sum.data();
  if (!bias.is_none()) {
    bias_arr = bias.cast<FArr>();
    if (bias_arr.size() != pw.M) throw std::invalid_argument("B must have M = " + std::to_string(pw.M) + " elements");
    job.bias = bias_arr.data();
  }
  const int L = check_levels(levels);
  if (L > pw.max_levels)
    throw std::invalid_argument("input_levels = " + std::to_string(L) + ": these weights were packed for at most " +
                                std::to_string(pw.max_levels) + " levels (pack them again with levels=" +
                                std::to_string(L) + ")");
  // |acc| <= L * max|Wq| * K must fit the int32 accumulators.
  if (static_cast<int64_t>(L) * std::max(pw.wmax, 1) * pw.w.K > INT32_MAX)
    throw std::invalid_argument("K = " + std::to_string(pw.w.K) + " with input_levels = " + std::to_string(L) +
                                " and max |Wq| = " + std::to_string(pw.wmax) + " could overflow the int32 accumulators");
  job.levels = static_cast<float>(L);
  job.relu = relu;
}

// `out`: None, or a C-contiguous float32 array of the output shape to write into (a buffer the
// caller reuses across runs: fresh 100 MB outputs cost the kernel zeroing every page first).
py::array_t<float> output_array(const py::object& out, const std::vector<py::ssize_t>& shape) {
  if (out.is_none()) return py::array_t<float>(shape);
  auto arr = out.cast<py::array_t<float>>();
  const bool ok = arr.ndim() == static_cast<py::ssize_t>(shape.size()) &&
                  std::equal(shape.begin(), shape.end(), arr.shape()) &&
                  (arr.flags() & py::array::c_style) && arr.writeable();
  if (!ok) throw std::invalid_argument("out: expected a writeable C-contiguous float32 array of the output shape");
  return arr;
}

int as_int(int64_t v) { return static_cast<int>(v); }

// ---------------------------------------------------------------- padded input, bands, depthwise work items
#include "conv_bands.h"

py::array_t<float> qconv(FArr x, const PackedWeights& pw, FArr w_scale, FArr w_sum, py::object bias,
                         std::vector<int64_t> kernel, std::vector<int64_t> strides, std::vector<int64_t> pads,
                         std::vector<int64_t> dilations, double levels, bool relu, int64_t threads, py::object out,
                         py::object residual, bool residual_relu) {
  if (x.ndim() != 4) throw std::invalid_argument("qconv: X must be 4-D (N, C, H, W)");
  if (kernel.size() != 2 || strides.size() != 2 || pads.size() != 4 || dilations.size() != 2)
    throw std::invalid_argument("qconv: kernel/strides/dilations need 2 values and pads 4");
  const int64_t N = check_range(x.shape(0), 0, "qconv: N"), C = check_range(x.shape(1), 1, "qconv: C");
  const int64_t H = check_range(x.shape(2), 1, "qconv: H"), W = check_range(x.shape(3), 1, "qconv: W");
  int64_t k[2], s[2], d[2], p[4];
  for (int i = 0; i < 2; ++i) {
    k[i] = check_range(kernel[i], 1, "qconv: kernel_shape");
    s[i] = check_range(strides[i], 1, "qconv: strides");
    d[i] = check_range(dilations[i], 1, "qconv: dilations");
  }
  for (int i = 0; i < 4; ++i) p[i] = check_range(pads[i], 0, "qconv: pads");
  cm::Job job{};
  job.src = cm::RowSource::kConv;
  job.x = x.data();
  job.G = pw.w.G;
  if (C % job.G)
    throw std::invalid_argument("qconv: X has " + std::to_string(C) + " channels, not a multiple of group " +
                                std::to_string(job.G));
  const int64_t K = mul_checked(mul_checked(C / job.G, k[0], "qconv: K"), k[1], "qconv: K");
  if (K != pw.w.K)
    throw std::invalid_argument("qconv: X has " + std::to_string(C) + " channels; weights expect K = " +
                                std::to_string(pw.w.K) + " per group of " + std::to_string(job.G));
  int64_t o[2];
  const int64_t extent[2] = {H, W};
  for (int i = 0; i < 2; ++i) {
    const int64_t span = mul_checked(d[i], k[i] - 1, "qconv: dilated kernel") + 1;
    const int64_t padded = check_range(extent[i] + p[i] + p[i + 2], 1, "qconv: padded input size");
    if (padded < span)
      throw std::invalid_argument("qconv: the dilated kernel (" + std::to_string(span) +
                                  ") is larger than the padded input (" + std::to_string(padded) + ")");
    o[i] = (padded - span) / s[i] + 1;
  }
  job.N = as_int(N), job.C = as_int(C), job.H = as_int(H), job.W = as_int(W);
  job.kh = as_int(k[0]), job.kw = as_int(k[1]), job.sh = as_int(s[0]), job.sw = as_int(s[1]);
  job.ph = as_int(p[0]), job.pw = as_int(p[1]), job.dh = as_int(d[0]), job.dw = as_int(d[1]);
  job.OH = as_int(o[0]), job.OW = as_int(o[1]);
  job.rows = as_int(mul_checked(o[0], o[1], "qconv: output positions"));
  mul_checked(mul_checked(N, pw.M, "qconv: output size", INT64_MAX / 4), job.rows, "qconv: output size", INT64_MAX / 4);
  job.K = pw.w.K;
  job.Mg = pw.w.Mg;
  FArr bias_arr;
  epilogue_args(job, pw, w_scale, w_sum, bias, bias_arr, levels, relu);
  py::array_t<float> y = output_array(out, {job.N, pw.M, job.OH, job.OW});
  job.out = y.mutable_data();
  // `residual`: the other input of an Add fused into the epilogue (y + residual, then ReLU if residual_relu).
  FArr res_arr;
  if (!residual.is_none()) {
    res_arr = residual.cast<FArr>();
    const std::vector<py::ssize_t> shape = {job.N, pw.M, job.OH, job.OW};
    if (res_arr.ndim() != 4 || !std::equal(shape.begin(), shape.end(), res_arr.shape()))
      throw std::invalid_argument("qconv: residual must have the output's shape");
    if (res_arr.data() == job.out) throw std::invalid_argument("qconv: residual must not be the output buffer");
    job.res = res_arr.data();
    job.res_relu = residual_relu;
  }
  const int T = as_int(check_range(threads, 0, "threads"));
  thread_local PadBuf pb;  // reused across layers and runs (fresh pages cost the OS zeroing them)
  if (job.C == job.G && !pw.wf.empty() && job.rows > 0 && pw.M > 0 &&
      pad_input(job, *pw.ops, p[2], p[3], cm_resolve_threads(T), pb, true)) {
    run_dw(pw, job, cm_resolve_threads(T));  // depthwise: the direct kernel (no residual in its epilogue)
    if (job.res) add_residual_all(job.out, job.res, static_cast<size_t>(y.size()), job.res_relu);
    return y;
  }
  if (job.rows > 0 && pw.M > 0 && pad_input(job, *pw.ops, p[2], p[3], cm_resolve_threads(T), pb)) {
    run_banded(pw, job, T);
    return y;
  }
  run_job(pw, job, T);
  return y;
}

py::array_t<float> qgemm(FArr x, const PackedWeights& pw, FArr w_scale, FArr w_sum, py::object bias, double levels,
                         bool relu, int64_t threads, py::object out) {
  if (x.ndim() != 2 || x.shape(1) != pw.w.K || pw.w.G != 1)
    throw std::invalid_argument("qgemm: X must be (R, K) with K = " + std::to_string(pw.w.K));
  cm::Job job{};
  job.src = cm::RowSource::kRows;
  job.x = x.data();
  job.N = 1, job.G = 1, job.K = pw.w.K, job.Mg = pw.M;
  job.rows = as_int(check_range(x.shape(0), 0, "qgemm: rows"));
  FArr bias_arr;
  epilogue_args(job, pw, w_scale, w_sum, bias, bias_arr, levels, relu);
  py::array_t<float> y = output_array(out, {job.rows, pw.M});
  job.out = y.mutable_data();
  run_job(pw, job, as_int(check_range(threads, 0, "threads")));
  return y;
}

py::array_t<int32_t> accumulate(py::array_t<uint8_t, py::array::c_style | py::array::forcecast> q,
                                py::array_t<int8_t, py::array::c_style | py::array::forcecast> wq,
                                const std::string& isa, int64_t threads, double levels) {
  if (q.ndim() != 2 || wq.ndim() != 2 || q.shape(1) != wq.shape(1))
    throw std::invalid_argument("accumulate: need q (R, K) uint8 and Wq (M, K) int8");
  const int L = check_levels(levels);
  const uint8_t* qd = q.data();
  for (py::ssize_t i = 0, n = q.size(); i < n; ++i)
    if (qd[i] > L) throw std::invalid_argument("accumulate: q holds " + std::to_string(qd[i]) + " > levels = " + std::to_string(L));
  std::unique_ptr<PackedWeights> pw(pack(wq, 1, isa, levels));
  cm::Job job{};
  job.src = cm::RowSource::kQ8;
  job.q8 = q.data();
  job.N = 1, job.G = 1, job.K = pw->w.K, job.Mg = pw->M;
  job.rows = as_int(check_range(q.shape(0), 0, "accumulate: rows"));
  if (static_cast<int64_t>(L) * std::max(pw->wmax, 1) * pw->w.K > INT32_MAX)
    throw std::invalid_argument("accumulate: K = " + std::to_string(pw->w.K) + " could overflow int32");
  py::array_t<int32_t> acc({job.rows, pw->M});
  job.acc = acc.mutable_data();
  run_job(*pw, job, as_int(check_range(threads, 0, "threads")));
  return acc;
}

py::tuple quantize_rows(FArr x, double levels, const std::string& isa) {
  if (x.ndim() != 2) throw std::invalid_argument("quantize_rows: X must be (R, K)");
  const int L = check_levels(levels);
  const cm::IsaOps* ops = resolve(isa);
  const int R = as_int(check_range(x.shape(0), 0, "quantize_rows: R"));
  const int K = as_int(check_range(x.shape(1), 1, "quantize_rows: K"));
  py::array_t<uint8_t> q({R, K});
  py::array_t<float> mn(R), rx(R);
  ops->quantize_rows(x.data(), R, K, static_cast<float>(L), q.mutable_data(), mn.mutable_data(), rx.mutable_data());
  return py::make_tuple(q, mn, rx);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  cm_fp32_register(m, [](int t, const std::function<void(int)>& fn) { pool().run(t, fn); });
  m.doc() = "convertmodel native int8 kernels (QConv / QGemm) with run-time ISA dispatch";
  py::class_<PackedWeights>(m, "PackedWeights")
      .def_property_readonly("isa", [](const PackedWeights& p) { return std::string(p.ops->name); })
      .def_property_readonly("kernel", [](const PackedWeights& p) { return std::string(p.ops->kernel); })
      .def_property_readonly("max_levels", [](const PackedWeights& p) { return p.max_levels; })
      .def_property_readonly("wmax", [](const PackedWeights& p) { return p.wmax; })
      .def_property_readonly("nbytes", [](const PackedWeights& p) { return p.lanes.size() * 4; })
      .def_property_readonly("M", [](const PackedWeights& p) { return p.M; })
      .def_property_readonly("K", [](const PackedWeights& p) { return p.w.K; })
      .def_property_readonly("group", [](const PackedWeights& p) { return p.w.G; });
  m.def("isa", [](const std::string& isa) { return std::string(resolve(isa)->name); }, py::arg("isa") = "",
        "The ISA path used: $CONVERTMODEL_ISA if set, else the best this CPU supports.");
  m.def("compiled_isas", &compiled_isas, "ISA paths compiled into this build, best first.");
  m.def("available_isas", &available_isas, "Compiled ISA paths this CPU can run, best first.");
  m.def("cpu_supports", &cpu_supports, py::arg("isa"));
  m.def("pack_weights", &pack, py::arg("wq"), py::arg("group") = 1, py::arg("isa") = "", py::arg("levels") = 255.0,
        "Pack Wq (M, K) int8 into the layout of an ISA's GEMM for inputs of up to `levels` levels (the kernel\n"
        "follows the ISA, the levels and max |Wq|; done once per model load).");
  m.def("qconv", &qconv, py::arg("x"), py::arg("packed"), py::arg("w_scale"), py::arg("w_sum"), py::arg("bias"),
        py::arg("kernel"), py::arg("strides"), py::arg("pads"), py::arg("dilations"), py::arg("levels"),
        py::arg("relu"), py::arg("threads") = 0, py::arg("out") = py::none(), py::arg("residual") = py::none(),
        py::arg("residual_relu") = false);
  m.def("qgemm", &qgemm, py::arg("x"), py::arg("packed"), py::arg("w_scale"), py::arg("w_sum"), py::arg("bias"),
        py::arg("levels"), py::arg("relu"), py::arg("threads") = 0, py::arg("out") = py::none());
  m.def("accumulate", &accumulate, py::arg("q"), py::arg("wq"), py::arg("isa") = "", py::arg("threads") = 1,
        py::arg("levels") = 255.0,
        "Integer accumulators q (R, K) uint8 x Wq (M, K)^T int8 -> (R, M) int32 through an ISA's GEMM.");
  m.def("quantize_rows", &quantize_rows, py::arg("x"), py::arg("levels"), py::arg("isa") = "",
        "Window-quantize each row of X with an ISA's code: (q uint8, mn, r_x).");
}
