"""Finding genes by name, and a region's marker genes.

Gene names reach us in two spellings: as published (``2010300C02Rik``,
``H2-Ke6``) and after R's ``make.names`` (``X2010300C02Rik``, ``H2.Ke6``), which
many redistributed count matrices went through. The data keep the names they
came with; :class:`GeneIndex` finds a gene in either spelling:

1. an exact match;
2. otherwise a match of both names after ``make.names`` (``2010300C02Rik`` finds
   ``X2010300C02Rik`` and the other way round, ``H2-Ke6`` finds ``H2.Ke6``).

Matching is case-sensitive: gene symbols differing in case can be different genes
(Drosophila's ``h``, hairy, and ``H``, Hairless; a table of mouse and human symbols), so
``PENK`` does not silently become ``Penk``: it is refused with the right spelling suggested
(``did you mean 'Penk'?``). A query that matches two genes is ambiguous and refused; unknown
genes are all reported by name in one message; a list naming one gene twice (in any
spelling) is refused.
"""

from __future__ import annotations

import difflib
import re
from typing import Iterable, Sequence

import numpy as np

from .errors import ConfigError

_INVALID = re.compile(r"[^A-Za-z0-9._]")
#: At most this many unknown genes are named in one message (then "and N more").
_SHOWN = 5


def r_make_names(name: str) -> str:
    """R's ``make.names`` for one name: invalid characters become '.', and an 'X' goes in
    front of a name that starts with a digit, an underscore or a dot followed by a digit."""
    out = _INVALID.sub(".", str(name))
    if not out or out[0].isdigit() or out[0] == "_" or (out[0] == "." and out[1:2].isdigit()):
        out = "X" + out
    return out


class GeneIndex:
    """Name -> position among ``genes``: exact, or in R's ``make.names`` spelling; case-sensitive."""

    def __init__(self, genes: Sequence[str], where: str = "the data"):
        self.genes = list(genes)
        self.where = where
        self._exact = {g: i for i, g in enumerate(self.genes)}
        self._mangled: dict[str, list[int]] = {}
        self._folded: dict[str, list[int]] = {}  # make.names and lower case: only for suggestions
        for i, g in enumerate(self.genes):
            self._mangled.setdefault(r_make_names(g), []).append(i)
            self._folded.setdefault(r_make_names(g).lower(), []).append(i)

    def __len__(self) -> int:
        return len(self.genes)

    def _one(self, name: str) -> int | None | list[int]:
        if name in self._exact:
            return self._exact[name]
        hits = self._mangled.get(r_make_names(name))
        if hits:
            return hits[0] if len(hits) == 1 else hits
        return None

    def suggest(self, name: str) -> str:
        """``"did you mean 'Penk'?"`` (the same name in another case), or close names, or ``""``."""
        same = self._folded.get(r_make_names(name).lower())
        if same:
            return f"did you mean {' or '.join(repr(self.genes[i]) for i in same)}?"
        lowered: dict[str, str] = {}
        for g in self.genes:
            lowered.setdefault(g.lower(), g)
        close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.7)
        return f"close names: {', '.join(lowered[c] for c in close)}" if close else ""

    def find(self, names: Iterable[str], what: str = "") -> np.ndarray:
        """Positions of ``names``; one :class:`ConfigError` naming every unknown or ambiguous name
        (with the right spelling where only the case differs), or a gene named twice."""
        names = [str(n) for n in names]
        found, unknown, ambiguous = [], [], []
        first: dict[int, int] = {}  # gene -> the item that named it first
        for k, name in enumerate(names):
            hit = self._one(name)
            if hit is None:
                unknown.append(name)
            elif isinstance(hit, list):
                ambiguous.append(f"'{name}' ({', '.join(self.genes[i] for i in hit)})")
            elif hit in first:
                j = first[hit]
                spelt = "" if names[j] == name else f" ('{names[j]}' and '{name}')"
                raise ConfigError(f"{what + ': ' if what else ''}gene '{self.genes[hit]}' is listed twice"
                                  f"{spelt}, items {j + 1} and {k + 1}; list every gene once")
            else:
                first[hit] = k
                found.append(hit)
        prefix = f"{what}: " if what else ""
        if unknown:
            shown = []
            for name in unknown[:_SHOWN]:
                hint = self.suggest(name)
                shown.append(f"'{name}'" + (f" ({hint})" if hint else ""))
            more = f" and {len(unknown) - _SHOWN} more" if len(unknown) > _SHOWN else ""
            raise ConfigError(
                f"{prefix}gene(s) not found among the {len(self.genes)} genes of {self.where}: "
                f"{', '.join(shown)}{more}. Names are case-sensitive and match in R's make.names "
                f"spelling too (X prefix, '.' for '-'); a gene may also have been removed by the "
                f"normalisation's min_spots filter."
            )
        if ambiguous:
            raise ConfigError(f"{prefix}ambiguous gene name(s): {'; '.join(ambiguous)}; "
                              f"give the exact name")
        return np.asarray(found, dtype=np.int64)

    def find_one(self, name: str, what: str = "") -> int:
        return int(self.find([name], what)[0])


