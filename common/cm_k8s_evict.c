// SPDX-License-Identifier: MIT
// cm_k8s_evict: PDB-aware pod eviction with bounded retries and an
// optional delete of a not-Ready pod (see cm_k8s.h and case C14).
#include "cm_k8s.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cm_log.h"
#include "cm_time.h"

void
cm_k8s_evict_opts_default(struct cm_k8s_evict_opts *o)
{
	*o = (struct cm_k8s_evict_opts){
		.max_tries = 3,
		.backoff_ms = 5000,
		.budget_ms = 120000,
		.grace_seconds = -1,
		.delete_unready = false,
	};
}

static void
nap(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
		.tv_nsec = (ms % 1000) * 1000000 };

	while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static cJSON *
eviction_body(const char *ns, const char *pod, int64_t grace)
{
	cJSON *b = cJSON_CreateObject(), *m, *d;

	if (b == NULL)
		return NULL;
	cJSON_AddStringToObject(b, "apiVersion", "policy/v1");
	cJSON_AddStringToObject(b, "kind", "Eviction");
	m = cJSON_AddObjectToObject(b, "metadata");
	if (m != NULL) {
		cJSON_AddStringToObject(m, "name", pod);
		cJSON_AddStringToObject(m, "namespace", ns);
	}
	if (grace >= 0) {
		d = cJSON_AddObjectToObject(b, "deleteOptions");
		if (d != NULL)
			cJSON_AddNumberToObject(d, "gracePeriodSeconds",
			    (double)grace);
	}
	if (m == NULL || cJSON_GetObjectItem(b, "kind") == NULL) {
		cJSON_Delete(b);
		return NULL;
	}
	return b;
}

// Finds the PDBs whose selector matches the pod: first name into
// ret->pdb (others appended) and its disruptionsAllowed. Best effort:
// a failure leaves the fields unknown. Writes "N healthy, M needed".
static void
find_pdb(struct cm_k8s *k, const char *ns, const cJSON *pod,
    struct cm_k8s_evict_result *ret, char *detail, size_t dlen)
{
	struct cm_k8s_resp r;
	const cJSON *it, *labels = cm_k8s_at(pod, "metadata", "labels", NULL);
	char path[512];

	detail[0] = '\0';
	if (cm_k8s_path(path, sizeof(path), "policy/v1", ns,
	    "poddisruptionbudgets", NULL, NULL) < 0)
		return;
	if (cm_k8s_get(k, path, &r) < 0) {
		snprintf(detail, dlen, "PDB list failed: %s", r.err);
		cm_k8s_resp_clear(&r);
		return;
	}
	cJSON_ArrayForEach(it, cm_k8s_at(r.body, "items", NULL)) {
		const char *name = cm_k8s_str(it, "metadata", "name", NULL);
		int64_t allowed, cur, want;

		if (name == NULL || !cm_k8s_selector_matches(cm_k8s_at(it,
		    "spec", "selector", NULL), labels))
			continue;
		if (ret->pdb[0] == '\0') {
			snprintf(ret->pdb, sizeof(ret->pdb), "%s", name);
			if (cm_k8s_int(it, &allowed, "status",
			    "disruptionsAllowed", NULL) == 0)
				ret->disruptions_allowed = allowed;
			if (cm_k8s_int(it, &cur, "status", "currentHealthy",
			    NULL) == 0 && cm_k8s_int(it, &want, "status",
			    "desiredHealthy", NULL) == 0)
				snprintf(detail, dlen,
				    "%lld healthy, %lld needed",
				    (long long)cur, (long long)want);
		} else if (strlen(ret->pdb) + strlen(name) + 2 <
		    sizeof(ret->pdb)) {
			strcat(ret->pdb, ",");
			strcat(ret->pdb, name);
		}
	}
	cm_k8s_resp_clear(&r);
}

// The policy fallback: delete a not-Ready, controller-owned pod that a
// PDB keeps from being evicted (it adds nothing to availability).
// Returns 1 if the pod was deleted, 0 if the policy does not apply
// (reason in why), negative errno on a failed delete.
static int
delete_unready(struct cm_k8s *k, const char *ns, const char *name,
    const cJSON *pod, const struct cm_k8s_evict_opts *o,
    struct cm_k8s_evict_result *ret, char *why, size_t wlen)
{
	struct cm_k8s_resp r;
	const char *uid = cm_k8s_str(pod, "metadata", "uid", NULL);
	cJSON *body, *pre;
	char path[512];
	int rv;

	if (!o->delete_unready) {
		snprintf(why, wlen, "delete fallback is off by policy");
		return 0;
	}
	if (pod == NULL) {
		snprintf(why, wlen, "pod state unknown, not deleted");
		return 0;
	}
	if (cm_k8s_pod_ready(pod)) {
		snprintf(why, wlen, "pod is Ready, not deleted");
		return 0;
	}
	if (cm_k8s_terminating(pod)) {
		snprintf(why, wlen, "pod is already terminating");
		return 0;
	}
	if (cm_k8s_controller_ref(pod) == NULL) {
		snprintf(why, wlen, "bare pod (no controller would recreate "
		    "it), not deleted");
		return 0;
	}
	if (uid == NULL || cm_k8s_path(path, sizeof(path), "v1", ns, "pods",
	    name, NULL) < 0) {
		snprintf(why, wlen, "pod has no uid, not deleted");
		return 0;
	}
	body = cJSON_CreateObject();
	pre = body != NULL ? cJSON_AddObjectToObject(body, "preconditions") :
	    NULL;
	if (pre == NULL || cJSON_AddStringToObject(pre, "uid", uid) == NULL ||
	    cJSON_AddStringToObject(body, "kind", "DeleteOptions") == NULL ||
	    cJSON_AddStringToObject(body, "apiVersion", "v1") == NULL ||
	    (o->grace_seconds >= 0 && cJSON_AddNumberToObject(body,
	    "gracePeriodSeconds", (double)o->grace_seconds) == NULL)) {
		cJSON_Delete(body);
		return -ENOMEM;
	}
	rv = cm_k8s_delete(k, path, body, &r);
	cJSON_Delete(body);
	if (rv < 0)
		snprintf(ret->reason, sizeof(ret->reason), "%s", r.err);
	cm_k8s_resp_clear(&r);
	return rv < 0 ? rv : 1;
}

