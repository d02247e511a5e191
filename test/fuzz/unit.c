/*
 * unit.c: explicit cases for src/backends/tar_check.c, printed as TAP.
 *
 * The fuzzer (tar_check_fuzz.c) looks for inputs no one thought of; these
 * are the ones someone did think of: each hostile entry a restore archive
 * could hold, each ordinary entry a home directory does hold, and the exact
 * reason given, since the reason is what an operator reads in the log.
 *
 * Built and run by tar_check.t; on its own:
 *	gcc -Wall -Wextra -Werror -I src/backends -o unit test/fuzz/unit.c src/backends/tar_check.c
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tar_check.h"

static int	tests = 0;
static int	failures = 0;

static void
ok(bool cond, const char *name)
{
	tests++;
	if (!cond)
		failures++;
	printf("%s %d - %s\n", cond ? "ok" : "not ok", tests, name);
}

/* One entry, with the reason expected (NULL: accepted). */
static void
expect(TarCheck *tc, TarEntryType type, const char *path, const char *link,
	   const char *want, const char *name)
{
	const char *got = tar_check_entry(tc, path, type, link);
	bool		same = (got == NULL && want == NULL) ||
		(got != NULL && want != NULL && strcmp(got, want) == 0);

	ok(same, name);
	if (!same)
		printf("#   got: %s\n#   expected: %s\n", got ? got : "(accepted)",
			   want ? want : "(accepted)");
}

static void
expect_norm(const char *path, const char *want, const char *name)
{
	char		out[TAR_CHECK_PATH_MAX + 1];
	bool		r = tar_check_normalise(path, out, sizeof(out));
	bool		same = want == NULL ? (!r && out[0] == '\0') : (r && strcmp(out, want) == 0);

	ok(same, name);
	if (!same)
		printf("#   got: %s '%s'\n#   expected: %s\n", r ? "true" : "false", out,
			   want ? want : "false");
}

static TarCheck *
fresh(void)
{
	TarCheck   *tc = tar_check_create();

	if (tc == NULL)
	{
		printf("Bail out! tar_check_create: out of memory\n");
		exit(1);
	}
	return tc;
}

/* A path of n components "a/a/.../a" (into buf). */
static char *
components(char *buf, int n)
{
	int			i;
	char	   *p = buf;

	for (i = 0; i < n; i++)
	{
		if (i > 0)
			*p++ = '/';
		*p++ = 'a';
	}
	*p = '\0';
	return buf;
}

static const char through[] = "path passes through the symlink stored earlier";
static const char dotdot[] = "'..' in path";
static const char absolute[] = "absolute path";
static const char outside[] = "hard link target outside the archive";
static const char not_file[] = "hard link target is not a regular file stored earlier";

