/* The portable stream, version 1, compiled: the elementwise kernels of initspec/portable.py.
 *
 * Optional: pip builds it when a C compiler is present; without it initspec runs the same
 * stream in NumPy (initspec.portable), which is the reference this kernel is tested against
 * (tests/test_stream_kernel.py). Values, per docs/portable-random.md:
 *
 *   counter c of an element = offset + sum_k idx_k * mult_k (idx: its index in the block);
 *   (b0, b1) = threefry2x32_20((k0, k1), (c >> 32, c & 0xFFFFFFFF)), u64 = b0 << 32 | b1;
 *   u = (u64 >> 11) * 2**-53 in [0, 1), uo = ((u64 >> 12) + 0.5) * 2**-52 in (0, 1);
 *   uniform: low + width * u; normal: loc + scale * ndtri(uo);
 *   truncated normal: clip(loc + scale * (+-ndtri(pa + uo * mass)), low, high);
 *   all in float64, one rounding per operation, in the reference's order; built with
 *   -ffp-contract=off so no multiply-add is fused. The result is written as float64, or
 *   rounded once (to nearest even, the C cast) to float32.
 *
 * Also the fingerprint sums of initspec/fingerprints.py (fingerprint_sum, at the end).
 *
 * The Threefry loop is compiled twice (AVX2 and baseline x86-64; the CPU picks at load
 * time) and vectorizes; ndtri is scalar, with the platform libm's log and sqrt as NumPy on
 * this platform. The GIL is released while a kernel runs, so callers may split a tensor
 * across threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 512
#define MAX_DIMS 16

enum { KIND_UNIFORM = 0, KIND_NORMAL = 1, KIND_TRUNCNORM = 2 };

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

static inline uint32_t rotl32(uint32_t x, int r) { return (x << r) | (x >> (32 - r)); }

#define ROUND(r) \
    x0 += x1;    \
    x1 = rotl32(x1, r) ^ x0;

#define INJECT(s)         \
    x0 += ks[(s) % 3];    \
    x1 += ks[((s) + 1) % 3] + (uint32_t)(s);

/* (b0, b1) = threefry2x32_20((k0, k1), (c >> 32, c & 0xFFFFFFFF)) for each counter c. */
CLONES static void threefry_block(uint32_t k0, uint32_t k1, const uint64_t *restrict ctr,
                                  uint32_t *restrict b0, uint32_t *restrict b1, int n) {
    const uint32_t ks[3] = {k0, k1, k0 ^ k1 ^ 0x1BD11BDAu};
    for (int i = 0; i < n; i++) {
        uint32_t x0 = (uint32_t)(ctr[i] >> 32) + ks[0];
        uint32_t x1 = (uint32_t)ctr[i] + ks[1];
        ROUND(13) ROUND(15) ROUND(26) ROUND(6) INJECT(1)
        ROUND(17) ROUND(29) ROUND(16) ROUND(24) INJECT(2)
        ROUND(13) ROUND(15) ROUND(26) ROUND(6) INJECT(3)
        ROUND(17) ROUND(29) ROUND(16) ROUND(24) INJECT(4)
        ROUND(13) ROUND(15) ROUND(26) ROUND(6) INJECT(5)
        b0[i] = x0;
        b1[i] = x1;
    }
}

/* b0 as a float64, through a signed conversion (vectorizes without AVX-512): exact. */
static inline double high_word(uint32_t b0) {
    return (double)(int32_t)(b0 ^ 0x80000000u) + 2147483648.0;
}

/* u = (u64 >> 11) * 2**-53 = (b0 * 2**21 + (b1 >> 11)) * 2**-53: every step exact. */
CLONES static void uniform01_block(const uint32_t *restrict b0, const uint32_t *restrict b1,
                                   double *restrict u, int n) {
    for (int i = 0; i < n; i++)
        u[i] = (high_word(b0[i]) * 2097152.0 + (double)(int32_t)(b1[i] >> 11)) * 0x1p-53;
}

/* uo = ((u64 >> 12) + 0.5) * 2**-52, as (b0 * 2**20 + (b1 >> 12) + 0.5) * 2**-52: exact. */
CLONES static void uniform_open_block(const uint32_t *restrict b0, const uint32_t *restrict b1,
                                      double *restrict u, int n) {
    for (int i = 0; i < n; i++)
        u[i] = ((high_word(b0[i]) * 1048576.0 + (double)(int32_t)(b1[i] >> 12)) + 0.5) * 0x1p-52;
}

