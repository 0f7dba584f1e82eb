// Python bindings of the native fp32 kernels: dense, pooling and the registration of every entry point
// (convolutions in fp32_conv.cpp, shared pieces in fp32_bind.h).  Baseline flags only.
#include "fp32_bind.h"

namespace cmf_bind {

// fp32_conv.cpp
py::array_t<float> conv(FArr x, PackedConv& pc, py::object scale, py::object shift, float lo, float hi,
                        std::vector<i64> strides, std::vector<i64> pads, std::vector<i64> dil, int threads,
                        py::object out, py::object residual);
py::array_t<float> depthwise(FArr x, FArr w, py::object scale, py::object shift, float lo, float hi,
                             std::vector<i64> strides, std::vector<i64> pads, std::vector<i64> dil, int threads,
                             const std::string& isa, py::object out);

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

}  // namespace cmf_bind

using namespace cmf_bind;  // NOLINT: the registration names every entry point

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
