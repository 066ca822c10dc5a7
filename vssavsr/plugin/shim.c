/*
 * libvssavsr: the native half of core.savsr.
 *
 * VapourSynth has no Python call that registers a plugin namespace, so this small C plugin
 * (autoloaded from site-packages/vapoursynth/plugins/) registers namespace "savsr" and hands
 * all the real work to the Python package vssavsr (module vssavsr.plugin._bridge):
 *
 *   Upscale(clip, ...)          public. Stores its arguments under a key, calls
 *                               _bridge.create_upscale(key) with the GIL held; Python fetches
 *                               the arguments with InternalArgs, builds the graph with the
 *                               ordinary Python API and hands the result back with
 *                               InternalReturn.
 *   InternalArgs(key)           internal: returns the stored arguments (as a map).
 *   InternalReturn(key, clip)   internal: stores the finished clip for Upscale to return.
 *   InternalFilter(clip, ...)   internal: the model filter (RGBS in, RGBS out at the new size).
 *                               Its frame callback requests the input frames through
 *                               VapourSynth and calls _bridge.plan / _bridge.process with the
 *                               GIL held, passing the planes as memoryviews.
 *
 * Python is never linked: the few functions of the stable C API that we use are looked up at
 * run time in the host process, so one build serves every Python 3 (>= 3.12) that runs
 * VapourSynth. In a host without a running Python interpreter the plugin still loads, and
 * every function fails with a clear message. Where the lookup happens:
 *
 *   Linux (and other ELF systems)  dlsym(RTLD_DEFAULT), then, for hosts that loaded libpython
 *                                  with RTLD_LOCAL, the loaded-object list (dl_iterate_phdr).
 *   Windows                        the python3XY.dll already loaded in the process, found in the
 *                                  loaded-module list (EnumProcessModules), then GetProcAddress.
 *   macOS                          dlsym(RTLD_DEFAULT) only (never built or run by the project).
 */
#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <psapi.h>
#include <wctype.h>
#else
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#if !defined(__APPLE__)
#include <link.h>
#endif
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "VapourSynth4.h"

#define BRIDGE_MODULE "vssavsr.plugin._bridge"
#define MAX_REQUEST 512

/* ------------------------------------------------------------------------------------------ */
/* Python, looked up at run time                                                               */

typedef struct _object PyObject;
typedef ptrdiff_t Py_ssize_t;
typedef int PyGILState_STATE;
#define PYBUF_READ 0x100
#define PYBUF_WRITE 0x200

static struct {
    int resolved;  /* 0: not tried, 1: ok, -1: no Python in this process */
    int (*IsInitialized)(void);
    int (*IsFinalizing)(void);
    PyGILState_STATE (*GILState_Ensure)(void);
    void (*GILState_Release)(PyGILState_STATE);
    PyObject *(*Import_ImportModule)(const char *);
    PyObject *(*Object_GetAttrString)(PyObject *, const char *);
    PyObject *(*Object_CallObject)(PyObject *, PyObject *);
    PyObject *(*Object_Str)(PyObject *);
    PyObject *(*Tuple_New)(Py_ssize_t);
    int (*Tuple_SetItem)(PyObject *, Py_ssize_t, PyObject *);
    PyObject *(*List_New)(Py_ssize_t);
    int (*List_SetItem)(PyObject *, Py_ssize_t, PyObject *);
    PyObject *(*Long_FromLongLong)(long long);
    PyObject *(*MemoryView_FromMemory)(char *, Py_ssize_t, int);
    PyObject *(*Bytes_FromStringAndSize)(const char *, Py_ssize_t);
    int (*Bytes_AsStringAndSize)(PyObject *, char **, Py_ssize_t *);
    const char *(*Unicode_AsUTF8AndSize)(PyObject *, Py_ssize_t *);
    PyObject *(*Err_Occurred)(void);
    void (*Err_Fetch)(PyObject **, PyObject **, PyObject **);
    void (*Err_Clear)(void);
    void (*DecRef)(PyObject *);
} py;