/* Cephes ndtri (Moshier 1989) in the operation order of initspec.portable.ndtri. */
static const double S2PI = 2.50662827463100050242e0;
static const double EXPM2 = 0.13533528323661269189;
static const double P0[5] = {-5.99633501014107895267e1, 9.80010754185999661536e1,
                             -5.66762857469070293439e1, 1.39312609387279679503e1,
                             -1.23916583867381258016e0};
static const double Q0[9] = {1.0,
                             1.95448858338141759834e0,
                             4.67627912898881538453e0,
                             8.63602421390890590575e1,
                             -2.25462687854119370527e2,
                             2.00260212380060660359e2,
                             -8.20372256168333339912e1,
                             1.59056225126211695515e1,
                             -1.18331621121330003142e0};
static const double P1[9] = {4.05544892305962419923e0,  3.15251094599893866154e1,
                             5.71628192246421288162e1,  4.40805073893200834700e1,
                             1.46849561928858024014e1,  2.18663306850790267539e0,
                             -1.40256079171354495875e-1, -3.50424626827848203418e-2,
                             -8.57456785154685413611e-4};
static const double Q1[9] = {1.0,
                             1.57799883256466749731e1,
                             4.53907635128879210584e1,
                             4.13172038254672030440e1,
                             1.50425385692907503408e1,
                             2.50464946208309415979e0,
                             -1.42182922854787788574e-1,
                             -3.80806407691578277194e-2,
                             -9.33259480895457427372e-4};
static const double P2[9] = {3.23774891776946035970e0,  6.91522889068984211695e0,
                             3.93881025292474443415e0,  1.33303460815807542389e0,
                             2.01485389549179081538e-1, 1.23716634817820021358e-2,
                             3.01581553508235416007e-4, 2.65806974686737550832e-6,
                             6.23974539184983293730e-9};
static const double Q2[9] = {1.0,
                             6.02427039364742014255e0,
                             3.67983563856160859403e0,
                             1.37702099489081330271e0,
                             2.16236993594496635890e-1,
                             1.34204006088543189037e-2,
                             3.28014464682127739104e-4,
                             2.89247864745380683936e-6,
                             6.79019408009981274425e-9};

static inline double poly(double x, const double *c, int n) {
    double out = c[0];
    for (int i = 1; i < n; i++) out = out * x + c[i];
    return out;
}

/* Horner with the tail's coefficients, (P1, Q1) or (P2, Q2) per element: a select per
   coefficient, so the loop over elements vectorizes. */
static inline double poly_tail(double z, int far, const double *near_c, const double *far_c) {
    double out = far ? far_c[0] : near_c[0];
    for (int i = 1; i < 9; i++) out = out * z + (far ? far_c[i] : near_c[i]);
    return out;
}

/* The tails, y = min(p, 1 - p) <= exp(-2), for m elements: t = sqrt(-2 log y), z = 1 / t,
   x = t - log(t) / t - z P(z) / Q(z), (P1, Q1) for t < 8 else (P2, Q2). Only the two logs
   (libm) run one by one; every other step vectorizes. */
CLONES static void ndtri_tails(const double *restrict y, double *restrict x, int m) {
    double lg[BLOCK], t[BLOCK];
    for (int j = 0; j < m; j++) lg[j] = log(y[j]);
    for (int j = 0; j < m; j++) t[j] = sqrt(-2.0 * lg[j]);
    for (int j = 0; j < m; j++) lg[j] = log(t[j]);
    for (int j = 0; j < m; j++) {
        const double z = 1.0 / t[j];
        const int far = !(t[j] < 8.0);
        const double corr = z * poly_tail(z, far, P1, P2) / poly_tail(z, far, Q1, Q2);
        x[j] = t[j] - lg[j] / t[j] - corr;
    }
}

/* ndtri of p[0 .. n-1] into x: the central approximation for every element (branch-free, so
   it vectorizes), then the tails (about 27% of uniform inputs) gathered, computed and put
   back. */
