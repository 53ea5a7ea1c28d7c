// SPDX-License-Identifier: MIT
// cm_k8s_conf: where the Kubernetes API is: client settings, the pod's
// service account, and kubeconfig files read with libyaml.
#include "cm_k8s.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define KUBECONFIG_MAX (1024 * 1024)
#define KUBECONFIG_FILES 16
#define SMALL_FILE_MAX (64 * 1024)
#define DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

// ---------------------------------------------------------------------
// Settings

static const char *const source_names[] = { "auto", "in-cluster",
	"kubeconfig", NULL };

#define OFF(m) offsetof(struct cm_k8s_settings, m)
#define I(k, m, d, lo, hi, h)                                               \
	{ .key = k, .type = CM_CONF_INT, .off = OFF(m), .def = d, .min = lo,  \
	  .max = hi, .help = h }
#define D(k, m, d, lo, hi, h)                                               \
	{ .key = k, .type = CM_CONF_DURATION, .off = OFF(m), .def = d,        \
	  .min = lo, .max = hi, .help = h }

const struct cm_conf_field cm_k8s_fields[] = {
	{ .key = "source", .type = CM_CONF_ENUM, .off = OFF(source),
	  .def = "auto", .choices = source_names,
	  .help = "auto, in-cluster or kubeconfig" },
	{ .key = "kubeconfig", .type = CM_CONF_STR, .off = OFF(kubeconfig),
	  .def = "", .help = "kubeconfig path(s), ':'-separated; "
	  "\"\" = $KUBECONFIG or ~/.kube/config" },
	{ .key = "context", .type = CM_CONF_STR, .off = OFF(context),
	  .def = "", .help = "kubeconfig context; \"\" = current-context" },
	{ .key = "incluster_dir", .type = CM_CONF_STR, .off = OFF(incluster_dir),
	  .def = DEFAULT_SA_DIR,
	  .help = "service account token, ca.crt and namespace" },
	I("qps", qps, "5", 1, 10000, "API requests per second (token bucket)"),
	I("burst", burst, "10", 1, 10000, "requests allowed at once"),
	D("timeout", timeout_ms, "30s", 100, 600000, "one API request"),
	D("connect_timeout", connect_timeout_ms, "10s", 100, 600000,
	    "TCP and TLS handshake"),
	I("max_tries", max_tries, "4", 1, 20,
	    "attempts per request (429, 5xx, connection errors)"),
	D("backoff", backoff_ms, "250ms", 1, 600000,
	    "first retry delay, doubled per retry, jittered"),
	D("backoff_max", backoff_max_ms, "8s", 1, 600000,
	    "longest retry delay"),
	D("retry_after_max", retry_after_max_ms, "60s", 0, 3600000,
	    "a longer Retry-After ends the retries"),
	{ .key = "max_body", .type = CM_CONF_SIZE, .off = OFF(max_body),
	  .def = "8MiB", .min = 1024, .max = 1024LL * 1024 * 1024,
	  .help = "largest API reply accepted" },
	D("token_recheck", token_recheck_ms, "60s", 1, 3600000,
	    "how often the token file is checked for a new token"),
	{ .key = NULL },
};

void
cm_k8s_settings_default(struct cm_k8s_settings *s)
{
	*s = (struct cm_k8s_settings){
		.source = CM_K8S_SRC_AUTO,
		.kubeconfig = (char *)"",
		.context = (char *)"",
		.incluster_dir = (char *)DEFAULT_SA_DIR,
		.qps = 5,
		.burst = 10,
		.timeout_ms = 30000,
		.connect_timeout_ms = 10000,
		.max_tries = 4,
		.backoff_ms = 250,
		.backoff_max_ms = 8000,
		.retry_after_max_ms = 60000,
		.max_body = 8 * 1024 * 1024,
		.token_recheck_ms = 60000,
	};
}

void
cm_k8s_endpoint_clear(struct cm_k8s_endpoint *e)
{
	if (e == NULL)
		return;
	free(e->server);
	free(e->ns);
	free(e->ca_file);
	free(e->ca_data);
	free(e->tls_server_name);
	free(e->proxy_url);
	if (e->token != NULL)
		explicit_bzero(e->token, strlen(e->token));
	free(e->token);
	free(e->token_file);
	free(e->cert_file);
	free(e->cert_data);
	if (e->key_data != NULL)
		explicit_bzero(e->key_data, e->key_len);
	free(e->key_file);
	free(e->key_data);
	free(e->username);
	if (e->password != NULL)
		explicit_bzero(e->password, strlen(e->password));
	free(e->password);
	free(e->origin);
	memset(e, 0, sizeof(*e));
}

