// The conv drivers of module.cpp around the GEMM: the padded input of depthwise convolutions, the banded
// stride-1/strided convolutions, the direct depthwise kernel's work items and a whole-output residual Add.
// Included by module.cpp inside its anonymous namespace, after the thread pool and the packed weights (it uses
// pool(), run_guarded, PackedWeights, kMaxDim and cm_resolve_threads); not a standalone header.

struct PadBuf {
  std::vector<float> xp;
};

// Runs fn(i) for i in [0, n) on T threads (GIL released).
void parallel_for(int64_t n, int T, const std::function<void(int64_t)>& fn) {
  std::atomic<int64_t> next{0};
  auto work = [&](int) {
    for (int64_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) fn(i);
  };
  py::gil_scoped_release release;
  pool().run(static_cast<int>(std::min<int64_t>(T, n)), work);
}

// Stride-1 convolutions read their windows from the input padded per band of output rows (no gather per panel),
// as long as the columns computed and dropped at the row ends ((kw-1)*dw of every Wp) stay under 15%: then the
// job gets the padded geometry (Wp, rows = OH * Wp, band) and run_banded does the rest. With `depthwise`, any
// stride is taken, the whole input is padded here (the maps are the padded planes) and job.rows is left alone
// (the direct depthwise kernel works on output rows). Returns false (job unchanged) otherwise.
bool pad_input(cm::Job& job, const cm::IsaOps& ops, int64_t pad_h_end, int64_t pad_w_end, int T, PadBuf& pb,
               bool depthwise = false) {
  if (job.N == 0) return false;
  const int64_t Hp = int64_t(job.H) + job.ph + pad_h_end, Wp = int64_t(job.W) + job.pw + pad_w_end;
  if (!depthwise) {  // run_banded pads each band of output rows itself, in sh x sw phase planes of Wq columns
    const int64_t Wq = (Wp + job.sw - 1) / job.sw, rows = int64_t(job.OH) * Wq;
    // Strided 1x1 convolutions would copy sh * sw phases to use one: they keep the gather.
    if ((job.sh > 1 || job.sw > 1) && job.kh * job.kw == 1) return false;
    // The dropped columns (Wq - OW of every row) cost at most 15%, or no panel more than the gather computes.
    const int64_t P = ops.panel, panels = (rows + P - 1) / P, gathered = (int64_t(job.OH) * job.OW + P - 1) / P;
    if (((Wq - job.OW) * 100 > 15 * Wq && panels > gathered) || rows > kMaxDim) return false;
    job.Hp = static_cast<int>(Hp);
    job.Wp = static_cast<int>(Wq);
    job.plane = 0;
    job.rows = static_cast<int>(rows);
    job.band = true;
    return true;
  }
  const int64_t plane = Hp * Wp;
  const int64_t slack = ops.panel + int64_t(job.kw - 1) * job.dw + 64;
  const int64_t planes = int64_t(job.N) * job.C;
  if (planes > (int64_t(1) << 30) / std::max<int64_t>(plane, 1)) return false;
  pb.xp.resize(static_cast<size_t>(planes * plane + slack));
  std::fill(pb.xp.begin() + planes * plane, pb.xp.end(), 0.0f);
  const float* x = job.x;
  float* xp = pb.xp.data();
  job.Hp = static_cast<int>(Hp);
  job.Wp = static_cast<int>(Wp);
  job.plane = static_cast<size_t>(plane);
  // depthwise: the maps are the padded planes themselves
  const int H = job.H, W = job.W, pt = job.ph, pl = job.pw;
  parallel_for(planes, T, [&](int64_t i) {
    const float* src = x + static_cast<size_t>(i) * H * W;
    float* dst = xp + static_cast<size_t>(i) * plane;
    std::fill(dst, dst + static_cast<size_t>(pt) * Wp, 0.0f);
    for (int h = 0; h < H; ++h) {
      float* row = dst + static_cast<size_t>(pt + h) * Wp;
      std::fill(row, row + pl, 0.0f);
      std::memcpy(row + pl, src + static_cast<size_t>(h) * W, sizeof(float) * W);
      std::fill(row + pl + W, row + Wp, 0.0f);
    }
    std::fill(dst + static_cast<size_t>(pt + H) * Wp, dst + plane, 0.0f);
  });
  job.cmin = job.cmax = xp;
  job.xp = xp;
  return true;
}