/* A statically initialised lock (SRWLOCK on Windows: no pthreads library to ship). */
#if defined(_WIN32)
typedef SRWLOCK shim_lock;
#define SHIM_LOCK_INIT SRWLOCK_INIT
static void shim_lock_take(shim_lock *l) { AcquireSRWLockExclusive(l); }
static void shim_lock_drop(shim_lock *l) { ReleaseSRWLockExclusive(l); }
#else
typedef pthread_mutex_t shim_lock;
#define SHIM_LOCK_INIT PTHREAD_MUTEX_INITIALIZER
static void shim_lock_take(shim_lock *l) { pthread_mutex_lock(l); }
static void shim_lock_drop(shim_lock *l) { pthread_mutex_unlock(l); }
#endif

static shim_lock py_resolve_lock = SHIM_LOCK_INIT;

#if defined(_WIN32)

typedef HMODULE py_library;

static void *library_symbol(py_library lib, const char *name) {
    return (void *)(uintptr_t)GetProcAddress(lib, name);
}

/* python3XY.dll, also python3XYt.dll (free-threaded) and python3XY_d.dll (debug); not python3.dll,
 * the stable-ABI forwarder, which lacks the optional finalizing check. */
static int is_python_runtime_name(const wchar_t *name) {
    size_t len = wcslen(name);
    return len > 11 && _wcsnicmp(name, L"python3", 7) == 0 && iswdigit(name[7]) &&
           _wcsicmp(name + len - 4, L".dll") == 0;
}

/* The Python runtime DLL already loaded in this process, or NULL. Found in the loaded-module list
 * (EnumProcessModules, kernel32 since Windows 7) rather than by guessing a name: the list hands
 * back module handles, which is what GetProcAddress takes, without the whole-process snapshot
 * (and its retry on ERROR_BAD_LENGTH) that CreateToolhelp32Snapshot needs. The module found is
 * pinned with a reference, as dlopen(RTLD_NOLOAD) does on Linux, so the resolved entry points
 * stay valid. An interpreter that is running wins over one that is only loaded. */
static py_library find_python_runtime(void) {
    HANDLE self = GetCurrentProcess();
    HMODULE stack[512];
    HMODULE *mods = stack;
    DWORD capacity = sizeof(stack), needed = 0;
    BOOL listed;
    while ((listed = EnumProcessModules(self, mods, capacity, &needed)) && needed > capacity) {
        if (mods != stack) free(mods);
        capacity = needed + 64 * sizeof(HMODULE); /* modules may load meanwhile */
        mods = malloc(capacity);
        if (!mods) return NULL;
    }
    if (!listed) needed = 0;
    int (*chosen)(void) = NULL; /* Py_IsInitialized of the chosen runtime */
    for (DWORD i = 0; i < needed / sizeof(HMODULE); i++) {
        wchar_t name[MAX_PATH];
        DWORD n = GetModuleBaseNameW(self, mods[i], name, MAX_PATH);
        if (n == 0 || n >= MAX_PATH || !is_python_runtime_name(name)) continue;
        int (*initialized)(void);
        *(void **)(&initialized) = library_symbol(mods[i], "Py_IsInitialized");
        if (!initialized) continue;
        if (initialized()) {
            chosen = initialized;
            break;
        }
        if (!chosen) chosen = initialized;
    }
    if (mods != stack) free(mods);
    HMODULE pinned = NULL;
    if (!chosen || !GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS, (LPCWSTR)(void *)(uintptr_t)chosen, &pinned))
        return NULL;
    return pinned;
}

#else

typedef void *py_library;

static void *library_symbol(py_library lib, const char *name) { return dlsym(lib, name); }

#if !defined(__APPLE__)
static void *find_libpython_cb_result;

static int find_libpython_cb(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    (void)data;
    if (info->dlpi_name && strstr(info->dlpi_name, "libpython")) {
        void *h = dlopen(info->dlpi_name, RTLD_LAZY | RTLD_NOLOAD);
        if (h && dlsym(h, "Py_IsInitialized")) {
            find_libpython_cb_result = h;
            return 1;
        }
    }
    return 0;
}
#endif

/* The handle to look Python up in (RTLD_DEFAULT, NULL on glibc, is a valid answer); *ok = 0 when
 * this process has no Python. */
static py_library find_python_runtime_posix(int *ok) {
    *ok = 1;
    if (dlsym(RTLD_DEFAULT, "Py_IsInitialized")) return RTLD_DEFAULT;
#if !defined(__APPLE__)
    /* Python may have been loaded with RTLD_LOCAL (an embedding host): find it. */
    find_libpython_cb_result = NULL;
    dl_iterate_phdr(find_libpython_cb, NULL);
    *ok = find_libpython_cb_result != NULL;
    return find_libpython_cb_result;
#else
    *ok = 0;
    return NULL;
#endif
}

