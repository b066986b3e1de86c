/*
 * PKCS#11 driver for `npm run bench`: plain PKCS#11 calls in C, so the
 * numbers are the module's own cost with no binding in between (a JavaScript
 * binding would add its own overhead and flatter VHSM by comparison). Any
 * module: SoftHSM2 in-process, libvhsm-pkcs11.so, p11-kit-client.so.
 *
 *   softhsm-bench LIB TOKEN_LABEL PIN
 *     (a benchmark token's PIN; a production caller would not pass one in argv)
 *     reads commands on stdin, one JSON line per answer on stdout:
 *       setup                       finds or creates the benchmark keys (token objects)
 *       run OP CLIENTS WARM_MS MS   CLIENTS threads, each with its own session,
 *                                   each calling OP in a closed loop; counts after WARM_MS
 *       quit
 *     OP: p256 | p256sha256 | ed25519 | rsa2048 | rsa2048v15 | hmac1k | aesgcm1k | login
 *     (p256: CKM_ECDSA over a digest; p256sha256: CKM_ECDSA_SHA256 over the
 *     message, same key; rsa2048: PSS SHA-256; rsa2048v15: PKCS#1 v1.5 SHA-256, same key)
 *     login runs CLIENTS processes (PKCS#11 login state belongs to the
 *     application, so threads of one process cannot log in concurrently):
 *     each re-execs this program as `login-worker` and loops C_Login/C_Logout.
 *
 * Built by scripts/bench.mjs with: cc -O2 -pthread -I/usr/include/p11-kit-1 ... -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR p11;
static CK_SLOT_ID slot;
static const char *pin;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what, CK_RV rv) {
  printf("{\"error\":\"%s failed: 0x%lx\"}\n", what, (unsigned long)rv);
  fflush(stdout);
  exit(1);
}

#define CHECK(call)                      \
  do {                                   \
    CK_RV rv_ = (call);                  \
    if (rv_ != CKR_OK) die(#call, rv_);  \
  } while (0)

static void load(const char *lib) {
  void *handle = dlopen(lib, RTLD_NOW);
  if (!handle) {
    printf("{\"error\":\"dlopen %s: %s\"}\n", lib, dlerror());
    exit(1);
  }
  CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList");
  if (!get) die("dlsym C_GetFunctionList", 0);
  CHECK(get(&p11));
  CK_C_INITIALIZE_ARGS args;
  memset(&args, 0, sizeof args);
  args.flags = CKF_OS_LOCKING_OK;
  CHECK(p11->C_Initialize(&args));
}

static int try_find_slot(const char *label) {
  CK_SLOT_ID slots[64];
  CK_ULONG n = 64;
  CHECK(p11->C_GetSlotList(CK_TRUE, slots, &n));
  for (CK_ULONG i = 0; i < n; i++) {
    CK_TOKEN_INFO info;
    if (p11->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
    size_t len = strlen(label);
    if (memcmp(info.label, label, len) == 0 && (len == 32 || info.label[len] == ' ')) {
      slot = slots[i];
      return 1;
    }
  }
  return 0;
}

/* SoftHSM reads the token directory at C_Initialize; a process starting while
   another one rewrites the token file (a login does) may not see it: retry. */
static void find_slot(const char *label) {
  for (int attempt = 0; attempt < 50; attempt++) {
    if (try_find_slot(label)) return;
    p11->C_Finalize(NULL);
    usleep(20000);
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    CHECK(p11->C_Initialize(&args));
  }
  printf("{\"error\":\"no token labelled %s\"}\n", label);
  exit(1);
}

static CK_SESSION_HANDLE open_session(void) {
  CK_SESSION_HANDLE h;
  CHECK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h));
  return h;
}

/* ---- keys ---- */

enum { K_P256, K_ED25519, K_RSA, K_HMAC, K_AES, K_COUNT };
/* An op that is not a key of its own: RSA PKCS#1 v1.5 with the RSA key
   (p11-kit 0.24's RPC carries no PSS parameters, so the p11-kit-isolated
   comparison needs a mechanism without any). */
