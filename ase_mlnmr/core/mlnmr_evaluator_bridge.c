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
