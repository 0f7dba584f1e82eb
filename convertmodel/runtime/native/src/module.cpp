// Python bindings, run-time ISA dispatch and the thread pool of the native int8 kernels.
// Compiled with baseline flags only: SIMD code lives in isa_*.cpp, reached through IsaOps tables.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

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

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

// ---------------------------------------------------------------- packed weights
struct PackedWeights {
  const cm::IsaOps* ops;
  std::vector<uint32_t> lanes;
  cm::PackedW w;
  int M;
};

PackedWeights* pack(py::array_t<int8_t, py::array::c_style | py::array::forcecast> wq, int group,
                    const std::string& isa) {
  if (wq.ndim() != 2) throw std::invalid_argument("pack_weights: Wq must be 2-D (M, K)");
  const int M = static_cast<int>(wq.shape(0)), K = static_cast<int>(wq.shape(1));
  if (group < 1 || M % group) throw std::invalid_argument("pack_weights: M must be a multiple of group");
  auto* p = new PackedWeights();
  p->ops = resolve(isa);
  p->M = M;
  const int Mg = M / group;
  const int Kq = cm::k_lanes(*p->ops, K);
  // +16 lanes of padding: the GEMV path reads 8 lanes where the last channel block has 6.
  p->lanes.assign(cm::packed_lanes(*p->ops, group, Mg, K) + 16, 0u);
  p->ops->pack_weights(wq.data(), group, Mg, K, Kq, p->lanes.data());
  p->w = {p->lanes.data(), group, Mg, K, Kq, cm::ceil_div(Mg, p->ops->nrc)};
  return p;
}

void run_job(const PackedWeights& pw, const cm::Job& job, int threads) {
  const cm::IsaOps& ops = *pw.ops;
  const int T = resolve_threads(threads);
  const int P = ops.panel;
  const int rp = cm::ceil_div(job.rows, P);  // panels per (n, g)
  // Panels per tile: the GEMM sweeps all panels of a tile per k chunk (KC lanes), so the weights are
  // read once per tile; up to 8 panels, the whole packed tile within ~1 MiB (it is touched in chunks).
  const size_t budget = 1024 * 1024;
  int tp = static_cast<int>(std::max<size_t>(1, budget / (static_cast<size_t>(pw.w.Kq) * 4 * P)));
  tp = std::min({tp, 8, rp});
  // Enough work items for every thread: split rows first (no duplicated gather), then channels.
  const int ng = job.N * job.G;
  const int want = 2 * T;
  if (ng * cm::ceil_div(rp, tp) < want) tp = std::max(1, cm::ceil_div(rp, cm::ceil_div(want, ng)));
  const int tiles = cm::ceil_div(rp, tp);
  const int base = ng * tiles;
  int chunks = 1;
  if (base < want) chunks = std::min(pw.w.mblocks, cm::ceil_div(want, base));
  const int bpc = cm::ceil_div(pw.w.mblocks, chunks);
  chunks = cm::ceil_div(pw.w.mblocks, bpc);
  const int total = base * chunks;
  const int rows_per_tile = tp * P;
  const size_t sbytes = cm::scratch_bytes(ops, job.K, rows_per_tile, bpc * ops.nrc);
  std::atomic<int> next{0};
  auto work = [&](int) {
    thread_local std::vector<unsigned char> buf;
    if (buf.size() < sbytes + 64) buf.resize(sbytes + 64);
    unsigned char* s = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
    for (int i = next.fetch_add(1); i < total; i = next.fetch_add(1)) {
      const int chunk = i % chunks, rest = i / chunks;
      const int tile = rest % tiles, ngi = rest / tiles;
      const int n = ngi / job.G, g = ngi % job.G;
      const int r0 = tile * rows_per_tile;
      const int nrows = std::min(rows_per_tile, job.rows - r0);
      const int m0 = chunk * bpc * ops.nrc, m1 = std::min(job.Mg, (chunk + 1) * bpc * ops.nrc);
      if (nrows > 0 && m0 < m1) ops.run_tile(job, pw.w, n, g, r0, nrows, m0, m1, s);
    }
  };
  const int nthreads = std::min(T, total);
  py::gil_scoped_release release;
  pool().run(nthreads, work);
}

