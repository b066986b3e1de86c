#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "vhsm.pb-c.h"

#define LINE_MAX_LEN 1023
#define CONF_MAX_BYTES (64 * 1024)

static const struct {
	const char *name;
	int type;
} type_names[] = {
	{ "ec-p256", VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P256 },
	{ "ed25519", VHSM__V1__KEY_TYPE__KEY_TYPE_ED25519 },
	{ "hmac", VHSM__V1__KEY_TYPE__KEY_TYPE_HMAC },
	{ "ec-p384", VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P384 },
	{ "ec-p521", VHSM__V1__KEY_TYPE__KEY_TYPE_EC_P521 },
	{ "ec-secp256k1", VHSM__V1__KEY_TYPE__KEY_TYPE_EC_SECP256K1 },
	{ "rsa-2048", VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_2048 },
	{ "rsa-3072", VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_3072 },
	{ "rsa-4096", VHSM__V1__KEY_TYPE__KEY_TYPE_RSA_4096 },
	{ "aes-256", VHSM__V1__KEY_TYPE__KEY_TYPE_AES_256 },
	{ "chacha20", VHSM__V1__KEY_TYPE__KEY_TYPE_CHACHA20 },
	{ "x25519", VHSM__V1__KEY_TYPE__KEY_TYPE_X25519 },
	{ "secret", VHSM__V1__KEY_TYPE__KEY_TYPE_SECRET },
};

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* server/rules.ts USERNAME_PATTERN: [A-Za-z0-9_][A-Za-z0-9_.@-]{0,63} */
int vp_valid_user(const char *s, size_t len)
{
	if (len == 0 || len > VP_USER_MAX || !(is_alnum(s[0]) || s[0] == '_'))
		return 0;
	for (size_t i = 1; i < len; i++)
		if (!(is_alnum(s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '@' || s[i] == '-'))
			return 0;
	return 1;
}

/* Key ids: [A-Za-z0-9][A-Za-z0-9._:-]{0,63} */
int vp_valid_key_id(const char *s, size_t len)
{
	if (len == 0 || len > VP_KEY_ID_MAX || !is_alnum(s[0]))
		return 0;
	for (size_t i = 1; i < len; i++)
		if (!(is_alnum(s[i]) || s[i] == '.' || s[i] == '_' || s[i] == ':' || s[i] == '-'))
			return 0;
	return 1;
}

static void fail(char *err, size_t errlen, int line, const char *what)
{
	snprintf(err, errlen, "line %d: %s", line, what);
}

/* Calls each(item, len) for the comma-separated items of value; -1 if one fails. */
static int each_item(const char *value, int (*each)(struct vp_slot_config *, const char *, size_t), struct vp_slot_config *slot)
{
	const char *p = value;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (each(slot, p, len))
			return -1;
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

static int add_hidden_type(struct vp_slot_config *slot, const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (strlen(type_names[i].name) == len && memcmp(type_names[i].name, s, len) == 0) {
			slot->hidden_types |= 1u << type_names[i].type;
			return 0;
		}
	return -1;
}

static int add_only_id(struct vp_slot_config *slot, const char *s, size_t len)
{
	if (!vp_valid_key_id(s, len) || slot->n_only_ids >= VP_MAX_ONLY_IDS)
		return -1;
	memcpy(slot->only_ids[slot->n_only_ids], s, len);
	slot->only_ids[slot->n_only_ids][len] = '\0';
	slot->n_only_ids++;
	return 0;
}

static int parse_line(char *line, int lineno, struct vp_config *out, char *err, size_t errlen)
{
	char *save = NULL;
	char *word = strtok_r(line, " \t", &save);
	if (!word || word[0] == '#')
		return 0;
	if (strcmp(word, "slot") != 0) {
		fail(err, errlen, lineno, "expected 'slot USER [option=value ...]'");
		return -1;
	}
	char *user = strtok_r(NULL, " \t", &save);
	if (!user || !vp_valid_user(user, strlen(user))) {
		fail(err, errlen, lineno, "missing or invalid user name");
		return -1;
	}
	for (int i = 0; i < out->nslots; i++)
		if (strcmp(out->slots[i].user, user) == 0) {
			fail(err, errlen, lineno, "user listed twice");
			return -1;
		}
	if (out->nslots >= VP_MAX_SLOTS) {
		fail(err, errlen, lineno, "too many slots");
		return -1;
	}
	struct vp_slot_config *slot = &out->slots[out->nslots];
	memset(slot, 0, sizeof(*slot));
	strcpy(slot->user, user);
	for (char *opt; (opt = strtok_r(NULL, " \t", &save));) {
		char *eq = strchr(opt, '=');
		if (!eq || eq[1] == '\0') {
			fail(err, errlen, lineno, "options are name=value");
			return -1;
		}
		*eq = '\0';
		int bad;
		if (strcmp(opt, "hide-types") == 0)
			bad = each_item(eq + 1, add_hidden_type, slot);
		else if (strcmp(opt, "only-ids") == 0)
			bad = each_item(eq + 1, add_only_id, slot);
		else {
			fail(err, errlen, lineno, "unknown option");
			return -1;
		}
		if (bad) {
			fail(err, errlen, lineno, "invalid option value");
			return -1;
		}
	}
	out->nslots++;
	return 0;
}

int vp_config_parse(const char *text, size_t len, struct vp_config *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	char line[LINE_MAX_LEN + 1];
	int lineno = 0;
	size_t pos = 0;
	while (pos < len) {
		lineno++;
		size_t end = pos;
		while (end < len && text[end] != '\n')
			end++;
		size_t n = end - pos;
		if (n > LINE_MAX_LEN) {
			fail(err, errlen, lineno, "line too long");
			return -1;
		}
		if (memchr(text + pos, '\0', n)) {
			fail(err, errlen, lineno, "NUL byte");
			return -1;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (n && line[n - 1] == '\r')
			line[n - 1] = '\0';
		if (parse_line(line, lineno, out, err, errlen))
			return -1;
		pos = end + 1;
	}
	return 0;
}

int vp_config_load(struct vp_config *out, char *err, size_t errlen)
{
	/* secure_getenv: a setuid program (su, sudo via PAM) never takes the
	 * file from its caller's environment. */
	const char *path = secure_getenv("VHSM_PKCS11_CONF");
	if (!path || !*path)
		path = VP_DEFAULT_CONF;
	memset(out, 0, sizeof(*out));
	FILE *f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char *text = malloc(CONF_MAX_BYTES + 1);
	if (!text) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	size_t len = fread(text, 1, CONF_MAX_BYTES + 1, f);
	int read_error = ferror(f);
	fclose(f);
	int rc = -1;
	if (read_error)
		snprintf(err, errlen, "%s: read error", path);
	else if (len > CONF_MAX_BYTES)
		snprintf(err, errlen, "%s: larger than %d bytes", path, CONF_MAX_BYTES);
	else if (vp_config_parse(text, len, out, err, errlen) == 0)
		rc = 0;
	free(text);
	return rc;
}
