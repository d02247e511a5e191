/*
 * tar_check.c: the safety check for each entry of a restore archive (see
 * tar_check.h for why the archive is untrusted).
 *
 * Paths are compared in a normalised form: "./" and "." components and
 * repeated or trailing slashes dropped, so "./s//x" and "s/x" are one path
 * and a rule cannot be side-stepped by spelling.  ".." is never normalised
 * away but rejected: resolving it would need to know what is a symlink on
 * disk, and an archive of a home directory has no use for it.
 *
 * The only state kept is a hash set of the normalised paths that matter to
 * later entries: the ones ever stored as a symlink (nothing may pass through
 * them afterwards, even once replaced: what is on disk at that point depends
 * on how the extractor replaced it, and staying out of it is simpler than
 * knowing) and the ones currently a regular file (the only valid hard link
 * targets).  Directories are not recorded; they only clear the "regular
 * file" mark of a path they replace.
 *
 * The archive is hostile, so the work per entry is O(path length): the hash
 * of every prefix of a path is taken in one pass (the hash is incremental),
 * and the hash is SipHash keyed at random per archive, so that no archive can
 * be built to make every path land in the same bucket.  Memory grows with the
 * number of entries and their path lengths only, and both paths of an entry
 * are bounded by TAR_CHECK_PATH_MAX.
 *
 * Plain C99, malloc and free: this file is also built outside PostgreSQL
 * (test/fuzz/), so it must not include postgres.h.
 */
#include "tar_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Reasons, each a single static string so that one can be told from another
 * by address (a hard link target's reason is reworded from its path's).
 */
static const char r_empty[] = "empty path";
static const char r_absolute[] = "absolute path";
static const char r_dotdot[] = "'..' in path";
static const char r_too_long[] = "path too long";
static const char r_too_many[] = "too many path components";
static const char r_no_room[] = "normalised path does not fit";
static const char r_root[] = "the archive's root directory as a non-directory";
static const char r_dir_syntax[] = "directory path (trailing '/' or '/.') for a non-directory";
static const char r_through[] = "path passes through the symlink stored earlier";
static const char r_device[] = "device file";
static const char r_fifo[] = "fifo";
static const char r_socket[] = "socket";
static const char r_type[] = "unknown entry type";
static const char r_link_missing[] = "hard link without a target";
static const char r_link_outside[] = "hard link target outside the archive";
static const char r_link_too_long[] = "hard link target too long";
static const char r_link_through[] = "hard link target passes through the symlink stored earlier";
static const char r_link_not_file[] = "hard link target is not a regular file stored earlier";
static const char r_link_symlink[] = "hard link target was a symlink earlier in the archive";
static const char r_oom[] = "out of memory";

/* PathEntry.flags */
#define PATH_SYMLINK	0x01	/* stored as a symlink at some point: sticky */
#define PATH_FILE		0x02	/* a regular file now: a hard link may name it */

typedef struct PathEntry
{
	uint64_t	hash;
	size_t		len;
	unsigned char flags;
	char		path[];			/* normalised, NUL-terminated */
} PathEntry;

/* Incremental SipHash-2-4, fed one byte at a time. */
typedef struct SipState
{
	uint64_t	v0,
				v1,
				v2,
				v3;
	uint64_t	tail;			/* bytes not yet compressed, little-endian */
	size_t		len;			/* bytes fed so far */
} SipState;

struct TarCheck
{
	uint64_t	k0,				/* SipHash key, random per archive */
				k1;
	PathEntry **slots;			/* open addressing, linear probing */
	size_t		capacity;		/* a power of two, at most half full */
	size_t		count;
	size_t		nsymlinks;		/* no prefix lookups until the first */
	char		path[TAR_CHECK_PATH_MAX + 1];	/* the entry's path, normalised */
	char		link[TAR_CHECK_PATH_MAX + 1];	/* its hard link target, normalised */
};

/* What normalising learnt about a path, beyond its normalised form. */
typedef struct NormPath
{
	size_t		len;			/* of the normalised form */
	bool		root;			/* "." (or "./", ".//."): the archive's top */
	bool		dir_syntax;		/* ends in "/" or "/.": names a directory */
} NormPath;

#define INITIAL_CAPACITY 64

