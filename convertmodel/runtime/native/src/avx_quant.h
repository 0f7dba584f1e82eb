// AVX2 window quantization of one panel (8 rows per vector), included by every x86 ISA TU inside
// its own namespace (see generic.h).  Exactly the contract's float32 op sequence: sub, mul, add 0.5,
// floor, clip -- as separate instructions (the floor and the clip as min(L, f) and a truncating conversion,
// see below; the TU is compiled with -ffp-contract=off, otherwise GCC may fuse _mm256_mul_ps +
// _mm256_add_ps into an FMA, which rounds once and can change q).
// The including TU includes <immintrin.h> before opening its namespace.

// `src(k)` points at the P window values of k (one per row): F + k * P for a gathered panel, or
// straight into the input for a panel that needs no padding (see run_tile_impl).
template <int P, int KG, class Src>
// With `pmx`, the window minima are already in mn_out and the maxima in pmx (from the channel maps of a padded
// input, see run_tile_impl) and the min/max pass over the window is skipped.
static void quantize_panel_avx(Src src, int K, int Kq, float L, uint32_t* A, float* mn_out, float* rx_out,
                               const float* pmx) {
  static_assert(P % 8 == 0, "panel must be a multiple of 8 rows");
  constexpr int BITS = 32 / KG;
  const __m256 vL = _mm256_set1_ps(L), half = _mm256_set1_ps(0.5f);
  const __m256i byte = _mm256_set1_epi32(0xff);
  for (int c = 0; c < P; c += 8) {
    __m256 mn, mx;
    if (pmx) {
      mn = _mm256_loadu_ps(mn_out + c);
      mx = _mm256_loadu_ps(pmx + c);
    } else {
      mn = mx = _mm256_loadu_ps(src(0) + c);
      // min_ps returns its second operand when either is NaN, so a running min loses NaNs: the window's NaNs are
      // OR-ed into a mask and make mn NaN once at the end (mx > mn is then false: not live, q = 0, r_x = 0).
      __m256 nan = _mm256_cmp_ps(mn, mn, _CMP_UNORD_Q);
      for (int k = 1; k < K; ++k) {
        const __m256 v = _mm256_loadu_ps(src(k) + c);
        mn = _mm256_min_ps(mn, v);
        mx = _mm256_max_ps(mx, v);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      }
      mn = _mm256_or_ps(mn, nan);  // all-ones bits: a NaN
    }
    const __m256 d = _mm256_sub_ps(mx, mn);
    const __m256 live = _mm256_cmp_ps(mx, mn, _CMP_GT_OQ);
    // Constant windows (mx == mn): s would be inf; q is forced to 0 below and r_x = 0/L = 0.
    const __m256 s = _mm256_div_ps(vL, d);
    _mm256_storeu_ps(mn_out + c, mn);
    _mm256_storeu_ps(rx_out + c, _mm256_and_ps(_mm256_div_ps(d, vL), live));
    const __m256i live_i = _mm256_castps_si256(live);
    for (int kq = 0; kq < Kq; ++kq) {
      __m256i lane = _mm256_setzero_si256();
      for (int t = 0; t < KG; ++t) {
        const int k = kq * KG + t;
        if (k >= K) break;
        // f = e + 0.5 >= 0.5 (v >= mn, s >= 0), so truncation is the floor; min(L, f) first is the clip to L
        // (also of f = +inf, from s = +inf when the range is below L / FLT_MAX). A NaN f (a window holding an
        // infinity or a NaN) stays NaN and converts to INT_MIN: the shifts of t > 0 drop its bits and t = 0 is
        // masked to its byte, so it becomes 0, as the clip gives.
        const __m256 v = _mm256_loadu_ps(src(k) + c);
        const __m256 f = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(v, mn), s), half);
        const __m256i qi = _mm256_cvttps_epi32(_mm256_min_ps(vL, f));
        lane = t ? _mm256_or_si256(lane, _mm256_slli_epi32(qi, t * BITS)) : _mm256_and_si256(qi, byte);
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(A + static_cast<size_t>(kq) * P + c),
                          _mm256_and_si256(lane, live_i));
    }
  }
}

// Contract step 4 for P rows of one channel: float(acc) * (r_x * w_scale) + mn * w_sum + B, ReLU.
// Same op order as the scalar code (separate mul and add, no FMA), so every path gives equal floats.
template <int P>
static void dequantize_avx(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                           bool relu, float* y) {
  const __m256 vws = _mm256_set1_ps(ws), vsum = _mm256_set1_ps(wsum), vb = _mm256_set1_ps(relu ? b + 0.0f : b);
  const __m256 zero = _mm256_setzero_ps();
  // ReLU as max_ps(zero, v), which gives v when v is NaN (numpy.maximum keeps NaN); it would give -0.0 where
  // v = -0.0 (numpy: +0.0), which v + b only gives when b is -0.0 too, so b + 0.0f (= +0.0 then) rules it out.
  for (int r = 0; r < P; r += 8) {
    const __m256 t = _mm256_mul_ps(_mm256_loadu_ps(rx + r), vws);
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + r))), t);
    v = _mm256_add_ps(v, _mm256_mul_ps(_mm256_loadu_ps(mn + r), vsum));
    v = _mm256_add_ps(v, vb);
    if (relu) v = _mm256_max_ps(zero, v);
    _mm256_storeu_ps(y + r, v);
  }
}

// The same for n (1..P) rows at any offset: a, rx and mn point at the first row, y at its output. Full vectors,
// the last one overlapping the previous (it recomputes equal values), and masked loads/stores below 8 rows.
static inline void dequantize_n_avx(const int32_t* a, const float* rx, const float* mn, float ws, float wsum, float b,
                                    bool relu, float* y, int n) {
  const __m256 vws = _mm256_set1_ps(ws), vsum = _mm256_set1_ps(wsum), vb = _mm256_set1_ps(relu ? b + 0.0f : b);
  const __m256 zero = _mm256_setzero_ps();  // ReLU as in dequantize_avx: NaN stays NaN, never -0.0
  auto one = [&](__m256 vrx, __m256i va, __m256 vmn) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(va), _mm256_mul_ps(vrx, vws));
    v = _mm256_add_ps(v, _mm256_mul_ps(vmn, vsum));
    v = _mm256_add_ps(v, vb);
    return relu ? _mm256_max_ps(zero, v) : v;
  };
  if (n < 8) {
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(y, m, one(_mm256_maskload_ps(rx, m), _mm256_maskload_epi32(a, m), _mm256_maskload_ps(mn, m)));
    return;
  }
  for (int r = 0;; r += 8) {
    if (r > n - 8) r = n - 8;
    _mm256_storeu_ps(y + r, one(_mm256_loadu_ps(rx + r), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + r)),
                                _mm256_loadu_ps(mn + r)));
    if (r == n - 8) break;
  }
}
