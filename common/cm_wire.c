// SPDX-License-Identifier: MIT
// cm_wire: error codes of the agent channel.
#include "cm_wire.h"

#include <errno.h>

const char *
cm_wire_error_code(int rv)
{
	switch (rv) {
	case -EACCES:
		return "unauthenticated";
	case -ESTALE:
		return "replayed";
	case -EMSGSIZE:
		return "too_large";
	case -EPROTO:
		return "bad_version_or_type";
	case -EINVAL:
		return "bad_field";
	default:
		return "bad_frame";
	}
}
