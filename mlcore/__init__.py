"""mlcore: multi-label image classification with a small Keras CNN, free of any UI."""

import os
import sys

__version__ = "0.1.0"

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 or AMX;
# on AVX2-only CPUs (many cloud machines) it falls back to kernels that train the
# notebook's network about 1.6x slower. The flag is read once, when TensorFlow
# loads, so it must be set before that; a value set by the user wins.
if "tensorflow" not in sys.modules:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