#define OP_RSA_V15 K_COUNT
/* P-256 with CKM_ECDSA_SHA256 over the message (SoftHSM 2.6.1 lacks it; VHSM
   signs it natively, while CKM_ECDSA's digest input takes a slower path). */
#define OP_P256_SHA256 (K_COUNT + 1)
static int op_key(int op) { return op == OP_RSA_V15 ? K_RSA : op == OP_P256_SHA256 ? K_P256 : op; }
static const char *key_labels[K_COUNT] = {"bench-p256", "bench-ed25519", "bench-rsa2048", "bench-hmac", "bench-aes"};
static CK_OBJECT_HANDLE keys[K_COUNT];
static int key_ok[K_COUNT];

static CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE h, const char *label, CK_OBJECT_CLASS cls) {
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof cls},
      {CKA_LABEL, (void *)label, strlen(label)},
  };
  CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
  CK_ULONG n = 0;
  CHECK(p11->C_FindObjectsInit(h, tmpl, 2));
  CHECK(p11->C_FindObjects(h, &obj, 1, &n));
  CHECK(p11->C_FindObjectsFinal(h));
  return n == 1 ? obj : CK_INVALID_HANDLE;
}

static CK_RV gen_pair(CK_SESSION_HANDLE h, const char *label, CK_MECHANISM_TYPE mech, CK_ATTRIBUTE *pub_extra, CK_ULONG n_pub_extra) {
  CK_BBOOL yes = CK_TRUE;
  CK_MECHANISM m = {mech, NULL, 0};
  CK_ATTRIBUTE pub[8] = {
      {CKA_TOKEN, &yes, sizeof yes},
      {CKA_VERIFY, &yes, sizeof yes},
      {CKA_LABEL, (void *)label, strlen(label)},
  };
  CK_ULONG n_pub = 3;
  for (CK_ULONG i = 0; i < n_pub_extra; i++) pub[n_pub++] = pub_extra[i];
  CK_ATTRIBUTE priv[] = {
      {CKA_TOKEN, &yes, sizeof yes},
      {CKA_PRIVATE, &yes, sizeof yes},
      {CKA_SENSITIVE, &yes, sizeof yes},
      {CKA_SIGN, &yes, sizeof yes},
      {CKA_LABEL, (void *)label, strlen(label)},
  };
  CK_OBJECT_HANDLE pubh, privh;
  return p11->C_GenerateKeyPair(h, &m, pub, n_pub, priv, 5, &pubh, &privh);
}

static CK_RV gen_secret(CK_SESSION_HANDLE h, const char *label, CK_MECHANISM_TYPE mech, CK_KEY_TYPE type, CK_ATTRIBUTE_TYPE use) {
  CK_BBOOL yes = CK_TRUE;
  CK_ULONG len = 32;
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  CK_MECHANISM m = {mech, NULL, 0};
  CK_ATTRIBUTE tmpl[] = {
      {CKA_CLASS, &cls, sizeof cls},
      {CKA_KEY_TYPE, &type, sizeof type},
      {CKA_TOKEN, &yes, sizeof yes},
      {CKA_PRIVATE, &yes, sizeof yes},
      {CKA_SENSITIVE, &yes, sizeof yes},
      {use, &yes, sizeof yes},
      {CKA_VALUE_LEN, &len, sizeof len},
      {CKA_LABEL, (void *)label, strlen(label)},
  };
  CK_OBJECT_HANDLE out;
  return p11->C_GenerateKey(h, &m, tmpl, 8, &out);
}