#define ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND(s) \
	do { \
		(s)->v0 += (s)->v1; (s)->v1 = ROTL((s)->v1, 13); (s)->v1 ^= (s)->v0; \
		(s)->v0 = ROTL((s)->v0, 32); \
		(s)->v2 += (s)->v3; (s)->v3 = ROTL((s)->v3, 16); (s)->v3 ^= (s)->v2; \
		(s)->v0 += (s)->v3; (s)->v3 = ROTL((s)->v3, 21); (s)->v3 ^= (s)->v0; \
		(s)->v2 += (s)->v1; (s)->v1 = ROTL((s)->v1, 17); (s)->v1 ^= (s)->v2; \
		(s)->v2 = ROTL((s)->v2, 32); \
	} while (0)

static void
sip_init(SipState *s, uint64_t k0, uint64_t k1)
{
	s->v0 = k0 ^ UINT64_C(0x736f6d6570736575);
	s->v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
	s->v2 = k0 ^ UINT64_C(0x6c7967656e657261);
	s->v3 = k1 ^ UINT64_C(0x7465646279746573);
	s->tail = 0;
	s->len = 0;
}

static void
sip_compress(SipState *s, uint64_t m)
{
	s->v3 ^= m;
	SIPROUND(s);
	SIPROUND(s);
	s->v0 ^= m;
}

static inline void
sip_byte(SipState *s, unsigned char c)
{
	s->tail |= (uint64_t) c << (8 * (s->len & 7));
	s->len++;
	if ((s->len & 7) == 0)
	{
		sip_compress(s, s->tail);
		s->tail = 0;
	}
}

/*
 * The hash of the bytes fed so far.  s is left as it was, so the caller can
 * go on feeding bytes: that is what gives every prefix's hash in one pass.
 */
static uint64_t
sip_final(const SipState *s)
{
	SipState	f = *s;

	sip_compress(&f, f.tail | ((uint64_t) (f.len & 0xff) << 56));
	f.v2 ^= 0xff;
	SIPROUND(&f);
	SIPROUND(&f);
	SIPROUND(&f);
	SIPROUND(&f);
	return f.v0 ^ f.v1 ^ f.v2 ^ f.v3;
}

/*
 * A random key, so that the bucket of a path cannot be known in advance.
 * Reading /dev/urandom is all this needs on the systems wsctl runs on; the
 * fallback only keeps the checker working (and correct: the key never
 * changes a decision, only where paths are stored) without it.
 */
static void
random_key(TarCheck *tc)
{
	unsigned char buf[16];
	FILE	   *f;
	bool		ok = false;

	f = fopen("/dev/urandom", "rb");
	if (f != NULL)
	{
		/* unbuffered: 16 bytes, not a stdio buffer's worth */
		setvbuf(f, NULL, _IONBF, 0);
		ok = fread(buf, 1, sizeof(buf), f) == sizeof(buf);
		fclose(f);
	}
	if (ok)
	{
		memcpy(&tc->k0, buf, 8);
		memcpy(&tc->k1, buf + 8, 8);
	}
	else
	{
		tc->k0 = (uint64_t) time(NULL) ^ (uint64_t) (uintptr_t) tc;
		tc->k1 = (uint64_t) clock() ^ (uint64_t) (uintptr_t) buf;
	}
}

TarCheck *
tar_check_create(void)
{
	TarCheck   *tc = malloc(sizeof(TarCheck));

	if (tc == NULL)
		return NULL;
	tc->capacity = INITIAL_CAPACITY;
	tc->count = 0;
	tc->nsymlinks = 0;
	tc->slots = calloc(tc->capacity, sizeof(PathEntry *));
	if (tc->slots == NULL)
	{
		free(tc);
		return NULL;
	}
	random_key(tc);
	return tc;
}

void
tar_check_free(TarCheck *tc)
{
	size_t		i;

	if (tc == NULL)
		return;
	for (i = 0; i < tc->capacity; i++)
		free(tc->slots[i]);
	free(tc->slots);
	free(tc);
}

static PathEntry *
lookup(const TarCheck *tc, uint64_t hash, const char *path, size_t len)
{
	size_t		mask = tc->capacity - 1;
	size_t		i;
	PathEntry  *e;

	for (i = (size_t) hash & mask; (e = tc->slots[i]) != NULL; i = (i + 1) & mask)
	{
		if (e->hash == hash && e->len == len && memcmp(e->path, path, len) == 0)
			return e;
	}
	return NULL;
}