CLONES static void ndtri_block(const double *restrict p, double *restrict x, int n) {
    for (int i = 0; i < n; i++) {
        const int upper = p[i] > 1.0 - EXPM2;
        const double y = upper ? 1.0 - p[i] : p[i];
        const double w = y - 0.5;
        const double w2 = w * w;
        const double xc = (w + w * (w2 * poly(w2, P0, 5) / poly(w2, Q0, 9))) * S2PI;
        x[i] = upper ? -xc : xc;
    }
    int tail[BLOCK], m = 0;
    for (int i = 0; i < n; i++) { /* branch-free: the tails are a quarter, at random */
        const double y = p[i] > 1.0 - EXPM2 ? 1.0 - p[i] : p[i];
        tail[m] = i;
        m += !(y > EXPM2);
    }
    double ty[BLOCK], tx[BLOCK];
    for (int j = 0; j < m; j++) {
        const double q = p[tail[j]];
        ty[j] = q > 1.0 - EXPM2 ? 1.0 - q : q;
    }
    ndtri_tails(ty, tx, m);
    for (int j = 0; j < m; j++) {
        const int i = tail[j];
        x[i] = p[i] > 1.0 - EXPM2 ? tx[j] : -tx[j];
    }
}

static double ndtri(double p) {
    double x = 0.0;
    ndtri_block(&p, &x, 1);
    return x;
}

typedef struct {
    int kind;
    uint32_t k0, k1;
    /* uniform: a = low, b = width; normal: a = loc, b = scale;
       truncated normal: a = loc, b = scale, pa, mass, low, high, flip */
    double a, b, pa, mass, low, high;
    int flip;
} Params;

CLONES static void affine_block(double *restrict v, int n, double a, double b) {
    for (int i = 0; i < n; i++) v[i] = a + b * v[i];
}

CLONES static void truncnorm_block(const double *restrict uo, double *restrict v, int n,
                                   const Params *p) {
    double q[BLOCK] = {0};
    for (int i = 0; i < n; i++) q[i] = p->pa + uo[i] * p->mass;
    ndtri_block(q, v, n);
    const double sign = p->flip ? -1.0 : 1.0; /* z or -z: exact */
    for (int i = 0; i < n; i++) {
        double x = p->a + p->b * (sign * v[i]);
        /* np.clip(x, low, high): maximum, then minimum */
        x = x < p->low ? p->low : x;
        v[i] = x > p->high ? p->high : x;
    }
}

static void values_block(const Params *p, const uint32_t *restrict b0,
                         const uint32_t *restrict b1, double *restrict v, int n) {
    double uo[BLOCK];
    if (p->kind == KIND_UNIFORM) {
        uniform01_block(b0, b1, v, n);
        affine_block(v, n, p->a, p->b);
    } else if (p->kind == KIND_NORMAL) {
        uniform_open_block(b0, b1, uo, n);
        ndtri_block(uo, v, n);
        affine_block(v, n, p->a, p->b);
    } else {
        uniform_open_block(b0, b1, uo, n);
        truncnorm_block(uo, v, n, p);
    }
}

/* Counters of the next n elements (row-major from the multi-index idx, counter c): runs
   along the last axis, carrying into earlier axes at the end of each run. */
static void next_counters(int ndim, const int64_t *shape, const int64_t *mults, int64_t *idx,
                          int64_t *c, uint64_t *restrict ctr, int n) {
    if (ndim == 0) { /* a scalar: one element, counter = offset */
        for (int i = 0; i < n; i++) ctr[i] = (uint64_t)*c;
        return;
    }
    const int last = ndim - 1;
    const int64_t m = mults[last];
    int i = 0;
    while (i < n) {
        int64_t run = shape[last] - idx[last];
        if (run > n - i) run = n - i;
        const uint64_t base = (uint64_t)*c;
        for (int64_t j = 0; j < run; j++) ctr[i + j] = base + (uint64_t)(j * m);
        i += (int)run;
        idx[last] += run;
        *c += run * m;
        for (int k = last; k > 0 && idx[k] == shape[k]; k--) {
            *c += mults[k - 1] - shape[k] * mults[k];
            idx[k] = 0;
            idx[k - 1]++;
        }
    }
}

/* Elements start .. stop - 1 (row-major flat indices of the block of shape `shape`) into
   out[0 .. stop - start - 1]. */