// Reads a small file whole (NUL-terminated). 0 or negative errno.
static int
read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	FILE *f;
	char *buf;
	size_t n;
	int rv = 0;

	f = fopen(path, "re");
	if (f == NULL)
		return -errno;
	buf = malloc(max + 1);
	if (buf == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, max + 1, f);
	if (ferror(f))
		rv = -EIO;
	else if (n > max)
		rv = -EFBIG;
	fclose(f);
	if (rv < 0) {
		free(buf);
		return rv;
	}
	buf[n] = '\0';
	*ret = buf;
	if (ret_len != NULL)
		*ret_len = n;
	return 0;
}

static void
trim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' ||
	    s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

// ---------------------------------------------------------------------
// In-cluster

static bool
host_ok(const char *h)
{
	size_t i;

	if (h[0] == '\0' || strlen(h) > 253)
		return false;
	for (i = 0; h[i] != '\0'; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
		    (h[i] >= '0' && h[i] <= '9') || h[i] == '.' || h[i] == '-' ||
		    h[i] == ':' || h[i] == '%'))
			return false;
	return true;
}

static bool
port_ok(const char *p)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(p, &end, 10);
	return p[0] >= '0' && p[0] <= '9' && *end == '\0' && errno == 0 &&
	    v >= 1 && v <= 65535;
}

int
cm_k8s_endpoint_incluster(struct cm_k8s_endpoint *ret, const char *dir,
    char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *pod_ns = getenv("POD_NAMESPACE");
	char path[PATH_MAX], *ns = NULL;
	struct stat st;
	int rv = -ENOMEM;

	memset(ret, 0, sizeof(*ret));
	if (dir == NULL || dir[0] == '\0')
		dir = DEFAULT_SA_DIR;
	if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0') {
		snprintf(err, errlen, "not in a cluster: KUBERNETES_SERVICE_HOST "
		    "and KUBERNETES_SERVICE_PORT must be set");
		return -ENOENT;
	}
	if (!host_ok(host) || !port_ok(port)) {
		snprintf(err, errlen, "KUBERNETES_SERVICE_HOST/PORT: invalid "
		    "host or port");
		return -EINVAL;
	}
	// An IPv6 literal needs brackets in a URL (net.JoinHostPort).
	if (asprintf(&ret->server, strchr(host, ':') != NULL ?
	    "https://[%s]:%s" : "https://%s:%s", host, port) < 0) {
		ret->server = NULL;
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/token", dir);
	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "not in a cluster: %s: %s", path,
		    strerror(errno));
		rv = -ENOENT;
		goto fail;
	}
	ret->token_file = strdup(path);
	if (ret->token_file == NULL)
		goto fail;
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	if (stat(path, &st) == 0) {
		ret->ca_file = strdup(path);
		if (ret->ca_file == NULL)
			goto fail;
	}
	if (pod_ns != NULL && pod_ns[0] != '\0') {
		ns = strdup(pod_ns);
		if (ns == NULL)
			goto fail;
	} else {
		snprintf(path, sizeof(path), "%s/namespace", dir);
		if (read_file(path, 256, &ns, NULL) == 0)
			trim(ns);
	}
	if (ns != NULL && ns[0] != '\0' &&
	    !cm_k8s_name_valid(CM_K8S_NAME_LABEL, ns)) {
		snprintf(err, errlen, "namespace \"%.64s\" is not a valid "
		    "namespace name", ns);
		rv = -EINVAL;
		goto fail;
	}
	ret->ns = ns != NULL && ns[0] != '\0' ? ns : strdup("default");
	if (ret->ns != ns)
		free(ns);
	ns = NULL;
	ret->origin = strdup("in-cluster");
	if (ret->ns == NULL || ret->origin == NULL)
		goto fail;
	return 0;
fail:
	free(ns);
	if (rv == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	cm_k8s_endpoint_clear(ret);
	return rv;
}

// ---------------------------------------------------------------------
// kubeconfig

struct kfile {
	char *path;
	char *dir;
	yaml_document_t doc;
	bool loaded;
};