/* Doubles the table; false (and the table as it was) when out of memory. */
static bool
grow(TarCheck *tc)
{
	size_t		newcap;
	PathEntry **slots;
	size_t		i;

	if (tc->capacity > SIZE_MAX / 2 / sizeof(PathEntry *))
		return false;
	newcap = tc->capacity * 2;
	slots = calloc(newcap, sizeof(PathEntry *));
	if (slots == NULL)
		return false;
	for (i = 0; i < tc->capacity; i++)
	{
		PathEntry  *e = tc->slots[i];
		size_t		j;

		if (e == NULL)
			continue;
		for (j = (size_t) e->hash & (newcap - 1); slots[j] != NULL; j = (j + 1) & (newcap - 1))
			;
		slots[j] = e;
	}
	free(tc->slots);
	tc->slots = slots;
	tc->capacity = newcap;
	return true;
}

/* The entry for path, added (with no flags) if missing; NULL when out of memory. */
static PathEntry *
lookup_or_add(TarCheck *tc, uint64_t hash, const char *path, size_t len)
{
	PathEntry  *e = lookup(tc, hash, path, len);
	size_t		i;

	if (e != NULL)
		return e;
	/* at most half full keeps probe sequences short */
	if ((tc->count + 1) > tc->capacity / 2 && !grow(tc))
		return NULL;
	e = malloc(offsetof(PathEntry, path) + len + 1);
	if (e == NULL)
		return NULL;
	e->hash = hash;
	e->len = len;
	e->flags = 0;
	memcpy(e->path, path, len);
	e->path[len] = '\0';
	for (i = (size_t) hash & (tc->capacity - 1); tc->slots[i] != NULL; i = (i + 1) & (tc->capacity - 1))
		;
	tc->slots[i] = e;
	tc->count++;
	return e;
}

/*
 * Normalises path into out (outlen bytes).  NULL on success, else the reason.
 * The normalised form is never longer than path: only separators and "."
 * components are dropped, so a buffer of TAR_CHECK_PATH_MAX + 1 always fits.
 */
static const char *
normalise(const char *path, char *out, size_t outlen, NormPath *np)
{
	size_t		rawlen;
	size_t		i;
	size_t		o = 0;
	int			ncomp = 0;

	np->len = 0;
	np->root = false;
	np->dir_syntax = false;
	if (path == NULL || path[0] == '\0')
		return r_empty;
	if (path[0] == '/')
		return r_absolute;
	/* bounded: a hostile path is not walked past the limit */
	for (rawlen = 0; path[rawlen] != '\0'; rawlen++)
	{
		if (rawlen >= TAR_CHECK_PATH_MAX)
			return r_too_long;
	}

	i = 0;
	while (i < rawlen)
	{
		size_t		start;
		size_t		clen;

		if (path[i] == '/')
		{
			i++;
			continue;
		}
		start = i;
		while (i < rawlen && path[i] != '/')
			i++;
		clen = i - start;
		if (clen == 1 && path[start] == '.')
			continue;
		if (clen == 2 && path[start] == '.' && path[start + 1] == '.')
			return r_dotdot;
		if (++ncomp > TAR_CHECK_COMPONENTS_MAX)
			return r_too_many;
		if (o + (o > 0) + clen + 1 > outlen)
			return r_no_room;
		if (o > 0)
			out[o++] = '/';
		memcpy(out + o, path + start, clen);
		o += clen;
	}

	if (ncomp == 0)
	{
		if (outlen < 2)
			return r_no_room;
		out[0] = '.';
		o = 1;
		np->root = true;
	}
	out[o] = '\0';
	np->len = o;
	/* "a/" and "a/." can only be a directory */
	np->dir_syntax = path[rawlen - 1] == '/' ||
		(path[rawlen - 1] == '.' && (rawlen == 1 || path[rawlen - 2] == '/'));
	return NULL;
}

bool
tar_check_normalise(const char *path, char *out, size_t outlen)
{
	NormPath	np;

	if (normalise(path, out, outlen, &np) != NULL)
	{
		if (outlen > 0)
			out[0] = '\0';
		return false;
	}
	return true;
}

