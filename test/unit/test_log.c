/* log_quote: foreign text (user names from TokenReview, realms, paths)
 * can never add a key=value field or a line to the log. log_line: the
 * access log's printf-free writer formats numbers as printf did and keeps
 * every line whole and newline-terminated, however long its values.
 * log_hold: held lines go out in order, whole, at most PIPE_BUF bytes per
 * write, only when flushed (or when the next would not fit). */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* Runs fn with stderr going to a temp file; returns what it wrote. */
static char *captured(void (*fn)(void))
{
	FILE *f = tmpfile();
	int saved = dup(2);
	static char text[8192];
	size_t n;

	fflush(stderr);
	dup2(fileno(f), 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void write_numbers(void)
{
	struct log_line l;

	log_line_begin(&l, LOG_INFO, "access");
	log_line_u64(&l, "zero", 0);
	log_line_u64(&l, "max", UINT64_MAX);
	log_line_tenths(&l, "a", 0.04);
	log_line_tenths(&l, "b", 12.26);
	log_line_tenths(&l, "c", -3.0);
	log_line_tenths(&l, "d", 1999.96);
	log_line_str(&l, "connector", "ns/name");
	log_line_quoted(&l, "path", "/v2/a b", 7, 512);
	log_line_end(&l);
}

static void write_long(void)
{
	static char big[5000];
	struct log_line l;

	memset(big, 'x', sizeof(big) - 1);
	log_line_begin(&l, LOG_INFO, "access");
	log_line_str(&l, "huge", big);
	log_line_u64(&l, "after", 7);
	log_line_end(&l);
	log_event(LOG_WARN, "long", "k=%s", big);
}

static void check_log_line(void)
{
	const char *t = captured(write_numbers);

	CHECK_PREFIX(t, "ts=");
	CHECK(strstr(t, "Z level=info event=access zero=0 max=18446744073709551615 a=0.0 b=12.3 "
			"c=0.0 d=2000.0 connector=ns/name path=\"/v2/a b\"\n") != NULL);
	CHECK(t[strlen(t) - 1] == '\n' && strchr(t, '\n') == t + strlen(t) - 1);
	/* ts=YYYY-MM-DDTHH:MM:SS.mmmZ */
	CHECK(strlen(t) > 28 && t[13] == 'T' && t[22] == '.' && t[26] == 'Z');

	t = captured(write_long);
	const char *second = strchr(t, '\n');
	CHECK(second != NULL);
	CHECK_INT(second - t + 1, 2048);
	CHECK(strstr(t, "after=") == NULL);
	CHECK(strchr(second + 1, '\n') == t + strlen(t) - 1);
	CHECK_INT(strlen(second + 1), 2048);
	CHECK(strstr(second + 1, "level=warn event=long k=xxx") != NULL);
}

static void count_wake(void *arg)
{
	(*(int *)arg)++;
}

/* One message of the SEQPACKET socket standing in for stderr: one write. */
static ssize_t next_write(int fd, char *buf, size_t cap)
{
	ssize_t n = recv(fd, buf, cap - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* The held writes of 40 lines of about 200 bytes: each whole lines, at
 * most PIPE_BUF bytes; returns how many lines, checking their order. */
static int held_batches(int fd, int *writes)
{
	static char buf[PIPE_BUF * 4];
	int lines = 0;

	while (next_write(fd, buf, sizeof(buf)) > 0 && strstr(buf, "event=batch")) {
		++*writes;
		CHECK(strlen(buf) <= PIPE_BUF);
		CHECK(buf[strlen(buf) - 1] == '\n');
		for (char *l = buf; *l; l = strchr(l, '\n') + 1) {
			char want[32];
			snprintf(want, sizeof(want), " n=%d pad=", lines);
			CHECK_PREFIX(l, "ts=");
			CHECK(strstr(l, want) != NULL && strstr(l, want) < strchr(l, '\n'));
			lines++;
		}
	}
	CHECK(strstr(buf, "event=direct k=3\n") != NULL);
	return lines;
}

/* Failures are reported after stderr is back: the socket standing in for
 * it is read only afterwards. */
static void check_log_hold(void)
{
	int sv[2], saved = dup(2), wakes = 0, wakes_first, writes = 0;
	char buf[PIPE_BUF * 2], pad[160];
	bool held_until_flush, one_write, none_after;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	fflush(stderr);
	dup2(sv[0], 2);
	log_hold(count_wake, &wakes);
	log_event(LOG_INFO, "one", "k=1");
	log_event(LOG_WARN, "two", "k=2");
	wakes_first = wakes;
	held_until_flush = next_write(sv[1], buf, sizeof(buf)) < 0 && errno == EAGAIN;
	log_flush();
	one_write = next_write(sv[1], buf, sizeof(buf)) > 0 &&
		    strstr(buf, "event=one k=1\nts=") != NULL && strstr(buf, "event=two k=2\n") != NULL;
	log_flush(); /* nothing held: no write */
	none_after = next_write(sv[1], buf, sizeof(buf)) < 0;

	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	for (int i = 0; i < 40; i++)
		log_event(LOG_INFO, "batch", "n=%d pad=%s", i, pad);
	log_hold(NULL, NULL); /* writes what is held */
	log_event(LOG_INFO, "direct", "k=3");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);

	CHECK_INT(wakes_first, 1);
	CHECK(held_until_flush);
	CHECK(one_write);
	CHECK(none_after);
	CHECK_INT(held_batches(sv[1], &writes), 40);
	CHECK(writes >= 2);
	CHECK_INT(wakes, 1 + writes);
	close(sv[0]);
	close(sv[1]);
}

/* Every byte that needs quotes, at every position of a value longer than
 * the eight bytes log_quote tests at a time; and every byte that does
 * not, which must stay as it is. */
static void check_quote_every_byte(void)
{
	char in[24], buf[128];

	for (int c = 1; c < 256; c++) {
		bool special = c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f;
		for (size_t pos = 0; pos < sizeof(in) - 1; pos++) {
			memset(in, 'a', sizeof(in) - 1);
			in[sizeof(in) - 1] = '\0';
			in[pos] = (char)c;
			log_quote(buf, sizeof(buf), in, sizeof(in) - 1);
			if ((buf[0] == '"') != special) {
				fprintf(stderr, "log_quote: byte 0x%02x at %zu %s quoted\n", c, pos,
					special ? "not" : "wrongly");
				check_failures++;
				return;
			}
		}
	}
}

int main(void)
{
	check_quote_every_byte();
	check_log_line();
	check_log_hold();
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