static void setup(void) {
  CK_SESSION_HANDLE h = open_session();
  for (int k = 0; k < K_COUNT; k++) {
    CK_OBJECT_CLASS cls = (k == K_HMAC || k == K_AES) ? CKO_SECRET_KEY : CKO_PRIVATE_KEY;
    keys[k] = find_key(h, key_labels[k], cls);
    if (keys[k] != CK_INVALID_HANDLE) continue;
    CK_RV rv = CKR_OK;
    if (k == K_P256) {
      static CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
      CK_ATTRIBUTE extra[] = {{CKA_EC_PARAMS, p256, sizeof p256}};
      rv = gen_pair(h, key_labels[k], CKM_EC_KEY_PAIR_GEN, extra, 1);
    } else if (k == K_ED25519) {
      static CK_BYTE ed25519[] = {0x06, 0x03, 0x2b, 0x65, 0x70};
      CK_ATTRIBUTE extra[] = {{CKA_EC_PARAMS, ed25519, sizeof ed25519}};
      rv = gen_pair(h, key_labels[k], CKM_EC_EDWARDS_KEY_PAIR_GEN, extra, 1);
    } else if (k == K_RSA) {
      static CK_ULONG bits = 2048;
      static CK_BYTE e[] = {0x01, 0x00, 0x01};
      CK_ATTRIBUTE extra[] = {{CKA_MODULUS_BITS, &bits, sizeof bits}, {CKA_PUBLIC_EXPONENT, e, sizeof e}};
      rv = gen_pair(h, key_labels[k], CKM_RSA_PKCS_KEY_PAIR_GEN, extra, 2);
    } else if (k == K_HMAC) {
      rv = gen_secret(h, key_labels[k], CKM_GENERIC_SECRET_KEY_GEN, CKK_GENERIC_SECRET, CKA_SIGN);
    } else {
      rv = gen_secret(h, key_labels[k], CKM_AES_KEY_GEN, CKK_AES, CKA_ENCRYPT);
    }
    if (rv != CKR_OK) {
      fprintf(stderr, "softhsm-bench: cannot create %s: 0x%lx\n", key_labels[k], (unsigned long)rv);
      continue;
    }
    keys[k] = find_key(h, key_labels[k], cls);
  }
  for (int k = 0; k < K_COUNT; k++) key_ok[k] = keys[k] != CK_INVALID_HANDLE;
  CHECK(p11->C_CloseSession(h));
  printf("{\"ok\":true,\"keys\":{\"p256\":%d,\"ed25519\":%d,\"rsa2048\":%d,\"hmac1k\":%d,\"aesgcm1k\":%d}}\n", key_ok[K_P256], key_ok[K_ED25519],
         key_ok[K_RSA], key_ok[K_HMAC], key_ok[K_AES]);
  fflush(stdout);
}

/* ---- one operation ---- */

typedef struct {
  int op; /* index into keys */
  double warm_end, end;
  long ops;
  CK_RV error;
} worker_t;

