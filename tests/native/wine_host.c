/*
 * A VapourSynth host without Python, for tests/test_plugin_windows.py: cross-compiled with
 * mingw-w64 and run under Wine beside the Windows wheel's libvapoursynth.dll.
 *
 *   wine_host.exe <libvapoursynth.dll> <libvssavsr.dll> [<fake python DLL>]
 *
 * Loads our plugin into a core (std.LoadPlugin), prints what it registered ("function NAME ARGS"),
 * calls savsr.Upscale and savsr.InternalFilter (and asks the latter for a frame), printing each
 * error ("error WHAT: MESSAGE"). Exit status 0 when every step behaved as a host without Python
 * must see it: the namespace and Upscale registered, and errors, not crashes or clips.
 *
 * With a third argument, that DLL (tests/native/fake_python.c) is loaded first, so the plugin
 * finds "a Python" in the process, and what the plugin asked of it is printed ("python ...").
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <stdio.h>
#include <string.h>

#include "VapourSynth4.h"

#define STD_PLUGIN_ID "com.vapoursynth.std"

typedef const VSAPI *(VS_CC *GetApi)(int);

static int failures = 0;

static void fail(const char *what) {
    printf("FAIL %s\n", what);
    failures++;
}

/* Invokes std.BlankClip with the given format; the caller owns the node. */
static VSNode *blank_clip(const VSAPI *vsapi, VSCore *core, int format) {
    VSMap *args = vsapi->createMap();
    vsapi->mapSetInt(args, "format", format, maReplace);
    vsapi->mapSetInt(args, "width", 64, maReplace);
    vsapi->mapSetInt(args, "height", 48, maReplace);
    vsapi->mapSetInt(args, "length", 10, maReplace);
    VSMap *r = vsapi->invoke(vsapi->getPluginByID(STD_PLUGIN_ID, core), "BlankClip", args);
    vsapi->freeMap(args);
    VSNode *node = vsapi->mapGetError(r) ? NULL : vsapi->mapGetNode(r, "clip", 0, NULL);
    vsapi->freeMap(r);
    return node;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 3 && argc != 4) {
        printf("usage: wine_host <libvapoursynth.dll> <libvssavsr.dll> [<fake python DLL>]\n");
        return 2;
    }
    HMODULE fake_python = NULL;
    if (argc == 4 && !(fake_python = LoadLibraryA(argv[3]))) {
        printf("FAIL cannot load %s (error %lu)\n", argv[3], (unsigned long)GetLastError());
        return 2;
    }
    HMODULE vslib = LoadLibraryA(argv[1]);
    if (!vslib) {
        printf("FAIL cannot load %s (error %lu)\n", argv[1], (unsigned long)GetLastError());
        return 2;
    }
    GetApi get_api = (GetApi)(void *)GetProcAddress(vslib, "getVapourSynthAPI");
    const VSAPI *vsapi = get_api ? get_api(VAPOURSYNTH_API_VERSION) : NULL;
    if (!vsapi) {
        printf("FAIL no VapourSynth API v%d in %s\n", VAPOURSYNTH_API_MAJOR, argv[1]);
        return 2;
    }
    VSCore *core = vsapi->createCore(ccfDisableAutoLoading);
    VSCoreInfo info;
    vsapi->getCoreInfo(core, &info);
    printf("core R%d API %d.%d\n", info.core, info.api >> 16, info.api & 0xffff);

    char plugin_path[MAX_PATH];
    if (!GetFullPathNameA(argv[2], MAX_PATH, plugin_path, NULL)) {
        printf("FAIL bad plugin path %s\n", argv[2]);
        return 2;
    }
    VSMap *args = vsapi->createMap();
    vsapi->mapSetData(args, "path", plugin_path, -1, dtUtf8, maReplace);
    VSMap *r = vsapi->invoke(vsapi->getPluginByID(STD_PLUGIN_ID, core), "LoadPlugin", args);
    if (vsapi->mapGetError(r)) {
        printf("FAIL LoadPlugin %s: %s\n", plugin_path, vsapi->mapGetError(r));
        return 3;
    }
    vsapi->freeMap(r);
    vsapi->freeMap(args);

    VSPlugin *savsr = vsapi->getPluginByNamespace("savsr", core);
    if (!savsr) {
        printf("FAIL no namespace savsr after LoadPlugin\n");
        return 3;
    }
    printf("plugin %s %s\n", vsapi->getPluginID(savsr), vsapi->getPluginNamespace(savsr));
    for (VSPluginFunction *f = vsapi->getNextPluginFunction(NULL, savsr); f; f = vsapi->getNextPluginFunction(f, savsr))
        printf("function %s %s\n", vsapi->getPluginFunctionName(f), vsapi->getPluginFunctionArguments(f));
    if (!vsapi->getPluginFunctionByName("Upscale", savsr)) fail("no function Upscale");

    /* Upscale: the public entry point. Without Python it must refuse with a clear message. */
    VSNode *yuv = blank_clip(vsapi, core, pfYUV420P8);
    if (!yuv) fail("BlankClip");
    args = vsapi->createMap();
    vsapi->mapConsumeNode(args, "clip", yuv, maReplace);
    vsapi->mapSetFloat(args, "sx", 2.0, maReplace);
    r = vsapi->invoke(savsr, "Upscale", args);
    if (vsapi->mapGetError(r)) printf("error Upscale: %s\n", vsapi->mapGetError(r));
    else fail("Upscale returned no error in a host without Python");
    vsapi->freeMap(r);
    vsapi->freeMap(args);

    /* InternalFilter: the model filter itself; creating it needs no Python, its frames do. */
    VSNode *rgbs = blank_clip(vsapi, core, pfRGBS);
    args = vsapi->createMap();
    vsapi->mapConsumeNode(args, "clip", rgbs, maReplace);
    vsapi->mapSetInt(args, "width", 128, maReplace);
    vsapi->mapSetInt(args, "height", 96, maReplace);
    vsapi->mapSetInt(args, "handle", 1, maReplace);
    r = vsapi->invoke(savsr, "InternalFilter", args);
    vsapi->freeMap(args);
    if (vsapi->mapGetError(r)) {
        printf("FAIL InternalFilter: %s\n", vsapi->mapGetError(r));
        failures++;
    } else {
        VSNode *node = vsapi->mapGetNode(r, "clip", 0, NULL);
        const VSVideoInfo *vi = vsapi->getVideoInfo(node);
        printf("filter %dx%d %d frames\n", vi->width, vi->height, vi->numFrames);
        char err[1024] = "";
        const VSFrame *frame = vsapi->getFrame(0, node, err, sizeof(err));
        if (frame) {
            fail("InternalFilter produced a frame without Python");
            vsapi->freeFrame(frame);
        } else {
            printf("error getFrame: %s\n", err);
        }
        vsapi->freeNode(node);
    }
    vsapi->freeMap(r);

    if (fake_python) {
        void (*report)(char *, size_t) = (void (*)(char *, size_t))(void *)GetProcAddress(fake_python, "fake_python_report");
        char text[512] = "no report";
        if (report) report(text, sizeof(text));
        printf("python %s\n", text);
    }

    vsapi->freeCore(core);
    printf("done, %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
