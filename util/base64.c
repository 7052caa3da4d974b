#include "util/base64.h"

static const char base64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

size_t base64_encode(const void *in, size_t n, char *out)
{
	const unsigned char *p = in;
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		size_t left = n - i;
		uint32_t v = (uint32_t)p[i] << 16;
		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		out[o++] = base64_alphabet[(v >> 18) & 63];
		out[o++] = base64_alphabet[(v >> 12) & 63];
		out[o++] = left > 1 ? base64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = left > 2 ? base64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

/* One plus the 6-bit value of each byte of the standard alphabet, 0 for
 * every other byte: credentials are decoded on every request. */
static const unsigned char base64_values[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8,
	['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15,
	['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
	['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29,
	['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36,
	['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42, ['q'] = 43,
	['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
	['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
	['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64
};

/* The 6-bit value of c in the standard alphabet, or -1. */
static int base64_value(char c)
{
	return (int)base64_values[(unsigned char)c] - 1;
}

/* A quad's 24 bits; false when a byte is outside the alphabet. */
static bool base64_quad(const char *in, size_t have, uint32_t *v)
{
	*v = 0;
	for (size_t k = 0; k < 4; k++) {
		int d = k < have ? base64_value(in[k]) : 0;
		if (d < 0)
			return false;
		*v = *v << 6 | (uint32_t)d;
	}
	return true;
}

ssize_t base64_decode(const char *in, size_t n, unsigned char *out,
		      size_t out_cap)
{
	size_t pad = 0, o = 0;
	uint32_t v;

	if (n % 4 != 0)
		return -1;
	if (n == 0)
		return 0;
	if (in[n - 1] == '=')
		pad = in[n - 2] == '=' ? 2 : 1;
	if (n / 4 * 3 - pad > out_cap)
		return -1;
	for (size_t i = 0; i + 4 < n; i += 4) {
		if (!base64_quad(in + i, 4, &v))
			return -1;
		out[o++] = (unsigned char)(v >> 16);
		out[o++] = (unsigned char)(v >> 8);
		out[o++] = (unsigned char)v;
	}
	/* The last quad may be padded; the bits that fall into the padding
	 * must be zero. */
	if (!base64_quad(in + n - 4, 4 - pad, &v) || (pad == 1 && (v & 0xff)) ||
	    (pad == 2 && (v & 0xffff)))
		return -1;
	out[o++] = (unsigned char)(v >> 16);
	if (pad < 2)
		out[o++] = (unsigned char)(v >> 8);
	if (pad < 1)
		out[o++] = (unsigned char)v;
	return (ssize_t)o;
}

ssize_t base64url_decode(const char *in, size_t n, unsigned char *out, size_t out_cap)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char c = in[i];
		/* base64url swaps the last two letters of the alphabet. */
		int v = c == '-' ? 62 : c == '_' ? 63 : (c == '+' || c == '/') ? -1 : base64_value(c);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == out_cap)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return (ssize_t)o;
}