struct kc {
	struct kfile f[KUBECONFIG_FILES];
	size_t n;
	char *err;
	size_t errlen;
};

// "file:line: where: why", returns -EINVAL.
static int
kc_err(struct kc *c, size_t fi, const yaml_node_t *n, const char *where,
    const char *why)
{
	if (n != NULL)
		snprintf(c->err, c->errlen, "%s:%zu: %s: %s", c->f[fi].path,
		    n->start_mark.line + 1, where, why);
	else
		snprintf(c->err, c->errlen, "%s: %s: %s", c->f[fi].path,
		    where, why);
	return -EINVAL;
}

static yaml_node_t *
kc_root(struct kc *c, size_t fi)
{
	yaml_node_t *r = yaml_document_get_root_node(&c->f[fi].doc);

	return r != NULL && r->type == YAML_MAPPING_NODE ? r : NULL;
}

static bool
is_null_scalar(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;

	return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	    strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0);
}

// Value node of `key` in mapping `map`, NULL if absent or null. A key
// given twice is an error (-EINVAL) rather than a guess.
static int
kc_get(struct kc *c, size_t fi, yaml_node_t *map, const char *key,
    const char *where, yaml_node_t **ret)
{
	yaml_document_t *d = &c->f[fi].doc;
	yaml_node_pair_t *p;
	yaml_node_t *found = NULL;

	*ret = NULL;
	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return 0;
	for (p = map->data.mapping.pairs.start;
	    p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);
		yaml_node_t *v = yaml_document_get_node(d, p->value);

		if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE ||
		    strcmp((const char *)k->data.scalar.value, key) != 0)
			continue;
		if (found != NULL) {
			char w[160];

			snprintf(w, sizeof(w), "%s.%s", where, key);
			return kc_err(c, fi, k, w, "key given twice");
		}
		found = v;
	}
	if (found != NULL && found->type == YAML_SCALAR_NODE &&
	    is_null_scalar(found))
		found = NULL;
	*ret = found;
	return 0;
}

// String value of `key` (borrowed from the document), NULL if absent.
static int
kc_str(struct kc *c, size_t fi, yaml_node_t *map, const char *key,
    const char *where, const char **ret)
{
	yaml_node_t *v;
	int rv;

	*ret = NULL;
	rv = kc_get(c, fi, map, key, where, &v);
	if (rv < 0 || v == NULL)
		return rv;
	if (v->type != YAML_SCALAR_NODE) {
		char w[160];

		snprintf(w, sizeof(w), "%s.%s", where, key);
		return kc_err(c, fi, v, w, "expected a string");
	}
	*ret = (const char *)v->data.scalar.value;
	return 0;
}

static int
kc_bool(struct kc *c, size_t fi, yaml_node_t *map, const char *key,
    const char *where, bool *ret)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes",
		"Yes", "YES", "on", "On", "ON", NULL };
	static const char *const no[] = { "false", "False", "FALSE", "no",
		"No", "NO", "off", "Off", "OFF", NULL };
	const char *s;
	yaml_node_t *v;
	int rv, i;
	char w[160];

	*ret = false;
	rv = kc_get(c, fi, map, key, where, &v);
	if (rv < 0 || v == NULL)
		return rv;
	snprintf(w, sizeof(w), "%s.%s", where, key);
	if (v->type != YAML_SCALAR_NODE)
		return kc_err(c, fi, v, w, "expected true or false");
	s = (const char *)v->data.scalar.value;
	for (i = 0; yes[i] != NULL; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0)
			return 0;
	}
	return kc_err(c, fi, v, w, "expected true or false");
}

