/*
 * Module entry: the function lists and interfaces, C_Initialize,
 * C_Finalize, C_GetInfo, and what happens across fork().
 *
 * Fork: VHSM sessions are bound to the process the kernel stamped, so a
 * child cannot use its parent's logins, sessions or sockets. An atfork
 * handler only counts forks (nothing else is safe there); every entry point
 * compares the count with the one C_Initialize saw and answers
 * CKR_CRYPTOKI_NOT_INITIALIZED on a mismatch, and C_Initialize in the child
 * starts afresh. The parent's state is released in the child if it was
 * consistent at fork time (its lock was free), else abandoned unused.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vp.h"

#define VP_EXPORT __attribute__((visibility("default")))

struct vp_state *vp;
static _Atomic unsigned long forks;
static unsigned long forks_at_init;
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long forks_at_init_lock;

static void count_fork(void)
{
	atomic_fetch_add(&forks, 1);
}

__attribute__((constructor)) static void vp_module_load(void)
{
	pthread_atfork(NULL, NULL, count_fork);
}

int64_t vp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

CK_RV vp_check(void)
{
	if (!vp || forks_at_init != atomic_load(&forks))
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	return CKR_OK;
}

/* The init lock itself may have been held by a parent thread at fork. */
static void init_lock_take(void)
{
	unsigned long now = atomic_load(&forks);
	if (now != forks_at_init_lock) {
		pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
		memcpy(&init_lock, &fresh, sizeof(fresh));
		forks_at_init_lock = now;
	}
	pthread_mutex_lock(&init_lock);
}

static void state_free(struct vp_state *s)
{
	vp = s;
	vp_sessions_free();
	vp_slots_free();
	for (int i = 0; i < VP_MAX_SLOTS; i++)
		pthread_mutex_destroy(&s->slots[i].login_lock);
	pthread_mutex_destroy(&s->lock);
	explicit_bzero(s, sizeof(*s));
	free(s);
	vp = NULL;
}

/* In a child after fork: drop what the parent left without using it. */
static void forget_parent(void)
{
	struct vp_state *old = vp;
	vp = NULL;
	vp_rpc_pool_abandon();
	if (!old)
		return;
	if (pthread_mutex_trylock(&old->lock) != 0)
		return; /* a parent thread was inside: its data may be half-changed */
	pthread_mutex_unlock(&old->lock);
	/* Consistent: free it, but never log the parent's sessions out. */
	for (int i = 0; i < VP_MAX_SLOTS; i++) {
		explicit_bzero(old->slots[i].vsession, sizeof(old->slots[i].vsession));
		old->slots[i].logged_in = false;
	}
	state_free(old);
}

CK_RV C_Initialize(CK_VOID_PTR pInitArgs)
{
	if (pInitArgs) {
		CK_C_INITIALIZE_ARGS *args = pInitArgs;
		int callbacks = !!args->CreateMutex + !!args->DestroyMutex + !!args->LockMutex + !!args->UnlockMutex;
		if (args->pReserved || (callbacks != 0 && callbacks != 4))
			return CKR_ARGUMENTS_BAD;
		/* Only the application's callbacks offered: we lock with pthreads only. */
		if (callbacks == 4 && !(args->flags & CKF_OS_LOCKING_OK))
			return CKR_CANT_LOCK;
	}
	init_lock_take();
	CK_RV rv = CKR_OK;
	if (vp && forks_at_init == atomic_load(&forks)) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
		goto out;
	}
	if (vp)
		forget_parent();

	struct vp_state *s = calloc(1, sizeof(*s));
	if (!s) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	char err[256];
	if (vp_config_load(&s->config, err, sizeof(err))) {
		/* An administrator's mistake: say where, once, and refuse to load. */
		fprintf(stderr, "vhsm-pkcs11: configuration: %s\n", err);
		free(s);
		rv = CKR_GENERAL_ERROR;
		goto out;
	}
	pthread_mutex_init(&s->lock, NULL);
	for (int i = 0; i < VP_MAX_SLOTS; i++) {
		pthread_mutex_init(&s->slots[i].login_lock, NULL);
		if (i < s->config.nslots)
			s->slots[i].cfg = s->config.slots[i];
	}
	s->next_session = 1;
	s->next_object = 1;
	forks_at_init = atomic_load(&forks);
	vp = s;
