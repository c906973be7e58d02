"""Where every run of the grid stands, locally or on a cluster: python workflow_scripts/progress.py
(add the same --configfile overlays as the snakemake command)."""

import sys

from cnn_study.progress import main

sys.exit(main())
