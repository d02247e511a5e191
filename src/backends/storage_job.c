/*
 * storage_job.c: the data half of ARCHIVING and RESTORING.
 *
 * Archive:  Docker GET archive (tar of /data)
 *             -> libarchive reader, entry by entry (special files and
 *                unsafe names dropped, "data/x" renamed "x")
 *             -> libarchive writer (pax, zstd or gzip)
 *             -> SHA-256 and a part buffer -> S3 multipart upload
 *           then key.meta = "sha256:<hex>", the commit marker, last.
 * Restore:  S3 GET (streamed) -> SHA-256
 *             -> libarchive reader (zstd or gzip), each entry checked by
 *                tar_check before it is written (renamed "data/x")
 *             -> libarchive writer (plain pax) -> Docker PUT archive at /
 *           then the SHA-256 is compared with the meta's.
 * A restore writes while it verifies: content that turns out corrupt or
 * unsafe has only ever reached the volume, which the caller then removes,
 * and the operation never reports success, so the workspace can never be
 * declared STANDBY on it (the completion rule of DESIGN section 5).
 *
 * libarchive calls our callbacks on its own stack. They do not throw for a
 * transfer problem (they record it and return an error), but an interrupt
 * (SIGTERM) raised while they wait ends the process through FATAL, which
 * is how an operation worker is stopped anyway.
 */
#include "postgres.h"

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "curl_stream.h"
#include "docker.h"
#include "metrics.h"
#include "s3.h"
#include "shmem.h"
#include "storage_job.h"
#include "tar_check.h"
#include "utils/timestamp.h"

/* Size of the blocks copied between reader and writer. */
#define COPY_BLOCK_BYTES	(64 * 1024)
/* Progress is published at most this often (bytes, or milliseconds). */
#define PROGRESS_BYTES		(1024 * 1024)
#define PROGRESS_MS			200
/* A meta object is one short line. */
#define META_MAX_BYTES		256

int			wsctl_archive_compression = WSCTL_COMPRESSION_ZSTD;
int			wsctl_archive_part_size_kb = 16 * 1024;

const char *
storage_archive_file_name(void)
{
	return wsctl_archive_compression == WSCTL_COMPRESSION_GZIP ?
		"home.tar.gz" : "home.tar.zst";
}

/* ---------------------------------------------------------------- progress */

typedef struct Progress
{
	int			slot;
	int64		done;
	int64		total;
	int64		published;
	TimestampTz published_at;
} Progress;

static void
progress_add(Progress *p, int64 bytes, bool force)
{
	TimestampTz now;

	p->done += bytes;
	if (p->slot < 0)
		return;
	if (!force && p->done - p->published < PROGRESS_BYTES)
		return;
	now = GetCurrentTimestamp();
	if (!force && !TimestampDifferenceExceeds(p->published_at, now, PROGRESS_MS))
		return;
	wsctl_op_slot_progress(p->slot, p->done, p->total);
	p->published = p->done;
	p->published_at = now;
}

/* ---------------------------------------------------------------- hashing */

static EVP_MD_CTX *
sha256_begin(void)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL))
		elog(ERROR, "wsctl: could not start SHA-256");
	return ctx;
}

static char *
sha256_end(EVP_MD_CTX *ctx)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	char	   *hex = palloc(2 * EVP_MAX_MD_SIZE + 1);

	if (!EVP_DigestFinal_ex(ctx, md, &len))
		elog(ERROR, "wsctl: could not finish SHA-256");
	EVP_MD_CTX_free(ctx);
	for (unsigned int i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	return hex;
}

/* ---------------------------------------------------------------- outcomes */

static OpOutcome
s3_outcome(S3Result r, const char *what)
{
	const char *reason = r.kind == S3_UNREACHABLE ? "Unreachable" : "ActionFailed";
	const char *code = r.kind == S3_DENIED ? "S3_ACCESS_DENIED" : "S3_ACCESS_ERROR";

	return op_failed(reason, code, psprintf("%s: %s", what, r.message));
}

