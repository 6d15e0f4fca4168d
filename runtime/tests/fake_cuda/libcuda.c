/* A fake CUDA driver for testing the CUDA executor on machines without a GPU.
 *
 * Implements exactly the driver entry points the executor uses (runtime/src/exec/cuda/
 * driver.rs, ENTRY_POINTS), with host memory standing in for device memory. "PTX modules"
 * are text: the words in it select behaviour:
 *   BADPTX      cuModuleLoadDataEx fails with CUDA_ERROR_INVALID_PTX and a JIT log;
 *   OLDPTX      ... fails with CUDA_ERROR_UNSUPPORTED_PTX_VERSION;
 *   LAUNCHFAIL  launching entry dqc_k0 fails with CUDA_ERROR_INVALID_VALUE;
 *   FAULT       entry dqc_k1 stores fault word 0x101 (gather fault of kernel 1).
 * Entries dqc_k0 and dqc_k1 compute the two kernels of the runtime tests' bias program:
 *   dqc_k0(fault, x, w, t, B): t[i] = x[i] + w[i % 4], i < 4B
 *   dqc_k1(fault, t, out, B):  out[i] = 2 t[i]
 * Every launch is appended to $FAKE_CUDA_LOG (if set) as
 *   `ENTRY grid=X,Y,Z block=X,Y,Z shared=S params=P0,P1,...` (params as 64-bit values).
 * The compute capability is $FAKE_CUDA_CC ("90" by default: 9.0); the name "Fake GPU".
 * Stream capture records launches into a graph that cuGraphLaunch replays.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long devptr;

enum {
    OK = 0,
    INVALID_VALUE = 1,
    INVALID_PTX = 218,
    UNSUPPORTED_PTX_VERSION = 222,
    NOT_FOUND = 500,
};

struct module {
    int fault, launchfail;
};
struct function {
    struct module *m;
    int index;
};
#define MAX_CAPTURED 256
struct launch {
    struct function *f;
    unsigned grid[3], block[3], shared;
    uint64_t params[8];
    int nparams;
};
struct graph {
    struct launch launches[MAX_CAPTURED];
    int n;
};

static int capturing;
static struct graph *capture;

int cuInit(unsigned flags) { (void)flags; return OK; }
int cuDriverGetVersion(int *v) { *v = 12080; return OK; }

int cuGetErrorName(int e, const char **s) {
    switch (e) {
    case OK: *s = "CUDA_SUCCESS"; return OK;
    case INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; return OK;
    case INVALID_PTX: *s = "CUDA_ERROR_INVALID_PTX"; return OK;
    case UNSUPPORTED_PTX_VERSION: *s = "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"; return OK;
    case NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; return OK;
    default: *s = "CUDA_ERROR_UNKNOWN"; return OK;
    }
}
int cuGetErrorString(int e, const char **s) {
    switch (e) {
    case INVALID_VALUE: *s = "invalid argument"; return OK;
    case INVALID_PTX: *s = "a PTX JIT compilation failed"; return OK;
    case UNSUPPORTED_PTX_VERSION: *s = "the provided PTX was compiled with an unsupported toolchain."; return OK;
    case NOT_FOUND: *s = "named symbol not found"; return OK;
    default: *s = "no error"; return OK;
    }
}

int cuDeviceGetCount(int *n) { *n = 1; return OK; }
int cuDeviceGet(int *dev, int ordinal) {
    if (ordinal != 0) return INVALID_VALUE;
    *dev = 0;
    return OK;
}
int cuDeviceGetAttribute(int *v, int attr, int dev) {
    (void)dev;
    const char *cc = getenv("FAKE_CUDA_CC");
    int code = cc ? atoi(cc) : 90;
    switch (attr) {
    case 75: *v = code / 10; return OK;     /* compute capability major */
    case 76: *v = code % 10; return OK;     /* minor */
    case 97: *v = 232448; return OK;        /* max shared memory per block, opt-in */
    default: *v = 0; return OK;
    }
}
int cuDeviceGetName(char *name, int len, int dev) {
    (void)dev;
    snprintf(name, (size_t)len, "Fake GPU");
    return OK;
}
int cuDevicePrimaryCtxRetain(void **ctx, int dev) { (void)dev; *ctx = (void *)0x1000; return OK; }
int cuDevicePrimaryCtxRelease_v2(int dev) { (void)dev; return OK; }
int cuCtxSetCurrent(void *ctx) { (void)ctx; return OK; }

int cuMemAlloc_v2(devptr *p, size_t n) {
    void *m = aligned_alloc(256, (n + 255) / 256 * 256);
    if (!m) return 2; /* CUDA_ERROR_OUT_OF_MEMORY */
    memset(m, 0xcd, n); /* device memory is not zeroed */
    *p = (devptr)(uintptr_t)m;
    return OK;
}
int cuMemFree_v2(devptr p) { free((void *)(uintptr_t)p); return OK; }
int cuMemcpyHtoD_v2(devptr dst, const void *src, size_t n) {
    memcpy((void *)(uintptr_t)dst, src, n);
    return OK;
}
int cuMemcpyHtoDAsync_v2(devptr dst, const void *src, size_t n, void *s) {
    (void)s;
    return cuMemcpyHtoD_v2(dst, src, n);
}
int cuMemcpyDtoHAsync_v2(void *dst, devptr src, size_t n, void *s) {
    (void)s;
    memcpy(dst, (void *)(uintptr_t)src, n);
    return OK;
}
int cuMemsetD8_v2(devptr dst, unsigned char v, size_t n) {
    memset((void *)(uintptr_t)dst, v, n);
    return OK;
}
int cuMemsetD8Async(devptr dst, unsigned char v, size_t n, void *s) {
    (void)s;
    memset((void *)(uintptr_t)dst, v, n);
    return OK;
}

