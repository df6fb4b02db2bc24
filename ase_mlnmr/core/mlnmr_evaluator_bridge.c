/*
 * C entry points of the evaluator that need Python: mlnmr_evaluator_create / _free.
 * Compiled into the _evaluator extension module (not linked to libpython: its Python
 * symbols resolve against the interpreter already in the process, or the libpython that
 * mlnmr_evaluator_load() opened RTLD_GLOBAL). See mlnmr_core.h and docs/evaluator.md.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mlnmr_core.h"

#ifndef MLNMR_BUILD_PYTHON
#define MLNMR_BUILD_PYTHON ""
#endif

#define MLNMR_EXPORT __attribute__((visibility("default")))

static void copy_text(char *error, size_t error_size, const char *text) {
    if (error != NULL && error_size > 0) {
        snprintf(error, error_size, "%s", text);
    }
}

/* Start an interpreter in a process that has none (the standalone lmp binary): no signal
 * handlers, program name from $MLNMR_PYTHON or the interpreter the package was built with
 * (so that the embedded interpreter finds its site-packages); the GIL is released after. */
static int start_python(char *error, size_t error_size) {
    PyStatus status;
    PyConfig config;
    const char *program = getenv("MLNMR_PYTHON");
    if (program == NULL || program[0] == '\0') {
        program = MLNMR_BUILD_PYTHON;
    }
    PyConfig_InitPythonConfig(&config);
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    if (program[0] != '\0') {
        status = PyConfig_SetBytesString(&config, &config.program_name, program);
        if (PyStatus_Exception(status)) {
            PyConfig_Clear(&config);
            copy_text(error, error_size, "cannot set the Python program name");
            return -1;
        }
    }
    status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        char text[512];
        snprintf(text, sizeof text, "cannot start Python (%s): %s", program,
                 status.err_msg ? status.err_msg : "unknown error");
        copy_text(error, error_size, text);
        return -1;
    }
    PyEval_SaveThread();
    return 0;
}

/* "ExceptionType: message" of the pending exception (cleared). */
static void exception_text(char *error, size_t error_size) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    PyObject *text = NULL;
    if (value != NULL) {
        text = PyUnicode_FromFormat("%s: %S", Py_TYPE(value)->tp_name, value);
    }
    const char *utf8 = text ? PyUnicode_AsUTF8(text) : NULL;
    copy_text(error, error_size, utf8 ? utf8 : "unknown Python error");
    PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
}

MLNMR_EXPORT mlnmr_evaluator *mlnmr_evaluator_create(const char *model_path, int api_version, char *error,
                                                     size_t error_size) {
    copy_text(error, error_size, "");
    if (api_version != MLNMR_EVALUATOR_API_VERSION) {
        char text[160];
        snprintf(text, sizeof text, "caller built for evaluator API version %d, this library is version %d",
                 api_version, MLNMR_EVALUATOR_API_VERSION);
        copy_text(error, error_size, text);
        return NULL;
    }
    if (model_path == NULL) {
        copy_text(error, error_size, "model path is NULL");
        return NULL;
    }
    if (!Py_IsInitialized() && start_python(error, error_size) < 0) {
        return NULL;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    mlnmr_evaluator *evaluator = NULL;
    PyObject *module = PyImport_ImportModule("ase_mlnmr.core._evaluator");
    if (module != NULL) {
        PyObject *address = PyObject_CallMethod(module, "_create_for_c", "s", model_path);
        if (address != NULL) {
            evaluator = (mlnmr_evaluator *)PyLong_AsVoidPtr(address);
            Py_DECREF(address);
        }
        Py_DECREF(module);
    }
    if (evaluator == NULL) {
        exception_text(error, error_size);
    }
    PyGILState_Release(gil);
    return evaluator;
}

MLNMR_EXPORT void mlnmr_evaluator_free(mlnmr_evaluator *evaluator) {
    if (evaluator == NULL || !Py_IsInitialized()) {
        return;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *module = PyImport_ImportModule("ase_mlnmr.core._evaluator");
    if (module != NULL) {
        PyObject *result = PyObject_CallMethod(module, "_free_for_c", "N", PyLong_FromVoidPtr(evaluator));
        Py_XDECREF(result);
        Py_DECREF(module);
    }
    PyErr_Clear();
    PyGILState_Release(gil);
}

/* Values only the Python side knows (mlnmr_evaluator_functions.query; see mlnmr_core.h):
 * ase_mlnmr.core._evaluator._query_for_c(address, name, argument) -> float. */
MLNMR_EXPORT int mlnmr_evaluator_query(const mlnmr_evaluator *evaluator, const char *name, const char *argument,
                                       double *value, char *error, size_t error_size) {
    copy_text(error, error_size, "");
    if (evaluator == NULL || name == NULL || value == NULL || !Py_IsInitialized()) {
        copy_text(error, error_size, "query needs an evaluator, a name, an output and a running Python");
        return -1;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    int status = -1;
    PyObject *module = PyImport_ImportModule("ase_mlnmr.core._evaluator");
    if (module != NULL) {
        PyObject *result = PyObject_CallMethod(module, "_query_for_c", "Nss", PyLong_FromVoidPtr((void *)evaluator),
                                               name, argument ? argument : "");
        if (result != NULL) {
            *value = PyFloat_AsDouble(result);
            status = PyErr_Occurred() ? -1 : 0;
            Py_DECREF(result);
        }
        Py_DECREF(module);
    }
    if (status != 0) {
        exception_text(error, error_size);
    }
    PyGILState_Release(gil);
    return status;
}

/* The correlator's C entry points through its generated api header (import with the GIL). */
#include "_correlator_api.h"

MLNMR_EXPORT int mlnmr_correlator_import(mlnmr_correlator_functions *functions, char *error, size_t error_size) {
    copy_text(error, error_size, "");
    if (functions == NULL || !Py_IsInitialized()) {
        copy_text(error, error_size, "correlator import needs an output struct and a running Python");
        return -1;
    }
    PyGILState_STATE gil = PyGILState_Ensure();
    int status = import_ase_mlnmr__core___correlator();
    if (status < 0) {
        exception_text(error, error_size);
    }
    PyGILState_Release(gil);
    if (status < 0) {
        return -1;
    }
    functions->init = mlnmr_corr_init;
    functions->free = mlnmr_corr_free;
    functions->add = mlnmr_corr_add;
    functions->atom_state_size = mlnmr_corr_atom_state_size;
    functions->pack_atom = mlnmr_corr_pack_atom;
    functions->unpack_atom = mlnmr_corr_unpack_atom;
    functions->pack_all = mlnmr_corr_pack_all;
    functions->global_state_size = mlnmr_corr_global_state_size;
    functions->pack_global = mlnmr_corr_pack_global;
    functions->unpack_global = mlnmr_corr_unpack_global;
    functions->reduce = mlnmr_corr_reduce;
    functions->n_lags = mlnmr_corr_n_lags;
    functions->lags_fs = mlnmr_corr_lags_fs;
    functions->normalised = mlnmr_corr_normalised;
    functions->plateau = mlnmr_corr_plateau;
    functions->write_result = mlnmr_corr_write_result;
    return 0;
}
