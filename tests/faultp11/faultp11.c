/*
 * faultp11: a PKCS#11 module that forwards to a real one and injects faults, for tests.
 *
 * C_GetFunctionList dlopens the module named by $FAULTP11_MODULE, copies its CK_FUNCTION_LIST and
 * replaces some entries with wrappers.  Before forwarding, a wrapper reads the rules file named by
 * $FAULTP11_CONTROL (again whenever its inode, size or mtime changes; no file means no faults):
 *
 *     # comments and blank lines are ignored
 *     C_Sign 0x30 3            return CKR_DEVICE_ERROR (0x30) for the next 3 calls, then forward
 *     C_Sign 0xB3 *            return CKR_SESSION_HANDLE_INVALID for every call
 *     C_Login 0x30             (no count) the next call only
 *     C_SignInit delay_ms 200  sleep 200 ms, then forward (optionally a count after the delay: "... 200 3")
 *
 * An injected return value replaces the call: the real function is not called.  Replacing the file
 * (write + rename) starts every count afresh.  Delays apply first, then the first error rule of that
 * function with calls left.  faultp11_calls(name) and faultp11_injected(name) count per function.
 *
 * The PKCS#11 declarations below are the minimum this needs, written from the PKCS#11 v2.40 base
 * specification (CK_FUNCTION_LIST member order; Unix ABI: CK_ULONG is unsigned long, default packing).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef unsigned long CK_ULONG;
typedef CK_ULONG CK_RV;
typedef CK_ULONG CK_SLOT_ID;
typedef CK_ULONG CK_SESSION_HANDLE;
typedef CK_ULONG CK_OBJECT_HANDLE;
typedef CK_ULONG CK_FLAGS;
typedef CK_ULONG CK_USER_TYPE;
typedef unsigned char CK_BBOOL;
typedef unsigned char CK_BYTE;
typedef struct { CK_BYTE major, minor; } CK_VERSION;
typedef struct CK_ATTRIBUTE CK_ATTRIBUTE;  /* opaque: only forwarded */
typedef struct CK_MECHANISM CK_MECHANISM;
typedef struct CK_TOKEN_INFO CK_TOKEN_INFO;
typedef CK_RV (*CK_NOTIFY)(CK_SESSION_HANDLE, CK_ULONG, void *);

#define CKR_OK 0x0UL
#define CKR_GENERAL_ERROR 0x5UL

typedef CK_RV (*fn_GetSlotList)(CK_BBOOL, CK_SLOT_ID *, CK_ULONG *);
typedef CK_RV (*fn_GetTokenInfo)(CK_SLOT_ID, CK_TOKEN_INFO *);
typedef CK_RV (*fn_OpenSession)(CK_SLOT_ID, CK_FLAGS, void *, CK_NOTIFY, CK_SESSION_HANDLE *);
typedef CK_RV (*fn_CloseSession)(CK_SESSION_HANDLE);
typedef CK_RV (*fn_Login)(CK_SESSION_HANDLE, CK_USER_TYPE, CK_BYTE *, CK_ULONG);
typedef CK_RV (*fn_Logout)(CK_SESSION_HANDLE);
typedef CK_RV (*fn_CreateObject)(CK_SESSION_HANDLE, CK_ATTRIBUTE *, CK_ULONG, CK_OBJECT_HANDLE *);
typedef CK_RV (*fn_DestroyObject)(CK_SESSION_HANDLE, CK_OBJECT_HANDLE);
typedef CK_RV (*fn_GetAttributeValue)(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE *, CK_ULONG);
typedef CK_RV (*fn_FindObjectsInit)(CK_SESSION_HANDLE, CK_ATTRIBUTE *, CK_ULONG);
typedef CK_RV (*fn_FindObjects)(CK_SESSION_HANDLE, CK_OBJECT_HANDLE *, CK_ULONG, CK_ULONG *);
typedef CK_RV (*fn_FindObjectsFinal)(CK_SESSION_HANDLE);
typedef CK_RV (*fn_SignInit)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_OBJECT_HANDLE);
typedef CK_RV (*fn_Sign)(CK_SESSION_HANDLE, CK_BYTE *, CK_ULONG, CK_BYTE *, CK_ULONG *);
typedef CK_RV (*fn_GenerateKey)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_ATTRIBUTE *, CK_ULONG, CK_OBJECT_HANDLE *);
typedef CK_RV (*fn_GenerateKeyPair)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_ATTRIBUTE *, CK_ULONG, CK_ATTRIBUTE *,
                                    CK_ULONG, CK_OBJECT_HANDLE *, CK_OBJECT_HANDLE *);
typedef CK_RV (*fn_WrapKey)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, CK_BYTE *,
                            CK_ULONG *);
