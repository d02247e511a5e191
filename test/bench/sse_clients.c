/*
 * sse_clients.c: N SSE clients of wsctl-sse in one libevent loop, for
 * test/bench/sse.sh.
 *
 *	sse_clients PORT PATH N EXPECT TIMEOUT
 *
 * Opens N connections to 127.0.0.1:PORT, GET PATH (a wsctl-sse stream with
 * its token), prints "READY" once every one has its ": connected" comment,
 * waits until each has received EXPECT events (or TIMEOUT seconds), and
 * prints one JSON line: clients, how many got every event, events
 * delivered, and the latency from each event's "at" (when its transaction
 * wrote it, UTC, microseconds) to its arrival on every client, p50/p99/max
 * in ms. In C so that the clients cost little next to the relay: on two
 * cores a client process that needs a core of its own for 100,000
 * messages a second measures itself, not the relay.
 */
#define _GNU_SOURCE
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct Client
{
	struct bufferevent *bev;
	long		got;
	int			ready;
	int			done;
} Client;

static struct event_base *base;
static Client *clients;
static long n_clients;
static long expect;
static long n_ready;
static long n_done;
static double *lat;				/* ms, one per delivered event */
static size_t n_lat;
static size_t cap_lat;

static double
now_utc(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "at":"YYYY-MM-DDTHH:MM:SS.ffffffZ" in a data line, as seconds; -1 if absent. */
static double
event_time(const char *line)
{
	const char *p = strstr(line, "\"at\": \"");
	struct tm	tm;
	char	   *rest;
	double		frac = 0;

	if (p)
		p += 7;
	else if ((p = strstr(line, "\"at\":\"")) != NULL)
		p += 6;
	else
		return -1;
	memset(&tm, 0, sizeof(tm));
	rest = strptime(p, "%Y-%m-%dT%H:%M:%S", &tm);
	if (rest == NULL)
		return -1;
	if (*rest == '.')
		frac = strtod(rest, NULL);
	return (double) timegm(&tm) + frac;
}

static void
finish_client(Client *c)
{
	if (c->done)
		return;
	c->done = 1;
	bufferevent_free(c->bev);
	if (++n_done == n_clients)
		event_base_loopexit(base, NULL);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	Client	   *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t		len;
	char	   *line;

	while (!c->done && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL)
	{
		if (!c->ready && strncmp(line, ": connected", 11) == 0)
		{
			c->ready = 1;
			if (++n_ready == n_clients)
			{
				printf("READY\n");
				fflush(stdout);
			}
		}
		else if (strncmp(line, "data: ", 6) == 0)
		{
			double		at = event_time(line);

			if (at > 0)
			{
				if (n_lat == cap_lat)
				{
					cap_lat = cap_lat ? cap_lat * 2 : 1 << 20;
					lat = realloc(lat, cap_lat * sizeof(double));
					if (lat == NULL)
						abort();
				}
				lat[n_lat++] = (now_utc() - at) * 1000.0;
			}
			if (++c->got >= expect)
			{
				free(line);
				finish_client(c);
				return;
			}
		}
		free(line);
	}
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	(void) bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		finish_client(arg);
}

static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return (x > y) - (x < y);
}

static double
pick(double q)
{
	size_t		i = (size_t) (q * n_lat);

	return lat[i < n_lat ? i : n_lat - 1];
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct timeval tv;
	long		complete = 0,
				events = 0;

	if (argc != 6)
	{
		fprintf(stderr, "usage: %s PORT PATH N EXPECT TIMEOUT\n", argv[0]);
		return 2;
	}
	n_clients = atol(argv[3]);
	expect = atol(argv[4]);
	tv.tv_sec = atol(argv[5]);
	tv.tv_usec = 0;
	base = event_base_new();
	clients = calloc(n_clients, sizeof(Client));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short) atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (long i = 0; i < n_clients; i++)
	{
		Client	   *c = &clients[i];

		c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
		bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
		bufferevent_enable(c->bev, EV_READ);
		if (bufferevent_socket_connect(c->bev, (struct sockaddr *) &sa, sizeof(sa)) < 0)
		{
			fprintf(stderr, "sse_clients: connect %ld failed\n", i);
			return 1;
		}
		evbuffer_add_printf(bufferevent_get_output(c->bev),
							"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
							argv[2]);
	}
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);

	for (long i = 0; i < n_clients; i++)
	{
		events += clients[i].got;
		complete += clients[i].got >= expect;
	}
	if (n_lat == 0)
	{
		printf("{\"clients\": %ld, \"complete\": %ld, \"events\": %ld, \"p50_ms\": null, \"p99_ms\": null, \"max_ms\": null}\n",
			   n_clients, complete, events);
		return 0;
	}
	qsort(lat, n_lat, sizeof(double), cmp_double);
	printf("{\"clients\": %ld, \"complete\": %ld, \"events\": %ld, \"p50_ms\": %.1f, \"p99_ms\": %.1f, \"max_ms\": %.1f}\n",
		   n_clients, complete, events, pick(0.5), pick(0.99), lat[n_lat - 1]);
	return 0;
}
