/*
 * tar_check.h: decides, entry by entry, whether a home-directory archive is
 * safe to extract into a workspace's volume.
 *
 * A restore archive is untrusted: anyone who can write to the bucket can
 * plant one, and extraction runs with the rights of the volume's owner.  An
 * archive must not be able to write outside the volume (absolute paths,
 * "..", a path through a symlink it stored itself, a hard link to a file
 * outside), nor create device nodes.  The caller reads the archive with
 * libarchive and asks tar_check_entry() about each header, in archive order,
 * before anything is written; the first rejection ends the restore.
 *
 * Deliberately plain C99 with only standard headers, no postgres.h, no
 * palloc: the same file is compiled into the extension and, on its own, into
 * a libFuzzer target and a unit test (test/fuzz/).
 */
#ifndef WSCTL_TAR_CHECK_H
#define WSCTL_TAR_CHECK_H

#include <stdbool.h>
#include <stddef.h>

/* Longest archive path accepted, in bytes, and most components in one. */
#define TAR_CHECK_PATH_MAX		4096
#define TAR_CHECK_COMPONENTS_MAX	256

typedef enum TarEntryType
{
	TAR_ENTRY_FILE,
	TAR_ENTRY_DIR,
	TAR_ENTRY_SYMLINK,
	TAR_ENTRY_HARDLINK,
	TAR_ENTRY_DEVICE,			/* character or block device */
	TAR_ENTRY_FIFO,
	TAR_ENTRY_SOCKET
} TarEntryType;

/* What one archive has stored so far; one per archive, never shared. */
typedef struct TarCheck TarCheck;

/* NULL when out of memory. */
extern TarCheck *tar_check_create(void);
extern void tar_check_free(TarCheck *tc);

/*
 * NULL when the entry is safe to extract; otherwise a static English reason
 * ("absolute path", "'..' in path", ...).  link is the symlink's or the hard
 * link's target, NULL for other types.  A rejected entry leaves tc as it was.
 */
extern const char *tar_check_entry(TarCheck *tc, const char *path,
								   TarEntryType type, const char *link);

/*
 * Writes the normalised form of path to out (outlen bytes, NUL included):
 * "./a//b/" -> "a/b", "." -> ".".  false, with out empty, when the path is
 * unsafe (absolute, "..", empty, too long) or does not fit.
 */
extern bool tar_check_normalise(const char *path, char *out, size_t outlen);

#endif							/* WSCTL_TAR_CHECK_H */
