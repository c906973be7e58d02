"""Move runs finished before the study had arms into an arm, without retraining:
python workflow_scripts/migrate_runs.py (add the same --configfile overlays as the snakemake command)."""

import sys

from cnn_study.migrate_runs import main

sys.exit(main())
