/*
 * tar_check_fuzz.c: libFuzzer target for src/backends/tar_check.c.
 *
 * The checker stands between an untrusted archive and the volume, so what
 * matters is not only that it never crashes but that it never says yes when
 * it should say no.  Sanitizers find the first; for the second every input
 * is also run through a reference model kept here, written for obviousness
 * rather than speed (linear lists, strcmp and prefix comparison, its own
 * path splitting), and the two must agree on every entry.  Besides, the
 * invariants the restore relies on are asserted directly on every accepted
 * entry: its normalised path is relative, has no ".." component and does not
 * pass through a symlink stored earlier.  Any disagreement abort()s, which
 * libFuzzer reports as a crash and saves the input.
 *
 * Input: a sequence of entries, each
 *	type byte, path bytes, NUL, link bytes, NUL
 * The type byte's low 3 bits are the entry type (7: an invalid type); bit 3
 * passes a NULL link to a symlink or hard link; bits 4-5 choose the size of
 * the buffer tar_check_normalise() gets (exact, half, 1 byte, none); bits 6
 * and 7 stretch the path, the link, by repeating it up to exactly n bytes, n
 * being the two bytes after the type byte (little-endian, modulo 4352).
 * Without that, paths at the limits (4096 bytes, 256 components) would take
 * the fuzzer hours to grow; with n in the input, the comparisons of lengths
 * against the limits feed libFuzzer the values to try.  A missing final NUL
 * ends the string at the end of the input.
 * TAR_CHECK_FUZZ_VERBOSE=1 in the environment prints every decision.
 *
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -I src \
 *		-o fuzzer test/fuzz/tar_check_fuzz.c src/backends/tar_check.c
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tar_check.h"

/* A growable list of strings, searched linearly. */
typedef struct StrList
{
	char	  **items;
	size_t		n;
	size_t		cap;
} StrList;

typedef struct Model
{
	StrList		symlinks;		/* every path ever stored as a symlink */
	StrList		files;			/* paths that are a regular file now */
} Model;

/* What the model makes of a path. */
typedef struct RefPath
{
	bool		safe;
	bool		root;
	bool		dir_syntax;
	char	   *norm;			/* malloc'd; NULL unless safe */
} RefPath;

/* At most 200 bytes of s, for messages: paths can be 4 KB of noise. */
static void
print_str(const char *label, const char *s)
{
	if (s == NULL)
		fprintf(stderr, " %s (null)", label);
	else if (strlen(s) <= 200)
		fprintf(stderr, " %s \"%s\"", label, s);
	else
		fprintf(stderr, " %s \"%.200s...\" (%zu bytes)", label, s, strlen(s));
}

static void
fail(const char *what, int type, const char *path, const char *link, const char *reason)
{
	fprintf(stderr, "INVARIANT VIOLATED: %s\n  type %d", what, type);
	print_str("path", path);
	print_str("link", link);
	fprintf(stderr, " checker says: %s\n", reason ? reason : "accepted");
	abort();
}

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

static char *
xstrndup(const char *s, size_t n)
{
	char	   *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static long
list_find(const StrList *l, const char *s)
{
	size_t		i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->items[i], s) == 0)
			return (long) i;
	return -1;
}

static void
list_add(StrList *l, const char *s)
{
	if (list_find(l, s) >= 0)
		return;
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 16;
		l->items = realloc(l->items, l->cap * sizeof(char *));
		if (l->items == NULL)
			abort();
	}
	l->items[l->n++] = xstrndup(s, strlen(s));
}

static void
list_remove(StrList *l, const char *s)
{
	long		i = list_find(l, s);

	if (i < 0)
		return;
	free(l->items[i]);
	l->items[i] = l->items[--l->n];
}

