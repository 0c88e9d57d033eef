# Concept saliency maps for deep generative models: the workflow.
#
#   snakemake --cores all                 # the built-in demo (config/config.yaml)
#   snakemake --cores 8 --configfile config/other.yaml
#   snakemake --report results/report.html
#
# Stages: generate/prepare -> train (or import_encoder) -> encode -> concepts -> saliency
# -> render / evaluate_groundtruth / evaluate.
# Every rule is a thin script over the library in src/concept_saliency.

from snakemake.utils import min_version

min_version("9.0")


# The demo, unless a config file is given on the command line: `--configfile my.yaml`
# replaces it rather than being merged into it (`--config key=value` still merges).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/spatial.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/celeba.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/concepts.smk"
include: "workflow/rules/saliency.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/evaluate.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
