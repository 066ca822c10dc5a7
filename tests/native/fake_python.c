/*
 * A stand-in for a Python runtime DLL, for tests/test_plugin_windows.py. The test builds it as
 * python399.dll (a name no real Python has, so a plugin that guesses names cannot find it) and
 * wine_host.exe loads it before calling savsr.Upscale. The plugin must find it in the process's
 * module list, resolve every entry point it needs, take the "GIL" and try to import its bridge
 * module; this Python refuses the import with a recognisable error, which the plugin must pass
 * on. fake_python_report() tells the host what was asked of it.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define EXPORT __declspec(dllexport)

typedef struct {
    const char *text;
} FakeObject; /* every "object" is one of these; references are not counted */

static FakeObject any_object = {"object"};
static FakeObject error_value = {"fake Python: no import"};
static char error_text[256];
static int gil_depth, gil_taken, imports, pending_error;
static char last_import[128];

EXPORT int Py_IsInitialized(void) { return 1; }
EXPORT int Py_IsFinalizing(void) { return 0; }
EXPORT int PyGILState_Ensure(void) {
    gil_depth++;
    gil_taken++;
    return 0;
}
EXPORT void PyGILState_Release(int state) {
    (void)state;
    gil_depth--;
}
EXPORT void *PyImport_ImportModule(const char *name) {
    imports++;
    snprintf(last_import, sizeof(last_import), "%s", name);
    snprintf(error_text, sizeof(error_text), "fake Python: import of %s refused", name);
    error_value.text = error_text;
    pending_error = 1;
    return NULL;
}
EXPORT void *PyErr_Occurred(void) { return pending_error ? &error_value : NULL; }
EXPORT void PyErr_Fetch(void **type, void **value, void **tb) {
    *type = pending_error ? &any_object : NULL;
    *value = pending_error ? &error_value : NULL;
    *tb = NULL;
    pending_error = 0;
}
EXPORT void PyErr_Clear(void) { pending_error = 0; }
EXPORT void *PyObject_Str(void *o) { return o; }
EXPORT const char *PyUnicode_AsUTF8AndSize(void *o, ptrdiff_t *size) {
    const char *text = ((FakeObject *)o)->text;
    if (size) *size = (ptrdiff_t)strlen(text);
    return text;
}
EXPORT void Py_DecRef(void *o) { (void)o; }
EXPORT void *PyTuple_New(ptrdiff_t n) {
    (void)n;
    return &any_object;
}
EXPORT int PyTuple_SetItem(void *t, ptrdiff_t i, void *o) {
    (void)t, (void)i, (void)o;
    return 0;
}
EXPORT void *PyList_New(ptrdiff_t n) {
    (void)n;
    return &any_object;
}
EXPORT int PyList_SetItem(void *l, ptrdiff_t i, void *o) {
    (void)l, (void)i, (void)o;
    return 0;
}
EXPORT void *PyLong_FromLongLong(long long v) {
    (void)v;
    return &any_object;
}
EXPORT void *PyMemoryView_FromMemory(char *mem, ptrdiff_t size, int flags) {
    (void)mem, (void)size, (void)flags;
    return &any_object;
}
EXPORT void *PyBytes_FromStringAndSize(const char *s, ptrdiff_t n) {
    (void)s, (void)n;
    return &any_object;
}
EXPORT int PyBytes_AsStringAndSize(void *o, char **s, ptrdiff_t *n) {
    (void)o, (void)s, (void)n;
    return -1;
}
/* Unused by the import path, present so that every lookup the plugin makes succeeds. */
EXPORT void *PyObject_GetAttrString(void *o, const char *name) {
    (void)o, (void)name;
    return NULL;
}
EXPORT void *PyObject_CallObject(void *f, void *args) {
    (void)f, (void)args;
    return NULL;
}

EXPORT void fake_python_report(char *buf, size_t size) {
    snprintf(buf, size, "imports=%d last_import=%s gil_taken=%d gil_depth=%d", imports, last_import, gil_taken, gil_depth);
}