static void fill_range(const Params *p, int64_t offset, int ndim, const int64_t *shape,
                       const int64_t *mults, int64_t start, int64_t stop, char *out,
                       int out_f32) {
    uint64_t ctr[BLOCK];
    uint32_t b0[BLOCK], b1[BLOCK];
    double v[BLOCK];
    int64_t idx[MAX_DIMS];
    int64_t rem = start;
    int64_t c = offset;
    for (int k = ndim - 1; k >= 0; k--) {
        idx[k] = rem % shape[k]; /* start < numel, so no axis is empty */
        rem /= shape[k];
        c += idx[k] * mults[k];
    }
    for (int64_t pos = start; pos < stop; pos += BLOCK) {
        const int n = (int)(stop - pos < BLOCK ? stop - pos : BLOCK);
        next_counters(ndim, shape, mults, idx, &c, ctr, n);
        threefry_block(p->k0, p->k1, ctr, b0, b1, n);
        values_block(p, b0, b1, v, n);
        if (out_f32) {
            float *o = (float *)out + (pos - start);
            for (int i = 0; i < n; i++) o[i] = (float)v[i];
        } else {
            memcpy((double *)out + (pos - start), v, (size_t)n * sizeof(double));
        }
    }
}

static int read_ints(PyObject *seq, int64_t *dst, int ndim, const char *what) {
    for (int k = 0; k < ndim; k++) {
        PyObject *item = PyTuple_GET_ITEM(seq, k);
        long long value = PyLong_AsLongLong(item);
        if (value == -1 && PyErr_Occurred()) return -1;
        if (value < 0) {
            PyErr_Format(PyExc_ValueError, "%s must be >= 0", what);
            return -1;
        }
        dst[k] = value;
    }
    return 0;
}

PyDoc_STRVAR(fill_doc,
             "fill(out, kind, k0, k1, offset, shape, mults, start, stop, params)\n\n"
             "Write stream-1 values of elements start..stop-1 (row-major) of a block into\n"
             "`out`, a writable contiguous float64 ('d') or float32 ('f') buffer of\n"
             "stop - start elements. Counter of block index idx: offset + sum(idx * mults).\n"
             "kind: 0 uniform (params low, width), 1 normal (loc, scale), 2 truncated\n"
             "normal (loc, scale, pa, mass, low, high, flip).");

/* The buffer's element type without a byte-order prefix for native order ("=f", "<d"). */
static const char *element_format(const Py_buffer *b) {
    const char *f = b->format ? b->format : "B";
    if (*f == '@' || *f == '=') return f + 1;
#if PY_LITTLE_ENDIAN
    if (*f == '<') return f + 1;
#else
    if (*f == '>' || *f == '!') return f + 1;
#endif
    return f;
}

static PyObject *py_fill(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer out;
    PyObject *out_obj;
    int kind;
    unsigned long k0, k1;
    long long offset, start, stop;
    PyObject *shape_obj, *mults_obj, *params_obj;
    if (!PyArg_ParseTuple(args, "OikkLO!O!LLO!", &out_obj, &kind, &k0, &k1, &offset, &PyTuple_Type,
                          &shape_obj, &PyTuple_Type, &mults_obj, &start, &stop, &PyTuple_Type,
                          &params_obj))
        return NULL;
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_WRITABLE | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    PyObject *result = NULL;
    Params p;
    memset(&p, 0, sizeof p);
    int64_t shape[MAX_DIMS], mults[MAX_DIMS];
    const int ndim = (int)PyTuple_GET_SIZE(shape_obj);
    const Py_ssize_t nparams = PyTuple_GET_SIZE(params_obj);
    double prm[7] = {0};
    int64_t numel = 1;
    int out_f32;

    if (kind < KIND_UNIFORM || kind > KIND_TRUNCNORM) {
        PyErr_SetString(PyExc_ValueError, "kind must be 0, 1 or 2");
        goto done;
    }
    if (ndim > MAX_DIMS || PyTuple_GET_SIZE(mults_obj) != ndim) {
        PyErr_SetString(PyExc_ValueError, "shape and mults: equal lengths, at most 16");
        goto done;
    }
    if (nparams != (kind == KIND_TRUNCNORM ? 7 : 2)) {
        PyErr_SetString(PyExc_ValueError, "params: 2 numbers (7 for a truncated normal)");
        goto done;
    }
    if (k0 > 0xFFFFFFFFul || k1 > 0xFFFFFFFFul) {
        PyErr_SetString(PyExc_ValueError, "key words must be 32-bit");
        goto done;
    }
    if (read_ints(shape_obj, shape, ndim, "shape") || read_ints(mults_obj, mults, ndim, "mults"))
        goto done;
    for (Py_ssize_t i = 0; i < nparams; i++) {
        prm[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(params_obj, i));
        if (prm[i] == -1.0 && PyErr_Occurred()) goto done;
    }
    for (int k = 0; k < ndim; k++) numel *= shape[k];
    if (out.itemsize == 8 && strcmp(element_format(&out), "d") == 0) {
        out_f32 = 0;
    } else if (out.itemsize == 4 && strcmp(element_format(&out), "f") == 0) {
        out_f32 = 1;
    } else {
        PyErr_SetString(PyExc_TypeError, "out must be a float64 or float32 buffer");
        goto done;
    }
    if (start < 0 || stop < start || stop > numel) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= start <= stop <= block size");
        goto done;
    }
    if (out.len != (stop - start) * out.itemsize) {
        PyErr_SetString(PyExc_ValueError, "out must hold stop - start elements");
        goto done;
    }
    p.kind = kind;
    p.k0 = (uint32_t)k0;
    p.k1 = (uint32_t)k1;
    p.a = prm[0];
    p.b = prm[1];
    if (kind == KIND_TRUNCNORM) {
        p.pa = prm[2];
        p.mass = prm[3];
        p.low = prm[4];
        p.high = prm[5];
        p.flip = prm[6] != 0.0;
    }
    if (start == stop) goto ok;
    Py_BEGIN_ALLOW_THREADS
    fill_range(&p, offset, ndim, shape, mults, start, stop, (char *)out.buf, out_f32);
    Py_END_ALLOW_THREADS