# ---------------------------------------------------------------- region markers


def region_markers(adata, key: str, region: str, n: int, method: str = "wilcoxon",
                   what: str = "") -> "pandas.DataFrame":  # noqa: F821
    """The ``n`` top marker genes of ``region`` in ``adata.obs[key]`` (scanpy ``rank_genes_groups``).

    Markers are ranked on library-size normalised, log1p-transformed raw counts
    (``layers["counts"]``), the region against all other annotated spots; only
    genes higher in the region (log fold change > 0) are kept, so the table may be shorter
    than ``n``. Returns a table ``gene, score, logfoldchange, p, p_adj`` in rank order.
    Spots with a missing or empty label are unannotated. ``region`` matches a label exactly,
    or else the one label that differs from it in case only.
    """
    import anndata as ad
    import pandas as pd
    import scanpy as sc

    prefix = f"{what}: " if what else ""
    if key not in adata.obs:
        raise ConfigError(f"{prefix}no spot annotation '{key}' in the AnnData (obs columns: "
                          f"{', '.join(map(str, adata.obs.columns)) or 'none'}); give an annotation "
                          f"in the source ('annotation' TSV, or 'region_key' of an .h5ad)")
    from .data.spatial import region_labels

    labels = pd.Series(region_labels(adata.obs[key]), index=adata.obs_names)
    annotated = labels != ""
    present = sorted(set(labels[annotated]))
    if str(region) not in present:  # then a unique match in another case
        same = [r for r in present if r.lower() == str(region).lower()]
        if len(same) != 1:
            raise ConfigError(f"{prefix}region '{region}' not in annotation '{key}'"
                              + (" (ambiguous: several spellings)" if same else "")
                              + f"; its regions: {', '.join(present) or 'none'}")
        region = same[0]
    inside = (labels == region) & annotated
    if inside.sum() < 2 or (annotated & ~inside).sum() < 2:
        raise ConfigError(f"{prefix}region '{region}' needs at least 2 spots inside and 2 annotated "
                          f"spots outside; found {int(inside.sum())} and {int((annotated & ~inside).sum())}")
    sub = adata[annotated.to_numpy()]
    work = ad.AnnData(X=sub.layers["counts"].astype(np.float32), obs=pd.DataFrame(
        {"group": pd.Categorical(np.where(labels[annotated] == region, "in", "out"))},
        index=sub.obs_names), var=pd.DataFrame(index=sub.var_names))
    sc.pp.normalize_total(work, target_sum=1e4)
    sc.pp.log1p(work)
    sc.tl.rank_genes_groups(work, "group", groups=["in"], reference="out", method=method)
    table = sc.get.rank_genes_groups_df(work, group="in")
    table = table[table["logfoldchanges"] > 0].head(n)
    if table.empty:
        raise ConfigError(f"{prefix}region '{region}' has no gene higher inside than outside")
    return pd.DataFrame({"gene": table["names"].astype(str).to_numpy(),
                         "score": table["scores"].to_numpy(float),
                         "logfoldchange": table["logfoldchanges"].to_numpy(float),
                         "p": table["pvals"].to_numpy(float),
                         "p_adj": table["pvals_adj"].to_numpy(float)})
