"""Operator tools shipped as binaries of the same payload as the plugins.

A tool is run by a person (or a script), not by a container runtime: it may
import what it needs, and it runs plugins only by exec'ing them from CNI_PATH,
as a runtime would.  Tools import spec and the domain packages; nothing imports
tools.  ``cni_plugins.plugins.TOOLS`` registers their entry modules.
"""
