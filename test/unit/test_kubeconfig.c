/* k8s/kubeconfig: YAML and JSON through libyaml, context selection, field checks, the
 * in-cluster configuration and token files. Fixtures are in
 * test/unit/data/k8s (argv[1]; by default found next to this file). */
#include "k8s/kubeconfig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test/unit/check.h"
#include "util/xalloc.h"

static const char *data_dir;

static const char CA[] = "-----BEGIN CERTIFICATE-----\nMIIC/kind/fake/ca\n-----END CERTIFICATE-----\n";
static const char CRT[] =
	"-----BEGIN CERTIFICATE-----\nMIIC/kind/fake/client\n-----END CERTIFICATE-----\n";
static const char KEY[] =
	"-----BEGIN RSA PRIVATE KEY-----\nMIIE/kind/fake/key\n-----END RSA PRIVATE KEY-----\n";

static char *fixture_path(const char *name)
{
	size_t n = strlen(data_dir) + strlen(name) + 2;
	char *p = x_malloc(n);
	snprintf(p, n, "%s/%s", data_dir, name);
	return p;
}

static char *load(const char *name, size_t *len)
{
	return check_read_file(data_dir, name, len);
}

/* Parses a fixture with its real path (relative names resolve next to it). */
static int parse_fixture(const char *name, const char *context, struct k8s_kubeconfig *kc,
			 char *err, size_t cap)
{
	size_t len;
	char *text = load(name, &len), *path = fixture_path(name);
	int r = k8s_kubeconfig_parse(text, len, path, context, kc, err, cap);
	free(text);
	free(path);
	return r;
}

static void test_kind(void)
{
	struct k8s_kubeconfig kc;
	char err[512] = "";
	char *path = fixture_path("kubeconfig_kind.yaml");

	CHECK_INT(k8s_kubeconfig_load(path, NULL, &kc, err, sizeof(err)), 0);
	CHECK(!kc.in_cluster);
	CHECK_STR(kc.context, "kind-kind");
	CHECK_STR(kc.cluster_name, "kind-kind");
	CHECK_STR(kc.user_name, "kind-kind");
	CHECK(kc.server.https);
	CHECK_STR(kc.server.host, "127.0.0.1");
	CHECK_INT(kc.server.port, 37017);
	CHECK_STR(kc.server.path_prefix, "");
	CHECK_MEM_STR(kc.ca_pem, kc.ca_pem_len, CA);
	CHECK(kc.ca_file == NULL);
	CHECK_MEM_STR(kc.client_cert_pem, kc.client_cert_pem_len, CRT);
	CHECK_MEM_STR(kc.client_key_pem, kc.client_key_pem_len, KEY);
	CHECK(kc.client_cert_file == NULL && kc.client_key_file == NULL);
	CHECK(kc.token == NULL && kc.token_file == NULL && kc.ns == NULL);
	CHECK(!kc.insecure_skip_tls_verify && kc.tls_server_name == NULL);
	CHECK(kc.path && kc.path[0] == '/');
	k8s_kubeconfig_free(&kc);
	CHECK(kc.path == NULL && kc.server.host == NULL);
	k8s_kubeconfig_free(&kc); /* harmless twice */
	free(path);
}

