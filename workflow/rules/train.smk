# Train the VAE of a model preset; resumes from its checkpoint after an interruption.


rule train:
    input:
        samples=f"{R}/{{dataset}}/data/samples.h5",
        code=stage_code("train"),
    output:
        vae=f"{R}/{{dataset}}/{{model}}/model/vae.keras",
        encoder=f"{R}/{{dataset}}/{{model}}/model/encoder.keras",
        history=f"{R}/{{dataset}}/{{model}}/model/history.csv",
    log:
        f"{R}/{{dataset}}/{{model}}/logs/train.log",
    benchmark:
        f"{R}/{{dataset}}/{{model}}/benchmarks/train.tsv"
    conda:
        CONDA_ENV
    threads: config["threads"]["train"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        preset=lambda wc: model_cfg(wc)["preset"],
        epochs=lambda wc: model_cfg(wc)["epochs"],
        batch_size=lambda wc: model_cfg(wc)["batch_size"],
        learning_rate=lambda wc: model_cfg(wc)["learning_rate"],
        precision=lambda wc: model_cfg(wc).get("precision", "float32"),
        seed=lambda wc: model_cfg(wc).get("seed", config["seed"]),
        checkpoint_dir=lambda wc: f"{R}/{wc.dataset}/{wc.model}/model/checkpoint",
    script:
        "../scripts/train.py"


rule plot_loss:
    input:
        history=f"{R}/{{dataset}}/{{model}}/model/history.csv",
        code=stage_code("plot_loss"),
    output:
        figure=report(
            f"{R}/{{dataset}}/{{model}}/model/loss.png",
            caption="../report/loss.rst",
            category="{dataset}",
            subcategory="{model}: training",
            labels={"dataset": "{dataset}", "model": "{model}", "figure": "loss"},
        ),
    log:
        f"{R}/{{dataset}}/{{model}}/logs/plot_loss.log",
    conda:
        CONDA_ENV
    params:
        title=lambda wc: f"{model_cfg(wc)['preset']}: {wc.dataset}",
    script:
        "../scripts/plot_loss.py"


# Or the user's own trained encoder (models: {name: {keras_file: ..., latent_output: ...}}):
# checked against the data and written as the latent model the later stages read.


rule import_encoder:
    input:
        samples=f"{R}/{{dataset}}/data/samples.h5",
        keras_file=lambda wc: model_cfg(wc)["keras_file"],
        code=stage_code("import_encoder"),
    output:
        encoder=f"{R}/{{dataset}}/{{model}}/model/imported.keras",
    log:
        f"{R}/{{dataset}}/{{model}}/logs/import_encoder.log",
    conda:
        CONDA_ENV
    params:
        latent_output=lambda wc: model_cfg(wc).get("latent_output"),
        key=lambda wc: f"datasets.{wc.dataset}.models.{wc.model}.keras_file",
    script:
        "../scripts/import_encoder.py"


# And, for the decoded concept vector of spatial data, the user's own decoder (decoder_file):
# checked against the imported encoder and the gene images.


rule import_decoder:
    input:
        samples=f"{R}/{{dataset}}/data/samples.h5",
        encoder=f"{R}/{{dataset}}/{{model}}/model/imported.keras",
        decoder_file=lambda wc: model_cfg(wc)["decoder_file"],
        code=stage_code("import_decoder"),
    output:
        decoder=f"{R}/{{dataset}}/{{model}}/model/imported_decoder.keras",
    log:
        f"{R}/{{dataset}}/{{model}}/logs/import_decoder.log",
    conda:
        CONDA_ENV
    params:
        key=lambda wc: f"datasets.{wc.dataset}.models.{wc.model}.decoder_file",
    script:
        "../scripts/import_decoder.py"