// Finds the entry named `name` in the list `list` ("clusters", "users",
// "contexts") of the first file defining it, and returns its inner map
// (`inner`: "cluster", "user", "context"), file index and a "where".
static int
kc_find(struct kc *c, const char *list, const char *inner, const char *name,
    yaml_node_t **ret, size_t *ret_fi, char *where, size_t wlen)
{
	size_t fi;
	int rv;

	for (fi = 0; fi < c->n; fi++) {
		yaml_document_t *d = &c->f[fi].doc;
		yaml_node_t *seq;
		yaml_node_item_t *it;
		size_t idx = 0;

		rv = kc_get(c, fi, kc_root(c, fi), list, "(top)", &seq);
		if (rv < 0)
			return rv;
		if (seq == NULL)
			continue;
		if (seq->type != YAML_SEQUENCE_NODE)
			return kc_err(c, fi, seq, list, "expected a list");
		for (it = seq->data.sequence.items.start;
		    it < seq->data.sequence.items.top; it++, idx++) {
			yaml_node_t *e = yaml_document_get_node(d, *it);
			const char *n;
			char w[96];

			snprintf(w, sizeof(w), "%s[%zu]", list, idx);
			if (e == NULL || e->type != YAML_MAPPING_NODE)
				return kc_err(c, fi, e, w, "expected a map");
			rv = kc_str(c, fi, e, "name", w, &n);
			if (rv < 0)
				return rv;
			if (n == NULL || strcmp(n, name) != 0)
				continue;
			snprintf(where, wlen, "%s[%zu].%s", list, idx, inner);
			rv = kc_get(c, fi, e, inner, w, ret);
			if (rv < 0)
				return rv;
			if (*ret != NULL && (*ret)->type != YAML_MAPPING_NODE)
				return kc_err(c, fi, *ret, where,
				    "expected a map");
			if (*ret == NULL)
				return kc_err(c, fi, e, where, "missing");
			*ret_fi = fi;
			return 0;
		}
	}
	*ret = NULL;
	return 0;
}

static int
b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

// Standard base64 with padding; CR and LF are skipped (as Go does).
// Returns 0, -EINVAL or -ENOMEM; the result is NUL-terminated.
static int
b64_decode(const char *s, char **ret, size_t *ret_len)
{
	size_t n = strlen(s), o = 0, i, q = 0, pad = 0;
	unsigned int acc = 0;
	char *out = malloc(n / 4 * 3 + 4);

	if (out == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		int v;

		if (s[i] == '\r' || s[i] == '\n')
			continue;
		if (s[i] == '=') {
			pad++;
			continue;
		}
		v = b64_value(s[i]);
		if (v < 0 || pad > 0)
			goto bad;
		acc = acc << 6 | (unsigned int)v;
		if (++q == 4) {
			out[o++] = (char)(acc >> 16);
			out[o++] = (char)(acc >> 8);
			out[o++] = (char)acc;
			acc = 0;
			q = 0;
		}
	}
	if ((q == 0 && pad != 0) || (q == 1) || (q == 2 && pad != 2) ||
	    (q == 3 && pad != 1))
		goto bad;
	if (q == 2) {
		out[o++] = (char)(acc >> 4);
	} else if (q == 3) {
		out[o++] = (char)(acc >> 10);
		out[o++] = (char)(acc >> 2);
	}
	if (o == 0)
		goto bad;
	out[o] = '\0';
	*ret = out;
	*ret_len = o;
	return 0;
bad:
	free(out);
	return -EINVAL;
}

// A file name from file fi, made absolute against that file's directory.
static int
kc_path(struct kc *c, size_t fi, const char *p, char **ret)
{
	if (p[0] == '/' || c->f[fi].dir == NULL)
		*ret = strdup(p);
	else if (asprintf(ret, "%s/%s", c->f[fi].dir, p) < 0)
		*ret = NULL;
	return *ret != NULL ? 0 : -ENOMEM;
}

// Reads `key` (a file name) and `key`-data (base64) of a map.
static int
kc_file_or_data(struct kc *c, size_t fi, yaml_node_t *map, const char *key,
    const char *where, char **ret_file, char **ret_data, size_t *ret_len)
{
	char dkey[64];
	const char *file, *data;
	yaml_node_t *dn = NULL;
	int rv;

	snprintf(dkey, sizeof(dkey), "%s-data", key);
	rv = kc_str(c, fi, map, key, where, &file);
	if (rv == 0)
		rv = kc_str(c, fi, map, dkey, where, &data);
	if (rv < 0)
		return rv;
	if (data != NULL && data[0] != '\0') {
		char w[160];

		(void)kc_get(c, fi, map, dkey, where, &dn);
		snprintf(w, sizeof(w), "%s.%s", where, dkey);
		rv = b64_decode(data, ret_data, ret_len);
		if (rv == -EINVAL)
			return kc_err(c, fi, dn, w, "not valid base64");
		return rv;
	}
	if (file != NULL && file[0] != '\0')
		return kc_path(c, fi, file, ret_file);
	return 0;
}

static int
dup_opt(const char *s, char **ret)
{
	if (s == NULL || s[0] == '\0')
		return 0;
	*ret = strdup(s);
	return *ret != NULL ? 0 : -ENOMEM;
}