int
main(void)
{
	TarCheck   *tc;
	char	   *big;
	char		small[4];
	int			i;

	big = malloc(TAR_CHECK_PATH_MAX + 2);
	if (big == NULL)
		return 1;

	/* Paths outside the volume. */
	tc = fresh();
	expect(tc, TAR_ENTRY_FILE, "../escape", NULL, dotdot, "../escape is rejected");
	expect(tc, TAR_ENTRY_FILE, "a/../../b", NULL, dotdot, "a/../../b is rejected");
	expect(tc, TAR_ENTRY_FILE, "a/..", NULL, dotdot, "a/.. is rejected");
	expect(tc, TAR_ENTRY_DIR, "..", NULL, dotdot, ".. as a directory is rejected");
	expect(tc, TAR_ENTRY_FILE, "./../x", NULL, dotdot, "./../x is rejected");
	expect(tc, TAR_ENTRY_FILE, "/etc/x", NULL, absolute, "/etc/x is rejected");
	expect(tc, TAR_ENTRY_DIR, "/", NULL, absolute, "/ is rejected");
	expect(tc, TAR_ENTRY_FILE, "//etc/x", NULL, absolute, "//etc/x is rejected");
	expect(tc, TAR_ENTRY_FILE, "", NULL, "empty path", "an empty path is rejected");
	expect(tc, TAR_ENTRY_FILE, NULL, NULL, "empty path", "a NULL path is rejected");
	tar_check_free(tc);

	/* Through a symlink stored earlier. */
	tc = fresh();
	expect(tc, TAR_ENTRY_SYMLINK, "s", "/", NULL, "symlink s -> / is stored");
	expect(tc, TAR_ENTRY_FILE, "s/etc/x", NULL, through, "then s/etc/x is rejected");
	expect(tc, TAR_ENTRY_FILE, "./s/x", NULL, through, "  and ./s/x");
	expect(tc, TAR_ENTRY_FILE, "s//x", NULL, through, "  and s//x");
	expect(tc, TAR_ENTRY_FILE, "./s/./x", NULL, through, "  and ./s/./x");
	expect(tc, TAR_ENTRY_DIR, "s/", NULL, NULL, "  but a directory s/ replacing it is allowed");
	expect(tc, TAR_ENTRY_FILE, "s/x", NULL, through, "  and s/x is still rejected after that");
	expect(tc, TAR_ENTRY_SYMLINK, "s/t", "x", through, "  as is a symlink s/t");
	expect(tc, TAR_ENTRY_FILE, "s", NULL, NULL, "a file s replacing the symlink is allowed");
	expect(tc, TAR_ENTRY_FILE, "sx/y", NULL, NULL, "sx/y is not under s");
	expect(tc, TAR_ENTRY_SYMLINK, "d/e/l", "../../..", NULL, "a deep symlink d/e/l is stored");
	expect(tc, TAR_ENTRY_FILE, "d/e/l/x", NULL, through, "then d/e/l/x is rejected");
	expect(tc, TAR_ENTRY_FILE, "d/e/lx", NULL, NULL, "  d/e/lx is not");
	expect(tc, TAR_ENTRY_FILE, "d/e/x", NULL, NULL, "  nor d/e/x");
	tar_check_free(tc);

	/* Hard links. */
	tc = fresh();
	expect(tc, TAR_ENTRY_HARDLINK, "h", "/etc/passwd", outside, "hard link to /etc/passwd is rejected");
	expect(tc, TAR_ENTRY_HARDLINK, "h", "../x", outside, "hard link to ../x is rejected");
	expect(tc, TAR_ENTRY_HARDLINK, "h", "never", not_file, "hard link to a path never seen is rejected");
	expect(tc, TAR_ENTRY_HARDLINK, "h", NULL, "hard link without a target", "hard link without a target is rejected");
	expect(tc, TAR_ENTRY_HARDLINK, "h", "", "hard link without a target", "  also when empty");
	expect(tc, TAR_ENTRY_HARDLINK, "/h", "f", absolute, "hard link at an absolute path is rejected");
	expect(tc, TAR_ENTRY_FILE, "./f", NULL, NULL, "file ./f is stored");
	expect(tc, TAR_ENTRY_HARDLINK, "h", "f", NULL, "a hard link to it (as f) is allowed");
	expect(tc, TAR_ENTRY_HARDLINK, "h2", "./h", NULL, "a hard link to that hard link (as ./h) is allowed");
	expect(tc, TAR_ENTRY_HARDLINK, "h3", "f/", not_file, "a hard link to f/ is rejected");
	expect(tc, TAR_ENTRY_DIR, "d", NULL, NULL, "directory d is stored");
	expect(tc, TAR_ENTRY_HARDLINK, "h4", "d", not_file, "a hard link to a directory is rejected");
	expect(tc, TAR_ENTRY_HARDLINK, "h4", ".", not_file, "a hard link to . is rejected");
	expect(tc, TAR_ENTRY_FILE, "d/f", NULL, NULL, "file d/f is stored");
	expect(tc, TAR_ENTRY_SYMLINK, "d", "/etc", NULL, "then d is replaced by a symlink to /etc");
	expect(tc, TAR_ENTRY_HARDLINK, "h5", "d/f", "hard link target passes through the symlink stored earlier",
		   "a hard link to d/f is now rejected");
	expect(tc, TAR_ENTRY_DIR, "f", NULL, NULL, "directory f replaces file f");
	expect(tc, TAR_ENTRY_HARDLINK, "h6", "f", not_file, "a hard link to f is now rejected");
	expect(tc, TAR_ENTRY_SYMLINK, "h", "/etc/shadow", NULL, "symlink h replaces the hard link h");
	expect(tc, TAR_ENTRY_FILE, "h", NULL, NULL, "and file h replaces the symlink");
	expect(tc, TAR_ENTRY_HARDLINK, "h7", "h", "hard link target was a symlink earlier in the archive",
		   "a hard link to a path once a symlink is rejected");
	tar_check_free(tc);

	/* Entry types. */
	tc = fresh();
	expect(tc, TAR_ENTRY_DEVICE, "dev/sda", NULL, "device file", "a device file is rejected");
	expect(tc, TAR_ENTRY_FIFO, "p", NULL, "fifo", "a fifo is rejected");
	expect(tc, TAR_ENTRY_SOCKET, "sock", NULL, "socket", "a socket is rejected");
	expect(tc, (TarEntryType) 42, "x", NULL, "unknown entry type", "an unknown type is rejected");
	tar_check_free(tc);

	/* The root and directory syntax. */
	tc = fresh();
	expect(tc, TAR_ENTRY_DIR, ".", NULL, NULL, ". as a directory is allowed");
	expect(tc, TAR_ENTRY_DIR, "./", NULL, NULL, "./ as a directory is allowed");
	expect(tc, TAR_ENTRY_FILE, ".", NULL, "the archive's root directory as a non-directory", ". as a file is rejected");
	expect(tc, TAR_ENTRY_SYMLINK, "./", "/", "the archive's root directory as a non-directory",
		   "./ as a symlink is rejected");
	expect(tc, TAR_ENTRY_DIR, "d/", NULL, NULL, "d/ as a directory is allowed");
	expect(tc, TAR_ENTRY_FILE, "f/", NULL, "directory path (trailing '/' or '/.') for a non-directory",
		   "f/ as a file is rejected");
	expect(tc, TAR_ENTRY_SYMLINK, "l/.", "/", "directory path (trailing '/' or '/.') for a non-directory",
		   "l/. as a symlink is rejected");
	expect(tc, TAR_ENTRY_FILE, "l/x", NULL, NULL, "  and not recorded: l/x is allowed after it");
	tar_check_free(tc);

	/* A home directory's ordinary entries. */
	tc = fresh();
	expect(tc, TAR_ENTRY_DIR, "./", NULL, NULL, "./ (the home directory)");
	expect(tc, TAR_ENTRY_FILE, "./a", NULL, NULL, "./a");
	expect(tc, TAR_ENTRY_DIR, "./.config/", NULL, NULL, "./.config/");
	expect(tc, TAR_ENTRY_FILE, "a//b", NULL, NULL, "a//b");
	expect(tc, TAR_ENTRY_FILE, "a/./b", NULL, NULL, "a/./b");
	expect(tc, TAR_ENTRY_FILE, "...", NULL, NULL, "... is a name, not ..");
	expect(tc, TAR_ENTRY_FILE, "..a/b..", NULL, NULL, "..a/b.. are names too");
	expect(tc, TAR_ENTRY_SYMLINK, "bin", "/usr/bin", NULL, "symlink bin -> /usr/bin (a target is data)");
	expect(tc, TAR_ENTRY_SYMLINK, "up", "../../..", NULL, "symlink up -> ../../..");
	expect(tc, TAR_ENTRY_SYMLINK, "bin", "/bin", NULL, "symlink bin again, replacing itself");
	expect(tc, TAR_ENTRY_FILE, ".config/x", NULL, NULL, ".config/x");
	expect(tc, TAR_ENTRY_HARDLINK, "./.config/y", "./.config/x", NULL, "hard link .config/y -> .config/x");
	tar_check_free(tc);

	/* A rejected entry leaves the state as it was. */
	tc = fresh();
	expect(tc, TAR_ENTRY_SYMLINK, "s/", "/", "directory path (trailing '/' or '/.') for a non-directory",
		   "symlink s/ is rejected");
	expect(tc, TAR_ENTRY_FILE, "s/x", NULL, NULL, "  so s/x is allowed");
	expect(tc, TAR_ENTRY_FILE, "/f", NULL, absolute, "file /f is rejected");
	expect(tc, TAR_ENTRY_HARDLINK, "g", "f", not_file, "  so a hard link to f is rejected");
	tar_check_free(tc);

	/* Limits. */
	tc = fresh();
	memset(big, 'a', TAR_CHECK_PATH_MAX);
	big[TAR_CHECK_PATH_MAX] = '\0';
	expect(tc, TAR_ENTRY_FILE, big, NULL, NULL, "a path of 4096 bytes is allowed");
	memset(big, 'a', TAR_CHECK_PATH_MAX + 1);
	big[TAR_CHECK_PATH_MAX + 1] = '\0';
	expect(tc, TAR_ENTRY_FILE, big, NULL, "path too long", "a path of 4097 bytes is rejected");
	expect(tc, TAR_ENTRY_HARDLINK, "h", big, "hard link target too long", "  as a hard link target too");
	expect(tc, TAR_ENTRY_FILE, components(big, 256), NULL, NULL, "256 components are allowed");
	expect(tc, TAR_ENTRY_FILE, components(big, 257), NULL, "too many path components",
		   "257 components are rejected");
	tar_check_free(tc);

	/* Normalised names. */
	expect_norm("./a//b/", "a/b", "normalise ./a//b/ -> a/b");
	expect_norm(".", ".", "normalise . -> .");
	expect_norm(".//./", ".", "normalise .//./ -> .");
	expect_norm("a/./b/.", "a/b", "normalise a/./b/. -> a/b");
	expect_norm("/etc", NULL, "normalise /etc fails");
	expect_norm("a/../b", NULL, "normalise a/../b fails");
	expect_norm("", NULL, "normalise the empty path fails");
	ok(!tar_check_normalise("abcd", small, sizeof(small)) && small[0] == '\0',
	   "normalise into a buffer too small fails, leaving it empty");
	ok(tar_check_normalise("./abc", small, sizeof(small)) && strcmp(small, "abc") == 0,
	   "normalise into a buffer just large enough");

	/* Many entries: the set grows and still finds everything. */
	tc = fresh();
	{
		bool		all = true;
		char		p[64];
		char		l[64];
		const char *r;

		for (i = 0; i < 100000 && all; i++)
		{
			snprintf(p, sizeof(p), "d%d/f%d", i % 97, i);
			all = tar_check_entry(tc, p, TAR_ENTRY_FILE, NULL) == NULL;
			if (i % 10 == 0)
			{
				snprintf(p, sizeof(p), "s%d", i);
				all = all && tar_check_entry(tc, p, TAR_ENTRY_SYMLINK, "/") == NULL;
			}
		}
		for (i = 0; i < 100000 && all; i++)
		{
			snprintf(p, sizeof(p), "h/%d", i);
			snprintf(l, sizeof(l), "./d%d//f%d", i % 97, i);
			all = tar_check_entry(tc, p, TAR_ENTRY_HARDLINK, l) == NULL;
			snprintf(p, sizeof(p), "s%d/x", i - i % 10);
			r = tar_check_entry(tc, p, TAR_ENTRY_FILE, NULL);
			all = all && r != NULL && strcmp(r, through) == 0;
		}
		ok(all, "100000 files, 10000 symlinks: every hard link found, every symlink refused");
	}
	tar_check_free(tc);

	free(big);
	printf("1..%d\n", tests);
	return failures == 0 ? 0 : 1;
}