static CK_RV one_op(CK_SESSION_HANDLE h, int op, unsigned long counter) {
  static const CK_BYTE data32[32] = {1, 2, 3};
  static CK_BYTE data1k[1024];
  CK_BYTE out[2048];
  CK_ULONG out_len = sizeof out;
  CK_RV rv;
  switch (op) {
    case K_P256: {
      /* Raw ECDSA over a 32-byte SHA-256 digest (SoftHSM 2.6.1 has no CKM_ECDSA_SHA256). */
      CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
      if ((rv = p11->C_SignInit(h, &m, keys[op])) != CKR_OK) return rv;
      return p11->C_Sign(h, (CK_BYTE_PTR)data32, 32, out, &out_len);
    }
    case K_ED25519: {
      CK_MECHANISM m = {CKM_EDDSA, NULL, 0};
      if ((rv = p11->C_SignInit(h, &m, keys[op])) != CKR_OK) return rv;
      return p11->C_Sign(h, (CK_BYTE_PTR)data32, 32, out, &out_len);
    }
    case K_RSA: {
      /* RSASSA-PSS SHA-256, salt 32: VHSM's default RSA signature. */
      CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
      CK_MECHANISM m = {CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof pss};
      if ((rv = p11->C_SignInit(h, &m, keys[op])) != CKR_OK) return rv;
      return p11->C_Sign(h, (CK_BYTE_PTR)data32, 32, out, &out_len);
    }
    case OP_P256_SHA256: {
      CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
      if ((rv = p11->C_SignInit(h, &m, keys[K_P256])) != CKR_OK) return rv;
      return p11->C_Sign(h, (CK_BYTE_PTR)data32, 32, out, &out_len);
    }
    case OP_RSA_V15: {
      CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
      if ((rv = p11->C_SignInit(h, &m, keys[K_RSA])) != CKR_OK) return rv;
      return p11->C_Sign(h, (CK_BYTE_PTR)data32, 32, out, &out_len);
    }
    case K_HMAC: {
      CK_MECHANISM m = {CKM_SHA256_HMAC, NULL, 0};
      if ((rv = p11->C_SignInit(h, &m, keys[op])) != CKR_OK) return rv;
      return p11->C_Sign(h, data1k, sizeof data1k, out, &out_len);
    }
    case K_AES: {
      /* A fresh 96-bit IV per message (a counter: PKCS#11 leaves IVs to the caller). */
      CK_BYTE iv[12] = {0};
      memcpy(iv + 4, &counter, sizeof counter);
      CK_GCM_PARAMS gcm = {iv, sizeof iv, 96, NULL, 0, 128};
      CK_MECHANISM m = {CKM_AES_GCM, &gcm, sizeof gcm};
      if ((rv = p11->C_EncryptInit(h, &m, keys[op])) != CKR_OK) return rv;
      return p11->C_Encrypt(h, data1k, sizeof data1k, out, &out_len);
    }
  }
  return CKR_FUNCTION_NOT_SUPPORTED;
}

static void *worker(void *arg) {
  worker_t *w = arg;
  CK_SESSION_HANDLE h = open_session();
  unsigned long counter = ((unsigned long)(uintptr_t)w) << 20;
  long done = 0, at_warm = -1;
  for (;;) {
    CK_RV rv = one_op(h, w->op, counter++);
    if (rv != CKR_OK) {
      w->error = rv;
      break;
    }
    done++;
    double t = now_ms();
    if (at_warm < 0 && t >= w->warm_end) at_warm = done;
    if (t >= w->end) break;
  }
  w->ops = at_warm < 0 ? 0 : done - at_warm;
  p11->C_CloseSession(h);
  return NULL;
}

static int op_index(const char *name) {
  if (!strcmp(name, "p256")) return K_P256;
  if (!strcmp(name, "ed25519")) return K_ED25519;
  if (!strcmp(name, "rsa2048")) return K_RSA;
  if (!strcmp(name, "hmac1k")) return K_HMAC;
  if (!strcmp(name, "aesgcm1k")) return K_AES;
  if (!strcmp(name, "rsa2048v15")) return OP_RSA_V15;
  if (!strcmp(name, "p256sha256")) return OP_P256_SHA256;
  return -1;
}

static void run_threads(int op, int clients, double warm_ms, double ms) {
  if (!key_ok[op_key(op)]) {
    printf("{\"unsupported\":true}\n");
    fflush(stdout);
    return;
  }
  pthread_t threads[256];
  worker_t workers[256];
  double start = now_ms();
  for (int i = 0; i < clients; i++) {
    workers[i] = (worker_t){op, start + warm_ms, start + warm_ms + ms, 0, CKR_OK};
    pthread_create(&threads[i], NULL, worker, &workers[i]);
  }
  long total = 0;
  CK_RV error = CKR_OK;
  for (int i = 0; i < clients; i++) {
    pthread_join(threads[i], NULL);
    total += workers[i].ops;
    if (workers[i].error != CKR_OK) error = workers[i].error;
  }
  double measured = now_ms() - (start + warm_ms);
  if (error != CKR_OK) printf("{\"error\":\"operation failed: 0x%lx\"}\n", (unsigned long)error);
  else printf("{\"ops\":%ld,\"seconds\":%.4f}\n", total, measured / 1e3);
  fflush(stdout);
}

/* ---- login: one process per client ---- */