static void
list_free(StrList *l)
{
	size_t		i;

	for (i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
}

/*
 * The model's normalisation: split at every '/', drop empty and "."
 * components, refuse "..", join the rest with single slashes.
 */
static RefPath
ref_path(const char *path)
{
	RefPath		r = {false, false, false, NULL};
	size_t		len;
	char	   *copy;
	char	   *out;
	char	   *comp;
	char	   *next;
	char	   *last = NULL;
	size_t		olen = 0;
	int			ncomp = 0;

	if (path == NULL || path[0] == '\0' || path[0] == '/')
		return r;
	len = strlen(path);
	if (len > TAR_CHECK_PATH_MAX)
		return r;
	copy = xstrndup(path, len);
	out = xmalloc(len + 2);
	out[0] = '\0';
	for (comp = copy; comp != NULL; comp = next)
	{
		next = strchr(comp, '/');
		if (next != NULL)
			*next++ = '\0';
		last = comp;
		if (strcmp(comp, "") == 0 || strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0)
			goto unsafe;
		if (++ncomp > TAR_CHECK_COMPONENTS_MAX)
			goto unsafe;
		if (olen > 0)
			out[olen++] = '/';
		memcpy(out + olen, comp, strlen(comp) + 1);
		olen += strlen(comp);
	}
	/* the last component empty ("a/") or "." ("a/."): a directory's name */
	r.dir_syntax = strcmp(last, "") == 0 || strcmp(last, ".") == 0;
	if (ncomp == 0)
	{
		strcpy(out, ".");
		r.root = true;
	}
	free(copy);
	r.safe = true;
	r.norm = out;
	return r;

unsafe:
	free(copy);
	free(out);
	return r;
}

/* Does norm lie under one of the symlinks stored so far? */
static bool
ref_through_symlink(const Model *m, const char *norm)
{
	size_t		i;

	for (i = 0; i < m->symlinks.n; i++)
	{
		const char *s = m->symlinks.items[i];
		size_t		sl = strlen(s);

		if (strncmp(norm, s, sl) == 0 && norm[sl] == '/')
			return true;
	}
	return false;
}

/* The model's decision for one entry, and its state updated on acceptance. */
static bool
ref_entry(Model *m, int type, const char *path, const char *link)
{
	RefPath		p;
	RefPath		l = {false, false, false, NULL};
	bool		accept = false;

	if (type != TAR_ENTRY_FILE && type != TAR_ENTRY_DIR &&
		type != TAR_ENTRY_SYMLINK && type != TAR_ENTRY_HARDLINK)
		return false;
	p = ref_path(path);
	if (!p.safe)
		return false;
	if (p.root)
		accept = type == TAR_ENTRY_DIR;
	else if (p.dir_syntax && type != TAR_ENTRY_DIR)
		accept = false;
	else if (ref_through_symlink(m, p.norm))
		accept = false;
	else if (type == TAR_ENTRY_HARDLINK)
	{
		l = ref_path(link);
		accept = l.safe && !l.root && !l.dir_syntax &&
			!ref_through_symlink(m, l.norm) &&
			list_find(&m->symlinks, l.norm) < 0 &&
			list_find(&m->files, l.norm) >= 0;
	}
	else
		accept = true;

	if (accept && !p.root)
	{
		switch (type)
		{
			case TAR_ENTRY_FILE:
			case TAR_ENTRY_HARDLINK:
				list_add(&m->files, p.norm);
				break;
			case TAR_ENTRY_SYMLINK:
				list_add(&m->symlinks, p.norm);
				list_remove(&m->files, p.norm);
				break;
			case TAR_ENTRY_DIR:
				list_remove(&m->files, p.norm);
				break;
		}
	}
	free(p.norm);
	free(l.norm);
	return accept;
}

/* The next NUL-terminated string of the input, copied to its own allocation. */
static char *
take_string(const uint8_t **data, const uint8_t *end)
{
	const uint8_t *nul = memchr(*data, '\0', end - *data);
	size_t		n = nul ? (size_t) (nul - *data) : (size_t) (end - *data);
	char	   *s = xstrndup((const char *) *data, n);

	*data += n + (nul ? 1 : 0);
	return s;
}

/* s repeated up to exactly n bytes, in a new allocation; s is freed. */
static char *
stretch(char *s, size_t n)
{
	size_t		len = strlen(s);
	char	   *r;
	size_t		i;

	if (len == 0)
		return s;
	r = xmalloc(n + 1);
	for (i = 0; i < n; i += len)
		memcpy(r + i, s, n - i < len ? n - i : len);
	r[n] = '\0';
	free(s);
	return r;
}

/* tar_check_normalise() against the model, into a buffer of the size chosen. */
static void
check_normalise(const char *path, int size_sel)
{
	RefPath		r = ref_path(path);
	size_t		len = strlen(path);
	size_t		outlen;
	char	   *out;
	bool		ok;

	switch (size_sel)
	{
		case 0:
			outlen = len + 1;
			break;
		case 1:
			outlen = len / 2;
			break;
		case 2:
			outlen = 1;
			break;
		default:
			outlen = 0;
			break;
	}
	/* exactly outlen bytes, so that ASan sees any write past them */
	out = outlen ? xmalloc(outlen) : NULL;
	ok = tar_check_normalise(path, out, outlen);
	if (ok)
	{
		if (!r.safe)
			fail("tar_check_normalise accepts a path the model refuses", -1, path, out, NULL);
		if (strcmp(out, r.norm) != 0)
			fail("tar_check_normalise differs from the model", -1, path, out, NULL);
	}
	else
	{
		if (outlen > 0 && out[0] != '\0')
			fail("tar_check_normalise failed but left a name", -1, path, out, NULL);
		if (r.safe && strlen(r.norm) + 1 <= outlen)
			fail("tar_check_normalise refuses a path the model accepts", -1, path, NULL, NULL);
	}
	free(out);
	free(r.norm);
}

/* The invariants the restore relies on, checked on an accepted entry. */
static void
check_accepted(const Model *m, int type, const char *path, const char *link)
{
	char		norm[TAR_CHECK_PATH_MAX + 1];
	const char *c;

	if (!tar_check_normalise(path, norm, sizeof(norm)))
		fail("accepted entry whose path does not normalise", type, path, link, NULL);
	if (norm[0] == '/')
		fail("accepted entry with an absolute path", type, path, link, NULL);
	for (c = norm; c != NULL; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL)
	{
		if (c[0] == '.' && c[1] == '.' && (c[2] == '/' || c[2] == '\0'))
			fail("accepted entry with a '..' component", type, path, link, NULL);
	}
	if (ref_through_symlink(m, norm))
		fail("accepted entry through an earlier symlink", type, path, link, NULL);
	if (type == TAR_ENTRY_HARDLINK)
	{
		if (link == NULL || !tar_check_normalise(link, norm, sizeof(norm)))
			fail("accepted hard link whose target does not normalise", type, path, link, NULL);
		if (ref_through_symlink(m, norm))
			fail("accepted hard link whose target passes through an earlier symlink", type, path, link, NULL);
		if (list_find(&m->files, norm) < 0)
			fail("accepted hard link to a path that is not a regular file", type, path, link, NULL);
	}
	if (type != TAR_ENTRY_FILE && type != TAR_ENTRY_DIR &&
		type != TAR_ENTRY_SYMLINK && type != TAR_ENTRY_HARDLINK)
		fail("accepted entry of a forbidden type", type, path, link, NULL);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* TAR_CHECK_FUZZ_VERBOSE=1 prints each entry and the decision: reading a crash. */
static bool
verbose(void)
{
	static int	v = -1;

	if (v < 0)
		v = getenv("TAR_CHECK_FUZZ_VERBOSE") != NULL;
	return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size;
	TarCheck   *tc = tar_check_create();
	Model		m = {{NULL, 0, 0}, {NULL, 0, 0}};

	if (tc == NULL)
		abort();
	while (data < end)
	{
		uint8_t		tb = *data++;
		int			type = (tb & 7) == 7 ? 42 : (tb & 7);
		size_t		stretch_to = 0;
		char	   *path;
		char	   *link;
		const char *pass_link = NULL;
		const char *reason;
		bool		want;

		if ((tb & 0xc0) && end - data >= 2)
		{
			/* a little past the limit is enough: longer paths only cost time */
			stretch_to = (data[0] | (size_t) data[1] << 8) % (TAR_CHECK_PATH_MAX + 256);
			data += 2;
		}
		path = take_string(&data, end);
		link = take_string(&data, end);
		if (tb & 0x40)
			path = stretch(path, stretch_to);
		if (tb & 0x80)
			link = stretch(link, stretch_to);
		if ((type == TAR_ENTRY_SYMLINK || type == TAR_ENTRY_HARDLINK) && !(tb & 8))
			pass_link = link;

		check_normalise(path, (tb >> 4) & 3);

		/* invariants first: they are about the state before this entry */
		reason = tar_check_entry(tc, path, (TarEntryType) type, pass_link);
		if (reason != NULL && strcmp(reason, "out of memory") == 0)
		{
			free(path);
			free(link);
			break;
		}
		if (reason == NULL)
			check_accepted(&m, type, path, pass_link);
		if (verbose())
		{
			fprintf(stderr, "type %d", type);
			print_str("path", path);
			print_str("link", pass_link);
			fprintf(stderr, ": %s\n", reason ? reason : "accepted");
		}
		if (reason != NULL && reason[0] == '\0')
			fail("empty reason", type, path, pass_link, reason);
		want = ref_entry(&m, type, path, pass_link);
		if (want != (reason == NULL))
			fail(want ? "checker rejects what the model accepts"
				 : "checker accepts what the model rejects",
				 type, path, pass_link, reason);
		free(path);
		free(link);
	}
	tar_check_free(tc);
	list_free(&m.symlinks);
	list_free(&m.files);
	return 0;
}