static int
kc_cluster(struct kc *c, struct cm_k8s_endpoint *e, const char *name,
    const char *ctx_where)
{
	yaml_node_t *m, *sn;
	char where[96];
	const char *server, *tsn, *proxy;
	size_t fi = 0;
	int rv;

	rv = kc_find(c, "clusters", "cluster", name, &m, &fi, where,
	    sizeof(where));
	if (rv < 0)
		return rv;
	if (m == NULL) {
		snprintf(c->err, c->errlen, "%s: cluster \"%.64s\" of %s is "
		    "not defined", c->f[0].path, name, ctx_where);
		return -EINVAL;
	}
	rv = kc_str(c, fi, m, "server", where, &server);
	if (rv == 0)
		rv = kc_str(c, fi, m, "tls-server-name", where, &tsn);
	if (rv == 0)
		rv = kc_str(c, fi, m, "proxy-url", where, &proxy);
	if (rv == 0)
		rv = kc_bool(c, fi, m, "insecure-skip-tls-verify", where,
		    &e->insecure);
	if (rv < 0)
		return rv;
	(void)kc_get(c, fi, m, "server", where, &sn);
	if (server == NULL || (strncmp(server, "https://", 8) != 0 &&
	    strncmp(server, "http://", 7) != 0))
		return kc_err(c, fi, sn != NULL ? sn : m, where, server == NULL ?
		    "server is missing" :
		    "server must start with https:// or http://");
	rv = dup_opt(server, &e->server);
	if (rv == 0)
		rv = dup_opt(tsn, &e->tls_server_name);
	if (rv == 0)
		rv = dup_opt(proxy, &e->proxy_url);
	if (rv == 0)
		rv = kc_file_or_data(c, fi, m, "certificate-authority", where,
		    &e->ca_file, &e->ca_data, &e->ca_len);
	if (rv < 0)
		return rv;
	while (e->server[0] != '\0' &&
	    e->server[strlen(e->server) - 1] == '/')
		e->server[strlen(e->server) - 1] = '\0';
	if (e->insecure && (e->ca_file != NULL || e->ca_data != NULL)) {
		yaml_node_t *in = NULL;

		(void)kc_get(c, fi, m, "insecure-skip-tls-verify", where, &in);
		return kc_err(c, fi, in != NULL ? in : m, where, "specifying a "
		    "root certificates file with the insecure flag is not "
		    "allowed");
	}
	return 0;
}

static int
kc_user(struct kc *c, struct cm_k8s_endpoint *e, const char *name,
    const char *ctx_where)
{
	yaml_node_t *m, *plugin;
	char where[96];
	const char *token, *token_file, *user, *pass;
	size_t fi = 0;
	int rv;

	rv = kc_find(c, "users", "user", name, &m, &fi, where, sizeof(where));
	if (rv < 0)
		return rv;
	if (m == NULL) {
		snprintf(c->err, c->errlen, "%s: user \"%.64s\" of %s is not "
		    "defined", c->f[0].path, name, ctx_where);
		return -EINVAL;
	}
	rv = kc_get(c, fi, m, "exec", where, &plugin);
	if (rv == 0 && plugin == NULL)
		rv = kc_get(c, fi, m, "auth-provider", where, &plugin);
	if (rv < 0)
		return rv;
	if (plugin != NULL)
		return kc_err(c, fi, plugin, where, "exec and auth-provider "
		    "credential plugins are not supported: use a token, "
		    "tokenFile or client certificate");
	rv = kc_str(c, fi, m, "token", where, &token);
	if (rv == 0)
		rv = kc_str(c, fi, m, "tokenFile", where, &token_file);
	if (rv == 0)
		rv = kc_str(c, fi, m, "username", where, &user);
	if (rv == 0)
		rv = kc_str(c, fi, m, "password", where, &pass);
	if (rv < 0)
		return rv;
	if ((token != NULL && token[0]) || (token_file != NULL &&
	    token_file[0])) {
		if ((user != NULL && user[0]) || (pass != NULL && pass[0]))
			return kc_err(c, fi, m, where, "username/password or "
			    "bearer token may be set, but not both");
	}
	rv = dup_opt(token, &e->token);
	if (rv == 0 && token_file != NULL && token_file[0] != '\0')
		rv = kc_path(c, fi, token_file, &e->token_file);
	if (rv == 0)
		rv = dup_opt(user, &e->username);
	if (rv == 0)
		rv = dup_opt(pass, &e->password);
	if (rv == 0)
		rv = kc_file_or_data(c, fi, m, "client-certificate", where,
		    &e->cert_file, &e->cert_data, &e->cert_len);
	if (rv == 0)
		rv = kc_file_or_data(c, fi, m, "client-key", where,
		    &e->key_file, &e->key_data, &e->key_len);
	if (rv < 0)
		return rv;
	if ((e->cert_file || e->cert_data) != (e->key_file || e->key_data))
		return kc_err(c, fi, m, where, "client-certificate and "
		    "client-key must be given together");
	if (e->token != NULL && strpbrk(e->token, "\r\n") != NULL)
		return kc_err(c, fi, m, where, "token holds a line break");
	return 0;
}

