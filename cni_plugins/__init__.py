"""CNI plugins for flannel-networked nodes, in Python, shipped as single-file binaries."""

# Overwritten by build/build.py in the frozen bundle (importlib.metadata is not
# available there, and costs import time anyway).
__version__ = "0.1.0.dev0"