typedef CK_RV (*fn_UnwrapKey)(CK_SESSION_HANDLE, CK_MECHANISM *, CK_OBJECT_HANDLE, CK_BYTE *, CK_ULONG,
                              CK_ATTRIBUTE *, CK_ULONG, CK_OBJECT_HANDLE *);

typedef struct CK_FUNCTION_LIST CK_FUNCTION_LIST;
typedef CK_RV (*fn_GetFunctionList)(CK_FUNCTION_LIST **);

/* PKCS#11 v2.40 order.  Entries this shim never wraps are untyped pointers: only copied. */
struct CK_FUNCTION_LIST {
    CK_VERSION version;
    void *C_Initialize, *C_Finalize, *C_GetInfo;
    fn_GetFunctionList C_GetFunctionList;
    fn_GetSlotList C_GetSlotList;
    void *C_GetSlotInfo;
    fn_GetTokenInfo C_GetTokenInfo;
    void *C_GetMechanismList, *C_GetMechanismInfo, *C_InitToken, *C_InitPIN, *C_SetPIN;
    fn_OpenSession C_OpenSession;
    fn_CloseSession C_CloseSession;
    void *C_CloseAllSessions, *C_GetSessionInfo, *C_GetOperationState, *C_SetOperationState;
    fn_Login C_Login;
    fn_Logout C_Logout;
    fn_CreateObject C_CreateObject;
    void *C_CopyObject;
    fn_DestroyObject C_DestroyObject;
    void *C_GetObjectSize;
    fn_GetAttributeValue C_GetAttributeValue;
    void *C_SetAttributeValue;
    fn_FindObjectsInit C_FindObjectsInit;
    fn_FindObjects C_FindObjects;
    fn_FindObjectsFinal C_FindObjectsFinal;
    void *C_EncryptInit, *C_Encrypt, *C_EncryptUpdate, *C_EncryptFinal;
    void *C_DecryptInit, *C_Decrypt, *C_DecryptUpdate, *C_DecryptFinal;
    void *C_DigestInit, *C_Digest, *C_DigestUpdate, *C_DigestKey, *C_DigestFinal;
    fn_SignInit C_SignInit;
    fn_Sign C_Sign;
    void *C_SignUpdate, *C_SignFinal, *C_SignRecoverInit, *C_SignRecover;
    void *C_VerifyInit, *C_Verify, *C_VerifyUpdate, *C_VerifyFinal, *C_VerifyRecoverInit, *C_VerifyRecover;
    void *C_DigestEncryptUpdate, *C_DecryptDigestUpdate, *C_SignEncryptUpdate, *C_DecryptVerifyUpdate;
    fn_GenerateKey C_GenerateKey;
    fn_GenerateKeyPair C_GenerateKeyPair;
    fn_WrapKey C_WrapKey;
    fn_UnwrapKey C_UnwrapKey;
    void *C_DeriveKey, *C_SeedRandom, *C_GenerateRandom, *C_GetFunctionStatus, *C_CancelFunction;
    void *C_WaitForSlotEvent;
};

/* the functions that can fail on purpose; an index into the counters */
#define FUNCTIONS(X) \
    X(C_GetSlotList) X(C_GetTokenInfo) X(C_OpenSession) X(C_CloseSession) X(C_Login) X(C_Logout) \
    X(C_CreateObject) X(C_DestroyObject) X(C_GetAttributeValue) X(C_FindObjectsInit) X(C_FindObjects) \
    X(C_FindObjectsFinal) X(C_SignInit) X(C_Sign) X(C_GenerateKey) X(C_GenerateKeyPair) X(C_WrapKey) X(C_UnwrapKey)
#define AS_ENUM(name) F_##name,
#define AS_NAME(name) #name,
enum { FUNCTIONS(AS_ENUM) F_COUNT };
static const char *const names[F_COUNT] = { FUNCTIONS(AS_NAME) };