int
cm_k8s_evict_pod(struct cm_k8s *k, const char *ns, const char *pod,
    const struct cm_k8s_evict_opts *o, struct cm_k8s_evict_result *ret)
{
	struct cm_k8s_evict_opts def;
	struct cm_k8s_resp r = { 0 };
	struct cm_k8s_req req = { .method = "POST",
		.flags = CM_K8S_F_NO_RETRY_429 };
	char path[512], detail[160], why[160];
	cJSON *body = NULL, *podj = NULL;
	int64_t start = cm_mono_ms(), delay, wait;
	bool pdb_cause = false;
	int rv;

	memset(ret, 0, sizeof(*ret));
	ret->outcome = CM_K8S_EVICT_FAILED;
	ret->disruptions_allowed = -1;
	if (o == NULL) {
		cm_k8s_evict_opts_default(&def);
		o = &def;
	}
	if (cm_k8s_path(path, sizeof(path), "v1", ns, "pods", pod,
	    "eviction") < 0) {
		snprintf(ret->reason, sizeof(ret->reason), "invalid namespace "
		    "or pod name");
		return -EINVAL;
	}
	body = eviction_body(ns, pod, o->grace_seconds);
	if (body == NULL)
		return -ENOMEM;
	req.path = path;
	req.body = body;
	delay = o->backoff_ms;
	for (;;) {
		cm_k8s_resp_clear(&r);
		rv = cm_k8s_do(k, &req, &r);
		ret->tries++;
		if (rv == 0) {
			ret->outcome = CM_K8S_EVICTED;
			snprintf(ret->reason, sizeof(ret->reason), "evicted "
			    "%s/%s", ns, pod);
			goto out;
		}
		if (rv == -ENOENT) {
			ret->outcome = CM_K8S_EVICT_GONE;
			snprintf(ret->reason, sizeof(ret->reason), "pod %s/%s "
			    "not found", ns, pod);
			goto out;
		}
		if (r.code != 429) {
			snprintf(ret->reason, sizeof(ret->reason), "%s", r.err);
			goto out;
		}
		pdb_cause = cm_k8s_status_has_cause(&r.status,
		    "DisruptionBudget");
		wait = r.status.retry_after_s > 0 ?
		    r.status.retry_after_s * 1000 : delay;
		delay *= 2;
		if (ret->tries >= o->max_tries ||
		    cm_mono_ms() - start + wait > o->budget_ms)
			break;
		cm_info("k8s.evict.retry", "pod=%s/%s try=%d pdb=%s wait_ms=%lld",
		    ns, pod, ret->tries, pdb_cause ? "yes" : "no",
		    (long long)wait);
		nap(wait);
	}
	if (!pdb_cause) {
		rv = -EAGAIN;
		snprintf(ret->reason, sizeof(ret->reason), "eviction throttled "
		    "after %d tries: %s", ret->tries, r.err);
		goto out;
	}

	// Still blocked by a disruption budget: find out which one, and
	// apply the not-Ready delete policy.
	{
		struct cm_k8s_resp pr;
		char ppath[512];

		if (cm_k8s_path(ppath, sizeof(ppath), "v1", ns, "pods", pod,
		    NULL) == 0 && cm_k8s_get(k, ppath, &pr) == 0) {
			podj = pr.body;
			pr.body = NULL;
		}
		cm_k8s_resp_clear(&pr);
	}
	find_pdb(k, ns, podj, ret, detail, sizeof(detail));
	rv = delete_unready(k, ns, pod, podj, o, ret, why, sizeof(why));
	if (rv == 1) {
		ret->outcome = CM_K8S_EVICT_DELETED;
		snprintf(ret->reason, sizeof(ret->reason), "blocked by PDB %s "
		    "(%lld disruptions allowed); pod was not Ready, deleted "
		    "it instead (policy delete_unready)",
		    ret->pdb[0] ? ret->pdb : "?",
		    (long long)ret->disruptions_allowed);
		rv = 0;
		goto out;
	}
	if (rv < 0)
		goto out;
	ret->outcome = CM_K8S_EVICT_BLOCKED;
	if (ret->pdb[0] != '\0')
		snprintf(ret->reason, sizeof(ret->reason), "blocked by PDB %s "
		    "(%lld disruptions allowed%s%s) after %d tries; %s",
		    ret->pdb, (long long)ret->disruptions_allowed,
		    detail[0] ? ", " : "", detail, ret->tries, why);
	else
		snprintf(ret->reason, sizeof(ret->reason), "blocked by PDB "
		    "(%s) after %d tries; %s%s%s", r.status.n_causes ?
		    r.status.causes[0].message : r.status.message, ret->tries,
		    why, detail[0] ? "; " : "", detail);
	rv = -EBUSY;
out:
	cm_info("k8s.evict", "pod=%s/%s outcome=%d tries=%d reason=%s", ns, pod,
	    (int)ret->outcome, ret->tries, cm_q(ret->reason));
	cm_k8s_resp_clear(&r);
	cJSON_Delete(podj);
	cJSON_Delete(body);
	return rv;
}
