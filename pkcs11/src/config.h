/*
 * /etc/vhsm/pkcs11.conf (or the file VHSM_PKCS11_CONF names, honoured only
 * outside setuid/setgid programs): one line per slot, in slot order.
 *
 *   # comment
 *   slot alice
 *   slot bob hide-types=ed25519,rsa-2048 only-ids=ssh-key,tls-key
 *
 * Strict: an unknown word, a bad user name, a duplicate user, more than
 * VP_MAX_SLOTS slots or a line over 1023 bytes make the whole file invalid.
 * Format and options: docs/pkcs11.md.
 */
#ifndef VP_CONFIG_H
#define VP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define VP_MAX_SLOTS 16
#define VP_MAX_ONLY_IDS 16
#define VP_USER_MAX 64
#define VP_KEY_ID_MAX 64
#define VP_DEFAULT_CONF "/etc/vhsm/pkcs11.conf"

struct vp_slot_config {
	char user[VP_USER_MAX + 1];
	uint32_t hidden_types; /* bit n set: hide keys of VHSM KeyType n */
	int n_only_ids;        /* > 0: show only these key ids */
	char only_ids[VP_MAX_ONLY_IDS][VP_KEY_ID_MAX + 1];
};

struct vp_config {
	int nslots;
	struct vp_slot_config slots[VP_MAX_SLOTS];
};

/* Parses text; 0, or -1 with a one-line reason in err. */
int vp_config_parse(const char *text, size_t len, struct vp_config *out, char *err, size_t errlen);

/* Reads the configured file. A missing file is no slots; 0, or -1 with err. */
int vp_config_load(struct vp_config *out, char *err, size_t errlen);

int vp_valid_user(const char *s, size_t len);
int vp_valid_key_id(const char *s, size_t len);

#endif
