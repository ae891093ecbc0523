"""Binary classification metrics in numpy (no scikit-learn), reusable by every trainer.

Labels are 0/1 (1 = positive class); scores are probabilities or any monotone score.
"""
import numpy as np


def confusion(y_true, y_pred):
    """(tp, fp, fn, tn) counts for binary 0/1 arrays."""
    t = np.asarray(y_true).astype(bool).ravel()
    p = np.asarray(y_pred).astype(bool).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    return int(np.sum(t & p)), int(np.sum(~t & p)), int(np.sum(t & ~p)), int(np.sum(~t & ~p))


def precision_recall_f1(y_true, y_pred):
    """Precision, recall and F1 of the positive class (0.0 where undefined)."""
    tp, fp, fn, _ = confusion(y_true, y_pred)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return precision, recall, f1


def f1_score(y_true, y_pred):
    return precision_recall_f1(y_true, y_pred)[2]


def accuracy(y_true, y_pred):
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    return float(np.mean(t.astype(bool) == p.astype(bool))) if t.size else 0.0


def roc_auc(y_true, score):
    """Area under the ROC curve via the Mann–Whitney U statistic (ties count 1/2).

    Returns NaN when only one class is present."""
    t = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # average ranks (1-based) over tied groups
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def binary_report(y_true, score, threshold=0.5):
    """Dict of F1, precision, recall, accuracy, ROC-AUC and counts at ``threshold``."""
    pred = np.asarray(score) >= threshold
    precision, recall, f1 = precision_recall_f1(y_true, pred)
    tp, fp, fn, tn = confusion(y_true, pred)
    return {"threshold": float(threshold), "f1": f1, "precision": precision, "recall": recall,
            "accuracy": accuracy(y_true, pred), "roc_auc": roc_auc(y_true, score),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn, "n": int(np.asarray(y_true).size)}
