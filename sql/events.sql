--
-- Change events: the payloads a LISTENing session receives on
-- 'workspace_changes' for a create, a desired_state change and component
-- writes of observed_status, operation and error_info, and the absence of
-- events for writes that change none of the watched columns.
--
-- The listener runs in a separate psql (test/regress/events_session.psql);
-- its process id, timestamps and uuids vary from run to run and are masked.
\! psql -X -d contrib_regression -f test/regress/events_session.psql 2>&1 | sed -E -e 's/PID [0-9]+/PID <pid>/' -e 's/"at": "[^"]+"/"at": "<time>"/' -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uuid>/g'

-- The payload stays far below NOTIFY's 8000-byte limit even with a huge
-- error message.
SELECT octet_length(wsctl.change_event(w, true)::text) < 2000 AS small_payload
  FROM (SELECT (jsonb_populate_record(NULL::wsctl.workspaces,
			jsonb_build_object('id', gen_random_uuid(), 'observed_status', 'ERROR',
							   'operation', 'STARTING', 'desired_state', 'RUNNING',
							   'error_count', 4, 'error_message', repeat('x', 100000))))
		AS w) AS s;
