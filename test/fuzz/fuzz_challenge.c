/* WWW-Authenticate values from an untrusted upstream. */
#include <stdint.h>
#include <string.h>

#include "proxy/challenge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_terminated(const char *s, size_t cap)
{
	if (!memchr(s, '\0', cap))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct challenge c;

	memset(&c, 0, sizeof(c));
	/* An error keeps what was parsed before it: check that either way. */
	if (challenge_parse(og_str_make((const char *)data, size), &c) != 0)
		c.error[sizeof(c.error) - 1] = '\0';
	fuzz_check_terminated(c.realm, sizeof(c.realm));
	fuzz_check_terminated(c.service, sizeof(c.service));
	fuzz_check_terminated(c.scope, sizeof(c.scope));
	fuzz_check_terminated(c.error, sizeof(c.error));
	return 0;
}
