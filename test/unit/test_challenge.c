/* WWW-Authenticate parsing (RFC 9110 11.6.1) as registries send it. */
#include <string.h>

#include "proxy/challenge.h"
#include "test/unit/check.h"

static int parse(const char *v, struct challenge *c)
{
	memset(c, 0, sizeof(*c));
	return challenge_parse(og_str_make(v, strlen(v)), c);
}

static void test_distribution(void)
{
	struct challenge c;
	CHECK_INT(parse("Bearer realm=\"https://auth.example.com/token\",service=\"registry.example.com\","
			"scope=\"repository:samalba/my-app:pull,push\"", &c), 0);
	CHECK(c.bearer && !c.basic);
	CHECK(strcmp(c.realm, "https://auth.example.com/token") == 0);
	CHECK(strcmp(c.service, "registry.example.com") == 0);
	CHECK(strcmp(c.scope, "repository:samalba/my-app:pull,push") == 0);
}

static void test_case_and_spaces(void)
{
	struct challenge c;
	CHECK_INT(parse("bEaReR   REALM = \"r\" ,  Service=s,scope=\"a\\\"b\\\\c\"", &c), 0);
	CHECK(c.bearer);
	CHECK(strcmp(c.realm, "r") == 0);
	CHECK(strcmp(c.service, "s") == 0);
	CHECK(strcmp(c.scope, "a\"b\\c") == 0);
}

static void test_several_challenges(void)
{
	struct challenge c;
	CHECK_INT(parse("Basic realm=\"Harbor\", Bearer realm=\"https://h/service/token\",service=\"harbor-registry\"", &c), 0);
	CHECK(c.basic && c.bearer);
	CHECK(strcmp(c.realm, "https://h/service/token") == 0);
	CHECK(strcmp(c.service, "harbor-registry") == 0);

	/* Params of Basic never land in the Bearer slots. */
	CHECK_INT(parse("Bearer realm=\"a\", Basic realm=\"b\", charset=\"UTF-8\"", &c), 0);
	CHECK(strcmp(c.realm, "a") == 0);
	CHECK(c.basic);

	/* A token68 challenge followed by another. */
	CHECK_INT(parse("Negotiate abc123==, Bearer realm=\"x\"", &c), 0);
	CHECK(c.bearer && strcmp(c.realm, "x") == 0);
	CHECK_INT(parse("Newauth realm=\"apps\", type=1, title=\"Login, to \\\"apps\\\"\", Basic realm=\"simple\"", &c), 0);
	CHECK(c.basic && !c.bearer);
}

static void test_fields_merge(void)
{
	struct challenge c;
	memset(&c, 0, sizeof(c));
	CHECK_INT(challenge_parse(OG_STR_LIT("Basic realm=\"x\""), &c), 0);
	CHECK_INT(challenge_parse(OG_STR_LIT("Bearer realm=\"y\",error=\"invalid_token\""), &c), 0);
	CHECK(c.basic && c.bearer);
	CHECK(strcmp(c.realm, "y") == 0);
	CHECK(strcmp(c.error, "invalid_token") == 0);
}

static void test_commas_in_quotes(void)
{
	struct challenge c;
	CHECK_INT(parse("Bearer scope=\"repository:a:pull,push repository:b:pull\",realm=\"r\"", &c), 0);
	CHECK(strcmp(c.scope, "repository:a:pull,push repository:b:pull") == 0);
	CHECK(strcmp(c.realm, "r") == 0);
}

static void test_invalid(void)
{
	struct challenge c;
	CHECK_INT(parse("Bearer realm=\"unterminated", &c), -1);
	CHECK_INT(parse("Bearer realm=\"a\"=\"b\"", &c), -1);
	/* "realm=" alone is a token68 credential, valid syntax that sets nothing. */
	CHECK_INT(parse("Bearer realm=", &c), 0);
	CHECK(c.bearer && c.realm[0] == 0);
	CHECK_INT(parse("=x", &c), -1);
	CHECK_INT(parse("Bearer realm=\"a\x01\"", &c), -1);
	char big[CHALLENGE_VALUE_MAX + 40];
	memset(big, 'a', sizeof(big));
	memcpy(big, "Bearer realm=\"", 14);
	big[sizeof(big) - 2] = '"';
	big[sizeof(big) - 1] = '\0';
	CHECK_INT(parse(big, &c), -1);
	CHECK_INT(parse("", &c), 0);
	CHECK(!c.basic && !c.bearer);
	CHECK_INT(parse("Basic", &c), 0);
	CHECK(c.basic);
}

/* Where the connector's credentials may go: https realms, http only with
 * allow_insecure, never something that is not an absolute URL. */
static void test_realm_policy(void)
{
	char err[200];

	CHECK_INT(challenge_check_realm("https://auth.example.com/token", false, err, sizeof(err)), 0);
	CHECK_INT(challenge_check_realm("https://[::1]:8443/t?x=1", false, err, sizeof(err)), 0);
	CHECK_INT(challenge_check_realm("http://auth.example.com/token", false, err, sizeof(err)), -1);
	CHECK(strstr(err, "plain http") && strstr(err, "allow_insecure"));
	CHECK_INT(challenge_check_realm("http://auth.example.com/token", true, err, sizeof(err)), 0);
	CHECK_INT(challenge_check_realm("/token", true, err, sizeof(err)), -1);
	CHECK(strstr(err, "not an absolute") != NULL);
	CHECK_INT(challenge_check_realm("ftp://auth.example.com/", true, err, sizeof(err)), -1);
	CHECK_INT(challenge_check_realm("https://user:pw@auth.example.com/", true, err, sizeof(err)), -1);
	CHECK_INT(challenge_check_realm("https://auth example/", true, err, sizeof(err)), -1);
	CHECK_INT(challenge_check_realm("", true, err, sizeof(err)), -1);
}

int main(void)
{
	test_realm_policy();
	test_distribution();
	test_case_and_spaces();
	test_several_challenges();
	test_fields_merge();
	test_commas_in_quotes();
	test_invalid();
	CHECK_DONE();
}