static void test_minikube(void)
{
	struct k8s_kubeconfig kc;
	char err[512] = "", want[1024];
	char *path = fixture_path("kubeconfig_minikube.yaml");

	CHECK_INT(parse_fixture("kubeconfig_minikube.yaml", NULL, &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.server.host, "192.168.49.2");
	CHECK_INT(kc.server.port, 8443);
	snprintf(want, sizeof(want), "%s/ca.crt", data_dir);
	CHECK_STR(kc.ca_file, want);
	snprintf(want, sizeof(want), "%s/profiles/minikube/client.crt", data_dir);
	CHECK_STR(kc.client_cert_file, want);
	CHECK_STR(kc.client_key_file, "/nonexistent/minikube/client.key");
	CHECK_STR(kc.ns, "default");
	CHECK(kc.ca_pem == NULL && kc.client_key_pem == NULL);
	k8s_kubeconfig_free(&kc);

	/* loading checks the files it names */
	CHECK_INT(k8s_kubeconfig_load(path, NULL, &kc, err, sizeof(err)), -1);
	CHECK(strstr(err, "kubeconfig_minikube.yaml: client-key /nonexistent/minikube/client.key: "
			  "No such file or directory") != NULL);
	CHECK(kc.server.host == NULL);
	free(path);

	CHECK_INT(k8s_kubeconfig_load("/nonexistent/kubeconfig", NULL, &kc, err, sizeof(err)), -1);
	CHECK_STR(err, "kubeconfig /nonexistent/kubeconfig: No such file or directory");
}

static void test_handwritten(void)
{
	struct k8s_kubeconfig kc;
	char err[512] = "", want[1024];
	char *tok;

	CHECK_INT(parse_fixture("kubeconfig_token.yaml", NULL, &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.context, "ocigate@prod");
	CHECK(kc.server.https);
	CHECK_STR(kc.server.host, "api.prod.example.com");
	CHECK_INT(kc.server.port, 6443);
	CHECK_STR(kc.server.path_prefix, "/k8s/clusters/c-m-abc12");
	CHECK_STR(kc.ca_file, "/etc/ocigate/prod-ca.pem");
	CHECK_STR(kc.tls_server_name, "kubernetes.default.svc");
	CHECK_STR(kc.token, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvY2lnYXRlIn0.c2lnbmF0dXJl");
	CHECK(kc.token_file == NULL);
	CHECK_STR(kc.ns, "ocigate-system");
	k8s_kubeconfig_free(&kc);

	CHECK_INT(parse_fixture("kubeconfig_token.yaml", "lab", &kc, err, sizeof(err)), 0);
	CHECK(!kc.server.https);
	CHECK_INT(kc.server.port, 8001);
	CHECK(kc.insecure_skip_tls_verify);
	CHECK(kc.user_name == NULL && kc.token == NULL); /* anonymous */
	k8s_kubeconfig_free(&kc);

	CHECK_INT(parse_fixture("kubeconfig_token.yaml", "it's \"lab\"", &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.user_name, "robot");
	CHECK_STR(kc.token, "fallback-token");
	snprintf(want, sizeof(want), "%s/token", data_dir);
	CHECK_STR(kc.token_file, want);
	CHECK_INT(k8s_kubeconfig_read_token(kc.token_file, &tok, err, sizeof(err)), 0);
	CHECK_STR(tok, "file-token-abc.def");
	free(tok);
	k8s_kubeconfig_free(&kc);

	CHECK_INT(parse_fixture("kubeconfig_token.yaml", "nope", &kc, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "kubeconfig %s/kubeconfig_token.yaml: context 'nope' not found",
		 data_dir);
	CHECK_STR(err, want);
}

static void test_json(void)
{
	struct k8s_kubeconfig kc;
	char err[512] = "";

	CHECK_INT(parse_fixture("kubeconfig.json", NULL, &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.context, "json");
	CHECK_STR(kc.server.host, "2001:db8::1");
	CHECK_INT(kc.server.port, 6443);
	CHECK_MEM_STR(kc.ca_pem, kc.ca_pem_len, CA);
	CHECK(!kc.insecure_skip_tls_verify);
	CHECK_STR(kc.token, "json-token-123");
	CHECK_STR(kc.ns, "team-a");
	k8s_kubeconfig_free(&kc);
}

/* Flow collections, as kubectl accepts them. */
static void test_flow(void)
{
	struct k8s_kubeconfig kc;
	char err[512] = "";

	CHECK_INT(parse_fixture("kubeconfig_flow.yaml", NULL, &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.context, "flow ctx");
	CHECK_STR(kc.cluster_name, "c");
	CHECK_STR(kc.user_name, "u");
	CHECK_STR(kc.server.host, "10.1.2.3");
	CHECK_INT(kc.server.port, 6443);
	CHECK_STR(kc.server.path_prefix, "/base");
	CHECK_MEM_STR(kc.ca_pem, kc.ca_pem_len, CA);
	CHECK_STR(kc.token, "flow-token.abc");
	CHECK_MEM_STR(kc.client_cert_pem, kc.client_cert_pem_len, "ABC");
	CHECK_MEM_STR(kc.client_key_pem, kc.client_key_pem_len, "DEF");
	CHECK_STR(kc.ns, "team-f");
	k8s_kubeconfig_free(&kc);
	CHECK_INT(parse_fixture("kubeconfig_flow.yaml", "other", &kc, err, sizeof(err)), 0);
	CHECK(kc.user_name == NULL && kc.token == NULL && kc.ns == NULL);
	k8s_kubeconfig_free(&kc);

	/* the example, on one line */
	const char *one = "{apiVersion: v1, kind: Config, current-context: x, "
			  "clusters: [{name: c, cluster: {server: 'https://k:8443', "
			  "certificate-authority-data: QUJD}}], "
			  "contexts: [{name: x, context: {cluster: c}}]}";
	CHECK_INT(k8s_kubeconfig_parse(one, strlen(one), "t.yaml", NULL, &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.server.host, "k");
	CHECK_INT(kc.server.port, 8443);
	CHECK_MEM_STR(kc.ca_pem, kc.ca_pem_len, "ABC");
	k8s_kubeconfig_free(&kc);
}

static void check_fixture_bad(int line, const char *name, const char *context, const char *want)
{
	struct k8s_kubeconfig kc;
	char err[512] = "", full[1024];
	int r = parse_fixture(name, context, &kc, err, sizeof(err));

	snprintf(full, sizeof(full), "kubeconfig %s/%s%s", data_dir, name, want);
	if (r != -1 || strcmp(err, full) != 0) {
		fprintf(stderr, "%s:%d: %s: ret %d err \"%s\", expected \"%s\"\n", __FILE__, line,
			name, r, err, full);
		check_failures++;
	}
	CHECK(kc.server.host == NULL && kc.context == NULL && kc.token == NULL);
}

static void test_bad_fixtures(void)
{
	struct k8s_kubeconfig kc;
	char err[512];

	check_fixture_bad(__LINE__, "bad_kubeconfig_exec.yaml", NULL,
			  ": user 'arn:aws:eks:eu-west-1:123456789012:cluster/prod': exec "
			  "(credential plugins) is not supported; use token, tokenFile or a client "
			  "certificate");
	check_fixture_bad(__LINE__, "bad_kubeconfig_auth_provider.yaml", NULL,
			  ": user 'gke': auth-provider is not supported; use token, tokenFile or a "
			  "client certificate");
	check_fixture_bad(__LINE__, "bad_kubeconfig_base64.yaml", NULL,
			  ": user 'admin': client-key-data is not valid base64");
	check_fixture_bad(__LINE__, "bad_kubeconfig_tabs.yaml", NULL,
			  ":5: tabs are not allowed in indentation");
	check_fixture_bad(__LINE__, "bad_kubeconfig_no_current.yaml", NULL,
			  ": current-context is not set and no context was given");
	check_fixture_bad(__LINE__, "bad_kubeconfig_no_current.yaml", "other",
			  ": context 'other' not found");
	check_fixture_bad(__LINE__, "bad_kubeconfig_anchor.yaml", NULL,
			  ":6: anchors, aliases and tags are not supported");
	check_fixture_bad(__LINE__, "bad_kubeconfig_alias.yaml", NULL,
			  ":8: anchors, aliases and tags are not supported");
	check_fixture_bad(__LINE__, "bad_kubeconfig_tag.yaml", NULL,
			  ":10: anchors, aliases and tags are not supported");

	/* the same file is fine once a context is named; it has no user */
	CHECK_INT(parse_fixture("bad_kubeconfig_no_current.yaml", "c", &kc, err, sizeof(err)), 0);
	CHECK(kc.user_name == NULL);
	CHECK_STR(kc.server.host, "127.0.0.1");
	k8s_kubeconfig_free(&kc);
}

/* ---- inline documents ---- */

#define HEAD "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
#define CTX "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"
#define CLUSTER "clusters:\n- name: k\n  cluster:\n    server: https://k.example.com\n"
#define USER "users:\n- name: u\n  user:\n    token: t0k\n"

static void check_text(int line, const char *text, const char *want_err)
{
	struct k8s_kubeconfig kc;
	char err[512] = "";
	int r = k8s_kubeconfig_parse(text, strlen(text), "t.yaml", NULL, &kc, err, sizeof(err));

	if (want_err && (r != -1 || strcmp(err, want_err) != 0)) {
		fprintf(stderr, "%s:%d: ret %d err \"%s\", expected \"%s\"\n", __FILE__, line, r,
			err, want_err);
		check_failures++;
	} else if (!want_err && r != 0) {
		fprintf(stderr, "%s:%d: refused: %s\n", __FILE__, line, err);
		check_failures++;
	}
	if (r == 0)
		k8s_kubeconfig_free(&kc);
}

#define BAD(text, want) check_text(__LINE__, text, "kubeconfig t.yaml" want)
#define GOOD(text) check_text(__LINE__, text, NULL)

static void test_yaml_syntax(void)
{
	GOOD(HEAD CTX CLUSTER USER);
	GOOD("\xef\xbb\xbf" HEAD CTX CLUSTER USER);
	GOOD("---\n" HEAD CTX CLUSTER USER);
	GOOD("apiVersion: v1\r\nkind: Config\r\ncurrent-context: c\r\n" CTX CLUSTER USER);
	GOOD(HEAD "contexts:\n  -   name: c\n      context:\n        cluster: k\n"
		  "        user: u   # trailing\n" CLUSTER USER);
	GOOD(HEAD "contexts:\n-\n  name: c\n  context:\n    cluster: k\n    user: u\n" CLUSTER USER);
	GOOD(HEAD CTX CLUSTER USER "extensions:\n- - nested\n  - seq\n- plain\n- \"q\"\n- []\n-\n");
	/* what the old reader refused and kubectl accepts */
	GOOD(HEAD CTX CLUSTER USER "extensions: [1, {a: b}, [c]]\n");
	GOOD(HEAD CTX CLUSTER USER "preferences: {colors: true}\n");
	GOOD(HEAD CTX CLUSTER USER "x: |\n  line 1\n  line 2\ny: >-\n  folded\n  text\n");
	GOOD(HEAD CTX CLUSTER USER "x: \"two\n  lines\"\n");
	GOOD(HEAD CTX CLUSTER USER "? x\n: y\n");
	GOOD("%YAML 1.1\n---\n" HEAD CTX CLUSTER USER "...\n");

	BAD("", ": the file is empty");
	BAD("# only a comment\n\n   \n", ": the file is empty");
	BAD("- a\n- b\n", ": expected a mapping at the top");
	BAD("hello\n", ": expected a mapping at the top");
	/* Syntax errors are libyaml's own words, with its line. */
	BAD("a: 1\n  b: 2\n", ":2: mapping values are not allowed in this context");
	BAD("a:\n  b: 1\n c: 2\n",
	    ":3: did not find expected key (while parsing a block mapping at line 1)");
	BAD("a:\n  b: 1\n   c: 2\n", ":3: mapping values are not allowed in this context");
	BAD("  a: 1\nb: 2\n", ":2: did not find expected <document start>");
	BAD("a: 1\na: 2\n", ":2: duplicate key 'a'");
	BAD("a: {b: 1, b: 2}\n", ":1: duplicate key 'b'");
	BAD("a: 1\n- x\n", ":2: did not find expected key (while parsing a block mapping at line 1)");
	BAD("a: {}x\n", ":1: did not find expected key (while parsing a block mapping at line 1)");
	BAD("a: \"unterminated\n", ":2: found unexpected end of stream "
	    "(while scanning a quoted scalar at line 1)");
	BAD("a: 'x'y\n", ":1: did not find expected key (while parsing a block mapping at line 1)");
	BAD("a: b: c\n", ":1: mapping values are not allowed in this context");
	BAD("a: b:\n", ":1: mapping values are not allowed in this context");
	/* anchors, aliases and tags stay refused, wherever they are */
	BAD("a: *ref\n", ":1: anchors, aliases and tags are not supported");
	BAD("a: !!str x\n", ":1: anchors, aliases and tags are not supported");
	BAD("&x a: 1\n", ":1: anchors, aliases and tags are not supported");
	BAD("a: &x {b: 1}\nc: *x\n", ":1: anchors, aliases and tags are not supported");
	BAD("a: [1, !custom 2]\n", ":1: anchors, aliases and tags are not supported");
	BAD("a:\n  - !!map {}\n", ":2: anchors, aliases and tags are not supported");
	BAD("a: !<tag:yaml.org,2002:str> x\n", ":1: anchors, aliases and tags are not supported");
	BAD("a:\n  b: &anchor\n    c: 1\n", ":2: anchors, aliases and tags are not supported");
	BAD(": b\n", ":1: did not find expected key (while parsing a block mapping at line 1)");
	BAD("? [a]\n: b\n", ":1: complex or empty mapping keys are not supported");
	BAD("? {a: 1}\n: b\n", ":1: complex or empty mapping keys are not supported");
	BAD("?\n: b\n", ":1: complex or empty mapping keys are not supported");
	BAD("a: @x\n", ":1: found character that cannot start any token "
	    "(while scanning for the next token at line 1)");
	BAD("a: \"\\q\"\n", ":1: found unknown escape character (while parsing a quoted scalar at line 1)");
	BAD("a: \"\\x00\"\n", ":1: a value contains a NUL character");
	BAD("a: \"\\ud800\"\n", ":1: found invalid Unicode character escape code "
	    "(while parsing a quoted scalar at line 1)");
	BAD("a: 1\n---\nb: 2\n", ":2: only one document is supported");
	BAD("--- a: 1\n", ":1: mapping values are not allowed in this context");
	BAD("a: 1\nb: \x01\n", ":2: control characters are not allowed (0x01)");
	BAD("a: \xff\n", ":1: invalid leading UTF-8 octet (0xff)");
	BAD("a:\n  -\tb\n", ":2: tabs are not allowed in indentation");
	BAD("a:\n\t- b\n", ":2: tabs are not allowed in indentation");

	static const char nul[] = "a: 1\nb: x\0y\n";
	struct k8s_kubeconfig kc;
	char err[256];
	CHECK_INT(k8s_kubeconfig_parse(nul, sizeof(nul) - 1, "t.yaml", NULL, &kc, err, sizeof(err)), -1);
	CHECK_STR(err, "kubeconfig t.yaml:2: control characters are not allowed (0x00)");

	/* nesting is bounded: 100 levels of "- " */
	char deep[400];
	size_t n = 0;
	n += (size_t)snprintf(deep, sizeof(deep), "a:\n");
	for (int i = 0; i < 100; i++)
		deep[n++] = '-', deep[n++] = ' ';
	deep[n++] = 'x';
	deep[n++] = '\n';
	deep[n] = '\0';
	BAD(deep, ":2: nested too deeply");
}

static void test_yaml_values(void)
{
	struct k8s_kubeconfig kc;
	char err[512] = "";
	const char *text = HEAD CLUSTER USER
		"contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"
		"    namespace: \"t\\u00e9am\\t\\x41\\\\\\\"\\/\"\n"
		"- name: 'o''k'\n  context:\n    cluster: k\n    namespace: ~\n"
		"- name: \"n\"\n  context:\n    cluster: k\n    namespace: plain # comment\n";

	CHECK_INT(k8s_kubeconfig_parse(text, strlen(text), "t.yaml", NULL, &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.ns, "t\xc3\xa9" "am\tA\\\"/");
	k8s_kubeconfig_free(&kc);
	CHECK_INT(k8s_kubeconfig_parse(text, strlen(text), "t.yaml", "o'k", &kc, err, sizeof(err)), 0);
	CHECK(kc.ns == NULL);
	k8s_kubeconfig_free(&kc);
	CHECK_INT(k8s_kubeconfig_parse(text, strlen(text), "t.yaml", "n", &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.ns, "plain");
	k8s_kubeconfig_free(&kc);

	const char *blocks = HEAD CLUSTER USER
		"contexts:\n- name: c\n  context:\n    cluster: k\n    namespace: |-\n      team-b\n"
		"- name: q\n  context:\n    cluster: k\n    namespace: \"team\n      -q\"\n";
	CHECK_INT(k8s_kubeconfig_parse(blocks, strlen(blocks), "t.yaml", NULL, &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.ns, "team-b");
	k8s_kubeconfig_free(&kc);
	CHECK_INT(k8s_kubeconfig_parse(blocks, strlen(blocks), "t.yaml", "q", &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.ns, "team -q");
	k8s_kubeconfig_free(&kc);
}

static void test_fields(void)
{
	BAD(HEAD CTX USER "clusters:\n- name: k\n  cluster:\n    server: https://k\n"
			  "    insecure-skip-tls-verify: \"true\"\n",
	    ": cluster 'k': insecure-skip-tls-verify must be true or false (line 17)");
	BAD(HEAD CTX USER "clusters:\n- name: k\n  cluster:\n    server: https://k\n"
			  "    insecure-skip-tls-verify: yes\n",
	    ": cluster 'k': insecure-skip-tls-verify must be true or false (line 17)");
	BAD(HEAD CTX USER "clusters:\n- name: k\n  cluster:\n    server: https://k\n"
			  "    insecure-skip-tls-verify: true\n    certificate-authority: ca.pem\n",
	    ": cluster 'k': insecure-skip-tls-verify cannot be combined with a certificate authority");
	BAD(HEAD CTX USER "clusters:\n- name: k\n  cluster:\n    server: https://k\n"
			  "    certificate-authority: ca.pem\n    certificate-authority-data: QUJD\n",
	    ": cluster 'k': certificate-authority and certificate-authority-data are both set");
	BAD(HEAD CTX USER "clusters:\n- name: k\n  cluster:\n    server: https://k\n"
			  "    proxy-url: http://proxy:3128\n",
	    ": cluster 'k': proxy-url is not supported");
	BAD(HEAD CTX USER "clusters:\n- name: k\n  cluster:\n    server: ftp://k\n",
	    ": cluster 'k': server: expected an http:// or https:// URL like https://registry.example.com");
	BAD(HEAD CTX USER "clusters:\n- name: k\n  cluster:\n    insecure-skip-tls-verify: false\n",
	    ": cluster 'k': server is missing");
	BAD(HEAD CTX USER "clusters:\n- name: k\n  cluster:\n    server:\n      url: https://k\n",
	    ": cluster 'k': server must be a string (line 16)");
	BAD(HEAD CTX USER "clusters:\n- name: k\n  cluster: []\n",
	    ": clusters: cluster 'k' must be a mapping (line 15)");
	BAD(HEAD CTX USER "clusters:\n- name: k\n  cluster:\n    server: https://k\n"
			  "- name: k\n  cluster:\n    server: https://k2\n",
	    ": clusters: duplicate name 'k' (line 17)");
	BAD(HEAD CTX USER "clusters:\n- cluster:\n    server: https://k\n",
	    ": clusters: every entry needs a name (line 14)");
	BAD(HEAD CTX USER "clusters: https://k\n", ": clusters must be a list (line 13)");
	BAD(HEAD CTX USER "clusters:\n- name: other\n  cluster:\n    server: https://k\n",
	    ": context 'c': cluster 'k' not found");
	BAD(HEAD CTX CLUSTER, ": context 'c': user 'u' not found");
	BAD(HEAD CLUSTER USER "contexts:\n- name: c\n  context:\n    user: u\n",
	    ": context 'c': cluster is missing");

	BAD(HEAD CTX CLUSTER "users:\n- name: u\n  user:\n    token: has space\n",
	    ": user 'u': token contains characters that cannot be sent in an Authorization header");
	BAD(HEAD CTX CLUSTER "users:\n- name: u\n  user:\n    username: admin\n    password: x\n",
	    ": user 'u': username/password (basic authentication) is not supported");
	BAD(HEAD CTX CLUSTER "users:\n- name: u\n  user:\n    token: t\n    as: admin\n",
	    ": user 'u': as (impersonation) is not supported");
	BAD(HEAD CTX CLUSTER "users:\n- name: u\n  user:\n    client-certificate-data: QUJD\n",
	    ": user 'u': a client certificate is set but client-key or client-key-data is not");
	BAD(HEAD CTX CLUSTER "users:\n- name: u\n  user:\n    client-key: k.pem\n",
	    ": user 'u': a client key is set but client-certificate or client-certificate-data is not");
	BAD(HEAD CTX CLUSTER "users:\n- name: u\n  user:\n    client-certificate: c.pem\n"
			     "    client-certificate-data: QUJD\n    client-key: k.pem\n",
	    ": user 'u': client-certificate and client-certificate-data are both set");
	BAD(HEAD CTX CLUSTER "users:\n- name: u\n  user:\n    client-certificate-data: QUJD\n"
			     "    client-key-data: QUJD\n    client-key: k.pem\n",
	    ": user 'u': client-key and client-key-data are both set");
	BAD("apiVersion: v1\nkind: Pod\n", ": kind must be Config (line 2)");
	BAD("apiVersion: v2\n", ": apiVersion must be v1 (line 1)");

	/* a token together with a client certificate is allowed, as in client-go */
	GOOD(HEAD CTX CLUSTER "users:\n- name: u\n  user:\n    token: t\n"
			      "    client-certificate-data: QUJD\n    client-key-data: QUJD\n");
	/* unknown fields and extensions are ignored */
	GOOD(HEAD CTX CLUSTER USER "preferences:\n  colors: true\nextensions: []\n");

	/* JSON */
	struct k8s_kubeconfig kc;
	char err[512];
	const char *js = "{\"current-context\":\"c\",\"contexts\":[{\"name\":\"c\",\"context\":"
			 "{\"cluster\":\"k\"}}],\"clusters\":[{\"name\":\"k\",\"cluster\":"
			 "{\"server\":\"https://k\",\"insecure-skip-tls-verify\":\"true\"}}]}";
	CHECK_INT(k8s_kubeconfig_parse(js, strlen(js), "t.json", NULL, &kc, err, sizeof(err)), -1);
	CHECK_STR(err, "kubeconfig t.json: cluster 'k': insecure-skip-tls-verify must be true or "
		       "false (line 1)");
	const char *jbad = "\n {\"current-context\": \"c\"";
	CHECK_INT(k8s_kubeconfig_parse(jbad, strlen(jbad), "t.json", NULL, &kc, err, sizeof(err)), -1);
	CHECK_STR(err, "kubeconfig t.json:3: did not find expected ',' or '}' "
		       "(while parsing a flow mapping at line 2)");
	const char *jnul = "{\"current-context\":\"c\\u0000\"}";
	CHECK_INT(k8s_kubeconfig_parse(jnul, strlen(jnul), "t.json", NULL, &kc, err, sizeof(err)), -1);
	CHECK_STR(err, "kubeconfig t.json:1: a value contains a NUL character");
	const char *jarr = "[]";
	CHECK_INT(k8s_kubeconfig_parse(jarr, 2, "t.json", NULL, &kc, err, sizeof(err)), -1);
	CHECK_STR(err, "kubeconfig t.json: expected a mapping at the top");
}

static void test_relative_paths(void)
{
	struct k8s_kubeconfig kc;
	char err[512] = "";
	const char *text = HEAD CTX
		"clusters:\n- name: k\n  cluster:\n    server: https://k\n"
		"    certificate-authority: ../ca.pem\n"
		"users:\n- name: u\n  user:\n    tokenFile: tok\n    client-certificate: /abs/c.pem\n"
		"    client-key: keys/k.pem\n";

	CHECK_INT(k8s_kubeconfig_parse(text, strlen(text), "dir/sub/config", NULL, &kc, err,
				       sizeof(err)), 0);
	CHECK_STR(kc.ca_file, "dir/sub/../ca.pem");
	CHECK_STR(kc.token_file, "dir/sub/tok");
	CHECK_STR(kc.client_cert_file, "/abs/c.pem");
	CHECK_STR(kc.client_key_file, "dir/sub/keys/k.pem");
	k8s_kubeconfig_free(&kc);
	CHECK_INT(k8s_kubeconfig_parse(text, strlen(text), "config", NULL, &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.ca_file, "../ca.pem");
	k8s_kubeconfig_free(&kc);
	CHECK_INT(k8s_kubeconfig_parse(text, strlen(text), "/config", NULL, &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.ca_file, "/../ca.pem");
	k8s_kubeconfig_free(&kc);
}

/* ---- in-cluster and token files ---- */

static void test_in_cluster(const char *dir)
{
	struct k8s_kubeconfig kc;
	char err[512] = "", want[1024];

	check_write_file(dir, "token", "eyJ.sa.token\n", 13);
	check_write_file(dir, "ca.crt", CA, strlen(CA));
	check_write_file(dir, "namespace", "team-a\n", 7);

	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	CHECK_INT(k8s_kubeconfig_in_cluster(dir, &kc, err, sizeof(err)), -1);
	CHECK_STR(err, "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set "
		       "(not running in a Pod?)");

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	CHECK_INT(k8s_kubeconfig_in_cluster(dir, &kc, err, sizeof(err)), 0);
	CHECK(kc.in_cluster);
	CHECK(kc.server.https);
	CHECK_STR(kc.server.host, "10.96.0.1");
	CHECK_INT(kc.server.port, 443);
	CHECK_STR(kc.server.text, "https://10.96.0.1:443");
	snprintf(want, sizeof(want), "%s/token", dir);
	CHECK_STR(kc.token_file, want);
	snprintf(want, sizeof(want), "%s/ca.crt", dir);
	CHECK_STR(kc.ca_file, want);
	CHECK_STR(kc.ns, "team-a");
	CHECK(kc.token == NULL && kc.path == NULL && kc.context == NULL);
	k8s_kubeconfig_free(&kc);

	setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
	check_remove_file(dir, "namespace");
	CHECK_INT(k8s_kubeconfig_in_cluster(dir, &kc, err, sizeof(err)), 0);
	CHECK_STR(kc.server.host, "fd00:10:96::1");
	CHECK_INT(kc.server.port, 6443);
	CHECK(kc.ns == NULL);
	k8s_kubeconfig_free(&kc);

	setenv("KUBERNETES_SERVICE_PORT", "https", 1);
	CHECK_INT(k8s_kubeconfig_in_cluster(dir, &kc, err, sizeof(err)), -1);
	CHECK_STR(err, "in-cluster: KUBERNETES_SERVICE_HOST/PORT give https://[fd00:10:96::1]:https: "
		       "port must be a number from 1 to 65535");
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);

	check_remove_file(dir, "token");
	CHECK_INT(k8s_kubeconfig_in_cluster(dir, &kc, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "in-cluster: %s/token: No such file or directory", dir);
	CHECK_STR(err, want);
	CHECK(kc.server.host == NULL && kc.token_file == NULL);
	check_remove_file(dir, "ca.crt");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_token_file(const char *dir)
{
	char path[1024], err[512] = "", want[1200], *tok = (char *)"unset";
	char *big = x_malloc(K8S_TOKEN_MAX_BYTES + 1);

	snprintf(path, sizeof(path), "%s/tok", dir);
	check_write_file(dir, "tok", " \tabc.DEF-_~+/=\r\n\n", 18);
	CHECK_INT(k8s_kubeconfig_read_token(path, &tok, err, sizeof(err)), 0);
	CHECK_STR(tok, "abc.DEF-_~+/=");
	free(tok);

	static const struct {
		const char *content;
		size_t n;
		const char *why;
	} bad[] = {
		{ "", 0, "empty" },
		{ " \n\n", 3, "empty" },
		{ "a b", 3, "contains characters that cannot be sent in an Authorization header" },
		{ "a\r\nb", 4, "contains characters that cannot be sent in an Authorization header" },
		{ "a\0b", 3, "contains characters that cannot be sent in an Authorization header" },
		{ "t\xc3\xa9", 3, "contains characters that cannot be sent in an Authorization header" },
	};
	for (size_t i = 0; i < OG_ARRAY_LEN(bad); i++) {
		check_write_file(dir, "tok", bad[i].content, bad[i].n);
		CHECK_INT(k8s_kubeconfig_read_token(path, &tok, err, sizeof(err)), -1);
		snprintf(want, sizeof(want), "token file %s: %s", path, bad[i].why);
		CHECK_STR(err, want);
		CHECK(tok == NULL);
	}
	memset(big, 'a', K8S_TOKEN_MAX_BYTES + 1);
	check_write_file(dir, "tok", big, K8S_TOKEN_MAX_BYTES);
	CHECK_INT(k8s_kubeconfig_read_token(path, &tok, err, sizeof(err)), 0);
	CHECK_INT(strlen(tok), K8S_TOKEN_MAX_BYTES);
	free(tok);
	check_write_file(dir, "tok", big, K8S_TOKEN_MAX_BYTES + 1);
	CHECK_INT(k8s_kubeconfig_read_token(path, &tok, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "token file %s: file too large", path);
	CHECK_STR(err, want);
	check_remove_file(dir, "tok");
	CHECK_INT(k8s_kubeconfig_read_token(path, &tok, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "token file %s: No such file or directory", path);
	CHECK_STR(err, want);
	free(big);
}

int main(int argc, char **argv)
{
	static char dir[1024];
	char tmp[] = "/tmp/test_kubeconfig.XXXXXX";

	if (argc > 1) {
		data_dir = argv[1];
	} else {
		const char *slash = strrchr(__FILE__, '/');
		snprintf(dir, sizeof(dir), "%.*sdata/k8s", slash ? (int)(slash - __FILE__ + 1) : 0,
			 __FILE__);
		data_dir = dir;
	}
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 2;
	}
	test_kind();
	test_minikube();
	test_handwritten();
	test_json();
	test_bad_fixtures();
	test_yaml_syntax();
	test_yaml_values();
	test_flow();
	test_fields();
	test_relative_paths();
	test_in_cluster(tmp);
	test_token_file(tmp);
	rmdir(tmp);
	CHECK_DONE();
}