// A stride-1 convolution over (sample, group, band of output rows, channel chunk) work items: each pads the input
// rows of its band (and builds their channel min/max maps) into buffers of its thread, about 512 KiB, so the
// panels of the band read them from L2 right after, instead of one padded copy of the whole input that a large
// layer (VGG16's conv1_2: 13 MB) has to fetch back from DRAM; then it runs the band's tiles of panels.
void run_banded(const PackedWeights& pw, const cm::Job& job, int threads) {
  const cm::IsaOps& ops = *pw.ops;
  if (job.N <= 0 || job.rows <= 0 || job.Mg <= 0) return;
  const int T = cm_resolve_threads(threads);
  const int P = ops.panel, Cg = job.C / job.G, span = (job.kh - 1) * job.dh, sh = job.sh, sw = job.sw;
  // Work items wanted: two per thread for balance, one on one thread (a split band rounds up to one more
  // partial panel: VGG16's conv5 in two bands computed 8 panels instead of 7).
  const int64_t ng = int64_t(job.N) * job.G, want = T > 1 ? 2 * int64_t(T) : 1;
  // Bands are runs of whole panels of rows p = oh * Wq + ow (so only the last panel of a sample is partial),
  // about `ob` output rows: the band's padded rows ((ob - 1) * sh + span + 1) of all Cg channels within the
  // budget, at least 4 * span / sh rows (so at most about 1/4 of the rows are copied twice), and enough bands
  // for every thread.
  const int64_t row_floats = int64_t(Cg) * job.Wp * sw;
  int ob = static_cast<int>(
      std::max<int64_t>(1, ((512 * 1024 / 4) / std::max<int64_t>(row_floats, 1) - span - 1) / sh + 1));
  ob = std::max(ob, 4 * span / sh);
  // Panels per tile: the GEMM sweeps the panels of a tile per channel block, so each weight block is read once
  // per tile; up to 8 panels, the packed tile within ~1 MiB. A band holds at least one full tile (deep layers
  // with small maps: 2048 channels of 7 x 7 in bands of one panel read their 1 MB of weights twice).
  const int panels = cm::ceil_div(job.rows, P);
  const size_t budget = 1024 * 1024;
  const int tpw = static_cast<int>(std::min<size_t>(8, std::max<size_t>(1, budget / (static_cast<size_t>(pw.w.Kq) * 4 * P))));
  int bp = std::min(panels, std::max({1, ob * job.Wp / P, tpw}));  // panels per band
  if (ng * cm::ceil_div(panels, bp) < want)
    bp = std::max(1, cm::ceil_div(panels, static_cast<int>(std::min<int64_t>(panels, (want + ng - 1) / ng))));
  const int bands = cm::ceil_div(panels, bp);
  const int64_t base = ng * bands;
  int chunks = 1;
  if (base < want) chunks = static_cast<int>(std::min<int64_t>(pw.w.mblocks, (want + base - 1) / base));
  const int bpc = cm::ceil_div(pw.w.mblocks, chunks);
  chunks = cm::ceil_div(pw.w.mblocks, bpc);
  const int64_t total = base * chunks;
  const int tp = std::min(bp, tpw);
  const size_t sbytes = cm::scratch_bytes(ops, job.K, tp * P, bpc * ops.nrc);
  // Per channel: sh x sw phase planes of ceil(band's padded rows / sh) rows of Wp (= Wq) floats; a band's bp * P
  // rows start anywhere in an output row, so they touch at most (bp * P - 1) / Wq + 2 output rows.
  const int orows = std::min(job.OH, (bp * P - 1) / job.Wp + 2);
  const size_t pplane = static_cast<size_t>(cm::ceil_div((orows - 1) * sh + span + 1, sh)) * job.Wp;
  const size_t bplane = static_cast<size_t>(sh) * sw * pplane;
  const size_t slack = static_cast<size_t>(P) + static_cast<size_t>(job.kw - 1) * job.dw + 64;
  std::atomic<int64_t> next{0};
  auto work = [&](int) {
    thread_local std::vector<unsigned char> buf;
    thread_local std::vector<float> xb, mb;
    if (buf.size() < sbytes + 64) buf.resize(sbytes + 64);
    if (xb.size() < Cg * bplane + slack) xb.resize(Cg * bplane + slack);
    if (mb.size() < 2 * (bplane + slack)) mb.resize(2 * (bplane + slack));
    unsigned char* s = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
    for (int64_t i = next.fetch_add(1); i < total; i = next.fetch_add(1)) {
      const int chunk = static_cast<int>(i % chunks);
      const int64_t rest = i / chunks;
      const int band = static_cast<int>(rest % bands);
      const int64_t ngi = rest / bands;
      const int n = static_cast<int>(ngi / job.G), g = static_cast<int>(ngi % job.G);
      const int rb = band * bp * P, re = std::min(job.rows, rb + bp * P);  // rows [rb, re), from output row oh0
      const int oh0 = rb / job.Wp;
      const int m0 = chunk * bpc * ops.nrc, m1 = std::min(job.Mg, (chunk + 1) * bpc * ops.nrc);
      if (m0 >= m1) continue;
      cm::Job sub = job;
      sub.xp = xb.data();
      sub.cmin = mb.data();
      sub.cmax = mb.data() + bplane + slack;
      sub.plane = bplane;
      sub.pplane = pplane;
      sub.oh0 = oh0;
      ops.pad_rows(sub, n, g, xb.data(), mb.data(), mb.data() + bplane + slack);
      for (int r0 = rb; r0 < re; r0 += tp * P)  // band-local rows: p - oh0 * Wq
        ops.run_tile(sub, pw.w, n, g, r0 - oh0 * job.Wp, std::min(tp * P, re - r0), m0, m1, s);
    }
  };
  run_guarded(total, T, next, work);
}

