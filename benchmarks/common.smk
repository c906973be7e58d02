# The helpers of benchmarks/Snakefile: the hand-written job's place, settings and inputs.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir).parent / "workflow_scripts"))
from cnn_study import run_layout, settings  # noqa: E402

ARMS = settings.prepare_study(config)
HANDWRITTEN = f"{run_layout.HANDWRITTEN_ROOT}/{run_layout.RUN_PATH}/{{feed}}"
HANDWRITTEN_LOG = f"logs/benchmarks/handwritten/{run_layout.RUN_PATH}/{{feed}}.log"


def handwritten_settings(wildcards):
    """The run's settings as the workflow's train job gets them: its arm's config, nothing else."""
    return settings.run_settings(
        ARMS[wildcards.arm], wildcards.model, wildcards.optimizer, wildcards.lr, wildcards.seed
    )


def handwritten_inputs(wildcards):
    """The arm's decode-once cache; for the decode feed its validation part, the archive and the manifest."""
    size = settings.model_settings(ARMS[wildcards.arm], wildcards.model)["input_size"]
    cache = {key: path.format(size=size) for key, path in rules.build_image_cache.output.items()}
    if wildcards.feed == "arrays":
        return cache
    source, manifest = rules.build_image_cache.input.source, rules.select_images.output.manifest
    return {**{k: v for k, v in cache.items() if k.startswith("val")}, "archive": source, "manifest": manifest}
