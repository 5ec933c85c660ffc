"""Geometry of activations: PCA maps, k-means clusters with silhouette, cosine similarity of directions.

Pure torch. Silhouette as in Rousseeuw (1987), https://doi.org/10.1016/0377-0427(87)90125-7 ; k-means++
seeding as in Arthur & Vassilvitskii (2007).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ShoestringError


@dataclass
class PCA:
    components: torch.Tensor  # [k, d]
    explained: torch.Tensor  # [k] fraction of variance
    projected: torch.Tensor  # [n, k]
    mean: torch.Tensor  # [d]


def pca(X: torch.Tensor, k: int = 2) -> PCA:
    """Principal components of ``X`` ``[n, d]`` (centred; exact SVD)."""
    X = torch.as_tensor(X).float()
    if X.ndim != 2 or X.shape[0] < 2:
        raise ShoestringError(f"PCA needs a [n >= 2, d] matrix, got {list(X.shape)}", "pass activations of several examples")
    k = min(k, *X.shape)
    mean = X.mean(0)
    U, S, Vh = torch.linalg.svd(X - mean, full_matrices=False)
    var = S**2
    return PCA(Vh[:k], var[:k] / var.sum(), (X - mean) @ Vh[:k].T, mean)


def kmeans(X: torch.Tensor, k: int, seed: int = 0, iters: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with k-means++ seeding: ``(labels [n], centroids [k, d])``."""
    X = torch.as_tensor(X).float()
    if not 1 <= k <= X.shape[0]:
        raise ShoestringError(f"k={k} clusters for {X.shape[0]} points", f"use 1 <= k <= {X.shape[0]}")
    g = torch.Generator().manual_seed(seed)
    cent = X[torch.randint(len(X), (1,), generator=g)]
    while len(cent) < k:
        d2 = torch.cdist(X, cent).min(1).values ** 2
        weights = d2 if d2.sum() > 0 else torch.ones(len(X))  # all points equal: any of them
        cent = torch.cat([cent, X[torch.multinomial(weights, 1, generator=g)]])
    for _ in range(iters):
        labels = torch.cdist(X, cent).argmin(1)
        new = torch.stack([X[labels == j].mean(0) if (labels == j).any() else cent[j] for j in range(k)])
        if torch.allclose(new, cent):
            break
        cent = new
    return torch.cdist(X, cent).argmin(1), cent


def silhouette(X: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean silhouette coefficient in [-1, 1] (1: tight, well separated clusters)."""
    X, labels = torch.as_tensor(X).float(), torch.as_tensor(labels)
    ks = labels.unique()
    if len(ks) < 2:
        raise ShoestringError("silhouette needs at least two clusters", "use k >= 2 or labels with two classes")
    D = torch.cdist(X, X)
    s = torch.zeros(len(X))
    for i in range(len(X)):
        same = labels == labels[i]
        a = D[i, same].sum() / max(int(same.sum()) - 1, 1)
        b = min(D[i, labels == j].mean() for j in ks if j != labels[i])
        s[i] = 0.0 if same.sum() == 1 else (b - a) / max(a, b)
    return float(s.mean())


def cosine_matrix(directions: dict) -> tuple[list, torch.Tensor]:
    """Pairwise cosine similarity of named directions (e.g. a probe's weight at every layer)."""
    names = list(directions)
    V = torch.stack([torch.as_tensor(directions[n]).float().flatten() for n in names])
    V = V / V.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return names, V @ V.T


def geometry_summary(X: torch.Tensor, labels, k: int = 2, seed: int = 0) -> dict:
    """PCA, k-means and silhouettes of ``X [n, d]`` against class ``labels``, as one JSON-ready dict.

    Keys: ``n``, ``explained_variance`` (PC1, PC2), ``kmeans_silhouette``, ``label_silhouette``,
    ``kmeans_label_agreement`` (two clusters vs two classes, the better of both matchings; else ``None``),
    ``pc1_label_correlation``, ``map`` (``[pc1, pc2, label]`` per example) and ``clusters`` (k-means ids).
    """
    X = torch.as_tensor(X).float()
    y = torch.as_tensor(list(labels))
    if len(y) != len(X):
        raise ShoestringError(f"{len(X)} examples but {len(y)} labels", "give one label per example")
    p = pca(X, k=2)
    clusters, _ = kmeans(X, k, seed=seed)
    agree = None
    if k == 2 and len(y.unique()) == 2:
        yb = (y == y.unique()[1]).long()
        agree = max(float((clusters == yb).float().mean()), float((clusters != yb).float().mean()))
    return {"n": len(X), "explained_variance": p.explained.tolist(),
            "kmeans_silhouette": silhouette(X, clusters), "label_silhouette": silhouette(X, y),
            "kmeans_label_agreement": agree,
            "pc1_label_correlation": float(torch.corrcoef(torch.stack([p.projected[:, 0], y.float()]))[0, 1]),
            "map": [[round(float(a), 3), round(float(b), 3), int(c)] for (a, b), c in zip(p.projected[:, :2], y)],
            "clusters": clusters.tolist()}
