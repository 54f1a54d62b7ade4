"""Reference for eval/linear_probe.h: scikit-learn's LogisticRegression (multinomial, L2,
lbfgs run to convergence) through the same procedure: standardise with the train split's mean
and std (rounded to float32 as tessera stores them), pick C on every 5th train sample, refit on
all of train, score val. Needs Debian's python3-sklearn."""
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression


def fit(x, y, c):
    # tol far below the default: both solvers must reach the unique optimum.
    m = LogisticRegression(C=c, tol=1e-10, max_iter=100000)
    m.fit(x, y)
    return m


def compute(t, a):
    train_x = t["train_x"].numpy()
    train_y = t["train_y"].numpy()
    val_x = t["val_x"].numpy()
    val_y = t["val_y"].numpy()
    strengths = [float(s) for s in a["strengths"].split(",")]
    mean = train_x.mean(axis=0)
    sd = train_x.std(axis=0)
    sd[~(sd > 0)] = 1.0
    train_x = ((train_x - mean) / sd).astype(np.float32).astype(np.float64)
    val_x = ((val_x - mean) / sd).astype(np.float32).astype(np.float64)
    hold = np.arange(len(train_y)) % 5 == 4
    holdout_top1 = []
    for c in strengths:
        m = fit(train_x[~hold], train_y[~hold], c)
        holdout_top1.append((m.predict(train_x[hold]) == train_y[hold]).mean())
    best = strengths[int(np.argmax(holdout_top1))]
    m = fit(train_x, train_y, best)
    return {
        "holdout_top1": torch.tensor(holdout_top1),
        "best_c": torch.tensor([best]),
        "val_top1": torch.tensor([(m.predict(val_x) == val_y).mean()]),
        "coef": torch.tensor(m.coef_),
        "intercept": torch.tensor(m.intercept_),
        "val_pred": torch.tensor(m.predict(val_x)),
    }
