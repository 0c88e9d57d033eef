# Deterministic latent means of every sample.


rule encode:
    input:
        samples=f"{R}/{{dataset}}/data/samples.h5",
        encoder=encoder_of,
        code=stage_code("encode"),
    output:
        latents=f"{R}/{{dataset}}/{{model}}/latents.h5",
    log:
        f"{R}/{{dataset}}/{{model}}/logs/encode.log",
    benchmark:
        f"{R}/{{dataset}}/{{model}}/benchmarks/encode.tsv"
    conda:
        CONDA_ENV
    threads: 1
    params:
        batch_size=256,
    script:
        "../scripts/encode.py"
