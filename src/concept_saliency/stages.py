"""One function per workflow stage: paths and parameters in, versioned artifacts out.

Each ``workflow/scripts/<stage>.py`` is one line: ``run_from_snakemake(snakemake, <stage>)``.
:func:`run_from_snakemake` passes the rule's named inputs, outputs and params
as keyword arguments, sends log records to the rule's log file, selects the
Keras backend from the config before anything imports Keras, and turns a
:class:`~concept_saliency.errors.UserError` into one clear line and exit
status 1 (no traceback). The stage functions can be called directly from
Python with the same arguments.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .artifacts import Provenance, atomic_path
from .errors import UserError

log = logging.getLogger("concept_saliency")


# ----------------------------------------------------------------- plumbing


def _setup_logging(log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="a"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def run_stage(fn: Callable, *, log_file: str | None = None, backend: str = "tensorflow",
              threads: int | None = None, **kwargs) -> Any:
    """Run a stage with logging, backend selection and clear errors."""
    _setup_logging(log_file)
    try:
        from .backend import use_backend

        use_backend(backend, threads)
        t0 = time.time()
        log.info("stage %s: start", fn.__name__)
        result = fn(**kwargs)
        log.info("stage %s: done in %.1fs", fn.__name__, time.time() - t0)
        return result
    except UserError as exc:
        log.error("%s", exc)
        sys.stderr.flush()
        raise SystemExit(1) from None


def run_from_snakemake(smk, fn: Callable) -> Any:
    """Call ``fn`` with the rule's named input, output and params as keyword arguments.

    The input ``code`` (library modules declared so that editing them reruns the
    rule) is not passed on.
    """
    kwargs: dict[str, Any] = {}
    for group in (smk.input, smk.output, smk.params):
        kwargs.update({k: v for k, v in group.items() if k != "code"})
    if "threads" in fn.__code__.co_varnames[: fn.__code__.co_argcount + fn.__code__.co_kwonlyargcount]:
        kwargs["threads"] = smk.threads
    log_file = smk.log[0] if len(smk.log) else None
    return run_stage(fn, log_file=log_file, backend=smk.config.get("backend", "tensorflow"),
                     threads=smk.threads, **kwargs)


def _tsv(df, path, prov: Provenance, fmt: str = "csm.table") -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    prov.write(path, fmt)


# ----------------------------------------------------------------- demo data


def generate_shapes(*, images: str, attributes: str, masks: str, n_samples: int, image_size: int,
                    noise: float, prevalence: float, seed: int) -> None:
    """The synthetic shapes demo: PNG folder, attribute table, ground-truth masks."""
    from .data.synthetic import make_shapes, write_shapes

    params = dict(n_samples=n_samples, image_size=image_size, noise=noise, prevalence=prevalence,
                  seed=seed)
    prov = Provenance("generate_shapes", params)
    data = make_shapes(n_samples, image_size, noise, prevalence, seed)
    write_shapes(data, images, attributes, masks)
    prov.write(images, "csm.samples")
    prov.write(attributes, "csm.table")
    prov.write(masks, "csm.masks")
    log.info("wrote %d synthetic images with attributes %s", n_samples, ", ".join(data.names))


def generate_tissue(*, counts: str, annotation: str, n_layers: int, genes_per_layer: int,
                    n_housekeeping: int, n_noise: int, grid: list[int], depth: float,
                    fold_change: float, seed: int) -> None:
    """The synthetic layered tissue: ST count matrix and the layer of every spot."""
    from .data.synthetic import make_layered_tissue, write_tissue

    params = dict(n_layers=n_layers, genes_per_layer=genes_per_layer, n_housekeeping=n_housekeeping,
                  n_noise=n_noise, grid=grid, depth=depth, fold_change=fold_change, seed=seed)
    prov = Provenance("generate_tissue", params)
    data = make_layered_tissue(n_layers, genes_per_layer, n_housekeeping, n_noise, tuple(grid),
                               depth, fold_change, seed)
    write_tissue(data, counts, annotation)
    prov.write(counts, "csm.table")
    prov.write(annotation, "csm.table")
    log.info("wrote a tissue of %d spots x %d genes in %d layers", *data.counts.shape, n_layers)


# ----------------------------------------------------------------- prepare


def prepare_images(*, images: str, labels: str, samples: str, image_size: int,
                   validation_fraction: float, seed: int, attributes=None) -> None:
    from .data.images import pack_image_folder

    params = dict(image_size=image_size, validation_fraction=validation_fraction, seed=seed,
                  attributes=attributes)
    prov = Provenance("prepare_images", params, {"images": images, "labels": labels})
    summary = pack_image_folder(images, labels, samples, image_size, validation_fraction, seed,
                                None if attributes in (None, "all") else attributes)
    prov.extra["summary"] = summary
    prov.write(samples, "csm.samples")
    log.info("packed %d images of %dx%d", summary["images"], image_size, image_size)


def prepare_spatial(*, counts: str, samples: str, anndata: str, grid: str, normalisation: dict,
                    grid_size, validation_fraction: float, seed: int, annotation: str | None = None,
                    multiple: int = 8) -> None:
    """ST counts -> AnnData (``.h5ad``) and genes as images on the spot grid (sample store)."""
    from .data import spatial
    from .data.samples import assign_split, write_samples

    params = dict(normalisation=normalisation, grid_size=grid_size,
                  validation_fraction=validation_fraction, seed=seed, multiple=multiple)
    inputs = {"counts": counts} | ({"annotation": annotation} if annotation else {})
    prov = Provenance("prepare_spatial", params, inputs)
    raw = spatial.read_st_counts(counts)
    adata = spatial.counts_to_anndata(raw)
    adata, removed = spatial.normalise(adata, normalisation.get("method", "scale"),
                                       int(normalisation.get("min_spots", 1)),
                                       int(normalisation.get("min_counts", 1)))
    regions = None
    if annotation:
        regions = spatial.read_spot_annotation(annotation, list(adata.obs_names))
        adata.obs["region"] = regions
    index = spatial.grid_index(adata, grid_size, multiple)
    images = spatial.genes_to_images(adata, index)
    spatial.write_anndata(adata, anndata)
    spatial.write_grid(grid, index, regions)
    write_samples(samples, images, list(adata.var_names),
                  assign_split(adata.n_vars, validation_fraction, seed),
                  attrs={"source": str(counts), "kind": "spatial-genes"})
    prov.extra["summary"] = removed | {"grid": list(index.shape)}
    for path, fmt in ((anndata, "csm.anndata"), (grid, "csm.spatial-grid"), (samples, "csm.samples")):
        prov.write(path, fmt)


# ----------------------------------------------------------------- model


def train(*, samples: str, model: str, encoder: str, history: str, loss_plot: str, preset: str,
          epochs: int, batch_size: int, seed: int, checkpoint_dir: str,
          learning_rate: float | None = None) -> None:
    """Train the VAE; write ``vae.keras``, ``encoder.keras``, the loss history and its plot."""
    from .backend import describe_device
    from .model import get_preset
    from .rendering import plot_history
    from .training import clear_checkpoint, train_vae

    arch = get_preset(preset)
    params = dict(preset=arch.as_dict(), epochs=epochs, batch_size=batch_size, seed=seed,
                  learning_rate=learning_rate)
    prov = Provenance("train", params, {"samples": samples})
    device = describe_device()
    log.info("device: %s", device)
    prov.extra["device"] = device
    vae, hist = train_vae(samples, arch, epochs=epochs, batch_size=batch_size, seed=seed,
                          checkpoint_dir=checkpoint_dir, learning_rate=learning_rate)
    with atomic_path(model) as tmp:
        vae.save(tmp)
    with atomic_path(encoder) as tmp:
        vae.encoder.save(tmp)
    with atomic_path(history) as tmp:
        hist.to_csv(tmp, index=False, float_format="%.6g")
    plot_history(hist, loss_plot, title=f"{preset}: {Path(samples).parent.parent.name}")
    for path, fmt in ((model, "csm.keras-model"), (encoder, "csm.keras-model"),
                      (history, "csm.history"), (loss_plot, "csm.figure")):
        prov.write(path, fmt)
    clear_checkpoint(checkpoint_dir)


def encode(*, samples: str, encoder: str, latents: str, latent_output=None,
           batch_size: int = 256) -> None:
    from .data.samples import SampleStore
    from .encoding import encode_store, write_latents
    from .model import latent_model, load_model

    prov = Provenance("encode", dict(latent_output=latent_output, batch_size=batch_size),
                      {"samples": samples, "encoder": encoder})
    latent = latent_model(load_model(encoder, "encoder"), latent_output)
    with SampleStore(samples) as store:
        z = encode_store(latent, store, batch_size)
        if not np.isfinite(z).all():
            raise UserError(f"{samples}: the encoder gave NaN or infinite latents; check the inputs "
                            f"for NaN values and the model for divergence")
        write_latents(latents, z, store.ids, store.split)
    prov.write(latents, "csm.latents")
    log.info("encoded %d samples into %d latent dimensions", *z.shape)


# ----------------------------------------------------------------- concepts


def concepts(*, latents: str, samples: str, vectors: str, separation: str, histograms: str,
             groups: str, spec: dict, top_k: int, explain_ids: list, seed: int) -> None:
    """Concept vectors, scores, separation (AUROC on held-out samples), samples to explain."""
    import pandas as pd

    from . import concepts as C
    from .data.samples import VALIDATION, SampleStore
    from .encoding import read_latents
    from .errors import ConfigError
    from .rendering import plot_score_histograms

    params = dict(spec=spec, top_k=top_k, explain_ids=explain_ids, seed=seed)
    prov = Provenance("concepts", params, {"latents": latents, "samples": samples})
    lat = read_latents(latents)
    z = lat.z
    with SampleStore(samples) as store:
        labels, label_names = store.labels, store.label_names
        extra_idx = store.index_of(explain_ids) if explain_ids else np.array([], dtype=np.int64)
    held_out = lat.split == VALIDATION
    if not held_out.any():
        held_out = np.ones(len(z), dtype=bool)
    fit_on = ~held_out if (~held_out).any() else np.ones(len(z), dtype=bool)
    rng = np.random.default_rng(seed)
    concept_list: list[C.Concept] = []
    group_rows = []

    attributes = spec.get("attributes")
    if attributes:
        names = label_names if attributes == "all" else attributes
        for name in names:
            if name not in label_names:
                raise ConfigError(f"concept '{name}': no such attribute in {samples}")
            positive = labels[:, label_names.index(name)]
            vec, info = C.attribute_vector(z[fit_on], positive[fit_on], spec.get("num_samples"),
                                           rng, name, bool(spec.get("allow_fewer", False)))
            concept_list.append(C.Concept(name, "attribute", vec, positive, info))

    gene_index = {g.lower(): i for i, g in enumerate(lat.ids)}

    def lookup(gene: str, concept: str) -> int:
        try:
            return gene_index[gene.lower()]
        except KeyError:
            raise ConfigError(f"concept '{concept}': gene '{gene}' is not among the {len(lat.ids)} "
                              f"genes of {samples}") from None

    n_genes = int(spec.get("n_genes", 50))
    for name, seed_gene in (spec.get("seed_genes") or {}).items():
        idx, r, p = C.correlated_with(z, lookup(seed_gene, name), n_genes)
        members = np.zeros(len(z), dtype=bool)
        members[idx] = True
        concept_list.append(C.Concept(name, "seed_gene", C.group_vector(z, members), members,
                                      {"seed": seed_gene, "n_genes": n_genes}))
        group_rows += [{"concept": name, "rank": k + 1, "gene": lat.ids[i], "r": float(rr),
                        "p": float(pp)} for k, (i, rr, pp) in enumerate(zip(idx, r, p))]
    for name, genes in (spec.get("gene_sets") or {}).items():
        members = np.zeros(len(z), dtype=bool)
        members[[lookup(g, name) for g in genes]] = True
        concept_list.append(C.Concept(name, "gene_set",
                                      C.group_vector(z, members, bool(spec.get("subtract_rest", False))),
                                      members, {"genes": list(genes)}))
        group_rows += [{"concept": name, "rank": k + 1, "gene": g, "r": float("nan"), "p": float("nan")}
                       for k, g in enumerate(genes)]

    vecs = np.stack([c.vector for c in concept_list])
    scores = C.concept_scores(z, vecs)
    rows, selection = [], {}
    for k, c in enumerate(concept_list):
        if c.kind == "attribute":
            held = held_out
            a = C.auroc(scores[held, k], c.positives[held])
        else:
            held = np.ones(len(z), dtype=bool)
            a = C.auroc(scores[:, k], c.positives)
        pos = c.positives & held
        chosen = C.select_top(scores[:, k], pos if pos.any() else c.positives, top_k)
        selection[c.name] = np.concatenate([chosen, extra_idx])
        rows.append({"concept": c.name, "kind": c.kind, "auroc": a,
                     "evaluated_on": "held-out" if c.kind == "attribute" else "all",
                     "n_positive": int(pos.sum()), "n_negative": int((held & ~c.positives).sum()),
                     "mean_score_positive": float(scores[pos, k].mean()) if pos.any() else float("nan"),
                     "mean_score_negative": float(scores[held & ~c.positives, k].mean())
                     if (held & ~c.positives).any() else float("nan"),
                     **{f"fit_{key}": v for key, v in c.details.items() if key.startswith("n_")}})
    table = pd.DataFrame(rows)
    C.write_concepts(vectors, concept_list, scores, selection, lat.ids)
    prov.write(vectors, "csm.concepts")
    _tsv(table, separation, prov)
    _tsv(pd.DataFrame(group_rows, columns=["concept", "rank", "gene", "r", "p"]), groups, prov)
    # attribute concepts: held-out samples; group concepts: all samples
    subsets = [held_out if c.kind == "attribute" else np.ones(len(z), bool) for c in concept_list]
    plot_score_histograms([scores[m, k] for k, m in enumerate(subsets)],
                          [c.positives[m] for c, m in zip(concept_list, subsets)],
                          [c.name for c in concept_list], table["auroc"].to_numpy(), histograms,
                          title="concept scores: with vs without")
    prov.write(histograms, "csm.figure")
    for r in rows:
        log.info("concept %-20s AUROC %.3f (%s)", r["concept"], r["auroc"], r["evaluated_on"])


# ----------------------------------------------------------------- saliency


def saliency(*, samples: str, encoder: str, vectors: str, maps: str, method: str, options: dict,
             latent_output=None, chunk_size: int = 64) -> None:
    """Maps of one method for the chosen samples of every concept (``saliency/<method>.h5``)."""
    import h5py

    from .artifacts import create_h5
    from .concepts import read_concepts
    from .data.samples import SampleStore
    from .model import load_model
    from .saliency import get_method

    cls = get_method(method)
    opts = cls.validate_options(options or {})
    prov = Provenance("saliency", dict(method=method, options=opts, latent_output=latent_output,
                                       chunk_size=chunk_size),
                      {"samples": samples, "encoder": encoder, "concepts": vectors})
    cs = read_concepts(vectors)
    explainer = cls(load_model(encoder, "encoder"), cs.vectors, latent_output=latent_output,
                    chunk_size=chunk_size)
    t0 = time.time()
    with SampleStore(samples) as store, create_h5(maps, "csm.saliency") as f:
        f.attrs["method"] = method
        f.attrs["options"] = repr(opts)
        n_total = 0
        for k, name in enumerate(cs.names):
            idx = cs.explain[name]
            x = store.read(idx)
            m = explainer.attribute(x, concept=k, **opts)
            if not np.isfinite(m).all():
                raise UserError(f"{method}: non-finite attributions for concept '{name}'; check the "
                                f"inputs for NaN values")
            g = f.create_group(name)
            g.create_dataset("indices", data=idx)
            g.create_dataset("ids", data=np.asarray([store.ids[i] for i in idx], dtype=object),
                             dtype=h5py.string_dtype())
            g.create_dataset("maps", data=m)
            g.create_dataset("scores", data=explainer.scores(x, k))
            n_total += len(idx)
    rate = n_total / max(time.time() - t0, 1e-9)
    prov.extra["maps_per_s"] = round(rate, 2)
    prov.write(maps, "csm.saliency")
    log.info("%s: %d maps for %d concepts, %.1f maps/s", method, n_total, len(cs.names), rate)


def read_maps(path: str, concept: str) -> dict:
    from .artifacts import open_h5

    with open_h5(path, "csm.saliency") as f:
        g = f[concept]
        return {"indices": g["indices"][()], "maps": g["maps"][()], "scores": g["scores"][()],
                "method": str(f.attrs["method"])}


# ----------------------------------------------------------------- figures, evaluation


def render(*, samples: str, maps: list, figure: str, concept: str, grid: str | None = None) -> None:
    """One figure per concept: each explained sample beside its map for every method."""
    from .data.samples import SampleStore
    from .rendering import plot_image_maps, plot_spatial_maps

    prov = Provenance("render", dict(concept=concept), {"samples": samples, "maps": list(maps)})
    per_method = {}
    indices = None
    for path in maps:
        r = read_maps(path, concept)
        per_method[r["method"]] = r["maps"]
        indices = r["indices"]
    with SampleStore(samples) as store:
        x = store.read(indices)
        ids = [store.ids[i] for i in indices]
    title = f"concept '{concept}'"
    if grid:
        from .data.spatial import pixels_to_spots, read_grid

        index, _ = read_grid(grid)
        coords = np.stack([index.col, index.row], axis=1).astype(float)
        plot_spatial_maps(pixels_to_spots(x, index),
                          {m: pixels_to_spots(v, index) for m, v in per_method.items()},
                          coords, ids, figure, title)
    else:
        plot_image_maps(x, per_method, ids, figure, title)
    prov.write(figure, "csm.figure")


def evaluate_groundtruth(*, vectors: str, maps: list, table: str, per_sample: str, figure: str,
                         masks: str | None = None, grid: str | None = None, seed: int = 0) -> None:
    """How much of each method's relevance falls inside the known concept region."""
    import pandas as pd

    from .artifacts import open_h5
    from .concepts import read_concepts
    from .evaluation import feature_relevance, localisation, random_relevance, summarise
    from .rendering import plot_groundtruth

    prov = Provenance("evaluate_groundtruth", {"seed": seed},
                      {"concepts": vectors, "maps": list(maps)}
                      | ({"masks": masks} if masks else {}) | ({"grid": grid} if grid else {}))
    cs = read_concepts(vectors)
    if masks:
        dec = lambda a: [v.decode() if isinstance(v, bytes) else v for v in a]  # noqa: E731
        with open_h5(masks, "csm.masks") as f:
            mask_names = dec(f["names"][()])
            mask_row = {sid: i for i, sid in enumerate(dec(f["ids"][()]))}
            all_masks = f["masks"][()]

        def region(concept, indices):
            if concept not in mask_names:
                return None
            rows = [mask_row[cs.ids[i]] for i in indices]
            return all_masks[rows, mask_names.index(concept)].reshape(len(indices), -1)

        def features(m, indices):
            return feature_relevance(m)
    else:
        from .data.spatial import pixels_to_spots, read_grid

        index, regions = read_grid(grid)
        regions = np.asarray(regions)

        def region(concept, indices):
            if concept not in set(regions):
                return None
            return np.broadcast_to(regions == concept, (len(indices), len(regions)))

        def features(m, indices):
            return np.abs(pixels_to_spots(m, index))

    rows = []
    for path in maps:
        for concept in cs.names:
            r = read_maps(path, concept)
            gt = region(concept, r["indices"])
            if gt is None:
                continue
            rel = features(r["maps"], r["indices"])
            for method, values in ((r["method"], rel), ("random", random_relevance(rel.shape, seed))):
                df = localisation(values, gt)
                df.insert(0, "sample", r["indices"])
                df.insert(0, "concept", concept)
                df.insert(0, "method", method)
                rows.append(df)
    if not rows:
        raise UserError("no concept has a known region to evaluate against; "
                        "set 'groundtruth: false' for this dataset")
    detail = pd.concat(rows, ignore_index=True)
    # the random baseline was scored once per method file: keep one copy
    detail = detail.drop_duplicates(subset=["method", "concept", "sample"])
    summary = summarise(detail)
    _tsv(summary, table, prov)
    _tsv(detail, per_sample, prov)
    plot_groundtruth(summary, figure, title="saliency inside the known concept region")
    prov.write(figure, "csm.figure")
    for _, r in summary.iterrows():
        log.info("%-22s mass inside %.3f  AUROC %.3f", r["method"], r["mass_inside"], r["auroc"])
