// SPDX-License-Identifier: MIT
// cm_k8s: a small Kubernetes API client (libcurl + cJSON) shared by the
// coordinator and the agent: where the API server is (in-cluster or
// kubeconfig), authenticated JSON requests with client-side rate limiting
// and bounded retries, Status errors turned into errno values and
// reasons, name validation for everything that goes into a path, a few
// helpers to read API objects, and PDB-aware pod eviction.
//
// Threads: one struct cm_k8s is shared by every thread of a process.
// Every request borrows a curl easy handle from a mutex-guarded pool (so
// each handle keeps its own connections; curl does not support sharing a
// connection cache across threads) and takes a token from one token
// bucket, so the qps/burst limit holds for the whole process. Requests
// block the calling thread (HTTP, retry back-off, rate-limit waits):
// call them from worker threads, never from an event loop that must stay
// responsive. Create the client before starting threads that use it
// (cm_k8s_new runs curl_global_init once).
//
// Retries: 429 (waiting Retry-After / details.retryAfterSeconds, else
// exponential back-off with jitter), 5xx and connection failures are
// retried up to `max_tries` attempts in all. POST is retried only on 429
// and on failures to connect, where the server cannot have acted; other
// methods are retried on 5xx and timeouts too (the callers' writes are
// idempotent or guarded by resourceVersion/test operations). A 401 makes
// the client re-read its token file once and retry. 409 Conflict is never
// retried here: it comes back as -ESTALE so the caller re-reads the
// object and re-applies its change.
#ifndef CM_K8S_H
#define CM_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "cm_conf.h"

// ---------------------------------------------------------------------
// Settings (the "kubernetes:" section of the agent and coordinator config)

enum cm_k8s_source {
	CM_K8S_SRC_AUTO,       // kubeconfig if one is named, else in-cluster
			       // if KUBERNETES_SERVICE_HOST is set, else
			       // $KUBECONFIG or ~/.kube/config
	CM_K8S_SRC_IN_CLUSTER, // service account of the pod
	CM_K8S_SRC_KUBECONFIG, // a kubeconfig file
};

struct cm_k8s_settings {
	int source;		     // enum cm_k8s_source
	char *kubeconfig;	     // path(s), ':'-separated; "" = default
	char *context;		     // "" = current-context
	char *incluster_dir;	     // service-account directory
	int64_t qps;		     // token bucket refill per second
	int64_t burst;		     // bucket size
	int64_t timeout_ms;	     // one attempt, whole request
	int64_t connect_timeout_ms;  // TCP + TLS handshake
	int64_t max_tries;	     // attempts per request, >= 1
	int64_t backoff_ms;	     // first retry delay (doubles, jittered)
	int64_t backoff_max_ms;	     // cap of one back-off delay
	int64_t retry_after_max_ms;  // longer Retry-After: give up
	int64_t max_body;	     // response bytes
	int64_t token_recheck_ms;    // token file stat interval
};

// Defaults: source auto, incluster_dir
// /var/run/secrets/kubernetes.io/serviceaccount, qps 5, burst 10, timeout
// 30s, connect 10s, 4 tries, back-off 250ms..8s, Retry-After up to 60s,
// 8 MiB bodies, token re-check every 60s.
extern const struct cm_conf_field cm_k8s_fields[];

// Fills `s` with the defaults above (strings are static: do not pass
// such a struct to cm_conf_free). For callers that do not load YAML.
void cm_k8s_settings_default(struct cm_k8s_settings *s);

// ---------------------------------------------------------------------
// Where the API server is and how to authenticate

struct cm_k8s_endpoint {
	char *server;		// "https://10.96.0.1:443" (no trailing '/')
	char *ns;		// default namespace ("default" if none)
	char *ca_file;		// CA bundle path, or NULL
	char *ca_data;		// PEM bytes (from *-data), or NULL
	size_t ca_len;
	bool insecure;		// insecure-skip-tls-verify
	char *tls_server_name;	// expected certificate name, or NULL
	char *proxy_url;	// kubeconfig proxy-url, or NULL
	char *token;		// static bearer token, or NULL
	char *token_file;	// re-read when it changes, or NULL
	char *cert_file, *cert_data;
	size_t cert_len;
	char *key_file, *key_data;
	size_t key_len;
	char *username, *password; // basic auth, or NULL
	char *origin;		// for logs: "in-cluster" or "PATH context X"
};