#define MAX_RULES 64
struct rule {
    int fn;
    int delay;       /* 1: sleep delay_ms, else return rv */
    CK_RV rv;
    long delay_ms;
    long left;       /* calls left; -1 for ever */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static CK_FUNCTION_LIST real, shim;
static CK_RV init_rv = CKR_GENERAL_ERROR;
static char control[4096];
static struct rule rules[MAX_RULES];
static int nrules;
static struct stat seen;  /* the rules file as last read (st_ino 0: none) */
static unsigned long calls[F_COUNT], injected[F_COUNT];

static int find_fn(const char *name) {
    for (int i = 0; i < F_COUNT; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

/* (mu held) parse the rules file; a line that does not parse is reported on stderr and skipped */
static void load_rules(FILE *f) {
    char line[512];
    int lineno = 0;
    nrules = 0;
    while (fgets(line, sizeof line, f) && nrules < MAX_RULES) {
        char fn[64], a[64], b[64], c[64];
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        int n = sscanf(line, "%63s %63s %63s %63s", fn, a, b, c);
        if (n <= 0) continue;
        struct rule r = { .fn = find_fn(fn), .left = -1 };
        char *end = NULL;
        if (r.fn < 0 || n < 2) goto bad;
        if (strcmp(a, "delay_ms") == 0) {
            if (n < 3) goto bad;
            r.delay = 1;
            r.delay_ms = strtol(b, &end, 0);
            if (*end || r.delay_ms < 0) goto bad;
            if (n == 4 && strcmp(c, "*") != 0) {
                r.left = strtol(c, &end, 0);
                if (*end || r.left < 0) goto bad;
            }
        } else {
            r.rv = strtoul(a, &end, 0);
            if (*end) goto bad;
            if (n >= 3 && strcmp(b, "*") != 0) {
                r.left = strtol(b, &end, 0);
                if (*end || r.left < 0) goto bad;
            } else if (n < 3) {
                r.left = 1;
            }
        }
        rules[nrules++] = r;
        continue;
    bad:
        fprintf(stderr, "faultp11: %s:%d: cannot parse rule, ignored\n", control, lineno);
    }
}

/* (mu held) re-read the rules file when it changed; no file: no rules */
static void refresh_rules(void) {
    struct stat st;
    if (!control[0] || stat(control, &st) != 0) {
        nrules = 0;
        memset(&seen, 0, sizeof seen);
        return;
    }
    if (st.st_ino == seen.st_ino && st.st_dev == seen.st_dev && st.st_size == seen.st_size &&
        st.st_mtim.tv_sec == seen.st_mtim.tv_sec && st.st_mtim.tv_nsec == seen.st_mtim.tv_nsec)
        return;
    FILE *f = fopen(control, "r");
    if (!f) {
        nrules = 0;
        memset(&seen, 0, sizeof seen);
        return;
    }
    load_rules(f);
    fclose(f);
    seen = st;
}

static void sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* CKR_OK to forward the call, else the return value to inject */
static CK_RV fault(int fn) {
    long delay = 0;
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&mu);
    calls[fn]++;
    refresh_rules();
    for (int i = 0; i < nrules; i++) {
        struct rule *r = &rules[i];
        if (r->fn != fn || r->left == 0) continue;
        if (r->delay) {
            delay += r->delay_ms;
        } else if (rv == CKR_OK) {
            rv = r->rv;
        } else {
            continue;
        }
        if (r->left > 0) r->left--;
    }
    if (rv != CKR_OK) injected[fn]++;
    pthread_mutex_unlock(&mu);
    if (delay) sleep_ms(delay);  /* outside the lock: a slow call must not hold up the others */
    return rv;
}

#define CHECK(name) do { CK_RV injected_rv = fault(F_##name); if (injected_rv != CKR_OK) return injected_rv; } while (0)

static CK_RV w_GetSlotList(CK_BBOOL present, CK_SLOT_ID *list, CK_ULONG *count) {
    CHECK(C_GetSlotList);
    return real.C_GetSlotList(present, list, count);
}
static CK_RV w_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO *info) {
    CHECK(C_GetTokenInfo);
    return real.C_GetTokenInfo(slot, info);
}
static CK_RV w_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, void *app, CK_NOTIFY notify, CK_SESSION_HANDLE *out) {
    CHECK(C_OpenSession);
    return real.C_OpenSession(slot, flags, app, notify, out);
}
static CK_RV w_CloseSession(CK_SESSION_HANDLE h) {
    CHECK(C_CloseSession);
    return real.C_CloseSession(h);
}
static CK_RV w_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_BYTE *pin, CK_ULONG len) {
    CHECK(C_Login);
    return real.C_Login(h, user, pin, len);
}
static CK_RV w_Logout(CK_SESSION_HANDLE h) {
    CHECK(C_Logout);
    return real.C_Logout(h);
}
static CK_RV w_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *out) {
    CHECK(C_CreateObject);
    return real.C_CreateObject(h, t, n, out);
}
static CK_RV w_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o) {
    CHECK(C_DestroyObject);
    return real.C_DestroyObject(h, o);
}
static CK_RV w_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE *t, CK_ULONG n) {
    CHECK(C_GetAttributeValue);
    return real.C_GetAttributeValue(h, o, t, n);
}
static CK_RV w_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE *t, CK_ULONG n) {
    CHECK(C_FindObjectsInit);
    return real.C_FindObjectsInit(h, t, n);
}
static CK_RV w_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *n) {
    CHECK(C_FindObjects);
    return real.C_FindObjects(h, out, max, n);
}
static CK_RV w_FindObjectsFinal(CK_SESSION_HANDLE h) {
    CHECK(C_FindObjectsFinal);
    return real.C_FindObjectsFinal(h);
}
static CK_RV w_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE k) {
    CHECK(C_SignInit);
    return real.C_SignInit(h, m, k);
}
static CK_RV w_Sign(CK_SESSION_HANDLE h, CK_BYTE *data, CK_ULONG len, CK_BYTE *sig, CK_ULONG *siglen) {
    CHECK(C_Sign);
    return real.C_Sign(h, data, len, sig, siglen);
}
static CK_RV w_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *k) {
    CHECK(C_GenerateKey);
    return real.C_GenerateKey(h, m, t, n, k);
}
static CK_RV w_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_ATTRIBUTE *pubt, CK_ULONG npub,
                               CK_ATTRIBUTE *privt, CK_ULONG npriv, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv) {
    CHECK(C_GenerateKeyPair);
    return real.C_GenerateKeyPair(h, m, pubt, npub, privt, npriv, pub, priv);
}
static CK_RV w_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE kek, CK_OBJECT_HANDLE key,
                       CK_BYTE *out, CK_ULONG *len) {
    CHECK(C_WrapKey);
    return real.C_WrapKey(h, m, kek, key, out, len);
}
static CK_RV w_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM *m, CK_OBJECT_HANDLE kek, CK_BYTE *in, CK_ULONG len,
                         CK_ATTRIBUTE *t, CK_ULONG n, CK_OBJECT_HANDLE *out) {
    CHECK(C_UnwrapKey);
    return real.C_UnwrapKey(h, m, kek, in, len, t, n, out);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out);

