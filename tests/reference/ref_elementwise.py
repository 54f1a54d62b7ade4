"""Reference for ops/elementwise.h."""


def compute(t, a):
    return {"sum": t["a"] + t["b"], "scaled": float(a["alpha"]) * t["a"]}
