"""CNI plugins for flannel-networked nodes, in Python, shipped as single-file binaries."""

# Overwritten by build/build.py in the frozen bundle (importlib.metadata is not
# available there, and costs import time anyway).
__version__ = "0.1.0.dev0"

# First of our code to run: the trace (CNI_PLUGINS_TRACE=1) splits the start-up
# from our imports here.  Nothing but ``os`` when off.
from cni_plugins.spec import trace as _trace  # noqa: F401