/*
 * Hashes a normalised path (not the root) in one pass; true if one of its
 * proper prefixes, ending at a '/', was ever stored as a symlink.  *hash is
 * the whole path's hash.
 */
static bool
passes_through_symlink(const TarCheck *tc, const char *path, size_t len, uint64_t *hash)
{
	SipState	s;
	size_t		i;

	sip_init(&s, tc->k0, tc->k1);
	for (i = 0; i < len; i++)
	{
		if (path[i] == '/' && tc->nsymlinks > 0)
		{
			PathEntry  *e = lookup(tc, sip_final(&s), path, i);

			if (e != NULL && (e->flags & PATH_SYMLINK))
				return true;
		}
		sip_byte(&s, (unsigned char) path[i]);
	}
	*hash = sip_final(&s);
	return false;
}

/*
 * A hard link's target: an archive path like any other, which must be a
 * regular file stored earlier.  Its reasons say "target", so the log tells
 * which of the two paths was wrong.
 */
static const char *
check_hardlink_target(TarCheck *tc, const char *link)
{
	NormPath	nl;
	const char *reason;
	uint64_t	hash = 0;
	PathEntry  *e;

	reason = normalise(link, tc->link, sizeof(tc->link), &nl);
	if (reason == r_empty)
		return r_link_missing;
	if (reason == r_absolute || reason == r_dotdot)
		return r_link_outside;
	if (reason != NULL)
		return r_link_too_long;
	if (nl.root || nl.dir_syntax)
		return r_link_not_file;
	if (passes_through_symlink(tc, tc->link, nl.len, &hash))
		return r_link_through;
	e = lookup(tc, hash, tc->link, nl.len);

	/*
	 * A path once a symlink is refused even if a file replaced it: were the
	 * symlink still there, the link would copy it to a place no rule knows
	 * to be a symlink, and entries could then pass through that.
	 */
	if (e != NULL && (e->flags & PATH_SYMLINK))
		return r_link_symlink;
	if (e == NULL || !(e->flags & PATH_FILE))
		return r_link_not_file;
	return NULL;
}

const char *
tar_check_entry(TarCheck *tc, const char *path, TarEntryType type, const char *link)
{
	NormPath	np;
	const char *reason;
	uint64_t	hash = 0;
	PathEntry  *e;

	switch (type)
	{
		case TAR_ENTRY_FILE:
		case TAR_ENTRY_DIR:
		case TAR_ENTRY_SYMLINK:
		case TAR_ENTRY_HARDLINK:
			break;
		case TAR_ENTRY_DEVICE:
			return r_device;
		case TAR_ENTRY_FIFO:
			return r_fifo;
		case TAR_ENTRY_SOCKET:
			return r_socket;
		default:
			return r_type;
	}

	reason = normalise(path, tc->path, sizeof(tc->path), &np);
	if (reason != NULL)
		return reason;
	if (np.root)
		return type == TAR_ENTRY_DIR ? NULL : r_root;
	if (np.dir_syntax && type != TAR_ENTRY_DIR)
		return r_dir_syntax;
	if (passes_through_symlink(tc, tc->path, np.len, &hash))
		return r_through;
	if (type == TAR_ENTRY_HARDLINK)
	{
		reason = check_hardlink_target(tc, link);
		if (reason != NULL)
			return reason;
	}

	/* Safe: record what later entries must know.  Nothing above changed tc. */
	switch (type)
	{
		case TAR_ENTRY_FILE:
		case TAR_ENTRY_HARDLINK:
			e = lookup_or_add(tc, hash, tc->path, np.len);
			if (e == NULL)
				return r_oom;
			e->flags |= PATH_FILE;
			break;
		case TAR_ENTRY_SYMLINK:
			e = lookup_or_add(tc, hash, tc->path, np.len);
			if (e == NULL)
				return r_oom;
			if (!(e->flags & PATH_SYMLINK))
				tc->nsymlinks++;
			e->flags = (e->flags | PATH_SYMLINK) & ~PATH_FILE;
			break;
		case TAR_ENTRY_DIR:
			e = lookup(tc, hash, tc->path, np.len);
			if (e != NULL)
				e->flags &= ~PATH_FILE;
			break;
		default:
			break;
	}
	return NULL;
}
