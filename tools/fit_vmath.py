#!/usr/bin/python3
"""fit_vmath.py: fits the polynomials of the SIMD tables' vector erf and tanh (src/kernels/vmath.h)
and checks the float32 results against Python's double erf and tanh.

    erf(x) = x + x * A(x^2)                     for |x| <= SPLIT
    erf(x) = 1 - exp(-x^2) * B(1 / (1 + x / 2))  for SPLIT < |x| (B fitted up to x = 4; beyond
                                                 3.92 erf rounds to 1 in float32)
    exp(-x^2) = 2^n + 2^n * P, P = r + r^2 E(r)  n = round(-x^2 / ln 2), r = -x^2 - n ln 2 in two
                                                 steps (Cody and Waite); -x^2 clamped at -87

    tanh(x) = -m / (2 + m), m = expm1(-2|x|) = (2^n - 1) + 2^n * P (P and n as for exp, of -2|x|;
                                                 2^n - 1 is exact), sign restored

A is fitted to erf(x)/x - 1, B to erfc(x) * exp(x^2) and E to (exp(r) - 1 - r) / r^2 on
[-ln2/2, ln2/2], all by least squares on Chebyshev nodes with relative weights. tanh needs no
polynomial of its own: expm1 has no cancellation near 0, so one formula covers every x. The checks evaluate the formulas the way the kernels do (Horner with fused
multiply-adds, every step rounded to float32) on 3 million points of
[0, 4.5] (tanh: [0, 12]) and 100,000 magnitudes from 1e-30 to 1, and print the worst error in
float32 ulps.

    /usr/bin/python3 tools/fit_vmath.py      # prints the C tables for vmath.h and the checks

Needs Debian's python3-numpy.
"""
import math

import numpy as np

SPLIT = 1.0
DEG_A = 6
DEG_B = 8
DEG_E = 4
LN2_HI = 0.693359375      # ln 2 in few bits: n * LN2_HI is exact
LN2_LO = -2.12194440e-4   # ln 2 - LN2_HI
B_END = 4.0

F32, F64 = np.float32, np.float64


def cheb(a, b, n):
    k = np.arange(n)
    return (a + b) / 2 + (b - a) / 2 * np.cos((2 * k + 1) * np.pi / (2 * n))


def fit_a():
    s = cheb(0.0, SPLIT * SPLIT, 3000)
    x = np.sqrt(s)
    p = np.array([math.erf(v) / v for v in x])
    v = np.vander(s, DEG_A + 1, increasing=True)
    return np.linalg.lstsq(v / p[:, None], (p - 1) / p, rcond=None)[0]


def fit_b():
    x = cheb(SPLIT, B_END, 4000)
    t = 1 / (1 + 0.5 * x)
    y = np.array([math.erfc(v) * math.exp(v * v) for v in x])
    v = np.vander(t, DEG_B + 1, increasing=True)
    return np.linalg.lstsq(v / y[:, None], np.ones_like(y), rcond=None)[0]


def fit_e():
    h = math.log(2) / 2
    r = cheb(-h, h, 2000)
    q = np.array([(math.expm1(v) - v) / (v * v) for v in r])
    e = np.exp(r)
    v = np.vander(r, DEG_E + 1, increasing=True)
    # relative error of 1 + r + r^2 * E(r): weight the residual in E by r^2 / exp(r)
    w = (r * r / e)[:, None]
    return np.linalg.lstsq(v * w, q * w[:, 0], rcond=None)[0]


def fma(a, b, c):
    # float32 operands: the double product is exact, so one rounding to float32, as an FMA.
    return (a.astype(F64) * b.astype(F64) + c.astype(F64)).astype(F32)


def horner(coef, s):
    r = np.full_like(s, coef[-1])
    for c in coef[-2::-1]:
        r = fma(r, s, np.full_like(s, c))
    return r


def exp_parts(x, ce):
    """(2^n, P) for x <= 0 the way the kernels compute them, float32 steps."""
    x = np.maximum(x, F32(-87.0)).astype(F32)
    n = np.rint((x * F32(1.0 / math.log(2))).astype(F32)).astype(F32)
    r = fma(n, np.full_like(x, F32(-LN2_HI)), x)
    r = fma(n, np.full_like(x, F32(-LN2_LO)), r)
    return np.exp2(n.astype(F64)).astype(F32), fma((r * r).astype(F32), horner(ce, r), r)


def exp_neg(s, ce):
    """exp(-s) for s >= 0."""
    p2, p = exp_parts((-s).astype(F32), ce)
    return fma(p2, p, p2)


def check(ca, cb, ce):
    xs = np.concatenate([np.linspace(0, 4.5, 3000001),
                         10.0 ** np.linspace(-30, 0, 100000)]).astype(F32)
    s = (xs * xs).astype(F32)
    small = fma(xs, horner(ca, s), xs)
    t = (F32(1) / fma(xs, np.full_like(xs, F32(0.5)), np.full_like(xs, F32(1)))).astype(F32)
    e = exp_neg(s, ce)
    big = fma(-e, horner(cb, t), np.full_like(xs, F32(1)))
    r = np.where(xs <= F32(SPLIT), small, big)
    ref = np.array([math.erf(float(v)) for v in xs])
    ulp = np.abs(r.astype(F64) - ref) / np.spacing(np.abs(ref).astype(F32)).astype(F64)
    m = xs <= F32(SPLIT)
    return ulp[m].max(), ulp[~m].max(), np.abs(r.astype(F64) - ref).max()


def check_tanh(ce):
    xs = np.concatenate([np.linspace(0, 12, 3000001),
                         10.0 ** np.linspace(-30, 0, 100000)]).astype(F32)
    p2, p = exp_parts((-(xs + xs)).astype(F32), ce)
    m = fma(p2, p, (p2 - F32(1)).astype(F32))
    r = (m / (F32(-2) - m).astype(F32)).astype(F32)
    ref = np.tanh(xs.astype(F64))
    ulp = np.abs(r.astype(F64) - ref) / np.spacing(np.abs(ref).astype(F32)).astype(F64)
    return ulp.max(), np.abs(r.astype(F64) - ref).max()


def main():
    ca = [F32(c) for c in fit_a()]
    cb = [F32(c) for c in fit_b()]
    ce = [F32(c) for c in fit_e()]
    for name, coef in (("ERF_A", ca), ("ERF_B", cb), ("EXP_E", ce)):
        print("#define VM_%s %s" % (name, ", ".join("%.9ef" % c for c in coef)))
    ua, ub, ab = check(ca, cb, ce)
    print("/* erf, worst error: %.2f ulp for |x| <= %g, %.2f ulp above; %.3g absolute */"
          % (ua, SPLIT, ub, ab))
    ut, at = check_tanh(ce)
    print("/* tanh, worst error: %.2f ulp; %.3g absolute */" % (ut, at))


if __name__ == "__main__":
    main()