// Loads one file into c->f[c->n]. Missing files are -ENOENT.
static int
kc_load(struct kc *c, const char *path)
{
	struct kfile *f = &c->f[c->n];
	yaml_parser_t parser;
	char *text = NULL, *slash, why[96];
	size_t len = 0, line = 0;
	int rv;

	rv = read_file(path, KUBECONFIG_MAX, &text, &len);
	if (rv < 0) {
		snprintf(c->err, c->errlen, "%s: %s", path, rv == -EFBIG ?
		    "larger than 1 MiB" : strerror(-rv));
		return rv;
	}
	f->path = strdup(path);
	if (f->path == NULL) {
		free(text);
		return -ENOMEM;
	}
	slash = strrchr(f->path, '/');
	if (slash != NULL) {
		f->dir = slash == f->path ? strdup("/") :
		    strndup(f->path, (size_t)(slash - f->path));
		if (f->dir == NULL) {
			free(text);
			free(f->path);
			f->path = NULL;
			return -ENOMEM;
		}
	}
	rv = cm_yaml_precheck(text, len, CM_CONF_MAX_DEPTH, &line, why,
	    sizeof(why));
	if (rv == -EINVAL || rv == -E2BIG)
		snprintf(c->err, c->errlen, "%s:%zu: %s", path, line, why);
	if (rv < 0 || !yaml_parser_initialize(&parser)) {
		free(text);
		free(f->path);
		free(f->dir);
		f->path = f->dir = NULL;
		return rv < 0 ? rv : -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &f->doc)) {
		snprintf(c->err, c->errlen, "%s:%zu: YAML: %s", path,
		    parser.problem_mark.line + 1,
		    parser.problem != NULL ? parser.problem : "syntax error");
		rv = -EINVAL;
	} else {
		f->loaded = true;
		c->n++;
		if (yaml_document_get_root_node(&f->doc) != NULL &&
		    kc_root(c, c->n - 1) == NULL)
			rv = kc_err(c, c->n - 1,
			    yaml_document_get_root_node(&f->doc), "(top)",
			    "expected a map");
	}
	yaml_parser_delete(&parser);
	free(text);
	if (rv < 0 && !f->loaded) {
		free(f->path);
		free(f->dir);
		f->path = f->dir = NULL;
	}
	return rv;
}

static void
kc_free(struct kc *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		yaml_document_delete(&c->f[i].doc);
		free(c->f[i].path);
		free(c->f[i].dir);
	}
}

// Loads the files of a ':'-separated list; a single path must exist.
static int
kc_load_all(struct kc *c, const char *paths)
{
	char *copy = strdup(paths), *save = NULL, *p;
	bool list = strchr(paths, ':') != NULL;
	int rv = 0;

	if (copy == NULL)
		return -ENOMEM;
	for (p = strtok_r(copy, ":", &save); p != NULL;
	    p = strtok_r(NULL, ":", &save)) {
		if (c->n == KUBECONFIG_FILES) {
			snprintf(c->err, c->errlen, "more than %d kubeconfig "
			    "files", KUBECONFIG_FILES);
			rv = -EINVAL;
			break;
		}
		rv = kc_load(c, p);
		if (rv == -ENOENT && list) {
			rv = 0;
			continue;
		}
		if (rv < 0)
			break;
	}
	if (rv == 0 && c->n == 0) {
		snprintf(c->err, c->errlen, "%s: no kubeconfig file found",
		    paths);
		rv = -ENOENT;
	}
	free(copy);
	return rv;
}

