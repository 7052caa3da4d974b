/* log_quote: foreign text (user names from TokenReview, realms, paths)
 * can never add a key=value field or a line to the log. */
#include <string.h>

#include "test/unit/check.h"
#include "util/log.h"

static void quoted(const char *in, const char *want)
{
	char buf[128];

	log_quote(buf, sizeof(buf), in, strlen(in));
	if (strcmp(buf, want) != 0) {
		fprintf(stderr, "log_quote(%s) = %s, expected %s\n", in, buf, want);
		check_failures++;
	}
}

int main(void)
{
	char small[12];

	quoted("alice", "alice");
	quoted("system:serviceaccount:ns:default", "system:serviceaccount:ns:default");
	quoted("", "\"\"");
	quoted("a b", "\"a b\"");
	quoted("m\" status=200 forged=\"1", "\"m\\\" status=200 forged=\\\"1\"");
	quoted("x\nts=now level=error event=forged", "\"x\\x0a" "ts=now level=error event=forged\"");
	quoted("cr\rtab\tesc\x1b", "\"cr\\x0dtab\\x09esc\\x1b\"");
	quoted("back\\slash", "\"back\\\\slash\"");
	quoted("k=v", "\"k=v\"");
	/* cut to the buffer, still closed by a quote */
	log_quote(small, sizeof(small), "a\"b\"c\"d\"e\"f", 11);
	CHECK(small[0] == '"' && small[strlen(small) - 1] == '"');
	CHECK(strchr(small, '\n') == NULL);
	CHECK_DONE();
}