// In-cluster service account: server from KUBERNETES_SERVICE_HOST/_PORT
// (IPv6 bracketed), token file, ca.crt and namespace under `dir` (NULL
// for the default; tests pass a temp directory), namespace from
// $POD_NAMESPACE first. Returns 0, -ENOENT (not in a cluster: variables
// unset or no token file) or -EINVAL, with a reason in err. Reads files;
// any thread. Release with cm_k8s_endpoint_clear.
int cm_k8s_endpoint_incluster(struct cm_k8s_endpoint *ret, const char *dir,
    char *err, size_t errlen) __attribute__((warn_unused_result));

// kubeconfig: `paths` is one path or a ':'-separated list merged the
// kubectl way (the first file that sets current-context, or defines a
// named cluster/user/context, wins; missing files in a list are
// skipped). NULL or "" means $KUBECONFIG, else ~/.kube/config. `context`
// NULL or "" means current-context. Relative file names inside a file
// are relative to that file's directory; *-data values are base64 and
// win over the file forms. Unknown keys are ignored. Refused with a
// "file:line: path: reason" message: exec and auth-provider users
// (reflex runs no credential plugins), token together with
// username/password, insecure-skip-tls-verify together with a CA, a
// server that is not http(s)://, bad base64, files over 1 MiB, and
// YAML syntax errors. Returns 0, -ENOENT, -EINVAL or -ENOMEM.
int cm_k8s_endpoint_kubeconfig(struct cm_k8s_endpoint *ret, const char *paths,
    const char *context, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Resolves the endpoint the settings ask for (see enum cm_k8s_source).
int cm_k8s_endpoint_resolve(struct cm_k8s_endpoint *ret,
    const struct cm_k8s_settings *s, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Frees the strings and zeroes `e`. NULL-safe.
void cm_k8s_endpoint_clear(struct cm_k8s_endpoint *e);

// ---------------------------------------------------------------------
// The client

struct cm_k8s;

// Creates a client for the endpoint `s` resolves to. Borrows `s` (copied).
// Returns 0, or a negative errno with a reason in err. Free with
// cm_k8s_free. Call from the main thread before other threads use curl.
int cm_k8s_new(struct cm_k8s **ret, const struct cm_k8s_settings *s,
    char *err, size_t errlen) __attribute__((warn_unused_result));

// Same with an endpoint the caller resolved; takes `ep` (its fields move
// into the client and *ep is zeroed, on success and on failure).
int cm_k8s_new_endpoint(struct cm_k8s **ret, const struct cm_k8s_settings *s,
    struct cm_k8s_endpoint *ep, char *err, size_t errlen)
    __attribute__((warn_unused_result));

// Waits for nothing: in-flight requests must have returned. NULL-safe.
void cm_k8s_free(struct cm_k8s *k);

// The default namespace of the endpoint. Borrowed; lives as long as k.
const char *cm_k8s_namespace(const struct cm_k8s *k);

// The server URL. Borrowed; lives as long as k.
const char *cm_k8s_server(const struct cm_k8s *k);

// Totals since creation, for metrics and tests. Any thread.
struct cm_k8s_counts {
	int64_t requests;   // attempts sent
	int64_t retries;    // attempts after the first
	int64_t throttled;  // attempts that waited for the token bucket
	int64_t reauth;	    // token re-reads after 401
};
void cm_k8s_counts(struct cm_k8s *k, struct cm_k8s_counts *ret);

// ---------------------------------------------------------------------
// Requests

enum cm_k8s_body {
	CM_K8S_BODY_JSON,	     // application/json (POST, PUT)
	CM_K8S_BODY_MERGE_PATCH,     // application/merge-patch+json
	CM_K8S_BODY_JSON_PATCH,	     // application/json-patch+json
	CM_K8S_BODY_STRATEGIC_PATCH, // application/strategic-merge-patch+json
};

// Request flags.
#define CM_K8S_F_NO_RETRY_429 0x1 // hand 429 back at once (eviction)
#define CM_K8S_F_NO_RETRY 0x2	  // exactly one attempt
#define CM_K8S_F_TEXT 0x4	  // 2xx body is text (pods/log): body is a
				  // cJSON string holding it

#define CM_K8S_MAX_CAUSES 8

struct cm_k8s_cause {
	char type[64];	   // "DisruptionBudget", "FieldValueInvalid", ...
	char message[256];
	char field[128];
};

// A Status object from an error reply, or one made up from the HTTP code
// when the body is not a Status (a proxy's HTML page, say).
struct cm_k8s_status {
	long code;		 // HTTP status; 0 = no reply at all
	char reason[64];	 // "NotFound", "Conflict", ...; may be ""
	char message[512];	 // control characters replaced by '?'
	char kind[64];		 // details.kind (a resource: "deployments")
	char name[254];		 // details.name
	int64_t retry_after_s;	 // details.retryAfterSeconds or Retry-After;
				 // -1 = not given
	struct cm_k8s_cause causes[CM_K8S_MAX_CAUSES];
	size_t n_causes;
};

struct cm_k8s_resp {
	long code;		 // HTTP status of the last attempt, 0 = none
	cJSON *body;		 // 2xx: parsed body (NULL if empty); owned
	struct cm_k8s_status status; // non-2xx: the error
	int tries;		 // attempts made
	char err[512];		 // failure: "PATCH /apis/..: 409 Conflict: ..."
};

struct cm_k8s_req {
	const char *method;	 // GET POST PUT PATCH DELETE
	const char *path;	 // "/api/v1/..." with an optional query,
				 // built with cm_k8s_path/cm_k8s_query_add
	enum cm_k8s_body type;	 // content type of `body`
	const cJSON *body;	 // NULL = no body
	int flags;		 // CM_K8S_F_*
	int64_t deadline_ms;	 // cm_mono_ms() bound for retry waits, 0 = none
};

// Sends the request and fills *ret (always; release with
// cm_k8s_resp_clear, also after failures). Returns:
//   0              2xx (ret->body holds the JSON reply, if any)
//   -ENOENT        404 NotFound
//   -ESTALE        409 Conflict (re-read and re-apply)
//   -EEXIST        409 AlreadyExists
//   -EINVAL        400, 422 (ret->status.causes says which field), or a
//                  malformed request (bad path characters, bad method)
//   -EACCES        401 after one token re-read
//   -EPERM         403
//   -EAGAIN        429 after the retries (or with CM_K8S_F_NO_RETRY_429)
//   -EOPNOTSUPP    405, 415 (e.g. strategic merge on a custom resource)
//   -EIO           5xx after the retries, any other HTTP status
//   -ETIMEDOUT     no complete reply within timeout_ms
//   -ECONNREFUSED  could not connect (refused, unreachable, DNS)
//   -EPROTO        TLS failure (certificate, handshake)
//   -EFBIG         reply larger than max_body
//   -EBADMSG       2xx reply that is not JSON
//   -ENOMEM
// Blocks (see the top of this file); any thread.
int cm_k8s_do(struct cm_k8s *k, const struct cm_k8s_req *req,
    struct cm_k8s_resp *ret) __attribute__((warn_unused_result));

// Shorthands for cm_k8s_do without flags or deadline.
int cm_k8s_get(struct cm_k8s *k, const char *path, struct cm_k8s_resp *ret)
    __attribute__((warn_unused_result));
int cm_k8s_post(struct cm_k8s *k, const char *path, const cJSON *body,
    struct cm_k8s_resp *ret) __attribute__((warn_unused_result));
int cm_k8s_put(struct cm_k8s *k, const char *path, const cJSON *body,
    struct cm_k8s_resp *ret) __attribute__((warn_unused_result));
int cm_k8s_patch(struct cm_k8s *k, const char *path, enum cm_k8s_body type,
    const cJSON *body, struct cm_k8s_resp *ret)
    __attribute__((warn_unused_result));
int cm_k8s_delete(struct cm_k8s *k, const char *path, const cJSON *body,
    struct cm_k8s_resp *ret) __attribute__((warn_unused_result));

// Frees ret->body and zeroes *ret. NULL-safe.
void cm_k8s_resp_clear(struct cm_k8s_resp *r);

// Parses an error reply into *ret (pure; for tests and for the client).
// `body` may be NULL or not JSON; `retry_after_hdr` is the Retry-After
// header value or NULL.
void cm_k8s_status_parse(struct cm_k8s_status *ret, long code,
    const char *body, size_t len, const char *retry_after_hdr);

// The errno value cm_k8s_do returns for a status (see the table above).
int cm_k8s_status_errno(const struct cm_k8s_status *st);

// True if a cause of type `type` is listed.
bool cm_k8s_status_has_cause(const struct cm_k8s_status *st, const char *type);

// ---------------------------------------------------------------------
// Names, paths and queries (pure; any thread)

enum cm_k8s_name_rule {
	CM_K8S_NAME_LABEL,     // DNS-1123 label: namespaces, most 63-byte names
	CM_K8S_NAME_SUBDOMAIN, // DNS-1123 subdomain: most object names
	CM_K8S_NAME_DNS1035,   // DNS-1035 label: Services
};

// True if `s` follows the rule exactly as Kubernetes validation does:
//   label      [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 bytes
//   subdomain  label('.'label)*, at most 253 bytes (a part may be longer
//              than 63 bytes: apimachinery does not check that)
//   dns1035    [a-z]([-a-z0-9]*[a-z0-9])?, at most 63 bytes
// NULL and "" are invalid.
bool cm_k8s_name_valid(enum cm_k8s_name_rule rule, const char *s);

// Label and annotation keys: [prefix/]name, prefix a subdomain, name at
// most 63 bytes of [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?.
bool cm_k8s_qualified_name_valid(const char *s);

// Label values: "" or at most 63 bytes of the name form above.
bool cm_k8s_label_value_valid(const char *s);

// Builds "/api/v1" or "/apis/GROUP/VERSION" (from `api` = "v1" or
// "apps/v1"), then "/namespaces/NS" when ns is not NULL, "/PLURAL",
// "/NAME" when name is not NULL and "/SUB" when sub is not NULL. ns must
// be a label and name a subdomain; api, plural and sub must be lowercase
// [a-z0-9.-] words (api with one '/'). Returns 0, -EINVAL (and names the
// offending part in nothing: the caller knows its inputs) or
// -ENAMETOOLONG.
int cm_k8s_path(char *buf, size_t n, const char *api, const char *ns,
    const char *plural, const char *name, const char *sub)
    __attribute__((warn_unused_result));

// Appends "?key=value" or "&key=value" to the path in buf, with `value`
// percent-encoded (everything but A-Z a-z 0-9 - . _ ~). `key` must be
// [A-Za-z]+. Returns 0, -EINVAL or -ENAMETOOLONG (buf unchanged).
int cm_k8s_query_add(char *buf, size_t n, const char *key, const char *value)
    __attribute__((warn_unused_result));

// Escapes a map key for a JSON Pointer (RFC 6901): '~' -> "~0",
// '/' -> "~1". Returns 0 or -ENAMETOOLONG.
int cm_k8s_pointer_escape(char *buf, size_t n, const char *key)
    __attribute__((warn_unused_result));

// ---------------------------------------------------------------------
// Reading API objects (pure; borrowed results live as long as `o`)

// Walks object keys: cm_k8s_at(o, "spec", "template", NULL). NULL when a
// key is missing or a step is not an object.
const cJSON *cm_k8s_at(const cJSON *o, ...) __attribute__((sentinel));

// The string at the path, or NULL (missing, null or not a string).
const char *cm_k8s_str(const cJSON *o, ...) __attribute__((sentinel));

// The integer at the path into *ret; 0, -ENOENT (missing or null) or
// -EINVAL (not an integral number within int64).
int cm_k8s_int(const cJSON *o, int64_t *ret, ...) __attribute__((sentinel));

// The boolean at the path; `def` (0 or not 0, so true or false may be
// passed) when missing or not a boolean. `def` is an int because it is
// the last named parameter: va_start on a parameter that default argument
// promotion changes, as bool's is, is undefined behaviour.
bool cm_k8s_bool(const cJSON *o, int def, ...) __attribute__((sentinel));

// A quantity that may be a JSON string or a bare number, in units of
// 10^scale (see cm_quantity_parse_scaled). 0, -ENOENT, -EINVAL, -ERANGE.
int cm_k8s_quantity(const cJSON *v, int scale, int64_t *ret);

// Does the labels object match the LabelSelector object (matchLabels
// and matchExpressions with In, NotIn, Exists, DoesNotExist)? An empty
// selector matches everything, a NULL one nothing; an operator it does
// not know matches nothing.
bool cm_k8s_selector_matches(const cJSON *selector, const cJSON *labels);

// Renders a LabelSelector as the labelSelector query string
// ("app=web,tier in (a,b),!canary"). Returns 0, -EINVAL (unknown
// operator, invalid key or value) or -ENAMETOOLONG.
int cm_k8s_selector_string(const cJSON *selector, char *buf, size_t n)
    __attribute__((warn_unused_result));

// Pod condition Ready == "True".
bool cm_k8s_pod_ready(const cJSON *pod);

// metadata.deletionTimestamp is set.
bool cm_k8s_terminating(const cJSON *obj);

// The ownerReference with controller: true, or NULL.
const cJSON *cm_k8s_controller_ref(const cJSON *obj);

// ---------------------------------------------------------------------
// Pod eviction (used by the agent on its node)

struct cm_k8s_evict_opts {
	int max_tries;		 // eviction attempts in all (default 3)
	int64_t backoff_ms;	 // wait between 429s without Retry-After
				 // (default 5000, doubling)
	int64_t budget_ms;	 // total time for waits (default 120000)
	int64_t grace_seconds;	 // deleteOptions.gracePeriodSeconds, -1 =
				 // the pod's own
	bool delete_unready;	 // policy: when a PDB blocks, delete the pod
				 // instead if it is not Ready (C14)
};

// Defaults listed above.
void cm_k8s_evict_opts_default(struct cm_k8s_evict_opts *o);

enum cm_k8s_evict_outcome {
	CM_K8S_EVICTED,		 // 201/200: the API accepted the eviction
	CM_K8S_EVICT_DELETED,	 // PDB blocked; not-Ready pod deleted (policy)
	CM_K8S_EVICT_GONE,	 // 404: no such pod (nothing done)
	CM_K8S_EVICT_BLOCKED,	 // refused by a PodDisruptionBudget
	CM_K8S_EVICT_FAILED,	 // anything else (see reason)
};

struct cm_k8s_evict_result {
	enum cm_k8s_evict_outcome outcome;
	int tries;		 // eviction attempts
	char pdb[254];		 // blocking PDB if known, else ""
	int64_t disruptions_allowed; // of that PDB, -1 if unknown
	char reason[512];
};

// Evicts ns/pod through the Eviction API (policy/v1). On 429 it retries
// up to o->max_tries attempts, keyed on the status code and reason (not
// the message): a DisruptionBudget cause or a Retry-After (the PDB's
// status is stale) are waited for within o->budget_ms. When the budget
// still blocks it looks up the PDB matching the pod to report its name
// and disruptionsAllowed, and, only if o->delete_unready is set, the pod
// is not Ready, not already terminating and has a controller (a bare pod
// would not come back), deletes it with a UID precondition. Never
// force-deletes (no grace 0 unless o->grace_seconds says so), never
// evicts another pod. Returns 0 for EVICTED/DELETED, -ENOENT for GONE,
// -EBUSY for BLOCKED, another negative errno for FAILED; *ret always
// filled. `o` NULL = defaults. Blocks; any thread.
int cm_k8s_evict_pod(struct cm_k8s *k, const char *ns, const char *pod,
    const struct cm_k8s_evict_opts *o, struct cm_k8s_evict_result *ret);

#endif