static OpOutcome
stream_outcome(CurlStream *s, bool docker)
{
	if (docker && curl_stream_connect_failed(s))
		return op_failed("Unreachable", "DOCKER_UNAVAILABLE", pstrdup(curl_stream_error(s)));
	if (curl_stream_status(s) == 0 || curl_stream_status(s) >= 500)
		return op_failed("Unreachable", docker ? NULL : "S3_ACCESS_ERROR",
						 pstrdup(curl_stream_error(s)));
	if (!docker && curl_stream_status(s) == 403)
		return op_failed("ActionFailed", "S3_ACCESS_DENIED", pstrdup(curl_stream_error(s)));
	return op_failed("ActionFailed", docker ? NULL : "S3_ACCESS_ERROR",
					 pstrdup(curl_stream_error(s)));
}

/* A finished transfer, counted for wsctl.metrics as one call. */
static void
stream_close(CurlStream *s, WsctlService service)
{
	wsctl_metrics_call(service, curl_stream_failed(s));
	curl_stream_close(s);
}

/* ---------------------------------------------------------------- reading */

/* A download as libarchive's input; optionally hashed and counted. */
typedef struct PartSink PartSink;

typedef struct StreamSource
{
	CurlStream *stream;
	EVP_MD_CTX *sha;
	Progress   *progress;
	PartSink   *pump;			/* its part upload advances with each read */
	bool		failed;
	char		buf[COPY_BLOCK_BYTES];
} StreamSource;

static void sink_pump(PartSink *sink);

static la_ssize_t
source_read(struct archive *a, void *client, const void **buf)
{
	StreamSource *src = (StreamSource *) client;
	ssize_t		n;

	if (src->pump)
		sink_pump(src->pump);
	n = curl_stream_read(src->stream, src->buf, sizeof(src->buf));
	if (n < 0)
	{
		src->failed = true;
		archive_set_error(a, EIO, "transfer failed");
		return -1;
	}
	if (src->sha && n > 0)
		EVP_DigestUpdate(src->sha, src->buf, n);
	if (src->progress)
		progress_add(src->progress, n, false);
	*buf = src->buf;
	return n;
}

/* Reads what libarchive left unread (trailing blocks), so the hash covers all. */
static bool
source_drain(StreamSource *src)
{
	ssize_t		n;

	while ((n = curl_stream_read(src->stream, src->buf, sizeof(src->buf))) > 0)
	{
		if (src->sha)
			EVP_DigestUpdate(src->sha, src->buf, n);
		if (src->progress)
			progress_add(src->progress, n, false);
	}
	if (n < 0)
		src->failed = true;
	return n == 0;
}

/* ---------------------------------------------------------------- uploading */

/*
 * The archive's compressed bytes: hashed, cut into parts, uploaded. Two
 * part buffers: while one part uploads, the next one fills, so reading
 * Docker's stream and compressing go on during the upload instead of
 * waiting for it. Memory: two parts, whatever the archive's size.
 */
struct PartSink
{
	const char *key;
	EVP_MD_CTX *sha;
	char	   *part;			/* filling */
	char	   *spare;			/* the part in flight, or free */
	size_t		part_len;
	size_t		part_size;
	char	   *upload_id;		/* NULL until the first full part */
	S3PartUpload *in_flight;	/* the previous part, still uploading */
	int			parts;			/* parts started */
	List	   *etags;
	int64		bytes;
	bool		failed;
	OpOutcome	failure;
};

static void
sink_pump(PartSink *sink)
{
	if (sink->in_flight)
		(void) s3_multipart_upload_part_pump(sink->in_flight);
}

/* Waits for the part in flight, if any; false (and why) if it failed. */
static bool
sink_wait(PartSink *sink)
{
	S3Result	r;
	char	   *etag;

	if (sink->in_flight == NULL)
		return true;
	r = s3_multipart_upload_part_finish(sink->in_flight, &etag);
	sink->in_flight = NULL;
	if (r.kind != S3_OK)
	{
		sink->failure = s3_outcome(r, psprintf("uploading part %d", list_length(sink->etags) + 1));
		return false;
	}
	sink->etags = lappend(sink->etags, etag);
	return true;
}

