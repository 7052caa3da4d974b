/* The logic of ocigate-credential-provider, the kubelet image credential
 * provider plugin (credentialprovider.kubelet.k8s.io/v1, with the
 * ServiceAccount token of KEP-4412): a CredentialProviderRequest in, a
 * CredentialProviderResponse out, no I/O.
 *
 * The kubelet requests a ServiceAccount token for the Pod being started
 * (audience from the CredentialProviderConfig's tokenAttributes) and hands
 * it to the plugin; the plugin answers it back as the password for the
 * proxy's address, which is exactly what ocigate checks with TokenReview.
 * No pull secret, no long-lived credential: the kubelet caches the answer
 * for cacheDuration, which is kept below the token's remaining life (its
 * JWT exp claim, read without checking the signature: the token is only
 * passed on, ocigate is the one that verifies it). */
#ifndef OCIGATE_K8S_CREDPROV_H
#define OCIGATE_K8S_CREDPROV_H

#include <stdint.h>

#include "util/common.h"

struct evbuffer;

#define K8S_CREDPROV_API_VERSION "credentialprovider.kubelet.k8s.io/v1"
/* The user name of the Basic credentials; ocigate ignores it. */
#define K8S_CREDPROV_USERNAME "ocigate"
/* Requests larger than this are refused (a request is a few KiB). */
#define K8S_CREDPROV_MAX_REQUEST ((size_t)1 << 20)
/* A token longer than this is not a ServiceAccount token. */
#define K8S_CREDPROV_MAX_TOKEN ((size_t)16 << 10)
/* Longest --proxy value. */
#define K8S_CREDPROV_MAX_PROXY 300

/* Defaults of the options, seconds. */
#define K8S_CREDPROV_DEFAULT_MAX_CACHE 3600
#define K8S_CREDPROV_DEFAULT_MARGIN 300
#define K8S_CREDPROV_DEFAULT_NO_EXP_CACHE 300

enum k8s_credprov_cache_key {
	K8S_CREDPROV_KEY_REGISTRY, /* "Registry": one answer per registry */
	K8S_CREDPROV_KEY_IMAGE,    /* "Image": one answer per image */
};

struct k8s_credprov_opts {
	const char *proxy;          /* HOST[:PORT] (k8s_credprov_check_proxy) */
	int64_t max_cache_s;        /* cacheDuration never exceeds this */
	int64_t margin_s;           /* the token must outlive the cache by this */
	int64_t no_exp_cache_s;     /* cacheDuration for a token without exp */
	enum k8s_credprov_cache_key cache_key;
};

/* What k8s_credprov_respond did, for the caller's exit status and message. */
enum k8s_credprov_result {
	K8S_CREDPROV_OK,
	K8S_CREDPROV_OK_EXPIRED, /* answered, cacheDuration 0: exp is already past */
	K8S_CREDPROV_MALFORMED,  /* not a CredentialProviderRequest v1 */
	K8S_CREDPROV_NO_TOKEN,   /* no (or an empty) serviceAccountToken */
};

/* Fills *o with the defaults and proxy. */
void k8s_credprov_opts_init(struct k8s_credprov_opts *o, const char *proxy);

/* Checks a --proxy value: HOST or HOST:PORT, where HOST is a DNS name, an
 * IPv4 address or a bracketed IPv6 address and PORT is 1-65535; no scheme,
 * no path, no user. The kubelet matches it against the image's registry,
 * so it must be exactly how images name the proxy. */
OG_WARN_UNUSED int k8s_credprov_check_proxy(const char *proxy, char *err, size_t err_cap);

/* Parses a duration: a Go-style sequence of NUMBER UNIT ("1h30m", "90s",
 * "0s"; units h, m, s) or a bare number of seconds. At most 10 years. */
OG_WARN_UNUSED int k8s_credprov_parse_duration(const char *s, int64_t *seconds);

/* Appends seconds as Go's time.Duration prints it ("1h0m0s", "4m30s",
 * "0s"): what metav1.Duration reads back. seconds >= 0. */
void k8s_credprov_format_duration(struct evbuffer *out, int64_t seconds);

/* The cacheDuration for a token whose exp claim is exp (-1: none) at time
 * now: min(exp - now - margin, max), never negative; no_exp_cache (capped
 * by max) when there is no exp. */
int64_t k8s_credprov_cache_seconds(const struct k8s_credprov_opts *o, int64_t exp, int64_t now);

/* The exp claim of a JWT (header.payload.signature), read without checking
 * anything else; -1 when token is not a JWT or has no numeric exp >= 0. */
OG_WARN_UNUSED int k8s_credprov_jwt_exp(const char *token, int64_t *exp);

/* Reads a CredentialProviderRequest (req, len bytes) and, on K8S_CREDPROV_OK
 * or K8S_CREDPROV_OK_EXPIRED, appends the CredentialProviderResponse JSON
 * (and a newline) to out. Otherwise out is untouched and err gets a message
 * for a human (never containing the token). now is Unix time, seconds. */
OG_WARN_UNUSED enum k8s_credprov_result k8s_credprov_respond(const struct k8s_credprov_opts *o,
							     const char *req, size_t len,
							     int64_t now, struct evbuffer *out,
							     char *err, size_t err_cap);

#endif
