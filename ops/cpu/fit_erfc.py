"""Fits the polynomial of the exact GELU's erfc in ops/cpu/activation.cc (normal_cdf_and_pdf).

    erfc(z) = t exp(-z^2) Q(t),  t = 1 / (1 + A z),  z >= 0,

with Q a degree-8 polynomial in t on [0, 1] (z from infinity down to 0). Q(t) = erfcx(z) / t is
smooth and between A / sqrt(pi) and 1, so a fit of small relative error in Q is one of the same
relative error in erfc, however small erfc is. The fit minimises the largest relative error
(Lawson's iteratively reweighted least squares on Chebyshev nodes), then reports that error after
rounding the coefficients to float32, on a fine grid. Needs numpy only (Debian python3-numpy):

    /usr/bin/python3 ops/cpu/fit_erfc.py      # A 0.4, degree 8: max relative error 1.44e-07
"""
import math

import numpy as np

A = 0.4
DEGREE = 8


def q_exact(t):
    """erfc(z) exp(z^2) / t in double precision, z = (1/t - 1) / A."""
    if t == 0:
        return A / math.sqrt(math.pi)
    z = (1 / t - 1) / A
    if z < 25:
        return math.erfc(z) * math.exp(z * z) / t
    # erfc underflows near there: the asymptotic series of erfcx, ample at z >= 25.
    s, term = 1.0, 1.0
    for k in range(1, 8):
        term *= -(2 * k - 1) / (2 * z * z)
        s += term
    return s / (z * math.sqrt(math.pi)) / t


def fit(nodes=3000, iterations=400):
    k = np.arange(nodes)
    ts = 0.5 - 0.5 * np.cos(math.pi * (k + 0.5) / nodes)
    q = np.array([q_exact(t) for t in ts])
    v = np.vander(ts, DEGREE + 1, increasing=True)
    w = np.ones(nodes)
    for _ in range(iterations):
        sw = np.sqrt(w) / q
        c, *_ = np.linalg.lstsq(v * sw[:, None], q * sw, rcond=None)
        w *= np.abs(v @ c - q) / q
        w /= w.sum()
    return c.astype(np.float32)


def main():
    c = fit()
    grid = np.linspace(0, 1, 40001)
    exact = np.array([q_exact(t) for t in grid])
    got = np.vander(grid, DEGREE + 1, increasing=True) @ c.astype(np.float64)
    print(f"A {A}, degree {DEGREE}: max relative error {np.max(np.abs(got - exact) / exact):.3g}")
    print("coefficients, highest degree first (Horner):")
    for x in c[::-1]:
        print(f"  {float(x):.9e}f")


if __name__ == "__main__":
    main()
