/*
 * decimal.h — exact decimal arithmetic for event values: JSON number text to fixed point and back.
 *
 * Values are held as a signed __int128 count of 1e-9 units ("nanos"). A JSON number is parsed
 * straight from its text, never through binary floating point, so every value with at most nine
 * fractional digits and a magnitude below FA_DEC_MAX_UNITS is represented exactly and sums of them
 * are exact in any order, on any number of workers.
 *
 * Rounding policy, for the finite values that are not exact:
 *   - more than nine fractional digits (after applying the exponent): rounded to the nearest
 *     1e-9, ties to even ("0.0000000005" -> 0, "0.0000000015" -> 2 nanos); fa_dec_parse returns 1;
 *   - exponents are applied exactly on the digit string ("4.25e2" is 425, "1E-3" is 0.001), so a
 *     value is only ever rounded once;
 *   - a magnitude >= FA_DEC_MAX_UNITS after rounding is out of range: fa_dec_parse returns -1 and
 *     the caller answers 400. The bound keeps the accumulator safe: an __int128 of nanos holds
 *     1.7e14 events of the largest accepted magnitude before it could overflow.
 *
 * Everything here is pure: no allocation, no global state, safe from any thread.
 */
#ifndef FA_DECIMAL_H
#define FA_DECIMAL_H

#include "fa.h"

/** Nanos per unit. */
#define FA_DEC_SCALE 1000000000LL

/** Accepted values satisfy |v| < FA_DEC_MAX_UNITS (units, not nanos). */
#define FA_DEC_MAX_UNITS 1000000000000000LL

/** A buffer of this size always holds fa_dec_format / fa_dec_format_avg output and its NUL. */
#define FA_DEC_FMT_MAX 48

/**
 * Parses one JSON number token (s, len: the token text only, not NUL-terminated, borrowed for the
 * call) into *nanos. The grammar is JSON's exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?;
 * no spaces, no leading '+', no "NaN"/"Infinity", no hex.
 * Returns 0 when the value is exact, 1 when it was rounded to 1e-9 (half to even), -1 when the text
 * is not a JSON number or the value is out of range (*nanos is then left unchanged).
 */
int fa_dec_parse(const char *s, size_t len, __int128 *nanos);

/**
 * Writes nanos as the exact decimal it is, with no exponent and no trailing zeros ("42.5", "-3.25",
 * "0.000000001", "100", "0"), NUL-terminated. Returns the length written (without the NUL), or 0
 * when cap is too small (cap >= FA_DEC_FMT_MAX always suffices).
 */
size_t fa_dec_format(__int128 nanos, char *buf, size_t cap);

/**
 * Writes the average sum/count (sum in nanos) as a JSON number, NUL-terminated: "0" when count is
 * 0; the exact decimal (as fa_dec_format) when sum % count == 0; otherwise the double nearest to
 * the quotient, printed with the shortest of %.15g/%.16g/%.17g that reads back as the same double
 * (this form may use an exponent, e.g. "3.333333333333333e-10"). Returns the length or 0 as above.
 */
size_t fa_dec_format_avg(__int128 sum, uint64_t count, char *buf, size_t cap);

#endif
