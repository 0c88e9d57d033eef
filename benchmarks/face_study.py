"""Where do the face maps point? A study of what puts celeba-small's maps on the face part.

Not a test: it measures, for the mouth and eye attributes of a trained celeba-small run, the
mass ratio and the peak-in-part rate (:mod:`concept_saliency.localisation`) of every method
in ``--methods`` on the ``--n`` highest-scoring held-out positives of each attribute (the
samples the workflow explains), with the concept vector as the workflow makes it
(``mean``: positives minus negatives), with ``--vectors disc@A@N`` the library's
``direction: discriminant`` (the difference whitened by the latents' within-class covariance,
shrinkage A, over N positives and N negatives of the training split or ``all``; ``lda@R`` is
the same over all of them with a ridge R, i.e. shrinkage R / (1 + R); ``lda`` is ``lda@1e-3``),
with ``--vectors adj@A@Male+Young`` the discriminant (shrinkage A, all samples) with those
attributes held fixed (``concepts.adjust_for``), with ``--vectors reg`` the attribute's
coefficient in a linear fit of the latents on all attributes. The data's own map of each
attribute (``mean_image_difference``: mean positive minus mean negative training image) is
scored alongside, as the reference.

    snakemake --cores 2 --configfile config/celeba-small.yaml    # the run to study
    python benchmarks/face_study.py results/celeba-small/cpu --n 16

Prints one table (attribute x method x vector: mass ratio, peak inside, AUROC) and the
means over the mouth and eye attributes; ``--out`` writes the table as TSV.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

MOUTH = ["Smiling", "Mouth_Slightly_Open", "Wearing_Lipstick", "Big_Lips", "Mustache"]
EYES = ["Eyeglasses", "Narrow_Eyes", "Bags_Under_Eyes"]

METHODS = {
    "vanilla_gradient": ("vanilla_gradient", {}),
    "gradient_x_input": ("gradient_x_input", {}),
    "smoothgrad": ("smoothgrad", {"samples": 16, "noise_level": 0.15}),
    "smoothgrad_s64": ("smoothgrad", {"samples": 64, "noise_level": 0.15}),
    "smoothgrad_s48_n10": ("smoothgrad", {"samples": 48, "noise_level": 0.10}),
    "smoothgrad_s48_n20": ("smoothgrad", {"samples": 48, "noise_level": 0.20}),
    "smoothgrad_s48_n30": ("smoothgrad", {"samples": 48, "noise_level": 0.30}),
    "integrated_gradients": ("integrated_gradients", {"steps": 32, "baseline": "zeros"}),
    "guided_backprop": ("guided_backprop", {}),
    "rectgrad": ("rectgrad", {}),
    "occlusion_w8_s4": ("occlusion", {"window": 8, "stride": 4}),
    "occlusion_w8_s2": ("occlusion", {"window": 8, "stride": 2}),
    "occlusion_w12_s4": ("occlusion", {"window": 12, "stride": 4}),
    "occlusion_w6_s2": ("occlusion", {"window": 6, "stride": 2}),
    "occlusion_w8_s2_grey": ("occlusion", {"window": 8, "stride": 2, "fill_value": 0.5}),
    "occlusion_w8_s4_grey": ("occlusion", {"window": 8, "stride": 4, "fill_value": 0.5}),
    "occlusion_w12_s2_grey": ("occlusion", {"window": 12, "stride": 2, "fill_value": 0.5}),
    "occlusion_w8_s4_mean": ("occlusion", {"window": 8, "stride": 4, "fill_value": "mean"}),
}


def regression_vectors(z: np.ndarray, labels: np.ndarray, fit_on: np.ndarray) -> np.ndarray:
    """Per attribute, its coefficient in a least-squares fit of the latents on every attribute
    (with an intercept): the mean difference with the other attributes held fixed."""
    a = np.c_[labels[fit_on].astype(np.float64), np.ones(int(fit_on.sum()))]
    coef, *_ = np.linalg.lstsq(a, z[fit_on], rcond=None)
    return coef[:-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="results/<dataset>/<model> of a finished celeba-small run")
    ap.add_argument("--samples", help="samples.h5 (default: ../data/samples.h5 beside the run)")
    ap.add_argument("--n", type=int, default=16, help="held-out positives per attribute (top by score)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated keys of METHODS")
    ap.add_argument("--vectors", default="mean",
                    help="comma-separated: mean, disc@A@N (the library's discriminant, shrinkage A, "
                         "num_samples N or all), lda@R (all samples, ridge R: shrinkage R/(1+R)), "
                         "adj@A@<Attr>+<Attr> (discriminant A, those attributes held fixed), reg")
    ap.add_argument("--smooth", type=float, default=0.0, help="also score maps blurred with this sigma (px)")
    ap.add_argument("--out", help="write the table here (TSV)")
    args = ap.parse_args()

    from concept_saliency.concept_vectors import attribute_concepts, read_concepts
    from concept_saliency.encoding import read_latents
    from concept_saliency.data.regions import RegionStore
    from concept_saliency.data.samples import TRAIN, VALIDATION, SampleStore
    from concept_saliency.face_parts import CELEBA_PARTS
    from concept_saliency.localisation import box_masks, mean_difference_maps, score_against_masks
    from concept_saliency.model import load_model
    from concept_saliency.saliency import attribute

    run = Path(args.run)
    encoder = load_model(run / "model" / "encoder.keras")
    cs = read_concepts(run / "concepts" / "concepts.h5")
    z = read_latents(run / "latents.h5").z
    store = SampleStore(str(args.samples or run.parent / "data" / "samples.h5"))
    parts = RegionStore(store.path)  # CelebA's face-part boxes, packed with the images
    held_out = store.split == VALIDATION
    names = [a for a in MOUTH + EYES if a in cs.names]
    vector_sets = {"mean": np.asarray(cs.vectors)}
    labels, fit_on = store.labels[:, [store.label_names.index(n) for n in cs.names]], store.split == TRAIN
    for key in args.vectors.split(","):
        if key.startswith(("disc", "lda")):
            if key.startswith("disc"):  # disc@<shrinkage>@<num_samples|all>
                _, shrink, num = key.split("@")
                shrinkage, num_samples = float(shrink), None if num == "all" else int(num)
            else:  # lda[@<ridge>]: all samples, ridge R = shrinkage R / (1 + R)
                ridge = float(key.partition("@")[2] or 1e-3)
                shrinkage, num_samples = ridge / (1 + ridge), None
            found = attribute_concepts(z, labels, cs.names, cs.names, fit_on, num_samples, allow_fewer=True,
                                       direction="discriminant", shrinkage=shrinkage)
            vector_sets[key] = np.stack([c.vector for c in found])
        if key.startswith("adj@"):  # adj@<shrinkage>@<Attr>+<Attr>: the discriminant, those held fixed
            _, shrink, covs = key.split("@")
            found = attribute_concepts(z, store.labels, list(store.label_names), cs.names, fit_on, None,
                                       direction="discriminant", shrinkage=float(shrink),
                                       adjust_for=tuple(covs.split("+")))
            vector_sets[key] = np.stack([c.vector for c in found])
    if "reg" in args.vectors.split(","):
        vector_sets["reg"] = regression_vectors(z, labels, fit_on)
    # the data's own map of each attribute: the reference a map is compared with
    differences = mean_difference_maps(store.iter_blocks(1024), np.asarray(cs.positives, dtype=bool), fit_on)
    rows = []
    for vec_name in args.vectors.split(","):
        vectors = vector_sets[vec_name]
        for name in names:
            k = cs.names.index(name)
            part = CELEBA_PARTS[name]
            pos = np.asarray(cs.positives[k], dtype=bool) & held_out
            scores = z @ vectors[k]
            idx = np.nonzero(pos)[0]
            idx = idx[np.argsort(-scores[idx], kind="stable")[:args.n]]
            x = store.read(idx)
            masks = box_masks(parts.boxes[idx, parts.box_names.index(part)], x.shape[1:3])
            reference = np.broadcast_to(differences[k], (len(idx), *differences[k].shape))
            s = score_against_masks(reference, masks)
            rows.append({"vectors": vec_name, "attribute": name, "part": part, "method": "mean_image_difference",
                         "variant": "raw", "mass_ratio": s["mass_ratio"].mean(),
                         "peak_in_part": s["peak_in_region"].mean(), "auroc_abs": s["auroc_abs"].mean(),
                         "seconds": 0.0})
            for key in args.methods.split(","):
                method, options = METHODS[key]
                options = dict(options)
                if options.get("fill_value") == "mean":
                    options["fill_value"] = float(x.mean())
                t0 = time.perf_counter()
                maps = attribute(encoder, vectors, x, method=method, concept=k, **options)
                seconds = time.perf_counter() - t0
                variants = {"raw": maps}
                if args.smooth:
                    from scipy.ndimage import gaussian_filter

                    mag = np.abs(maps).sum(-1) if maps.ndim == 4 else np.abs(maps)
                    variants[f"blur{args.smooth:g}"] = gaussian_filter(mag, (0, args.smooth, args.smooth))
                for variant, m in variants.items():
                    s = score_against_masks(m, masks)
                    rows.append({"vectors": vec_name, "attribute": name, "part": part, "method": key,
                                 "variant": variant, "mass_ratio": s["mass_ratio"].mean(),
                                 "peak_in_part": s["peak_in_region"].mean(), "auroc_abs": s["auroc_abs"].mean(),
                                 "seconds": seconds})
                print(f"{vec_name:5s} {name:20s} {key:22s} " + " ".join(
                    f"{r['variant']}: ratio {r['mass_ratio']:.2f} peak {r['peak_in_part']:.0%}"
                    for r in rows[-len(variants):]), flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    for group, attrs in (("mouth", MOUTH), ("eyes", EYES)):
        sub = table[table["attribute"].isin(attrs)]
        print(f"\n== {group}: mean over {sorted(set(sub['attribute']))}")
        print(sub.groupby(["vectors", "method", "variant"])[["mass_ratio", "peak_in_part", "auroc_abs"]]
              .agg(["mean", "min"]).round(2).to_string())
    if args.out:
        table.to_csv(args.out, sep="\t", index=False)


if __name__ == "__main__":
    main()
