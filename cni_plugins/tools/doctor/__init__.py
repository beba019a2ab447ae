"""``cni-doctor``: read a flannel node's CNI state, report what is wrong with
the evidence and the fix, and (``--repair``) apply the fixes that cannot hurt a
live pod.

One module per check family (``conf``, ``flannel``, ``bridge``, ``sysctls``,
``leaks``, ``chains``, ``payloads``), a pure findings model (``findings``), the
node's inputs (``node``), the liveness evidence a release needs (``evidence``)
and a runner (``runner``) that calls the checks in an order where a repair's
side effects are seen by the checks after it (a leaked pod's DEL also removes
its chains).
"""
