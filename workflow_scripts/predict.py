"""Classify a folder or zip of images with a finished run:
python workflow_scripts/predict.py results/runs/paper/resnet50/sgd/lr0.001/seed0 my_photos/ -o predictions.csv"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from cnn_study.predict import main  # noqa: E402

sys.exit(main())
