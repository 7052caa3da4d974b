/* The connection state machine's transition table. */
#include "proxy/conn.h"
#include "test/unit/check.h"

int main(void)
{
	/* The normal life of a proxied request. */
	CHECK(conn_transition_allowed(CONN_READ_HEAD, CONN_AUTH));
	CHECK(conn_transition_allowed(CONN_AUTH, CONN_UPSTREAM_CONNECT));
	CHECK(conn_transition_allowed(CONN_AUTH, CONN_UPSTREAM_HEAD));
	CHECK(conn_transition_allowed(CONN_UPSTREAM_CONNECT, CONN_UPSTREAM_HEAD));
	CHECK(conn_transition_allowed(CONN_UPSTREAM_HEAD, CONN_STREAM_BODY));
	CHECK(conn_transition_allowed(CONN_STREAM_BODY, CONN_READ_HEAD));
	/* Retry of a stale pooled connection. */
	CHECK(conn_transition_allowed(CONN_UPSTREAM_HEAD, CONN_UPSTREAM_CONNECT));
	/* Local answers keep the connection. */
	CHECK(conn_transition_allowed(CONN_READ_HEAD, CONN_READ_HEAD));
	CHECK(conn_transition_allowed(CONN_AUTH, CONN_READ_HEAD));
	/* Every live state can close. */
	for (int s = CONN_READ_HEAD; s < CONN_CLOSED; s++)
		CHECK(conn_transition_allowed((enum conn_state)s, CONN_CLOSED));
	/* What must never happen. */
	CHECK(!conn_transition_allowed(CONN_READ_HEAD, CONN_STREAM_BODY));
	CHECK(!conn_transition_allowed(CONN_READ_HEAD, CONN_UPSTREAM_HEAD));
	CHECK(!conn_transition_allowed(CONN_STREAM_BODY, CONN_AUTH));
	CHECK(!conn_transition_allowed(CONN_STREAM_BODY, CONN_UPSTREAM_HEAD));
	CHECK(!conn_transition_allowed(CONN_CLOSING, CONN_READ_HEAD));
	for (int s = 0; s < CONN_N_STATES; s++)
		CHECK(!conn_transition_allowed(CONN_CLOSED, (enum conn_state)s));
	CHECK(!conn_transition_allowed(CONN_N_STATES, CONN_CLOSED));
	CHECK(conn_state_name(CONN_STREAM_BODY)[0] == 's');
	CHECK_DONE();
}