using FArr = py::array_t<float, py::array::c_style | py::array::forcecast>;

void epilogue_args(cm::Job& job, const PackedWeights& pw, const FArr& w_scale, const FArr& w_sum,
                   const py::object& bias, FArr& bias_arr, float levels, bool relu) {
  if (w_scale.size() != pw.M || w_sum.size() != pw.M)
    throw std::invalid_argument("w_scale and w_sum must have M = " + std::to_string(pw.M) + " elements");
  job.w_scale = w_scale.data();
  job.w_sum = w_sum.data();
  if (!bias.is_none()) {
    bias_arr = bias.cast<FArr>();
    if (bias_arr.size() != pw.M) throw std::invalid_argument("B must have M = " + std::to_string(pw.M) + " elements");
    job.bias = bias_arr.data();
  }
  if (!(levels >= 1.0f && levels <= 255.0f)) throw std::invalid_argument("input_levels must be in [1, 255]");
  job.levels = levels;
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

py::array_t<float> qconv(FArr x, const PackedWeights& pw, FArr w_scale, FArr w_sum, py::object bias,
                         std::vector<int> kernel, std::vector<int> strides, std::vector<int> pads,
                         std::vector<int> dilations, float levels, bool relu, int threads, py::object out) {
  if (x.ndim() != 4) throw std::invalid_argument("qconv: X must be 4-D (N, C, H, W)");
  if (kernel.size() != 2 || strides.size() != 2 || pads.size() != 4 || dilations.size() != 2)
    throw std::invalid_argument("qconv: kernel/strides/dilations need 2 values and pads 4");
  cm::Job job{};
  job.src = cm::RowSource::kConv;
  job.x = x.data();
  job.N = static_cast<int>(x.shape(0));
  job.C = static_cast<int>(x.shape(1));
  job.H = static_cast<int>(x.shape(2));
  job.W = static_cast<int>(x.shape(3));
  job.kh = kernel[0], job.kw = kernel[1], job.sh = strides[0], job.sw = strides[1];
  job.ph = pads[0], job.pw = pads[1], job.dh = dilations[0], job.dw = dilations[1];
  job.G = pw.w.G;
  if (job.C % job.G || job.C / job.G * job.kh * job.kw != pw.w.K)
    throw std::invalid_argument("qconv: X has " + std::to_string(job.C) + " channels; weights expect K = " +
                                std::to_string(pw.w.K) + " per group of " + std::to_string(job.G));
  job.OH = (job.H + pads[0] + pads[2] - job.dh * (job.kh - 1) - 1) / job.sh + 1;
  job.OW = (job.W + pads[1] + pads[3] - job.dw * (job.kw - 1) - 1) / job.sw + 1;
  if (job.OH <= 0 || job.OW <= 0) throw std::invalid_argument("qconv: empty output");
  job.K = pw.w.K;
  job.Mg = pw.w.Mg;
  job.rows = job.OH * job.OW;
  FArr bias_arr;
  epilogue_args(job, pw, w_scale, w_sum, bias, bias_arr, levels, relu);
  py::array_t<float> y = output_array(out, {job.N, pw.M, job.OH, job.OW});
  job.out = y.mutable_data();
  run_job(pw, job, threads);
  return y;
}

py::array_t<float> qgemm(FArr x, const PackedWeights& pw, FArr w_scale, FArr w_sum, py::object bias, float levels,
                         bool relu, int threads, py::object out) {
  if (x.ndim() != 2 || x.shape(1) != pw.w.K || pw.w.G != 1)
    throw std::invalid_argument("qgemm: X must be (R, K) with K = " + std::to_string(pw.w.K));
  cm::Job job{};
  job.src = cm::RowSource::kRows;
  job.x = x.data();
  job.N = 1, job.G = 1, job.K = pw.w.K, job.Mg = pw.M;
  job.rows = static_cast<int>(x.shape(0));
  FArr bias_arr;
  epilogue_args(job, pw, w_scale, w_sum, bias, bias_arr, levels, relu);
  py::array_t<float> y = output_array(out, {job.rows, pw.M});
  job.out = y.mutable_data();
  if (job.rows > 0) run_job(pw, job, threads);
  return y;
}

py::array_t<int32_t> accumulate(py::array_t<uint8_t, py::array::c_style | py::array::forcecast> q,
                                py::array_t<int8_t, py::array::c_style | py::array::forcecast> wq,
                                const std::string& isa, int threads) {
  if (q.ndim() != 2 || wq.ndim() != 2 || q.shape(1) != wq.shape(1))
    throw std::invalid_argument("accumulate: need q (R, K) uint8 and Wq (M, K) int8");
  std::unique_ptr<PackedWeights> pw(pack(wq, 1, isa));
  cm::Job job{};
  job.src = cm::RowSource::kQ8;
  job.q8 = q.data();
  job.N = 1, job.G = 1, job.K = pw->w.K, job.Mg = pw->M;
  job.rows = static_cast<int>(q.shape(0));
  py::array_t<int32_t> acc({job.rows, pw->M});
  job.acc = acc.mutable_data();
  if (job.rows > 0) run_job(*pw, job, threads);
  return acc;
}

py::tuple quantize_rows(FArr x, float levels, const std::string& isa) {
  if (x.ndim() != 2) throw std::invalid_argument("quantize_rows: X must be (R, K)");
  const cm::IsaOps* ops = resolve(isa);
  const int R = static_cast<int>(x.shape(0)), K = static_cast<int>(x.shape(1));
  py::array_t<uint8_t> q({R, K});
  py::array_t<float> mn(R), rx(R);
  ops->quantize_rows(x.data(), R, K, levels, q.mutable_data(), mn.mutable_data(), rx.mutable_data());
  return py::make_tuple(q, mn, rx);
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "convertmodel native int8 kernels (QConv / QGemm) with run-time ISA dispatch";
  py::class_<PackedWeights>(m, "PackedWeights")
      .def_property_readonly("isa", [](const PackedWeights& p) { return std::string(p.ops->name); })
      .def_property_readonly("nbytes", [](const PackedWeights& p) { return p.lanes.size() * 4; })
      .def_property_readonly("M", [](const PackedWeights& p) { return p.M; })
      .def_property_readonly("K", [](const PackedWeights& p) { return p.w.K; })
      .def_property_readonly("group", [](const PackedWeights& p) { return p.w.G; });
  m.def("isa", [](const std::string& isa) { return std::string(resolve(isa)->name); }, py::arg("isa") = "",
        "The ISA path used: $CONVERTMODEL_ISA if set, else the best this CPU supports.");
  m.def("compiled_isas", &compiled_isas, "ISA paths compiled into this build, best first.");
  m.def("available_isas", &available_isas, "Compiled ISA paths this CPU can run, best first.");
  m.def("cpu_supports", &cpu_supports, py::arg("isa"));
  m.def("pack_weights", &pack, py::arg("wq"), py::arg("group") = 1, py::arg("isa") = "",
        "Pack Wq (M, K) int8 into the layout of an ISA's GEMM (done once per model load).");
  m.def("qconv", &qconv, py::arg("x"), py::arg("packed"), py::arg("w_scale"), py::arg("w_sum"), py::arg("bias"),
        py::arg("kernel"), py::arg("strides"), py::arg("pads"), py::arg("dilations"), py::arg("levels"),
        py::arg("relu"), py::arg("threads") = 0, py::arg("out") = py::none());
  m.def("qgemm", &qgemm, py::arg("x"), py::arg("packed"), py::arg("w_scale"), py::arg("w_sum"), py::arg("bias"),
        py::arg("levels"), py::arg("relu"), py::arg("threads") = 0, py::arg("out") = py::none());
  m.def("accumulate", &accumulate, py::arg("q"), py::arg("wq"), py::arg("isa") = "", py::arg("threads") = 1,
        "Integer accumulators q (R, K) uint8 x Wq (M, K)^T int8 -> (R, M) int32 through an ISA's GEMM.");
  m.def("quantize_rows", &quantize_rows, py::arg("x"), py::arg("levels"), py::arg("isa") = "",
        "Window-quantize each row of X with an ISA's code: (q uint8, mn, r_x).");
}
