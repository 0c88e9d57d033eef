# Concept saliency maps: one job per method, covering every concept of the dataset.


rule saliency:
    input:
        samples=f"{R}/{{dataset}}/data/samples.h5",
        encoder=encoder_of,
        concepts=f"{R}/{{dataset}}/{{model}}/concepts/concepts.h5",
        code=stage_code("saliency"),
    output:
        maps=f"{R}/{{dataset}}/{{model}}/saliency/{{method}}.h5",
    log:
        f"{R}/{{dataset}}/{{model}}/logs/saliency_{{method}}.log",
    benchmark:
        f"{R}/{{dataset}}/{{model}}/benchmarks/saliency_{{method}}.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["saliency"]
    resources:
        mem_mb=4000,
    params:
        options=lambda wc: canonical(
            saliency_cfg(wc.dataset)["methods"][wc.method] or {}
        ),
        chunk_size=lambda wc: saliency_cfg(wc.dataset).get("chunk_size", 64),
    script:
        "../scripts/saliency.py"
