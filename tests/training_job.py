"""A training job in its own process, as the Snakemake rule runs it: tests start it, may SIGKILL it,
and start it again. Usage: python tests/training_job.py spec.json (the keyword arguments of train_run).
Logging goes to stdout, which the test sends to a log file."""

import json
import logging
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow_scripts"))
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    from cnn_study.training import train_run

    train_run(**json.loads(Path(sys.argv[1]).read_text()))