static int login_worker(double warm_end, double end) {
  CK_SESSION_HANDLE h = open_session();
  long done = 0, at_warm = -1, failures = 0;
  for (;;) {
    CK_RV rv = p11->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    if (rv == CKR_OK) {
      CHECK(p11->C_Logout(h));
      done++;
    } else if (rv == CKR_GENERAL_ERROR) {
      /* SoftHSM 2.6.1's file store: a login racing another process's login fails; counted apart. */
      failures++;
    } else {
      die("C_Login", rv);
    }
    double t = now_ms();
    if (at_warm < 0 && t >= warm_end) at_warm = done;
    if (t >= end) break;
  }
  printf("%ld %ld\n", at_warm < 0 ? 0 : done - at_warm, failures);
  return 0;
}

static void run_login(const char *self, const char *lib, const char *label, int clients, double warm_ms, double ms) {
  /* CLOCK_MONOTONIC is shared by all processes, so the children get absolute deadlines. */
  double start = now_ms() + 50; /* let every child get through C_Initialize first */
  char warm_end[32], end[32];
  snprintf(warm_end, sizeof warm_end, "%.3f", start + warm_ms);
  snprintf(end, sizeof end, "%.3f", start + warm_ms + ms);
  int fds[256];
  pid_t pids[256];
  for (int i = 0; i < clients; i++) {
    int p[2];
    if (pipe(p) != 0) die("pipe", errno);
    pid_t pid = fork();
    if (pid == 0) {
      dup2(p[1], 1);
      close(p[0]);
      execl(self, self, lib, label, pin, "login-worker", warm_end, end, (char *)NULL);
      _exit(127);
    }
    close(p[1]);
    fds[i] = p[0];
    pids[i] = pid;
  }
  long total = 0, failures = 0;
  int failed = 0;
  for (int i = 0; i < clients; i++) {
    char buf[64] = {0};
    ssize_t n = read(fds[i], buf, sizeof buf - 1);
    close(fds[i]);
    int status = 0;
    waitpid(pids[i], &status, 0);
    long ok = 0, bad = 0;
    if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || sscanf(buf, "%ld %ld", &ok, &bad) != 2) failed = 1;
    total += ok;
    failures += bad;
  }
  if (failed) printf("{\"error\":\"a login worker failed\"}\n");
  else printf("{\"ops\":%ld,\"seconds\":%.4f,\"failedLogins\":%ld}\n", total, ms / 1e3, failures);
  fflush(stdout);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s LIB TOKEN_LABEL PIN [login-worker WARM_END END]\n", argv[0]);
    return 2;
  }
  const char *lib = argv[1], *label = argv[2];
  pin = argv[3];
  load(lib);
  find_slot(label);
  if (argc == 7 && !strcmp(argv[4], "login-worker")) return login_worker(atof(argv[5]), atof(argv[6]));

  /* The benchmark process logs in once: every session of this application is then a user session. */
  CK_SESSION_HANDLE login = open_session();
  CHECK(p11->C_Login(login, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)));

  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    char cmd[32] = {0}, op[32] = {0};
    int clients = 0;
    double warm_ms = 0, ms = 0;
    if (sscanf(line, "%31s", cmd) != 1) continue;
    if (!strcmp(cmd, "quit")) break;
    if (!strcmp(cmd, "setup")) {
      setup();
    } else if (!strcmp(cmd, "run") && sscanf(line, "%*s %31s %d %lf %lf", op, &clients, &warm_ms, &ms) == 4 && clients >= 1 && clients <= 256) {
      if (!strcmp(op, "login")) {
        run_login("/proc/self/exe", lib, label, clients, warm_ms, ms);
      } else if (op_index(op) >= 0) {
        run_threads(op_index(op), clients, warm_ms, ms);
      } else {
        printf("{\"error\":\"unknown op %s\"}\n", op);
        fflush(stdout);
      }
    } else {
      printf("{\"error\":\"bad command\"}\n");
      fflush(stdout);
    }
  }
  p11->C_Logout(login);
  p11->C_CloseSession(login);
  p11->C_Finalize(NULL);
  return 0;
}
