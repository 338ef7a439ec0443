-- What lets a change be written as one statement (one round trip, no
-- explicit transaction): see store-postgres/src/change.rs.

-- Locks the user's row, then counts their flows against the per-user
-- limits. Called from the statement that inserts a flow. A function of
-- its own because each statement of a volatile PL/pgSQL function takes a
-- fresh snapshot: the counts start after the lock is granted, so they see
-- every flow a concurrent creation committed before releasing it (one
-- statement's own snapshot is taken before it waits). The predicates are
-- those of flows_open_by_user_idx and flows_runs_by_user_idx. No row when
-- the user does not exist.
CREATE FUNCTION flow_insert_gate(p_user uuid, p_now timestamptz, p_since timestamptz,
    p_needs_identity boolean)
RETURNS TABLE (open_flows bigint, idv_runs bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM users WHERE id = p_user FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT
        (SELECT count(*) FROM flows f WHERE f.user_id = p_user
            AND f.state IN ('pending', 'awaiting_verification', 'verified', 'in_review')
            AND f.expires_at > p_now),
        CASE WHEN p_needs_identity THEN
            (SELECT count(*) FROM flows f WHERE f.user_id = p_user
                AND f.identity_status <> 'not_required' AND f.created_at > p_since)
        ELSE 0 END;
END
$$;

-- Ends the statement that calls it with an error, so that a change written
-- as one statement is undone as a whole when a check fails after some of
-- its writes were made. The error's SQLSTATE is BPC01, its message the
-- rule that refused (the store's Conflict).
CREATE FUNCTION change_refused(p_what text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'BPC01', MESSAGE = p_what;
END
$$;