/* Sends the filled part, once the one before it has arrived. */
static bool
sink_flush_part(PartSink *sink)
{
	char	   *sent = sink->part;

	if (sink->upload_id == NULL)
	{
		S3Result	r = s3_multipart_create(sink->key, &sink->upload_id);

		if (r.kind != S3_OK)
		{
			sink->failure = s3_outcome(r, "starting the upload");
			return false;
		}
	}
	if (!sink_wait(sink))
		return false;
	sink->in_flight = s3_multipart_upload_part_start(sink->key, sink->upload_id, ++sink->parts,
													 sent, sink->part_len);
	sink->part = sink->spare;
	sink->spare = sent;
	sink->part_len = 0;
	return true;
}

static la_ssize_t
sink_write(struct archive *a, void *client, const void *buf, size_t len)
{
	PartSink   *sink = (PartSink *) client;
	const char *p = buf;
	size_t		left = len;

	if (sink->failed)
		return -1;
	sink_pump(sink);
	EVP_DigestUpdate(sink->sha, buf, len);
	sink->bytes += len;
	while (left > 0)
	{
		size_t		n = Min(left, sink->part_size - sink->part_len);

		memcpy(sink->part + sink->part_len, p, n);
		sink->part_len += n;
		p += n;
		left -= n;
		if (sink->part_len == sink->part_size && !sink_flush_part(sink))
		{
			sink->failed = true;
			archive_set_error(a, EIO, "upload failed");
			return -1;
		}
	}
	return len;
}

/* The last bytes: one PutObject for a small archive, else the last part. */
static bool
sink_finish(PartSink *sink)
{
	S3Result	r;

	if (sink->upload_id == NULL)
	{
		r = s3_put(sink->key, sink->part, sink->part_len);
		if (r.kind != S3_OK)
			sink->failure = s3_outcome(r, "uploading the archive");
		return r.kind == S3_OK;
	}
	if ((sink->part_len > 0 && !sink_flush_part(sink)) || !sink_wait(sink))
		return false;
	r = s3_multipart_complete(sink->key, sink->upload_id, sink->etags);
	if (r.kind != S3_OK)
	{
		sink->failure = s3_outcome(r, "completing the upload");
		return false;
	}
	sink->upload_id = NULL;
	return true;
}

/* An unfinished multipart upload is aborted, so S3 keeps no orphan parts. */
static void
sink_abort(PartSink *sink)
{
	(void) sink_wait(sink);
	if (sink->upload_id != NULL)
		(void) s3_multipart_abort(sink->key, sink->upload_id);
	sink->upload_id = NULL;
}

/* Docker's PUT as libarchive's output. */
static la_ssize_t
docker_sink_write(struct archive *a, void *client, const void *buf, size_t len)
{
	if (!curl_stream_write((CurlStream *) client, buf, len))
	{
		archive_set_error(a, EIO, "upload to Docker failed");
		return -1;
	}
	return len;
}

/* ---------------------------------------------------------------- entries */

static TarEntryType
entry_type(struct archive_entry *e)
{
	if (archive_entry_hardlink(e) != NULL)
		return TAR_ENTRY_HARDLINK;
	switch (archive_entry_filetype(e))
	{
		case AE_IFDIR:
			return TAR_ENTRY_DIR;
		case AE_IFLNK:
			return TAR_ENTRY_SYMLINK;
		case AE_IFCHR:
		case AE_IFBLK:
			return TAR_ENTRY_DEVICE;
		case AE_IFIFO:
			return TAR_ENTRY_FIFO;
		case AE_IFSOCK:
			return TAR_ENTRY_SOCKET;
		default:
			return TAR_ENTRY_FILE;
	}
}

/*
 * Docker names the entries of /data "data", "data/x": stored as ".", "x".
 * NULL for a name that is not below data/ or is unsafe.
 */
static char *
archive_name(const char *docker_name)
{
	char		norm[TAR_CHECK_PATH_MAX + 1];

	if (docker_name == NULL || !tar_check_normalise(docker_name, norm, sizeof(norm)))
		return NULL;
	if (strcmp(norm, "data") == 0)
		return pstrdup(".");
	if (strncmp(norm, "data/", 5) == 0 && norm[5] != '\0')
		return pstrdup(norm + 5);
	return NULL;
}