out:
	pthread_mutex_unlock(&init_lock);
	return rv;
}

CK_RV C_Finalize(CK_VOID_PTR pReserved)
{
	if (pReserved)
		return CKR_ARGUMENTS_BAD;
	init_lock_take();
	CK_RV rv = vp_check();
	if (rv == CKR_OK) {
		for (int i = 0; i < vp->config.nslots; i++)
			vp_slot_logout((CK_SLOT_ID)i);
		state_free(vp);
		vp_rpc_pool_drain();
	}
	pthread_mutex_unlock(&init_lock);
	return rv;
}

void vp_pad(CK_UTF8CHAR *dst, size_t size, const char *src)
{
	memset(dst, ' ', size);
	size_t n = strlen(src);
	memcpy(dst, src, n < size ? n : size);
}

CK_RV vp_return_list(const CK_ULONG *items, CK_ULONG n, CK_ULONG *out, CK_ULONG_PTR count)
{
	if (!out) {
		*count = n;
		return CKR_OK;
	}
	if (*count < n) {
		*count = n;
		return CKR_BUFFER_TOO_SMALL;
	}
	memcpy(out, items, n * sizeof(*items));
	*count = n;
	return CKR_OK;
}

CK_RV C_GetInfo(CK_INFO_PTR pInfo)
{
	CK_RV rv = vp_check();
	if (rv != CKR_OK)
		return rv;
	if (!pInfo)
		return CKR_ARGUMENTS_BAD;
	memset(pInfo, 0, sizeof(*pInfo));
	pInfo->cryptokiVersion.major = 2;
	pInfo->cryptokiVersion.minor = 40;
	vp_pad(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "VHSM");
	vp_pad(pInfo->libraryDescription, sizeof(pInfo->libraryDescription), "VHSM PKCS#11 module");
	pInfo->libraryVersion.major = 0;
	pInfo->libraryVersion.minor = 1;
	return CKR_OK;
}

#include "functions.h"

#define F(name) .name = name,
static CK_FUNCTION_LIST list_2_40 = {
	.version = { 2, 40 },
	VP_FUNCTIONS_2_40(F)
};

static struct vp_function_list_3_0 list_3_0 = {
	.v2 = { .version = { 3, 0 }, VP_FUNCTIONS_2_40(F) },
	VP_FUNCTIONS_3_0(F)
};
#undef F

static CK_INTERFACE interfaces[] = {
	{ (CK_UTF8CHAR *)"PKCS 11", &list_3_0, 0 },
	{ (CK_UTF8CHAR *)"PKCS 11", &list_2_40, 0 },
};
#define N_INTERFACES (sizeof(interfaces) / sizeof(interfaces[0]))

VP_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
	if (!ppFunctionList)
		return CKR_ARGUMENTS_BAD;
	*ppFunctionList = &list_2_40;
	return CKR_OK;
}

VP_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount)
{
	if (!pulCount)
		return CKR_ARGUMENTS_BAD;
	if (!pInterfacesList) {
		*pulCount = N_INTERFACES;
		return CKR_OK;
	}
	if (*pulCount < N_INTERFACES) {
		*pulCount = N_INTERFACES;
		return CKR_BUFFER_TOO_SMALL;
	}
	memcpy(pInterfacesList, interfaces, sizeof(interfaces));
	*pulCount = N_INTERFACES;
	return CKR_OK;
}

VP_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
			       CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags)
{
	if (!ppInterface)
		return CKR_ARGUMENTS_BAD;
	for (size_t i = 0; i < N_INTERFACES; i++) {
		const CK_VERSION *v = &((CK_FUNCTION_LIST *)interfaces[i].pFunctionList)->version;
		if (pInterfaceName && strcmp((const char *)pInterfaceName, (const char *)interfaces[i].pInterfaceName) != 0)
			continue;
		if (pVersion && (pVersion->major != v->major || pVersion->minor != v->minor))
			continue;
		if ((interfaces[i].flags & flags) != flags)
			continue;
		*ppInterface = &interfaces[i];
		return CKR_OK;
	}
	return CKR_FUNCTION_FAILED;
}