static int
kc_resolve(struct kc *c, struct cm_k8s_endpoint *e, const char *context)
{
	yaml_node_t *m;
	const char *cluster, *user, *ns;
	char where[96];
	size_t fi = 0, i;
	int rv;

	if (context == NULL || context[0] == '\0') {
		context = NULL;
		for (i = 0; i < c->n && context == NULL; i++) {
			rv = kc_str(c, i, kc_root(c, i), "current-context",
			    "(top)", &context);
			if (rv < 0)
				return rv;
			if (context != NULL && context[0] == '\0')
				context = NULL;
		}
		if (context == NULL) {
			snprintf(c->err, c->errlen, "%s: no current-context "
			    "set and no context given", c->f[0].path);
			return -EINVAL;
		}
	}
	rv = kc_find(c, "contexts", "context", context, &m, &fi, where,
	    sizeof(where));
	if (rv < 0)
		return rv;
	if (m == NULL) {
		snprintf(c->err, c->errlen, "%s: context \"%.64s\" is not "
		    "defined", c->f[0].path, context);
		return -EINVAL;
	}
	rv = kc_str(c, fi, m, "cluster", where, &cluster);
	if (rv == 0)
		rv = kc_str(c, fi, m, "user", where, &user);
	if (rv == 0)
		rv = kc_str(c, fi, m, "namespace", where, &ns);
	if (rv < 0)
		return rv;
	if (cluster == NULL || cluster[0] == '\0')
		return kc_err(c, fi, m, where, "cluster is missing");
	if (ns != NULL && ns[0] != '\0' &&
	    !cm_k8s_name_valid(CM_K8S_NAME_LABEL, ns))
		return kc_err(c, fi, m, where, "namespace is not a valid "
		    "namespace name");
	e->ns = strdup(ns != NULL && ns[0] != '\0' ? ns : "default");
	if (e->ns == NULL ||
	    asprintf(&e->origin, "%s context %s", c->f[0].path, context) < 0) {
		e->origin = NULL;
		return -ENOMEM;
	}
	rv = kc_cluster(c, e, cluster, where);
	if (rv == 0 && user != NULL && user[0] != '\0')
		rv = kc_user(c, e, user, where);
	return rv;
}

int
cm_k8s_endpoint_kubeconfig(struct cm_k8s_endpoint *ret, const char *paths,
    const char *context, char *err, size_t errlen)
{
	struct kc c;
	char *def = NULL;
	int rv;

	memset(ret, 0, sizeof(*ret));
	memset(&c, 0, sizeof(c));
	c.err = err;
	c.errlen = errlen;
	if (paths == NULL || paths[0] == '\0')
		paths = getenv("KUBECONFIG");
	if (paths == NULL || paths[0] == '\0') {
		const char *home = getenv("HOME");

		if (home == NULL || home[0] == '\0') {
			snprintf(err, errlen, "no kubeconfig: KUBECONFIG and "
			    "HOME are unset");
			return -ENOENT;
		}
		if (asprintf(&def, "%s/.kube/config", home) < 0)
			return -ENOMEM;
		paths = def;
	}
	rv = kc_load_all(&c, paths);
	if (rv == 0)
		rv = kc_resolve(&c, ret, context);
	if (rv == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (rv < 0)
		cm_k8s_endpoint_clear(ret);
	kc_free(&c);
	free(def);
	return rv;
}

int
cm_k8s_endpoint_resolve(struct cm_k8s_endpoint *ret,
    const struct cm_k8s_settings *s, char *err, size_t errlen)
{
	const char *kc = s->kubeconfig, *host;

	switch (s->source) {
	case CM_K8S_SRC_IN_CLUSTER:
		return cm_k8s_endpoint_incluster(ret, s->incluster_dir, err,
		    errlen);
	case CM_K8S_SRC_KUBECONFIG:
		return cm_k8s_endpoint_kubeconfig(ret, kc, s->context, err,
		    errlen);
	default:
		host = getenv("KUBERNETES_SERVICE_HOST");
		if ((kc == NULL || kc[0] == '\0') && host != NULL &&
		    host[0] != '\0')
			return cm_k8s_endpoint_incluster(ret, s->incluster_dir,
			    err, errlen);
		return cm_k8s_endpoint_kubeconfig(ret, kc, s->context, err,
		    errlen);
	}
}