#endif

/* Resolve the Python C API in the host process. Returns 1 when Python is usable. */
static int python_resolve(void) {
    shim_lock_take(&py_resolve_lock);
    if (py.resolved == 0) {
        int ok = 1;
#if defined(_WIN32)
        py_library h = find_python_runtime();
        ok = h != NULL;
#else
        py_library h = find_python_runtime_posix(&ok);
#endif
#define RESOLVE(field, name)                                   \
    do {                                                       \
        if (ok) {                                              \
            *(void **)(&py.field) = library_symbol(h, name);            \
            if (!py.field) ok = 0;                             \
        }                                                      \
    } while (0)
        RESOLVE(IsInitialized, "Py_IsInitialized");
        RESOLVE(GILState_Ensure, "PyGILState_Ensure");
        RESOLVE(GILState_Release, "PyGILState_Release");
        RESOLVE(Import_ImportModule, "PyImport_ImportModule");
        RESOLVE(Object_GetAttrString, "PyObject_GetAttrString");
        RESOLVE(Object_CallObject, "PyObject_CallObject");
        RESOLVE(Object_Str, "PyObject_Str");
        RESOLVE(Tuple_New, "PyTuple_New");
        RESOLVE(Tuple_SetItem, "PyTuple_SetItem");
        RESOLVE(List_New, "PyList_New");
        RESOLVE(List_SetItem, "PyList_SetItem");
        RESOLVE(Long_FromLongLong, "PyLong_FromLongLong");
        RESOLVE(MemoryView_FromMemory, "PyMemoryView_FromMemory");
        RESOLVE(Bytes_FromStringAndSize, "PyBytes_FromStringAndSize");
        RESOLVE(Bytes_AsStringAndSize, "PyBytes_AsStringAndSize");
        RESOLVE(Unicode_AsUTF8AndSize, "PyUnicode_AsUTF8AndSize");
        RESOLVE(Err_Occurred, "PyErr_Occurred");
        RESOLVE(Err_Fetch, "PyErr_Fetch");
        RESOLVE(Err_Clear, "PyErr_Clear");
        RESOLVE(DecRef, "Py_DecRef");
#undef RESOLVE
        if (ok) {
            /* Py_IsFinalizing is public from 3.13, _Py_IsFinalizing before. Optional. */
            *(void **)(&py.IsFinalizing) = library_symbol(h, "Py_IsFinalizing");
            if (!py.IsFinalizing) *(void **)(&py.IsFinalizing) = library_symbol(h, "_Py_IsFinalizing");
        }
        py.resolved = ok ? 1 : -1;
    }
    int r = py.resolved == 1;
    shim_lock_drop(&py_resolve_lock);
    return r;
}

static int python_alive(void) {
    if (!python_resolve()) return 0;
    if (!py.IsInitialized()) return 0;
    if (py.IsFinalizing && py.IsFinalizing()) return 0;
    return 1;
}

static const char *NO_PYTHON_MSG =
    "no running Python interpreter in this process. core.savsr runs its model in Python: use it "
    "from a .vpy script under vspipe (or another VSScript host) or from a Python process, with "
    "the vssavsr package installed in that Python";

static void py_decref(PyObject *o) {
    if (o) py.DecRef(o);
}

/* Describe and clear the pending Python exception. Needs the GIL. */
static void python_error_text(char *buf, size_t size) {
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    py.Err_Fetch(&type, &value, &tb);
    const char *text = NULL;
    PyObject *s = NULL;
    if (value) s = py.Object_Str(value);
    else if (type) s = py.Object_Str(type);
    if (s) text = py.Unicode_AsUTF8AndSize(s, NULL);
    if (!text) py.Err_Clear();
    snprintf(buf, size, "%s", text ? text : "unknown Python error");
    py_decref(s);
    py_decref(type);
    py_decref(value);
    py_decref(tb);
}

/* Call vssavsr.plugin._bridge.<name>(*args); steals args. Needs the GIL.
 * The bridge functions return bytes on success and str (a message) on failure.
 * On success: returns 1 and, if payload is not NULL, a new reference to the bytes object in
 * *payload (to be released by the caller). On failure: returns 0 with the message in err. */