/* The reverse: ".", "x" are extracted at / as "data", "data/x". */
static char *
volume_name(const char *archived)
{
	char		norm[TAR_CHECK_PATH_MAX + 1];

	if (!tar_check_normalise(archived, norm, sizeof(norm)))
		return NULL;
	return strcmp(norm, ".") == 0 ? pstrdup("data") : psprintf("data/%s", norm);
}

/* Copies the data of the current entry; false on a read or write error. */
static bool
copy_data(struct archive *in, struct archive *out, char *block)
{
	for (;;)
	{
		la_ssize_t	n = archive_read_data(in, block, COPY_BLOCK_BYTES);

		if (n == 0)
			return true;
		if (n < 0)
			return false;
		if (archive_write_data(out, block, n) != n)
			return false;
	}
}

/* ---------------------------------------------------------------- archive */

typedef struct ArchiveRun
{
	struct archive *in;
	struct archive *out;
	StreamSource *src;
	PartSink   *sink;
	int64		entries;
	int64		skipped;
} ArchiveRun;

static bool
setup_writer(struct archive *out, PartSink *sink, char **error)
{
	int			r;
	const char *filter = wsctl_archive_compression == WSCTL_COMPRESSION_GZIP ? "gzip" : "zstd";

	archive_write_set_format_pax_restricted(out);
	/* no padding after the compressed stream: the object is exactly the frame */
	archive_write_set_bytes_in_last_block(out, 1);
	r = wsctl_archive_compression == WSCTL_COMPRESSION_GZIP ?
		archive_write_add_filter_gzip(out) : archive_write_add_filter_zstd(out);
	/* ARCHIVE_WARN would mean an external program: not acceptable here */
	/*
	 * zstd compresses in a second thread of its own (libzstd's, which never
	 * calls into PostgreSQL), so reading and compressing overlap.
	 */
	if (r == ARCHIVE_OK && wsctl_archive_compression == WSCTL_COMPRESSION_ZSTD)
		(void) archive_write_set_filter_option(out, "zstd", "threads", "2");
	if (r != ARCHIVE_OK ||
		archive_write_set_filter_option(out, filter, "compression-level", "1") != ARCHIVE_OK ||
		archive_write_open(out, sink, NULL, sink_write, NULL) != ARCHIVE_OK)
	{
		*error = psprintf("libarchive cannot write %s: %s", filter, archive_error_string(out));
		return false;
	}
	return true;
}

/* Copies every entry of Docker's tar into the compressed archive. */
static bool
archive_entries(ArchiveRun *run, char **error)
{
	struct archive_entry *e;
	char	   *block = palloc(COPY_BLOCK_BYTES);

	for (;;)
	{
		int			r = archive_read_next_header(run->in, &e);
		TarEntryType type;
		char	   *name;

		if (r == ARCHIVE_EOF)
			return true;
		if (r < ARCHIVE_WARN)
		{
			*error = psprintf("reading the volume: %s", archive_error_string(run->in));
			return false;
		}
		type = entry_type(e);
		name = archive_name(archive_entry_pathname(e));
		/* special files are not data; Docker never sends unsafe names */
		if (type == TAR_ENTRY_DEVICE || type == TAR_ENTRY_FIFO ||
			type == TAR_ENTRY_SOCKET || name == NULL)
		{
			run->skipped++;
			continue;
		}
		if (type == TAR_ENTRY_HARDLINK)
		{
			char	   *target = archive_name(archive_entry_hardlink(e));

			if (target == NULL)
			{
				run->skipped++;
				continue;
			}
			archive_entry_set_hardlink(e, target);
		}
		archive_entry_set_pathname(e, name);
		if (archive_write_header(run->out, e) != ARCHIVE_OK ||
			!copy_data(run->in, run->out, block))
		{
			*error = psprintf("archiving \"%s\": %s", name,
							  run->sink->failed ? "upload failed" :
							  archive_error_string(archive_errno(run->out) ? run->out : run->in));
			return false;
		}
		run->entries++;
	}
}