static void setup(void) {
    const char *path = getenv("FAULTP11_MODULE");
    const char *ctl = getenv("FAULTP11_CONTROL");
    if (ctl) snprintf(control, sizeof control, "%s", ctl);
    if (!path) {
        fprintf(stderr, "faultp11: set FAULTP11_MODULE to the real PKCS#11 module\n");
        return;
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "faultp11: %s\n", dlerror());
        return;
    }
    fn_GetFunctionList get = (fn_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    CK_FUNCTION_LIST *list = NULL;
    if (!get || (init_rv = get(&list)) != CKR_OK || !list) {
        fprintf(stderr, "faultp11: no function list from %s\n", path);
        if (init_rv == CKR_OK) init_rv = CKR_GENERAL_ERROR;
        return;
    }
    real = *list;
    shim = real;
    shim.C_GetFunctionList = C_GetFunctionList;
    shim.C_GetSlotList = w_GetSlotList;
    shim.C_GetTokenInfo = w_GetTokenInfo;
    shim.C_OpenSession = w_OpenSession;
    shim.C_CloseSession = w_CloseSession;
    shim.C_Login = w_Login;
    shim.C_Logout = w_Logout;
    shim.C_CreateObject = w_CreateObject;
    shim.C_DestroyObject = w_DestroyObject;
    shim.C_GetAttributeValue = w_GetAttributeValue;
    shim.C_FindObjectsInit = w_FindObjectsInit;
    shim.C_FindObjects = w_FindObjects;
    shim.C_FindObjectsFinal = w_FindObjectsFinal;
    shim.C_SignInit = w_SignInit;
    shim.C_Sign = w_Sign;
    shim.C_GenerateKey = w_GenerateKey;
    shim.C_GenerateKeyPair = w_GenerateKeyPair;
    shim.C_WrapKey = w_WrapKey;
    shim.C_UnwrapKey = w_UnwrapKey;
}

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST **out) {
    pthread_once(&once, setup);
    if (init_rv != CKR_OK) return init_rv;
    if (!out) return 0x7UL; /* CKR_ARGUMENTS_BAD */
    *out = &shim;
    return CKR_OK;
}

/* for tests (through ctypes): how often a wrapped function was called, and how often it failed on purpose */
__attribute__((visibility("default"))) unsigned long faultp11_calls(const char *name) {
    int fn = find_fn(name);
    unsigned long n;
    if (fn < 0) return (unsigned long)-1;
    pthread_mutex_lock(&mu);
    n = calls[fn];
    pthread_mutex_unlock(&mu);
    return n;
}

__attribute__((visibility("default"))) unsigned long faultp11_injected(const char *name) {
    int fn = find_fn(name);
    unsigned long n;
    if (fn < 0) return (unsigned long)-1;
    pthread_mutex_lock(&mu);
    n = injected[fn];
    pthread_mutex_unlock(&mu);
    return n;
}
