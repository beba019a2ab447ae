/*
 * _cni_setns - setns(2) for the frozen plugin bundle, without ctypes.
 *
 * Python 3.11 has no os.setns (3.12 has).  cni_plugins/linux/netns.py used
 * ctypes for it, but PyInstaller's bootstrap imports ctypes (and loads
 * libffi) at every start whenever ctypes is in the bundle: ~3-4 ms per exec.
 * build/build.py compiles this module against the build interpreter's headers
 * and ships it in the bundle instead, with ctypes excluded.  netns.py prefers
 * os.setns, then this module, then ctypes (source-tree runs).
 *
 * setns(fd, nstype) -> None; a failure raises OSError(errno, strerror), the
 * subclass chosen by errno, exactly as os.setns does.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <sched.h>

static PyObject *cni_setns(PyObject *self, PyObject *args)
{
	int fd, nstype, rc;
	(void)self;
	if (!PyArg_ParseTuple(args, "ii:setns", &fd, &nstype))
		return NULL;
	/* no GIL release: setns is fast and the plugins are single-threaded */
	rc = setns(fd, nstype);
	if (rc != 0)
		return PyErr_SetFromErrno(PyExc_OSError);
	Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
	{"setns", cni_setns, METH_VARARGS,
	 "setns(fd, nstype): move the calling thread into the namespace fd refers to."},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
	PyModuleDef_HEAD_INIT, "_cni_setns", "setns(2) without ctypes (cni-plugins bundle).",
	-1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cni_setns(void)
{
	return PyModule_Create(&module);
}