OpOutcome
storage_archive(const DockerDaemon *d, const char *workspace_id, const char *key,
				int progress_slot)
{
	Progress	progress = {progress_slot, 0, -1, 0, 0};
	StreamSource *src = palloc0(sizeof(StreamSource));
	PartSink   *sink = palloc0(sizeof(PartSink));
	CurlStreamTarget target = {"GET", NULL, NULL, NULL, "Docker GET archive"};
	DockerResult dr;
	ArchiveRun	run = {0};
	char	   *url;
	char	   *socket_path;
	char	   *error = NULL;
	char	   *hex;
	bool		ok;
	S3Result	r;

	if (!docker_archive_endpoint(d, workspace_id, false, &url, &socket_path, &dr))
		return op_failed("ActionFailed", NULL, dr.message);
	target.url = url;
	target.unix_socket_path = socket_path;

	sink->key = key;
	sink->sha = sha256_begin();
	sink->part_size = (size_t) wsctl_archive_part_size_kb * 1024;
	sink->part = palloc(sink->part_size);
	sink->spare = palloc(sink->part_size);
	src->stream = curl_stream_open_download(&target);
	src->pump = sink;
	src->progress = &progress;
	run.src = src;
	run.sink = sink;
	run.in = archive_read_new();
	run.out = archive_write_new();
	archive_read_support_format_tar(run.in);

	ok = setup_writer(run.out, sink, &error) &&
		archive_read_open(run.in, src, NULL, source_read, NULL) == ARCHIVE_OK &&
		archive_entries(&run, &error);
	if (ok && archive_write_close(run.out) != ARCHIVE_OK)
	{
		ok = false;
		error = psprintf("finishing the archive: %s", archive_error_string(run.out));
	}
	if (ok)
		ok = curl_stream_finish(src->stream);
	progress_add(&progress, 0, true);

	if (!ok)
	{
		OpOutcome	o;

		if (sink->failed)
			o = sink->failure;
		else if (src->failed || curl_stream_failed(src->stream))
			o = stream_outcome(src->stream, true);
		else
			o = op_failed("ActionFailed", "ARCHIVE_FAILED",
						  error ? error : pstrdup(archive_error_string(run.in)));
		wsctl_metrics_archive_bytes(WSCTL_ARCHIVE_UPLOADED, sink->bytes);
		sink_abort(sink);
		archive_read_free(run.in);
		archive_write_free(run.out);
		stream_close(src->stream, WSCTL_SERVICE_DOCKER);
		return o;
	}
	archive_read_free(run.in);
	archive_write_free(run.out);
	stream_close(src->stream, WSCTL_SERVICE_DOCKER);

	ok = sink_finish(sink);
	wsctl_metrics_archive_bytes(WSCTL_ARCHIVE_UPLOADED, sink->bytes);
	if (!ok)
	{
		sink_abort(sink);
		return sink->failure;
	}
	hex = sha256_end(sink->sha);
	/* the meta is the commit marker: written only once the object is whole */
	r = s3_put(psprintf("%s.meta", key), psprintf("sha256:%s", hex), 7 + strlen(hex));
	if (r.kind != S3_OK)
		return s3_outcome(r, "uploading the meta");
	ereport(LOG,
			(errmsg("wsctl operation: workspace %s: ARCHIVING uploaded %s: %lld entries (%lld special or unsafe left out), %lld bytes read, %lld bytes stored, sha256 %s",
					workspace_id, key, (long long) run.entries, (long long) run.skipped,
					(long long) progress.done, (long long) sink->bytes, hex)));
	return op_succeeded();
}

/* ---------------------------------------------------------------- restore */