// The direct depthwise kernel over (n, g, block of output rows) work items.
void run_dw(const PackedWeights& pw, const cm::Job& job, int T) {
  // Blocks of about 512 positions (whole rows): long enough vectors, scratch (2K + 6 rows) near L1.
  const int rb = std::max(1, std::min(job.OH, 512 / std::max(job.Wp, 1)));
  const int blocks = cm::ceil_div(job.OH, rb);
  const int64_t items = int64_t(job.N) * job.G * blocks;
  const size_t sfl = cm::dw_scratch_floats(job.K, rb * job.Wp);
  parallel_for(items, T, [&](int64_t i) {
    thread_local std::vector<float> buf;
    if (buf.size() < sfl) buf.resize(sfl);
    const int b = static_cast<int>(i % blocks);
    const int64_t ng = i / blocks;
    const int oh0 = b * rb, oh1 = std::min(job.OH, oh0 + rb);
    pw.ops->run_dw(job, pw.wf.data(), static_cast<int>(ng / job.G), static_cast<int>(ng % job.G), oh0, oh1,
                   buf.data());
  });
}

// A fused residual Add (then ReLU) over a whole output, for the paths whose epilogue does not take one.
void add_residual_all(float* y, const float* r, size_t n, bool relu) {
  for (size_t i = 0; i < n; ++i) {
    const float v = y[i] + r[i];
    y[i] = relu ? (v <= 0.0f ? 0.0f : v) : v;  // NaN stays NaN, as numpy.maximum
  }
}
