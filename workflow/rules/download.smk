# Input files given by URL (or with a checksum): fetched into results/<dataset>/raw/,
# resumed after an interruption, verified, then read by the dataset's first stage.


rule download:
    output:
        file=f"{R}/{{dataset}}/raw/{{path}}",
    log:
        f"{R}/{{dataset}}/logs/download/{{path}}.log",
    wildcard_constraints:
        dataset=_alternatives(sorted(DOWNLOADS)),
        path=_alternatives(sorted({p for files in DOWNLOADS.values() for p in files})),
    conda:
        CONDA_ENV
    params:
        url=lambda wc: download_of(wc).url,
        checksum=lambda wc: download_of(wc).checksum,
        retries=lambda wc: source_options(wc).get("retries", 5),
        backoff=lambda wc: source_options(wc).get("backoff", 2.0),
    script:
        "../scripts/download.py"
