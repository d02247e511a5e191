-- pgbench script of test/integration/running_limits_load.t: each
-- transaction asks one random workspace to run, or (one time in three)
-- releases one, through the real API. load_claim() turns WS429 into an
-- outcome instead of an error so that pgbench keeps going.
\set n random(1, :workspaces)
\set release random(1, 3)
SELECT load_claim(:n, :release = 1);
