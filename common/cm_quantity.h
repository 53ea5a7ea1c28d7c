// SPDX-License-Identifier: MIT
// cm_quantity: Kubernetes resource quantities ("3800m", "15613336Ki",
// "1.5Gi", "2e3", "123456789n") parsed into exact int64 counts.
//
// Syntax, as apimachinery's resource.ParseQuantity reads it:
//
//   [+-] digits [ "." digits ] suffix
//
// with at least one digit in the number ("5.", ".5" and "1.G" are fine),
// no spaces, and a suffix that is exactly one of
//   binary   Ki Mi Gi Ti Pi Ei          (1024^1 .. 1024^6)
//   decimal  n u m "" k M G T P E       (10^-9 .. 10^18)
//   exponent e|E followed by [+-]digits (2e3, 1E-3, 5e+2)
// "m" is milli and "M" mega; "K", "KB", "Mb", "ki" are refused; a bare
// "E" is exa while "E3" is an exponent.
//
// The value is computed exactly and then rounded to the caller's unit
// away from zero, as Quantity.Value()/MilliValue() do: 123456789n is
// 0.123456789 cores, which is 124 millicores; 1m is 1 byte. (Kubernetes
// first rounds up to 10^-9; rounding up twice on nested grids equals
// rounding up once on the coarser one, so the result is the same.)
//
// Differences from Go, all on degenerate input: a string without any
// digit ("-", ".", "Ki"), which Go reads as zero, is refused here; an
// exponent outside int64 is refused like in Go, but one inside int64 and
// outside int32 is taken at face value where Go truncates it; and a
// result beyond int64 is -ERANGE where Go caps binary quantities at
// 2^63-1. Input longer than CM_QUANTITY_MAX_LEN bytes is refused.
//
// All functions are pure and thread-safe.
#ifndef CM_QUANTITY_H
#define CM_QUANTITY_H

#include <stdint.h>

#define CM_QUANTITY_MAX_LEN 128

// Parses `s` and stores its value in units of 10^scale (scale -9 =
// nano, -3 = milli, 0 = whole units) into *ret, rounded away from zero.
// `scale` must be within -9..18. Returns 0, -EINVAL (syntax, unknown
// suffix, bad scale, too long, NULL) or -ERANGE (does not fit int64).
// *ret is written only on success.
int cm_quantity_parse_scaled(const char *s, int scale, int64_t *ret)
    __attribute__((warn_unused_result));

// CPU and other milli-unit quantities: "3800m" -> 3800, "1.5" -> 1500,
// "2e3" -> 2000000, "123456789n" -> 124. Same errors as above.
int cm_quantity_parse_milli(const char *s, int64_t *ret_milli)
    __attribute__((warn_unused_result));

// Memory and other whole-unit quantities: "16Gi" -> 17179869184,
// "1.5Gi" -> 1610612736, "1e3" -> 1000, "1m" -> 1. Same errors.
int cm_quantity_parse_bytes(const char *s, int64_t *ret)
    __attribute__((warn_unused_result));

#endif