ok:
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&out);
    return result;
}

PyDoc_STRVAR(ndtri_doc, "ndtri(p) -> float: the kernel's Cephes ndtri of one float64 p.");

static PyObject *py_ndtri(PyObject *self, PyObject *arg) {
    (void)self;
    const double p = PyFloat_AsDouble(arg);
    if (p == -1.0 && PyErr_Occurred()) return NULL;
    if (!(p > 0.0 && p < 1.0)) {
        PyErr_SetString(PyExc_ValueError, "ndtri needs 0 < p < 1");
        return NULL;
    }
    return PyFloat_FromDouble(ndtri(p));
}

/* --- Fingerprints (initspec/fingerprints.py, docs/fingerprint.md) -------------------------
 *
 * The sum mod 2**64, over the elements of a block, of h(c, v) = mix(mix((c + 1) * PHI) ^ v):
 * c the element's counter (its global index in the canonical order, as the stream's), v its
 * value bits zero-extended to 64 bits, mix the SplitMix64 finalizer (Stafford's Mix13).
 * Integer arithmetic only, so every clone and the NumPy reference agree bit for bit. Cloned
 * for x86-64-v4 (AVX-512 has a 64-bit vector multiply; gcc 12 dispatches it by CPU features)
 * beside AVX2 and baseline. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#if __GNUC__ >= 12
#define FP_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define FP_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#else
#define FP_CLONES
#endif

#define FP_PHI 0x9E3779B97F4A7C15ull

static inline uint64_t fp_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The sum over a run of n elements whose counters are base, base + step, ...: the Weyl
   word (c + 1) * PHI advances by step * PHI (mod 2**64, exactly the product), one multiply
   fewer per element. */
#define FP_RUN(name, type)                                                                  \
    FP_CLONES static uint64_t name(const type *restrict v, uint64_t base, uint64_t step,    \
                                   int64_t n) {                                             \
        uint64_t acc = 0;                                                                   \
        const uint64_t w0 = (base + 1) * FP_PHI, dw = step * FP_PHI;                        \
        for (int64_t j = 0; j < n; j++)                                                     \
            acc += fp_mix(fp_mix(w0 + (uint64_t)j * dw) ^ (uint64_t)v[j]);                  \
        return acc;                                                                         \
    }
FP_RUN(fp_run8, uint8_t)
FP_RUN(fp_run16, uint16_t)
FP_RUN(fp_run32, uint32_t)
FP_RUN(fp_run64, uint64_t)

static uint64_t fp_run(const char *v, int itemsize, uint64_t base, uint64_t step, int64_t n) {
    if (itemsize == 1) return fp_run8((const uint8_t *)v, base, step, n);
    if (itemsize == 2) return fp_run16((const uint16_t *)v, base, step, n);
    if (itemsize == 4) return fp_run32((const uint32_t *)v, base, step, n);
    return fp_run64((const uint64_t *)v, base, step, n);
}

/* The sum over elements start .. stop - 1 (row-major in the block) of the values in buf
   (stop - start elements of itemsize bytes): runs along the last axis, carrying into the
   earlier axes at the end of each (next_counters' walk); a dense block is one run. */