int cuModuleLoadDataEx(void **mod, const void *image, unsigned n, int *options, void **values) {
    const char *text = image;
    if (strstr(text, "BADPTX") || strstr(text, "OLDPTX")) {
        for (unsigned i = 0; i < n; i++) {
            if (options[i] == 5) { /* CU_JIT_ERROR_LOG_BUFFER */
                size_t cap = 0;
                for (unsigned j = 0; j < n; j++)
                    if (options[j] == 6) cap = (size_t)(uintptr_t)values[j];
                if (cap) snprintf((char *)values[i], cap, "ptxas application ptx input, line 3; error   : fake syntax error");
            }
        }
        return strstr(text, "OLDPTX") ? UNSUPPORTED_PTX_VERSION : INVALID_PTX;
    }
    struct module *m = calloc(1, sizeof *m);
    m->fault = strstr(text, "FAULT") != NULL;
    m->launchfail = strstr(text, "LAUNCHFAIL") != NULL;
    *mod = m;
    return OK;
}
int cuModuleUnload(void *mod) { free(mod); return OK; }
int cuModuleGetFunction(void **f, void *mod, const char *name) {
    int index;
    if (strcmp(name, "dqc_k0") == 0) index = 0;
    else if (strcmp(name, "dqc_k1") == 0) index = 1;
    else return NOT_FOUND;
    struct function *fn = calloc(1, sizeof *fn);
    fn->m = mod;
    fn->index = index;
    *f = fn;
    return OK;
}
int cuFuncSetAttribute(void *f, int attr, int v) { (void)f; (void)attr; (void)v; return OK; }

static void run(const struct launch *l) {
    const uint64_t *p = l->params;
    if (l->f->index == 0) {
        /* params: fault, kernel index, x, w, t, B */
        float *x = (float *)(uintptr_t)p[2], *w = (float *)(uintptr_t)p[3], *t = (float *)(uintptr_t)p[4];
        for (uint64_t i = 0; i < 4 * p[5]; i++) t[i] = x[i] + w[i % 4];
    } else {
        /* params: fault, kernel index, t, out, B */
        float *t = (float *)(uintptr_t)p[2], *out = (float *)(uintptr_t)p[3];
        for (uint64_t i = 0; i < 4 * p[4]; i++) out[i] = 2.0f * t[i];
        uint32_t *fault = (uint32_t *)(uintptr_t)p[0];
        if (l->f->m->fault && *fault == 0) *fault = (uint32_t)((p[1] & 0xffffffffu) << 8) | 1u;
    }
}

int cuLaunchKernel(void *fp, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, unsigned shared, void *stream, void **params, void **extra) {
    (void)stream;
    (void)extra;
    struct function *f = fp;
    if (f->m->launchfail && f->index == 0) return INVALID_VALUE;
    struct launch l = {f, {gx, gy, gz}, {bx, by, bz}, shared, {0}, f->index == 0 ? 6 : 5};
    for (int i = 0; i < l.nparams; i++) memcpy(&l.params[i], params[i], 8);
    const char *log = getenv("FAKE_CUDA_LOG");
    if (log) {
        FILE *fh = fopen(log, "a");
        if (fh) {
            fprintf(fh, "dqc_k%d grid=%u,%u,%u block=%u,%u,%u shared=%u params=", f->index, gx, gy, gz,
                    bx, by, bz, shared);
            for (int i = 0; i < l.nparams; i++) fprintf(fh, "%s%llu", i ? "," : "", (unsigned long long)l.params[i]);
            fprintf(fh, "%s\n", capturing ? " (captured)" : "");
            fclose(fh);
        }
    }
    if (capturing) {
        if (capture->n >= MAX_CAPTURED) return INVALID_VALUE;
        capture->launches[capture->n++] = l;
        return OK;
    }
    run(&l);
    return OK;
}

int cuStreamCreate(void **s, unsigned flags) { (void)flags; *s = malloc(1); return OK; }
int cuStreamDestroy_v2(void *s) { free(s); return OK; }
int cuStreamSynchronize(void *s) { (void)s; return OK; }
int cuEventCreate(void **e, unsigned flags) { (void)flags; *e = malloc(1); return OK; }
int cuEventRecord(void *e, void *s) { (void)e; (void)s; return OK; }
int cuEventSynchronize(void *e) { (void)e; return OK; }
int cuEventElapsedTime(float *ms, void *a, void *b) { (void)a; (void)b; *ms = 0.25f; return OK; }
int cuEventDestroy_v2(void *e) { free(e); return OK; }

int cuStreamBeginCapture_v2(void *s, int mode) {
    (void)s;
    (void)mode;
    capture = calloc(1, sizeof *capture);
    capturing = 1;
    return OK;
}
int cuStreamEndCapture(void *s, void **graph) {
    (void)s;
    capturing = 0;
    *graph = capture;
    capture = NULL;
    return OK;
}
int cuGraphInstantiateWithFlags(void **exec, void *graph, unsigned long long flags) {
    (void)flags;
    struct graph *g = malloc(sizeof *g);
    memcpy(g, graph, sizeof *g);
    *exec = g;
    return OK;
}
int cuGraphLaunch(void *exec, void *s) {
    (void)s;
    struct graph *g = exec;
    for (int i = 0; i < g->n; i++) run(&g->launches[i]);
    return OK;
}
int cuGraphExecDestroy(void *exec) { free(exec); return OK; }
int cuGraphDestroy(void *graph) { free(graph); return OK; }
