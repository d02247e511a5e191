-- wsctl--0.1--0.2.0.sql: ALTER EXTENSION wsctl UPDATE from 0.1 to 0.2.0.
--
-- It turns an installed 0.1 into exactly what CREATE EXTENSION wsctl gives
-- with 0.2.0's install script (the files of src/sql/ concatenated): the same
-- objects, definitions, privileges, owners and comments, every row kept.
-- test/upgrade/upgrade.t checks that, object by object, against a fresh
-- install, and fails on any difference.
--
-- What each change to src/sql/ since 0.1 needs here:
--   a new function or view   the same CREATE statement and COMMENT ON; the
--                            REVOKE ... FROM PUBLIC and the GRANTs that
--                            90_privileges.sql gives it (the two blocks at the
--                            end re-apply the revokes and the pinned search_path)
--   a changed function       CREATE OR REPLACE with the new body (a changed
--                            signature: DROP FUNCTION first, then grants and
--                            comment again)
--   a changed view           CREATE OR REPLACE VIEW (only adding columns at the
--                            end), else DROP VIEW and CREATE VIEW, then grants
--                            and comment again
--   a new column             ALTER TABLE ... ADD COLUMN, at the end of the table
--                            in src/sql/ too (the test compares column order)
--   changed seed rows        (wsctl.locks, wsctl.column_owners) INSERT/UPDATE
--                            them here
-- 0.1 is commit 83fb925; its script is kept in test/upgrade/wsctl--0.1.sql.
--
-- The library: 0.2.0's wsctl.so still exports every C symbol 0.1's script
-- names. It is preloaded, so install the new build, restart PostgreSQL, then
-- run ALTER EXTENSION wsctl UPDATE in every database that has the extension
-- (docs/operations.md, "Upgrading").

\echo Use "ALTER EXTENSION wsctl UPDATE TO '0.2.0'" to load this file. \quit

-- ------------------------------------------------------------ changes of 0.2.0


-- ------------------------------------------------------------ as 90_privileges.sql ends
-- Nothing in schema wsctl is for PUBLIC, and every function runs with a
-- pinned search_path: applied again so that what was added above is covered
-- as a fresh install covers it (both are no-ops on 0.1's objects).

REVOKE ALL ON ALL TABLES IN SCHEMA wsctl FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA wsctl FROM PUBLIC;

DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
		 WHERE p.pronamespace = 'wsctl'::regnamespace
		   AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) AS c WHERE c LIKE 'search\_path=%')
	LOOP
		EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, pg_temp', f);
	END LOOP;
END
$$;