OpOutcome
storage_read_meta(const char *key, char **sha256_hex)
{
	char	   *meta_key = psprintf("%s.meta", key);
	StringInfo	body;
	S3Result	r = s3_get_small(meta_key, META_MAX_BYTES, &body);
	char	   *text;
	int			len;

	if (r.kind == S3_NOT_FOUND)
		return op_failed("DataLost", "META_NOT_FOUND",
						 psprintf("the archive's meta %s is missing (the archive was never committed)",
								  meta_key));
	if (r.kind != S3_OK)
		return s3_outcome(r, "reading the meta");
	text = body->data;
	len = body->len;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
		len--;
	if (len != 7 + 64 || strncmp(text, "sha256:", 7) != 0 ||
		strspn(text + 7, "0123456789abcdef") < 64)
		return op_failed("DataLost", "META_INVALID",
						 psprintf("the archive's meta %s does not hold sha256:<hex>", meta_key));
	*sha256_hex = pnstrdup(text + 7, 64);
	return op_succeeded();
}

typedef struct RestoreRun
{
	struct archive *in;
	struct archive *out;
	TarCheck   *check;
	int64		entries;
	char	   *unsafe;			/* why an entry was refused */
} RestoreRun;

/* Checks and copies every entry into Docker's tar; false at the first problem. */
static bool
restore_entries(RestoreRun *run, char **error)
{
	struct archive_entry *e;
	char	   *block = palloc(COPY_BLOCK_BYTES);

	for (;;)
	{
		int			r = archive_read_next_header(run->in, &e);
		const char *path;
		const char *link;
		const char *why;
		TarEntryType type;
		char	   *name;

		if (r == ARCHIVE_EOF)
			return true;
		if (r < ARCHIVE_WARN)
		{
			*error = psprintf("reading the archive: %s", archive_error_string(run->in));
			return false;
		}
		path = archive_entry_pathname(e);
		type = entry_type(e);
		link = type == TAR_ENTRY_HARDLINK ? archive_entry_hardlink(e) :
			type == TAR_ENTRY_SYMLINK ? archive_entry_symlink(e) : NULL;
		why = path ? tar_check_entry(run->check, path, type, link) : "entry without a name";
		if (why != NULL)
		{
			run->unsafe = psprintf("entry \"%s\"%s%s: %s", path ? path : "",
								   link ? " -> " : "", link ? link : "", why);
			return false;
		}
		name = volume_name(path);
		archive_entry_set_pathname(e, name);
		if (type == TAR_ENTRY_HARDLINK)
			archive_entry_set_hardlink(e, volume_name(link));
		if (archive_write_header(run->out, e) != ARCHIVE_OK ||
			!copy_data(run->in, run->out, block))
		{
			*error = psprintf("restoring \"%s\": %s", path,
							  archive_error_string(archive_errno(run->out) ? run->out : run->in));
			return false;
		}
		run->entries++;
	}
}

