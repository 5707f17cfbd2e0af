"""mlcore: multi-label image classification with a small Keras CNN, free of any UI."""

__version__ = "0.1.0"
