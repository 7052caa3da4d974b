/* Fuzzes config_parse_ex with file checks off: whatever the bytes, it must
 * not crash, leak or overrun, and its result must be self-consistent. */
#include "util/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_config(const struct config *cfg)
{
	if (cfg->kubernetes.enabled) {
		if (cfg->auth.tokens_file || cfg->n_connectors)
			abort(); /* refused in Kubernetes mode */
	} else if (!cfg->auth.tokens_file || cfg->auth.tokens_file[0] != '/') {
		abort(); /* required, and joined to the absolute base_dir */
	}
	if (!cfg->server.public_address || !*cfg->server.public_address)
		abort();
	if (config_unreloadable_change(cfg, cfg) != NULL)
		abort();
	for (size_t i = 0; i < cfg->n_connectors; i++) {
		const struct config_connector *c = &cfg->connectors[i];
		size_t pn = strlen(c->address.path_prefix);
		if (config_find_connector(cfg, c->ns, c->name) != c)
			abort(); /* duplicates must have been refused */
		if (!c->address.host || !*c->address.host || !c->address.port || !c->address.text)
			abort();
		if (pn && (c->address.path_prefix[0] != '/' || c->address.path_prefix[pn - 1] == '/'))
			abort();
		if (c->password_file && c->password && *c->password)
			abort(); /* mutually exclusive; not read with checks off */
		for (size_t k = 0; k < c->allow.n; k++)
			if (!*c->allow.items[k] || strpbrk(c->allow.items[k], " \t"))
				abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct config_parse_opts opts = {
		.path_for_messages = "fuzz.conf",
		.base_dir = "/nonexistent",
		.check_files = false,
	};
	struct config cfg;
	char err[256];

	memset(err, 'x', sizeof(err));
	if (config_parse_ex((const char *)data, size, &opts, &cfg, err, sizeof(err)) == 0) {
		check_config(&cfg);
		config_free(&cfg);
	} else if (strncmp(err, "fuzz.conf", 9) != 0 || !memchr(err, '\0', sizeof(err))) {
		abort(); /* every failure says where */
	}
	return 0;
}