OpOutcome
storage_restore(const DockerDaemon *d, const char *workspace_id, const char *key,
				int64 object_size,
				const char *expected_sha256, int progress_slot)
{
	Progress	progress = {progress_slot, 0, object_size, 0, 0};
	StreamSource *src = palloc0(sizeof(StreamSource));
	CurlStreamTarget get = {"GET", NULL, NULL, NULL, "S3 GET archive"};
	CurlStreamTarget put = {"PUT", NULL, NULL, NULL, "Docker PUT archive"};
	S3SignedRequest sreq;
	S3Result	sr;
	DockerResult dr;
	RestoreRun	run = {0};
	CurlStream *docker;
	char	   *error = NULL;
	char	   *hex;
	bool		ok;
	bool		complete;

	sr = s3_sign_get(key, &sreq);
	if (sr.kind != S3_OK)
		return s3_outcome(sr, "reading the archive");
	if (!docker_archive_endpoint(d, workspace_id, true, (char **) &put.url,
								 (char **) &put.unix_socket_path, &dr))
		return op_failed("ActionFailed", NULL, dr.message);
	get.url = sreq.url;
	get.headers = sreq.headers;
	put.headers = curl_slist_append(NULL, "Content-Type: application/x-tar");

	run.check = tar_check_create();
	if (run.check == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	src->stream = curl_stream_open_download(&get);
	src->sha = sha256_begin();
	src->progress = &progress;
	docker = curl_stream_open_upload(&put);
	run.in = archive_read_new();
	run.out = archive_write_new();
	archive_read_support_format_tar(run.in);
	archive_read_support_filter_zstd(run.in);
	archive_read_support_filter_gzip(run.in);
	archive_write_set_format_pax_restricted(run.out);

	if (archive_write_open(run.out, docker, NULL, docker_sink_write, NULL) != ARCHIVE_OK)
		error = psprintf("starting the extraction: %s", archive_error_string(run.out));
	else if (archive_read_open(run.in, src, NULL, source_read, NULL) != ARCHIVE_OK)
		error = psprintf("opening the archive: %s", archive_error_string(run.in));
	ok = error == NULL && restore_entries(&run, &error);
	/* the hash covers the whole object, whatever the reader stopped at */
	complete = !src->failed && source_drain(src);
	hex = sha256_end(src->sha);
	progress_add(&progress, 0, true);
	wsctl_metrics_archive_bytes(WSCTL_ARCHIVE_DOWNLOADED, progress.done);
	if (ok && archive_write_close(run.out) != ARCHIVE_OK)
	{
		ok = false;
		error = psprintf("finishing the extraction: %s", archive_error_string(run.out));
	}
	if (ok)
		ok = curl_stream_finish(docker);
	archive_read_free(run.in);
	archive_write_free(run.out);
	tar_check_free(run.check);

	/* what the bytes are decides first: a corrupt object explains a bad tar */
	if (!complete)
	{
		OpOutcome	o = stream_outcome(src->stream, false);

		stream_close(src->stream, WSCTL_SERVICE_S3);
		stream_close(docker, WSCTL_SERVICE_DOCKER);
		return o;
	}
	stream_close(src->stream, WSCTL_SERVICE_S3);
	if (strcmp(hex, expected_sha256) != 0)
	{
		stream_close(docker, WSCTL_SERVICE_DOCKER);
		return op_failed("DataLost", "CHECKSUM_MISMATCH",
						 psprintf("archive %s has SHA-256 %s, its meta says %s", key, hex,
								  expected_sha256));
	}
	if (run.unsafe != NULL)
	{
		stream_close(docker, WSCTL_SERVICE_DOCKER);
		return op_failed("DataLost", "UNSAFE_ENTRY",
						 psprintf("archive %s refused: %s", key, run.unsafe));
	}
	if (!ok)
	{
		OpOutcome	o = curl_stream_failed(docker) ? stream_outcome(docker, true) :
			op_failed("ActionFailed", "TAR_EXTRACT_FAILED",
					  error ? error : pstrdup("extraction failed"));

		stream_close(docker, WSCTL_SERVICE_DOCKER);
		return o;
	}
	stream_close(docker, WSCTL_SERVICE_DOCKER);
	ereport(LOG,
			(errmsg("wsctl operation: workspace %s: RESTORING extracted %s: %lld entries, %lld bytes, sha256 verified",
					workspace_id, key, (long long) run.entries, (long long) progress.done)));
	return op_succeeded();
}

/* ---------------------------------------------------------------- presence */

OpOutcome
storage_archive_present(const char *key, bool *present)
{
	bool		object;
	bool		meta;
	S3Result	r = s3_head(key, &object, NULL);

	*present = false;
	if (r.kind != S3_OK)
		return s3_outcome(r, "checking the archive");
	r = s3_head(psprintf("%s.meta", key), &meta, NULL);
	if (r.kind != S3_OK)
		return s3_outcome(r, "checking the archive's meta");
	*present = object && meta;
	return op_succeeded();
}

OpOutcome
storage_check_archive(const char *key, int64 *size, char **sha256_hex)
{
	bool		exists;
	OpOutcome	o = storage_read_meta(key, sha256_hex);
	S3Result	r;

	if (!o.ok)
		return o;
	r = s3_head(key, &exists, size);
	if (r.kind != S3_OK)
		return s3_outcome(r, "checking the archive");
	if (!exists)
		return op_failed("DataLost", "ARCHIVE_NOT_FOUND",
						 psprintf("archive %s is missing from the bucket", key));
	return op_succeeded();
}