static uint64_t fp_range(const char *buf, int itemsize, int64_t offset, int ndim,
                         const int64_t *shape, const int64_t *mults, int64_t start,
                         int64_t stop) {
    int64_t idx[MAX_DIMS];
    int64_t rem = start;
    int64_t c = offset;
    uint64_t acc = 0;
    int dense = 1;
    int64_t step = 1;
    for (int k = ndim - 1; k >= 0; k--) {
        idx[k] = rem % shape[k];
        rem /= shape[k];
        c += idx[k] * mults[k];
        if (shape[k] > 1 && mults[k] != step) dense = 0;
        step *= shape[k];
    }
    if (ndim == 0 || dense) return fp_run(buf, itemsize, (uint64_t)c, 1, stop - start);
    const int last = ndim - 1;
    for (int64_t pos = start; pos < stop;) {
        int64_t run = shape[last] - idx[last];
        if (run > stop - pos) run = stop - pos;
        acc += fp_run(buf + (pos - start) * itemsize, itemsize, (uint64_t)c,
                      (uint64_t)mults[last], run);
        pos += run;
        idx[last] += run;
        c += run * mults[last];
        for (int k = last; k > 0 && idx[k] == shape[k]; k--) {
            c += mults[k - 1] - shape[k] * mults[k];
            idx[k] = 0;
            idx[k - 1]++;
        }
    }
    return acc;
}

PyDoc_STRVAR(fingerprint_sum_doc,
             "fingerprint_sum(values, offset, shape, mults, start, stop) -> int\n\n"
             "The sum mod 2**64 of mix(mix((c + 1) * PHI) ^ v) over elements start..stop-1\n"
             "(row-major) of a block: v the bits of each element of `values`, a contiguous\n"
             "buffer of stop - start elements of 1, 2, 4 or 8 bytes (read as unsigned\n"
             "integers), c = offset + sum(idx * mults) its counter (initspec.fingerprints).");

static PyObject *py_fingerprint_sum(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer values;
    PyObject *values_obj, *shape_obj, *mults_obj;
    long long offset, start, stop;
    if (!PyArg_ParseTuple(args, "OLO!O!LL", &values_obj, &offset, &PyTuple_Type, &shape_obj,
                          &PyTuple_Type, &mults_obj, &start, &stop))
        return NULL;
    if (PyObject_GetBuffer(values_obj, &values, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    PyObject *result = NULL;
    int64_t shape[MAX_DIMS], mults[MAX_DIMS];
    const int ndim = (int)PyTuple_GET_SIZE(shape_obj);
    int64_t numel = 1;
    uint64_t acc = 0;
    const int itemsize = (int)values.itemsize;
    if (ndim > MAX_DIMS || PyTuple_GET_SIZE(mults_obj) != ndim) {
        PyErr_SetString(PyExc_ValueError, "shape and mults: equal lengths, at most 16");
        goto done;
    }
    if (offset < 0) {
        PyErr_SetString(PyExc_ValueError, "offset must be >= 0");
        goto done;
    }
    if (read_ints(shape_obj, shape, ndim, "shape") || read_ints(mults_obj, mults, ndim, "mults"))
        goto done;
    for (int k = 0; k < ndim; k++) numel *= shape[k];
    if (itemsize != 1 && itemsize != 2 && itemsize != 4 && itemsize != 8) {
        PyErr_SetString(PyExc_TypeError, "values must have elements of 1, 2, 4 or 8 bytes");
        goto done;
    }
    if (start < 0 || stop < start || stop > numel) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= start <= stop <= block size");
        goto done;
    }
    if (values.len != (stop - start) * itemsize) {
        PyErr_SetString(PyExc_ValueError, "values must hold stop - start elements");
        goto done;
    }
    if (start < stop) {
        Py_BEGIN_ALLOW_THREADS
        acc = fp_range((const char *)values.buf, itemsize, offset, ndim, shape, mults, start,
                       stop);
        Py_END_ALLOW_THREADS
    }
    result = PyLong_FromUnsignedLongLong(acc);
done:
    PyBuffer_Release(&values);
    return result;
}

static PyMethodDef methods[] = {
    {"fill", py_fill, METH_VARARGS, fill_doc},
    {"ndtri", py_ndtri, METH_O, ndtri_doc},
    {"fingerprint_sum", py_fingerprint_sum, METH_VARARGS, fingerprint_sum_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "initspec._stream",
    "The portable stream's elementwise kernels and the fingerprint sums in C (optional; see "
    "initspec.portable and initspec.fingerprints).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__stream(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddIntConstant(m, "STREAM_VERSION", 1) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