static int bridge_call(const char *name, PyObject *args, PyObject **payload, char *err, size_t errsize) {
    if (payload) *payload = NULL;
    if (!args) {
        python_error_text(err, errsize);
        return 0;
    }
    PyObject *mod = py.Import_ImportModule(BRIDGE_MODULE);
    if (!mod) {
        char inner[1536];
        python_error_text(inner, sizeof(inner));
        snprintf(err, errsize,
                 "cannot import the Python package vssavsr (%s) in the Python interpreter that runs "
                 "this script; install vssavsr into that Python (pip install vssavsr)",
                 inner);
        py_decref(args);
        return 0;
    }
    PyObject *fn = py.Object_GetAttrString(mod, name);
    py_decref(mod);
    if (!fn) {
        python_error_text(err, errsize);
        py_decref(args);
        return 0;
    }
    PyObject *res = py.Object_CallObject(fn, args);
    py_decref(fn);
    py_decref(args);
    if (!res) {
        char inner[1536];
        python_error_text(inner, sizeof(inner));
        snprintf(err, errsize, "internal error in %s.%s: %s", BRIDGE_MODULE, name, inner);
        return 0;
    }
    char *data;
    Py_ssize_t len;
    if (py.Bytes_AsStringAndSize(res, &data, &len) == 0) {
        if (payload) *payload = res;
        else py_decref(res);
        return 1;
    }
    py.Err_Clear();
    const char *msg = py.Unicode_AsUTF8AndSize(res, NULL);
    if (!msg) py.Err_Clear();
    snprintf(err, errsize, "%s", msg ? msg : "unknown error (the bridge returned neither bytes nor str)");
    py_decref(res);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Upscale: arguments and result handed over by key                                            */

typedef struct Pending {
    int64_t key;
    VSCore *core;
    VSMap *args;
    VSNode *result;
    struct Pending *next;
} Pending;

static shim_lock pending_lock = SHIM_LOCK_INIT;
static Pending *pending_head = NULL;
static int64_t pending_next_key = 1;

static const char *UPSCALE_ARGS =
    "clip:vnode;"
    "sx:float:opt;sy:float:opt;width:int:opt;height:int:opt;"
    "src_left:float:opt;src_top:float:opt;src_width:float:opt;src_height:float:opt;"
    "checkpoint:data:opt;model:data:opt;device_index:int:opt;fp16:int:opt;"
    "tile:int[]:opt;tile_pad:int:opt;batch:int:opt;"
    "scene_detect:int:opt;backend:data:opt;ensemble:int:opt;";

static void VS_CC upscaleCreate(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    (void)userData;
    char err[2048];
    if (!python_alive()) {
        snprintf(err, sizeof(err), "savsr.Upscale: %s", NO_PYTHON_MSG);
        vsapi->mapSetError(out, err);
        return;
    }
    Pending *p = calloc(1, sizeof(Pending));
    if (!p) {
        vsapi->mapSetError(out, "savsr.Upscale: out of memory");
        return;
    }
    p->core = core;
    p->args = vsapi->createMap();
    vsapi->copyMap(in, p->args);
    shim_lock_take(&pending_lock);
    p->key = pending_next_key++;
    p->next = pending_head;
    pending_head = p;
    shim_lock_drop(&pending_lock);

    PyGILState_STATE gil = py.GILState_Ensure();
    PyObject *args = py.Tuple_New(1);
    if (args) py.Tuple_SetItem(args, 0, py.Long_FromLongLong(p->key));
    int ok = bridge_call("create_upscale", args, NULL, err, sizeof(err));
    py.GILState_Release(gil);

    shim_lock_take(&pending_lock);
    for (Pending **pp = &pending_head; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    shim_lock_drop(&pending_lock);

    if (ok && !p->result) {
        ok = 0;
        snprintf(err, sizeof(err), "savsr.Upscale: internal error: the Python side returned no clip");
    }
    if (ok) {
        vsapi->mapConsumeNode(out, "clip", p->result, maAppend);
        p->result = NULL;
    } else {
        vsapi->mapSetError(out, err);
    }
    if (p->result) vsapi->freeNode(p->result);
    vsapi->freeMap(p->args);
    free(p);
}

static Pending *pending_find(const VSMap *in, VSMap *out, VSCore *core, const VSAPI *vsapi, const char *fname) {
    int e = 0;
    int64_t key = vsapi->mapGetInt(in, "key", 0, &e);
    Pending *found = NULL;
    shim_lock_take(&pending_lock);
    for (Pending *p = pending_head; p; p = p->next) {
        if (p->key == key) {
            found = p;
            break;
        }
    }
    shim_lock_drop(&pending_lock);
    char err[256];
    if (!found) {
        snprintf(err, sizeof(err), "%s: internal function of savsr.Upscale, not for use in scripts", fname);
        vsapi->mapSetError(out, err);
        return NULL;
    }
    if (found->core != core) {
        snprintf(err, sizeof(err),
                 "%s: savsr.Upscale was called in a VapourSynth core that is not the current Python "
                 "environment's core; call it from the script that owns the clip",
                 fname);
        vsapi->mapSetError(out, err);
        return NULL;
    }
    return found;
}

static void VS_CC internalArgsCreate(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    (void)userData;
    Pending *p = pending_find(in, out, core, vsapi, "InternalArgs");
    if (!p) return;
    /* Only the creating thread touches p->args while create_upscale runs. */
    vsapi->copyMap(p->args, out);
    /* Always at least two keys, so that Python sees a dict. */
    vsapi->mapSetInt(out, "_key", p->key, maReplace);
}

static void VS_CC internalReturnCreate(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    (void)userData;
    Pending *p = pending_find(in, out, core, vsapi, "InternalReturn");
    if (!p) return;
    VSNode *node = vsapi->mapGetNode(in, "clip", 0, NULL);
    if (p->result) vsapi->freeNode(p->result);
    p->result = node;
}

/* ------------------------------------------------------------------------------------------ */
/* InternalFilter: the model filter                                                            */

typedef struct {
    VSNode *node;
    VSVideoInfo vi;
    int64_t handle;
} FilterData;

typedef struct {
    int count;
    int idx[];
} FrameReq;

static const char *FILTER_NAME = "SAVSR";

static void cancel_request(FilterData *d, int n) {
    if (!python_alive()) return;
    PyGILState_STATE gil = py.GILState_Ensure();
    PyObject *args = py.Tuple_New(2);
    if (args) {
        py.Tuple_SetItem(args, 0, py.Long_FromLongLong(d->handle));
        py.Tuple_SetItem(args, 1, py.Long_FromLongLong(n));
    }
    char err[256];
    bridge_call("cancel", args, NULL, err, sizeof(err));
    py.GILState_Release(gil);
}

static const VSFrame *VS_CC filterGetFrame(int n, int activationReason, void *instanceData, void **frameData,
                                           VSFrameContext *frameCtx, VSCore *core, const VSAPI *vsapi) {
    FilterData *d = (FilterData *)instanceData;
    char err[2048];

    if (activationReason == arInitial) {
        if (!python_alive()) {
            snprintf(err, sizeof(err), "savsr.Upscale: frame %d: %s", n, NO_PYTHON_MSG);
            vsapi->setFilterError(err, frameCtx);
            return NULL;
        }
        PyGILState_STATE gil = py.GILState_Ensure();
        PyObject *args = py.Tuple_New(2);
        if (args) {
            py.Tuple_SetItem(args, 0, py.Long_FromLongLong(d->handle));
            py.Tuple_SetItem(args, 1, py.Long_FromLongLong(n));
        }
        PyObject *payload = NULL;
        int ok = bridge_call("plan", args, &payload, err, sizeof(err));
        FrameReq *req = NULL;
        if (ok) {
            char *data;
            Py_ssize_t len;
            py.Bytes_AsStringAndSize(payload, &data, &len);
            int count = (int)(len / 4);
            if (count < 1 || count > MAX_REQUEST) {
                ok = 0;
                snprintf(err, sizeof(err), "savsr.Upscale: frame %d: internal error: bad request plan (%d frames)", n, count);
            } else {
                req = malloc(sizeof(FrameReq) + sizeof(int) * (size_t)count);
                if (!req) {
                    ok = 0;
                    snprintf(err, sizeof(err), "savsr.Upscale: frame %d: out of memory", n);
                } else {
                    req->count = count;
                    memcpy(req->idx, data, sizeof(int) * (size_t)count);
                }
            }
            py_decref(payload);
        }
        py.GILState_Release(gil);
        if (!ok) {
            vsapi->setFilterError(err, frameCtx);
            return NULL;
        }
        for (int i = 0; i < req->count; i++) vsapi->requestFrameFilter(req->idx[i], d->node, frameCtx);
        *frameData = req;
        return NULL;
    }

    FrameReq *req = (FrameReq *)*frameData;
    if (activationReason == arError) {
        if (req) {
            cancel_request(d, n);
            free(req);
            *frameData = NULL;
        }
        return NULL;
    }
    if (activationReason != arAllFramesReady || !req) return NULL;

    const VSFrame **src = calloc((size_t)req->count, sizeof(VSFrame *));
    const VSFrame *centre = NULL;
    VSFrame *dst = NULL;
    int ok = 1;
    if (!src) {
        ok = 0;
        snprintf(err, sizeof(err), "savsr.Upscale: frame %d: out of memory", n);
    }
    for (int i = 0; ok && i < req->count; i++) {
        src[i] = vsapi->getFrameFilter(req->idx[i], d->node, frameCtx);
        if (req->idx[i] == n) centre = src[i];
        if (!src[i] || !vsapi->getReadPtr(src[i], 0)) {
            ok = 0;
            snprintf(err, sizeof(err), "savsr.Upscale: frame %d: input frame %d is not in CPU memory", n, req->idx[i]);
        }
    }
    if (ok && !centre) {
        ok = 0;
        snprintf(err, sizeof(err), "savsr.Upscale: frame %d: internal error: centre frame not requested", n);
    }
    if (ok && !python_alive()) {
        ok = 0;
        snprintf(err, sizeof(err), "savsr.Upscale: frame %d: %s", n, NO_PYTHON_MSG);
    }
    if (ok) {
        dst = vsapi->newVideoFrame(&d->vi.format, d->vi.width, d->vi.height, centre, core);
        PyGILState_STATE gil = py.GILState_Ensure();
        /* Scene-change flags: 2 bytes per frame (prev, next). */
        char *flags = malloc((size_t)req->count * 2);
        PyObject *src_list = py.List_New((Py_ssize_t)req->count * 3);
        PyObject *dst_list = py.List_New(3);
        int built = flags && src_list && dst_list;
        for (int i = 0; built && i < req->count; i++) {
            const VSMap *props = vsapi->getFramePropertiesRO(src[i]);
            int e1 = 0, e2 = 0;
            int64_t prev = vsapi->mapGetInt(props, "_SceneChangePrev", 0, &e1);
            int64_t next = vsapi->mapGetInt(props, "_SceneChangeNext", 0, &e2);
            flags[2 * i] = (char)(!e1 && prev);
            flags[2 * i + 1] = (char)(!e2 && next);
            for (int p = 0; p < 3; p++) {
                ptrdiff_t stride = vsapi->getStride(src[i], p);
                int h = vsapi->getFrameHeight(src[i], p);
                PyObject *mv = py.MemoryView_FromMemory((char *)vsapi->getReadPtr(src[i], p),
                                                        (Py_ssize_t)stride * h, PYBUF_READ);
                if (!mv) {
                    built = 0;
                    break;
                }
                py.List_SetItem(src_list, (Py_ssize_t)i * 3 + p, mv);
            }
        }
        for (int p = 0; built && p < 3; p++) {
            ptrdiff_t stride = vsapi->getStride(dst, p);
            uint8_t *w = vsapi->getWritePtr(dst, p);
            PyObject *mv = py.MemoryView_FromMemory((char *)w, (Py_ssize_t)stride * d->vi.height, PYBUF_WRITE);
            if (!mv) {
                built = 0;
                break;
            }
            py.List_SetItem(dst_list, p, mv);
        }
        PyObject *args = NULL;
        if (built) {
            args = py.Tuple_New(9);
            if (args) {
                py.Tuple_SetItem(args, 0, py.Long_FromLongLong(d->handle));
                py.Tuple_SetItem(args, 1, py.Long_FromLongLong(n));
                py.Tuple_SetItem(args, 2, py.Bytes_FromStringAndSize((const char *)req->idx, (Py_ssize_t)req->count * 4));
                py.Tuple_SetItem(args, 3, py.Bytes_FromStringAndSize(flags, (Py_ssize_t)req->count * 2));
                py.Tuple_SetItem(args, 4, src_list);
                py.Tuple_SetItem(args, 5, py.Long_FromLongLong((long long)vsapi->getStride(src[0], 0)));
                py.Tuple_SetItem(args, 6, dst_list);
                py.Tuple_SetItem(args, 7, py.Long_FromLongLong((long long)vsapi->getStride(dst, 0)));
                py.Tuple_SetItem(args, 8, py.Long_FromLongLong((long long)vsapi->getFrameHeight(src[0], 0)));
                src_list = dst_list = NULL; /* stolen */
            }
        }
        if (built) {
            ok = bridge_call("process", args, NULL, err, sizeof(err));
        } else {
            py_decref(args);
            ok = 0;
            python_error_text(err, sizeof(err));
        }
        py_decref(src_list);
        py_decref(dst_list);
        free(flags);
        py.GILState_Release(gil);
    }
    if (src) {
        for (int i = 0; i < req->count; i++)
            if (src[i]) vsapi->freeFrame(src[i]);
        free(src);
    }
    free(req);
    *frameData = NULL;
    if (!ok) {
        if (dst) vsapi->freeFrame(dst);
        vsapi->setFilterError(err, frameCtx);
        return NULL;
    }
    return dst;
}

static void VS_CC filterFree(void *instanceData, VSCore *core, const VSAPI *vsapi) {
    (void)core;
    FilterData *d = (FilterData *)instanceData;
    if (python_alive()) {
        PyGILState_STATE gil = py.GILState_Ensure();
        PyObject *args = py.Tuple_New(1);
        if (args) py.Tuple_SetItem(args, 0, py.Long_FromLongLong(d->handle));
        char err[256];
        bridge_call("release", args, NULL, err, sizeof(err));
        py.GILState_Release(gil);
    }
    vsapi->freeNode(d->node);
    free(d);
}

static void VS_CC internalFilterCreate(const VSMap *in, VSMap *out, void *userData, VSCore *core, const VSAPI *vsapi) {
    (void)userData;
    int e = 0;
    VSNode *node = vsapi->mapGetNode(in, "clip", 0, NULL);
    const VSVideoInfo *vi = vsapi->getVideoInfo(node);
    if (vi->format.colorFamily != cfRGB || vi->format.sampleType != stFloat || vi->format.bitsPerSample != 32 ||
        vi->width <= 0 || vi->height <= 0 || vi->numFrames <= 0) {
        vsapi->freeNode(node);
        vsapi->mapSetError(out, "InternalFilter: internal function of savsr.Upscale (needs constant RGBS input)");
        return;
    }
    int width = vsapi->mapGetIntSaturated(in, "width", 0, &e);
    int height = vsapi->mapGetIntSaturated(in, "height", 0, &e);
    int64_t handle = vsapi->mapGetInt(in, "handle", 0, &e);
    if (width <= 0 || height <= 0) {
        vsapi->freeNode(node);
        vsapi->mapSetError(out, "InternalFilter: width and height must be positive");
        return;
    }
    FilterData *d = calloc(1, sizeof(FilterData));
    d->node = node;
    d->vi = *vi;
    d->vi.width = width;
    d->vi.height = height;
    d->handle = handle;
    VSFilterDependency deps[] = {{node, rpGeneral}};
    /* Parallel requests: arInitial may run concurrently (it only plans), the frame callbacks
     * that run the model (arAllFramesReady) run one at a time for this filter. */
    vsapi->createVideoFilter(out, FILTER_NAME, &d->vi, filterGetFrame, filterFree, fmParallelRequests, deps, 1, d, core);
}

/* ------------------------------------------------------------------------------------------ */

VS_EXTERNAL_API(void) VapourSynthPluginInit2(VSPlugin *plugin, const VSPLUGINAPI *vspapi) {
    vspapi->configPlugin("com.vssavsr.savsr", "savsr",
                         "SAVSR arbitrary-scale video super-resolution (runs in Python: vssavsr)",
                         VS_MAKE_VERSION(1, 0), VAPOURSYNTH_API_VERSION, 0, plugin);
    vspapi->registerFunction("Upscale", UPSCALE_ARGS, "clip:vnode;", upscaleCreate, NULL, plugin);
    vspapi->registerFunction("InternalArgs", "key:int;", "any", internalArgsCreate, NULL, plugin);
    vspapi->registerFunction("InternalReturn", "key:int;clip:vnode;", "", internalReturnCreate, NULL, plugin);
    vspapi->registerFunction("InternalFilter", "clip:vnode;width:int;height:int;handle:int;", "clip:vnode;",
                             internalFilterCreate, NULL, plugin);
}
